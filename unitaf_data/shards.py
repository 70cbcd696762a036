"""WebDataset shard writing: planning clips into shards, and deterministic tar writing.

Tars are byte-identical for identical samples: fixed mtime, owner and mode, samples in
plan order, members in a fixed field order. A shard is written whole (locally under a
temporary name, renamed into place when complete; in an object store uploaded whole); its
record (sample count, size, sha256, key digest)
is returned for the dataset's shard table. Reading is `unitaf_data.reader`'s job.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unitaf_data.dataset import Location, ShardRef, shard_record
from unitaf_data.schema import SAMPLE_RATE, ShardInfo

_FLAC_BYTES_PER_SECOND = SAMPLE_RATE * 2 * 0.6  # 16-bit, typical FLAC ratio for speech
_JSON_BYTES = 2_000


@dataclass(frozen=True)
class ShardPlan:
    ref: ShardRef
    keys: tuple[str, ...]


@dataclass(frozen=True)
class PlannedClip:
    key: str
    split: str
    estimated_bytes: float


def estimated_bytes(duration: float, num_frames: int, channels: int) -> float:
    return duration * _FLAC_BYTES_PER_SECOND + num_frames * channels * 4 + _JSON_BYTES


def plan_shards(clips: list[PlannedClip], size_mb: float, max_clips: int) -> list[ShardPlan]:
    """Clips in key order, cut into shards per split that stay under `size_mb` (estimated)
    and `max_clips`."""
    plans: list[ShardPlan] = []
    for split in sorted({clip.split for clip in clips}):
        members = sorted((c for c in clips if c.split == split), key=lambda c: c.key)
        groups: list[list[str]] = [[]]
        size = 0.0
        for clip in members:
            too_big = size + clip.estimated_bytes > size_mb * 1e6
            if groups[-1] and (too_big or len(groups[-1]) >= max_clips):
                groups.append([])
                size = 0.0
            groups[-1].append(clip.key)
            size += clip.estimated_bytes
        plans += [ShardPlan(ShardRef(split, index), tuple(keys))
                  for index, keys in enumerate(groups)]
    return plans


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def json_bytes(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True, ensure_ascii=False).encode()


def write_tar(path: Path | Location, samples: list[dict[str, bytes | str]]) -> ShardInfo:
    """Write samples (`__key__` plus byte fields) to `path` (a local file, or an object in
    the dataset's storage) whole; returns its record."""
    import webdataset as wds

    def fill(stream) -> None:
        with wds.TarWriter(stream, user="unitaf", group="unitaf", mode=0o644, encoder=False,
                           mtime=0.0) as writer:
            for sample in samples:
                writer.write(sample)

    written = Location.of(path).write_object(fill)
    return shard_record(written, [sample["__key__"] for sample in samples])
