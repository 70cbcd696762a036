"""Feature extraction stages: read a main shard, batch its clips, run a backend, write one
sidecar shard per feature set with the same keys in the same order, check the result, and
describe a finished set (`feature.json`); plus fitting the offline units.

A backend refuses a clip by returning a string `reason: detail` instead of its features
(`reason` a short countable code); the refusal is kept as a rejection record, like the
build's, and the clip's sidecar samples hold only `rejected.txt`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unitaf_data.card import tool_version
from unitaf_data.dataset import (
    Dataset,
    DatasetLayout,
    Location,
    ShardRef,
    check_feature_folder,
    keys_digest,
    read_json_file,
    remove_feature_set,
)
from unitaf_data.features import FRAME_RATE, ClipInput, frames_for
from unitaf_data.reader import ShardError, Skips
from unitaf_data.schema import (
    SAMPLE_RATE,
    FeatureChecks,
    FeatureSetInfo,
    FieldSpec,
    Rejection,
    ShardInfo,
)
from unitaf_data.shards import npy_bytes, write_tar

log = logging.getLogger(__name__)

PROBLEM_KINDS = ("frames_off", "non_finite", "bad_shape")
_REASON = re.compile(r"[a-z][a-z0-9_]*")
_EXAMPLES = 20


@dataclass
class SetReport:
    """What extracting one shard gave one feature set: its sidecar's record, refusals and
    problems by kind (with a few examples)."""

    record: ShardInfo
    clips: int
    audio_seconds: float
    refused: list[Rejection] = field(default_factory=list)
    problems: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"record": self.record.to_dict(), "clips": self.clips,
                "audio_seconds": self.audio_seconds,
                "refused": [r.to_dict() for r in self.refused],
                "problems": dict(self.problems), "examples": self.examples}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> SetReport:
        return SetReport(ShardInfo.from_dict(data["record"]), data["clips"],
                         data["audio_seconds"], [Rejection(**r) for r in data["refused"]],
                         Counter(data["problems"]), data["examples"])


BAD_SAMPLE = "bad_sample"  # the refusal of a clip whose main-shard data is bad (skip_bad)


@dataclass
class _InOrder(Skips):
    """Skips that also keep each skipped sample's error, in stream order."""

    errors: list[ShardError] = field(default_factory=list)

    def add(self, error: ShardError) -> None:
        super().add(error)
        self.errors.append(error)


def clip_inputs(dataset: Dataset, shard: ShardRef, skip_bad: bool = False
                ) -> list[ClipInput | tuple[str, str]]:
    """The clips of a main shard in order. With `skip_bad`, a clip whose data is bad is
    `(key, "bad_sample: why")` in its place; a shard whose keys cannot all be read is still
    an error (its sidecars must hold every key in order)."""
    found: list[ClipInput | ShardError] = []
    skips = _InOrder() if skip_bad else None
    for sample in dataset.samples([shard], skips=skips):
        if skips is not None:  # errors raised while reading come before this sample
            found += skips.errors
            skips.errors.clear()
        try:
            found.append(ClipInput(sample.key, sample.audio(), sample.meta.text,
                                   sample.meta.duration, sample.meta, sample.face))
        except ShardError as error:
            if skips is None:
                raise
            found.append(error)
    if skips is None:
        return found
    found += skips.errors
    keys = [item.key for item in found]
    if None in keys or keys_digest(keys) != dataset.info.shards[shard.id].keys_sha256:
        raise ShardError(shard.id, "shard too damaged to skip single clips",
                         detail=f"{skips.examples[0] if skips.examples else ''}: rebuild it")
    return [item if isinstance(item, ClipInput) else (item.key, f"{BAD_SAMPLE}: {item}")
            for item in found]


def length_batches(clips: list[ClipInput], batch_seconds: float, same_length: bool
                   ) -> list[list[int]]:
    """Indices of clips grouped by length (longest first), each batch under `batch_seconds`
    of padded audio. With `same_length`, a batch only holds clips of one frame count (for
    encoders without an attention mask, where padding changes the result)."""
    order = sorted(range(len(clips)), key=lambda i: (-len(clips[i].audio), clips[i].key))
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        fits = current is not None and (len(current) + 1) * len(clips[current[0]].audio) \
            / SAMPLE_RATE <= batch_seconds
        same = current is not None and frames_for(len(clips[current[0]].audio)) == \
            frames_for(len(clips[i].audio))
        if fits and (same or not same_length):
            current.append(i)
        else:
            batches.append([i])
    return batches


