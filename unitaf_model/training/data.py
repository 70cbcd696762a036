"""Streaming training data: main shards joined by key with their sidecar feature shards.

Each sample becomes the model's view of one clip: the TTS-side input at 50 Hz (`units`
codes or precomputed latents), the teacher features averaged onto the projector's 25 fps
grid and cut to `ceil(T50 / 2)` frames, and the face resampled to the model's face rate
`fps` and cut to `ceil(T50 · fps / 50)` frames (`unitaf_model.model.unitaf.face_frames`). Batches
group clips of similar length (a shuffle buffer sorted by length), padded, with masks of the
true lengths on both grids (`mask` for the face, `teacher_mask` for the teacher).

Work is split deterministically: shards across (Ray Train rank × DataLoader worker) when
there are enough of them, otherwise samples by index. Training streams are endless (a new
shuffle each epoch, by seed), so every rank runs the same number of steps and no rank waits
on a collective that another never reaches.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from unitaf_data.dataset import Dataset, Sample
from unitaf_data.face import resample_face
from unitaf_data.features.augment import (
    AUGMENTED_SET,
    AugmentSettings,
    copy_fields,
    copy_phones,
    copy_timing,
)
from unitaf_data.phones import is_bilabial, phone_frames
from unitaf_data.reader import Skips
from unitaf_data.schema import Phone
from unitaf_model.model.expression import LABEL, emotion_one_hot
from unitaf_model.model.unitaf import face_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSpec:
    """What the loader reads; built from a TrainConfig (`data_spec`), which holds the
    defaults."""

    backbone_set: str  # sidecar holding the TTS-side input
    backbone_field: str
    teacher_set: str
    teacher_field: str
    fps: float  # the face rate the decoder runs at
    batch_size: int
    shuffle_buffer: int
    seed: int
    skip_bad: bool = False  # skip (and count) bad samples instead of stopping
    input_rate: float = 50.0  # frame rate of the backbone input
    emotion_set: str = ""  # the clip's emotion embedding (stage III), when set
    emotion_field: str = ""
    emotion_labels: tuple[str, ...] = ()  # emotion_set `label`: the clip's label, one-hot
    augment_share: float = 0.0  # share of train clips replaced by an augmented copy
    augment_set: str = AUGMENTED_SET
    augment: AugmentSettings | None = None  # how that set's copies were made (feature.json)

    @property
    def augment_copies(self) -> int:
        return self.augment.copies if self.augment is not None else 0

    @property
    def sidecars(self) -> dict[str, list[str]]:
        wanted: dict[str, list[str]] = {}
        for name, field_name in ((self.backbone_set, self.backbone_field),
                                 (self.teacher_set, self.teacher_field),
                                 (self.emotion_set, self.emotion_field)):
            if name and name != LABEL and field_name not in wanted.setdefault(name, []):
                wanted[name].append(field_name)
        return wanted

    def sidecars_for(self, split: str) -> dict[str, list[str]]:
        """The sidecars of a split: train clips also read their augmented copies."""
        if split != "train" or not self.augment_share or not self.augment_copies:
            return self.sidecars
        fields = [f for c in range(self.augment_copies) for f in copy_fields(c)]
        return self.sidecars | {self.augment_set: fields}


def joined_samples(dataset: Dataset, spec: DataSpec, shards, skips: Skips | None = None,
                   split: str = "", rng: np.random.Generator | None = None,
                   counts: Counter | None = None) -> Iterator[dict[str, Any]]:
    """Model-grid samples of `shards`: main shard + backbone and teacher sidecars, read by
    the safe reader; clips a feature backend refused are left out (counted in `counts` by
    set and reason, with every clip read under "read"). With `rng`, a train clip is replaced
    by one of its augmented copies with probability `spec.augment_share`."""
    counts = Counter() if counts is None else counts
    for sample in dataset.samples(shards, spec.sidecars_for(split), skips):
        counts["read"] += 1
        refused = {n: r for n, r in sample.refused.items() if n != spec.augment_set}
        if refused:
            name, reason = next(iter(refused.items()))
            counts[f"refused by the '{name}' backend ({reason[:80]})"] += 1
            continue
        if rng is not None and spec.augment_set in sample.features \
                and rng.random() < spec.augment_share:
            sample = augmented_copy(spec, sample, int(rng.integers(spec.augment_copies)))
        yield to_model_grid(spec, sample)


def augmented_copy(spec: DataSpec, sample: Sample, copy: int) -> Sample:
    """`sample` with copy `copy`'s face and features in place of its own: the Whisper
    states (backbone, teacher) and utterance embedding (emotion) of the augmented audio."""
    fields = copy_fields(copy)
    found = sample.features[spec.augment_set]
    features = {name: dict(arrays) for name, arrays in sample.features.items()}
    for name, field_name in ((spec.backbone_set, spec.backbone_field),
                             (spec.teacher_set, spec.teacher_field),
                             (spec.emotion_set, spec.emotion_field)):
        if name and name != LABEL:  # a label is the clip's, whatever its audio went through
            features[name][field_name] = found[fields[_COPY_FIELD[(name, field_name)]]]
    # the copy's speech moved (speed, lead-in), and its phones with it
    frames, fps = len(found[fields[2]]), sample.meta.fps
    phones = None if sample.meta.phones is None else copy_phones(
        sample.meta.phones, copy_timing(spec.augment, sample.key, copy, fps), frames, fps)
    meta = dataclasses.replace(sample.meta, phones=phones)
    return dataclasses.replace(sample, meta=meta, face=found[fields[2]], features=features)


def augment_settings(dataset: Dataset, config) -> AugmentSettings | None:
    """How the config's augmented set made its copies (None without augmentation); a
    missing set, or one made from other features than the config reads, is an error that
    says what to run."""
    if not config.augment_share:
        return None
    if config.augment_set not in dataset.feature_set_names():
        raise FileNotFoundError(
            f"augment_share={config.augment_share} needs the {config.augment_set} set: run "
            f"`unitaf-data extract-features {dataset.root} --features whisper,utterance "
            f"--augment N` (or set augment_share=0)")
    info = dataset.feature_set(config.augment_set)
    return AugmentSettings.from_dict(info.custom.get("augment"),
                                     f"{dataset.origin}: {config.augment_set}/feature.json")


# what stands for a clip's own (set, field) in its copy: index into `copy_fields(c)`
_COPY_FIELD = {("whisper", "teacher.npy"): 0, ("utterance", "utterance.npy"): 1}


def split_faces(dataset: Dataset, split: str, fps: float) -> Iterator[np.ndarray]:
    """Every clip's face of a split resampled to the model frame rate, from the main
    shards alone."""
    for sample in dataset.samples(dataset.shards(split)):
        yield resample_face(sample.face, sample.meta.fps, fps)


def train_statistics(dataset: Dataset, fps: float, rig=None
                     ) -> tuple[torch.Tensor, np.ndarray | None]:
    """Mean face (the template) and, given a `rig` (stage II with a vertex rig), the mouth
    openness of every train frame on the model grid (its interval weights the mouth-aware
    loss and bounds eval's closed / wide-open shares): one pass over the main shards (no
    audio, no sidecars) holding one clip's face at a time, so memory grows by one float per
    frame, not one face."""
    total, frames, openness = 0.0, 0, []
    for face in split_faces(dataset, "train", fps):
        if not len(face):
            continue
        total = total + face.sum(0, dtype=np.float64)
        frames += len(face)
        if rig is not None:
            openness.append(rig.mouth_openness(face))
    if not frames:
        raise ValueError(f"{dataset.root} has no train clips")
    template = torch.from_numpy((total / frames).astype(np.float32))
    return template, np.concatenate(openness) if rig is not None else None


def to_model_grid(spec: DataSpec, sample: Sample) -> dict[str, Any]:
    inputs = sample.features[spec.backbone_set][spec.backbone_field]
    teacher = sample.features[spec.teacher_set][spec.teacher_field].astype(np.float32)
    face = resample_face(sample.face, sample.meta.fps, spec.fps)
    if len(teacher) % 2:
        teacher = np.concatenate([teacher, teacher[-1:]])
    teacher = teacher.reshape(-1, 2, teacher.shape[1]).mean(1)
    frames = face_frames(len(inputs), spec.fps, spec.input_rate)
    teacher_frames = math.ceil(len(inputs) / 2)
    found = {"key": sample.key, "speaker": sample.meta.speaker, "inputs": inputs,
             "teacher": _fit(teacher, teacher_frames), "face": _fit(face, frames),
             "frames": frames, "teacher_frames": teacher_frames,
             "bilabials": bilabial_spans(sample.meta.phones or (), spec.fps, frames)}
    if spec.emotion_set == LABEL:
        found["emotion"] = emotion_one_hot(spec.emotion_labels, sample.meta.emotion,
                                           f"{sample.key}: the residual")
    elif spec.emotion_set:
        found["emotion"] = sample.features[spec.emotion_set][spec.emotion_field].astype(
            np.float32)
    return found


def bilabial_spans(phones: Iterable[Phone], fps: float, frames: int
                   ) -> list[tuple[int, int]]:
    """(first, stop) face frames of each /p b m/ phone of a clip (`phone_frames`: a phone
    shorter than a frame holds the frame of its midpoint); phones outside the clip left out."""
    spans = []
    for phone in phones:
        if is_bilabial(phone.phone):
            held = phone_frames(phone.start, phone.end, fps, frames)
            if len(held):
                spans.append((int(held[0]), int(held[-1]) + 1))
    return spans


def _fit(array: np.ndarray, frames: int) -> np.ndarray:
    """Cut to `frames`, or repeat the last frame up to it (at most a frame or two)."""
    if len(array) >= frames:
        return array[:frames].astype(np.float32)
    return np.concatenate([array, np.repeat(array[-1:], frames - len(array), 0)]).astype(
        np.float32)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad to the longest clip; `mask` and `teacher_mask` mark the true frames."""
    longest = max(s["frames"] for s in samples)
    teacher_longest = max(s["teacher_frames"] for s in samples)
    inputs_longest = max(len(s["inputs"]) for s in samples)

    def pad(array: np.ndarray, length: int) -> np.ndarray:
        return np.pad(array, [(0, length - len(array))] + [(0, 0)] * (array.ndim - 1))

    inputs = np.stack([pad(s["inputs"], inputs_longest) for s in samples])
    emotion = {"emotion": torch.from_numpy(np.stack([s["emotion"] for s in samples]))} \
        if "emotion" in samples[0] else {}
    return {**emotion, "bilabial": _span_masks([s["bilabials"] for s in samples], longest),
        "keys": [s["key"] for s in samples], "speakers": [s["speaker"] for s in samples],
        "inputs": torch.from_numpy(inputs.astype(np.int64 if inputs.dtype.kind == "i"
                                                 else np.float32)),
        "teacher": torch.from_numpy(np.stack([pad(s["teacher"], teacher_longest)
                                              for s in samples])),
        "face": torch.from_numpy(np.stack([pad(s["face"], longest) for s in samples])),
        "mask": torch.from_numpy(np.stack([np.arange(longest) < s["frames"]
                                           for s in samples])),
        "teacher_mask": torch.from_numpy(np.stack([np.arange(teacher_longest)
                                                   < s["teacher_frames"] for s in samples])),
    }


