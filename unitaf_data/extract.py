"""Feature extraction stages: read a main shard, batch its clips, run a backend, write one
sidecar shard per feature set with the same keys in the same order, and check the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.audio import decode_flac
from unitaf_data.features import FRAME_RATE, ClipInput, frames_for
from unitaf_data.shards import npy_bytes, read_tar, write_tar


@dataclass
class ShardFeatures:
    """What extracting one shard produced: per-set checks and clips the backend refused."""

    shard: str
    clips: int = 0
    audio_seconds: float = 0.0
    rejected: list[dict[str, str]] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)  # by feature set


def main_shards(dataset_dir: Path) -> list[Path]:
    shards = sorted(Path(dataset_dir).glob("data/*/*.tar"))
    if not shards:
        raise FileNotFoundError(f"no shards in {dataset_dir}/data: build the dataset first")
    return shards


def sidecar_path(dataset_dir: Path, feature_set: str, shard_path: Path) -> Path:
    """features/{set}/{split}/{split}-NNNNNN.tar beside data/{split}/{split}-NNNNNN.tar."""
    return Path(dataset_dir) / "features" / feature_set / shard_path.parent.name / shard_path.name


def read_clips(shard_path: Path) -> list[ClipInput]:
    clips = []
    for sample in read_tar(shard_path):
        audio, _ = decode_flac(sample["flac"])
        clips.append(ClipInput(sample["__key__"], audio.astype(np.float32),
                               sample["json"]["text"], sample["json"]["duration"]))
    return clips


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
            / 16_000 <= batch_seconds
        same = current is not None and frames_for(len(clips[current[0]].audio)) == \
            frames_for(len(clips[i].audio))
        if fits and (same or not same_length):
            current.append(i)
        else:
            batches.append([i])
    return batches


def check_features(key: str, duration: float, fields: dict[str, np.ndarray],
                   declared: dict[str, Any]) -> list[str]:
    """Frame count vs clip duration (±1 at 50 Hz), finite values, dims as declared."""
    problems = []
    for name, array in fields.items():
        spec = declared["fields"][name]
        if not np.isfinite(array.astype(np.float32)).all():
            problems.append(f"{key}/{name}: NaN or inf")
        if spec["shape"] and spec["shape"][0] == "T":
            if abs(len(array) - duration * FRAME_RATE) > 1:
                problems.append(f"{key}/{name}: {len(array)} frames for {duration:.3f} s")
            if len(spec["shape"]) == 2 and array.shape[1:] != tuple(spec["shape"][1:]):
                problems.append(f"{key}/{name}: shape {array.shape} != {spec['shape']}")
        elif array.shape != tuple(spec["shape"]):
            problems.append(f"{key}/{name}: shape {array.shape} != {spec['shape']}")
    return problems


def extract_shard(backend, feature_sets: list[str], dataset_dir: Path, shard_path: Path,
                  batch_seconds: float) -> ShardFeatures:
    """Run `backend` over one main shard and write its sidecar shards atomically. Backends
    whose encoder has no attention mask (`backend.same_length`) get unpadded batches."""
    clips = read_clips(shard_path)
    report = ShardFeatures(shard=f"{shard_path.parent.name}/{shard_path.stem}",
                           clips=len(clips),
                           audio_seconds=sum(len(c.audio) for c in clips) / 16_000)
    declared = backend.describe()
    outputs: list[dict[str, Any] | str | None] = [None] * len(clips)
    for batch in length_batches(clips, batch_seconds, backend.same_length):
        for i, result in zip(batch, backend.extract([clips[i] for i in batch]), strict=True):
            outputs[i] = result
    samples: dict[str, list[dict[str, bytes | str]]] = {name: [] for name in feature_sets}
    for clip, result in zip(clips, outputs, strict=True):
        if isinstance(result, str):  # the backend refused this clip, with a reason
            report.rejected.append({"key": clip.key, "reason": result})
        for name in feature_sets:
            sample: dict[str, bytes | str] = {"__key__": clip.key}
            if isinstance(result, str):
                sample["rejected.txt"] = result.encode()
            else:
                fields = result[name]
                report.problems.setdefault(name, []).extend(
                    check_features(clip.key, clip.duration, fields, declared[name]))
                sample |= {field_name: npy_bytes(array) for field_name, array in fields.items()}
            samples[name].append(sample)
    for name in feature_sets:
        write_tar(sidecar_path(dataset_dir, name, shard_path), samples[name])
    return report


def fit_units(dataset_dir: Path, k: int = 512, seed: int = 0, max_clips: int = 2000,
              split: str = "train") -> dict[str, Any]:
    """Learn `k` unit centroids from the Whisper states of a seeded sample of `split` clips
    and save them with the dataset (`features/units/centroids.npy`, `fit.json`)."""
    from unitaf_data.features.offline import WhisperEncoder
    from unitaf_data.features.units import fit_centroids, save_centroids

    shards = [s for s in main_shards(dataset_dir) if s.parent.name == split]
    if not shards:
        raise FileNotFoundError(f"no {split} shards in {dataset_dir}")
    clips = [c for s in shards for c in read_clips(s)]
    picks = sorted(np.random.default_rng(seed).permutation(len(clips))[:max_clips])
    encoder = WhisperEncoder()
    states = [encoder.encode([clips[i].audio])[0] for i in picks]
    centroids = fit_centroids(states, k, seed)
    info = {"k": k, "seed": seed, "split": split, "clips": len(picks),
            "frames": int(sum(len(s) for s in states)),
            "features": "whisper tiny.en encoder states (384-d, 50 Hz)"}
    save_centroids(dataset_dir, centroids, info)
    return info