def check_features(key: str, duration: float, fields: dict[str, np.ndarray],
                   declared: dict[str, FieldSpec]) -> list[tuple[str, str]]:
    """(kind, message) problems: frame count vs clip duration (±1 at 50 Hz, or the field's
    own rate), NaN/inf, shape against the declared field."""
    problems = []
    for name, array in fields.items():
        spec = declared[name]
        if not np.isfinite(array.astype(np.float32)).all():
            problems.append(("non_finite", f"{key}/{name}: NaN or inf"))
        sizes = array.shape[1:] if spec.time_varying else array.shape
        if sizes != tuple(spec.shape[1:] if spec.time_varying else spec.shape):
            problems.append(("bad_shape", f"{key}/{name}: shape {array.shape} != "
                                          f"{list(spec.shape)}"))
        if spec.time_varying and abs(len(array) - duration * (spec.rate or FRAME_RATE)) > 1:
            problems.append(("frames_off", f"{key}/{name}: {len(array)} frames for "
                                           f"{duration:.3f} s"))
    return problems


def refusal(key: str, result: str) -> Rejection:
    """A backend's `reason: detail` refusal of one clip as a rejection record."""
    reason, _, detail = result.partition(": ")
    if not _REASON.fullmatch(reason):
        raise ValueError(f"backend refusal {result!r} does not start with a reason code")
    return Rejection("clip", key, reason, detail)


def extract_shard(backend, feature_sets: list[str], dataset: Dataset, shard: ShardRef,
                  batch_seconds: float, skip_bad: bool = False) -> dict[str, SetReport]:
    """Run `backend` over one main shard and write its sidecar shards atomically; returns
    each set's report. Backends whose encoder has no attention mask (`backend.same_length`)
    get unpadded batches. With `skip_bad`, a clip with bad data is refused (`bad_sample`)
    instead of stopping the run."""
    entries = clip_inputs(dataset, shard, skip_bad)
    clips = [entry for entry in entries if isinstance(entry, ClipInput)]
    declared = {name: {k: FieldSpec.from_dict(v) for k, v in spec["fields"].items()}
                for name, spec in backend.describe().items()}
    outputs: list[dict[str, Any] | str | None] = [None] * len(clips)
    for batch in length_batches(clips, batch_seconds, backend.same_length):
        for i, result in zip(batch, backend.extract([clips[i] for i in batch]), strict=True):
            outputs[i] = result
    results = iter(outputs)
    keyed = [(entry.key, entry.duration, next(results)) if isinstance(entry, ClipInput)
             else (entry[0], 0.0, entry[1]) for entry in entries]
    seconds = sum(len(c.audio) for c in clips) / SAMPLE_RATE
    reports = {}
    for name in feature_sets:
        samples: list[dict[str, bytes | str]] = []
        problems: list[tuple[str, str]] = []
        refused = []
        for key, duration, result in keyed:
            sample: dict[str, bytes | str] = {"__key__": key}
            value = result if isinstance(result, str) else result[name]  # refused: one set
            if isinstance(value, str):                                   # or all of them
                refused.append(refusal(key, value))
                sample["rejected.txt"] = value.encode()
            else:
                problems += check_features(key, duration, value, declared[name])
                sample |= {field_name: npy_bytes(array) for field_name, array in value.items()}
            samples.append(sample)
        record = write_tar(dataset.store / dataset.layout.sidecar_relative(name, shard),
                           samples)
        reports[name] = SetReport(record, len(clips), seconds, refused,
                                  Counter(kind for kind, _ in problems),
                                  [message for _, message in problems[:_EXAMPLES]])
    return reports


_DESCRIBED = {"backend", "model", "fields", "frame_rate", "dims", "licences"}