def _span_masks(spans: list[list[tuple[int, int]]], frames: int) -> torch.Tensor:
    """(B, K, T) bool: row k of clip b marks the frames of its k-th span (K: the most spans
    of a clip; rows past a clip's own are all False)."""
    masks = torch.zeros(len(spans), max((len(s) for s in spans), default=0), frames,
                        dtype=torch.bool)
    for b, clip in enumerate(spans):
        for k, (first, stop) in enumerate(clip):
            masks[b, k, first:stop] = True
    return masks


class ClipStream(IterableDataset):
    """Length-bucketed batches of one split for one consumer (rank × DataLoader worker)."""

    def __init__(self, dataset: Dataset, spec: DataSpec, split: str, rank: int = 0,
                 world: int = 1, endless: bool = True) -> None:
        self.dataset, self.spec, self.split = dataset, spec, split
        self.rank, self.world, self.endless = rank, world, endless
        self.shards = dataset.shards(split)
        if not self.shards:
            raise FileNotFoundError(f"no {split} shards in {dataset.root}")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        consumers, me = self.world * workers, self.rank * workers + worker
        epoch = 0
        while True:
            rng = np.random.default_rng([self.spec.seed, epoch, me])
            counts: Counter = Counter()
            batches = 0
            for batch in self._batches(self._samples(epoch, consumers, me, counts), rng):
                batches += 1
                yield batch
            if not self.endless:
                return
            if not batches:  # another epoch would find nothing either: never spin
                raise ValueError(self._nothing_usable(counts, consumers, me))
            epoch += 1

    def _nothing_usable(self, counts: Counter, consumers: int, me: int) -> str:
        read = counts.pop("read", 0)
        empty = "none was left out: there are fewer clips than data consumers" \
            if consumers > 1 else "the split holds no clip"
        why = "; ".join(f"{n} {reason}" for reason, n in counts.most_common(5)) or empty
        who = f" for data consumer {me + 1} of {consumers} (ranks × loader workers)" \
            if consumers > 1 else ""
        return (f"the {self.split} split of {self.dataset.origin} has no usable sample{who}: "
                f"{read} clip(s) read; {why}")

    def _samples(self, epoch: int, consumers: int, me: int, counts: Counter
                 ) -> Iterator[dict[str, Any]]:
        order = list(self.shards)
        if self.endless:
            np.random.default_rng([self.spec.seed, epoch]).shuffle(order)
        skips = Skips() if self.spec.skip_bad else None
        rng = np.random.default_rng([self.spec.seed, epoch, me, 1]) if self.endless else None
        if len(order) >= consumers:
            yield from joined_samples(self.dataset, self.spec, order[me::consumers], skips,
                                      self.split, rng, counts)
        else:
            samples = joined_samples(self.dataset, self.spec, order, skips, self.split, rng,
                                     counts)
            yield from (s for i, s in enumerate(samples) if i % consumers == me)
        if skips is not None:
            counts.update({f"skipped as bad data ({reason})": n
                           for reason, n in skips.counts.items()})
        if skips is not None and skips.total:
            log.warning("%s split, epoch %d: skipped %d bad samples (%s); first: %s",
                        self.split, epoch, skips.total, dict(skips.counts), skips.examples[0])

    def _batches(self, samples: Iterator[dict[str, Any]], rng: np.random.Generator
                 ) -> Iterator[dict[str, Any]]:
        size, buffer = self.spec.batch_size, []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= max(self.spec.shuffle_buffer, size):
                yield from self._emit(buffer, len(buffer) // size * size, rng)
        yield from self._emit(buffer, len(buffer), rng)

    def _emit(self, buffer: list, count: int, rng: np.random.Generator
              ) -> Iterator[dict[str, Any]]:
        """Take `count` samples (at random while training), sort them by length, cut them
        into batches, and yield the batches in random order (in order when evaluating)."""
        if self.endless:
            rng.shuffle(buffer)
        chosen, buffer[:] = buffer[:count], buffer[count:]
        chosen.sort(key=lambda s: (s["frames"], s["key"]))
        size = self.spec.batch_size
        batches = [chosen[i : i + size] for i in range(0, len(chosen), size)]
        for i in (rng.permutation(len(batches)) if self.endless else range(len(batches))):
            yield collate(batches[i])


def loader(dataset: Dataset, spec: DataSpec, split: str, rank: int = 0, world: int = 1,
           workers: int = 0, endless: bool = True) -> DataLoader:
    return DataLoader(ClipStream(dataset, spec, split, rank, world, endless), batch_size=None,
                      num_workers=workers, persistent_workers=False)