def feature_info(name: str, declared: dict[str, Any], settings: dict[str, Any],
                 reports: dict[str, SetReport]) -> FeatureSetInfo:
    """`feature.json` of a finished set from the backend's description of it, the run's
    settings and every shard's report (`{shard id: report}`)."""
    problems = sum((r.problems for r in reports.values()), Counter())
    checks = FeatureChecks(
        clips=sum(r.clips for r in reports.values()),
        audio_hours=round(sum(r.audio_seconds for r in reports.values()) / 3600, 6),
        refused=tuple(x for r in reports.values() for x in r.refused),
        problems={kind: problems[kind] for kind in PROBLEM_KINDS},
        examples=tuple(e for r in reports.values() for e in r.examples)[:_EXAMPLES])
    return FeatureSetInfo(
        name=name, backend=declared["backend"], model=declared["model"],
        fields={k: FieldSpec.from_dict(v) for k, v in declared["fields"].items()},
        frame_rate=declared["frame_rate"], dims=declared["dims"], settings=settings,
        checks=checks, shards={shard: r.record for shard, r in sorted(reports.items())},
        licences=declared.get("licences", {}), tool_version=tool_version(),
        custom={k: v for k, v in declared.items() if k not in _DESCRIBED})


def fit_units(dataset_dir, k: int = 512, seed: int = 0, max_clips: int = 2000,
              split: str = "train", overwrite: bool = False) -> dict[str, Any]:
    """Learn `k` unit centroids from the Whisper states of a seeded sample of `split` clips
    (keys sampled from the manifest, so only those clips are decoded) and save them with
    the dataset (`features/units/centroids.npy`, `fit.json`); returns the fit's record.
    Units already fitted with these settings are kept (nothing to do). Codes already
    extracted with other centroids would no longer match new ones: an extracted `units` set
    is refused unless `overwrite` deletes it."""
    from unitaf_data.features.offline import WhisperEncoder
    from unitaf_data.features.units import centroids_location, fit_centroids, save_centroids

    dataset = Dataset.open_folder(dataset_dir)
    layout = dataset.layout
    wanted = {"k": k, "seed": seed, "split": split, "max_clips": max_clips}
    fitted = _fitted_units(layout, centroids_location(dataset_dir), wanted)
    if fitted is not None and not overwrite:
        log.info("units of %s are already fitted with k=%d, seed=%d: nothing to do",
                 layout.root, k, seed)
        return fitted
    check_feature_folder(layout, "units")
    if layout.store.exists(layout.feature_info_key("units")) or layout.store.list(
            layout.feature_work_key("units")):
        if not overwrite:
            raise FileExistsError(f"{layout.store.url('features/units')} holds codes of the "
                                  "current units: pass --overwrite to delete them and refit")
        remove_feature_set(layout, "units")
    keys = sorted(row["key"] for row in dataset.manifest() if row["split"] == split)
    if not keys:
        raise FileNotFoundError(f"no {split} clips in {dataset_dir}")
    picks = {keys[i] for i in np.random.default_rng(seed).permutation(len(keys))[:max_clips]}
    encoder = WhisperEncoder()
    states = [encoder.encode([sample.audio()])[0]
              for sample in dataset.samples(dataset.shards(split)) if sample.key in picks]
    centroids = fit_centroids(states, k, seed)
    info = {**wanted, "clips": len(states), "frames": int(sum(len(s) for s in states)),
            "features": "whisper tiny.en encoder states (384-d, 50 Hz)"}
    save_centroids(dataset.root, centroids, info)
    return info


def _fitted_units(layout: DatasetLayout, centroids: Location, wanted: dict[str, Any]
                  ) -> dict[str, Any] | None:
    """The saved fit's record when it was made with `wanted` and any extracted (or begun)
    `units` set holds codes of those very centroids; None otherwise."""
    from unitaf_data.features.units import FIT_KEY, load_centroids_with_hash

    store = layout.store
    if not (store.exists(FIT_KEY) and centroids.exists()):
        return None
    saved = read_json_file(store / FIT_KEY)
    if not isinstance(saved, dict) or any(saved.get(k) != v for k, v in wanted.items()):
        return None
    settings = store / f"{layout.feature_work_key('units')}/settings.json"
    if settings.exists():
        begun = read_json_file(settings)
        described = begun.get("described") if isinstance(begun, dict) else None
        recorded = described.get("centroids_sha256") if isinstance(described, dict) else None
        return saved if recorded == load_centroids_with_hash(layout.root)[1] else None
    return None if store.exists(layout.feature_info_key("units")) else saved
