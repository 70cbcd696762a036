"""WebDataset shard I/O: planning clips into shards, deterministic tar writing, reading.

Tars are byte-identical for identical samples: fixed mtime, owner and mode, samples in
plan order, members in a fixed field order. A shard is written under a temporary name and
renamed into place only when complete.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_FLAC_BYTES_PER_SECOND = 16_000 * 2 * 0.6  # 16-bit at 16 kHz, typical FLAC ratio for speech
_JSON_BYTES = 2_000


@dataclass(frozen=True)
class ShardPlan:
    split: str
    index: int
    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return shard_name(self.split, self.index)

    @property
    def relative_path(self) -> str:
        return f"data/{self.split}/{self.name}.tar"


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}"


def estimated_bytes(duration: float, num_frames: int, channels: int) -> float:
    return duration * _FLAC_BYTES_PER_SECOND + num_frames * channels * 4 + _JSON_BYTES


def plan_shards(clips: list[dict[str, Any]], size_mb: float, max_clips: int) -> list[ShardPlan]:
    """Clips (dicts with split, key, estimated_bytes) in key order, cut into shards per split
    that stay under `size_mb` (estimated) and `max_clips`."""
    plans: list[ShardPlan] = []
    for split in sorted({clip["split"] for clip in clips}):
        members = sorted((c for c in clips if c["split"] == split), key=lambda c: c["key"])
        groups: list[list[str]] = [[]]
        size = 0.0
        for clip in members:
            too_big = size + clip["estimated_bytes"] > size_mb * 1e6
            if groups[-1] and (too_big or len(groups[-1]) >= max_clips):
                groups.append([])
                size = 0.0
            groups[-1].append(clip["key"])
            size += clip["estimated_bytes"]
        plans += [ShardPlan(split, index, tuple(keys)) for index, keys in enumerate(groups)]
    return plans


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def json_bytes(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True, ensure_ascii=False).encode()


def write_tar(path: Path, samples: list[dict[str, bytes | str]]) -> int:
    """Write samples (`__key__` plus byte fields) to `path` atomically; returns its size."""
    import webdataset as wds

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as stream, wds.TarWriter(
        stream, user="unitaf", group="unitaf", mode=0o644, encoder=False, mtime=0.0
    ) as writer:
        for sample in samples:
            writer.write(sample)
    tmp.replace(path)
    return path.stat().st_size


def raw_samples(path: Path) -> Iterator[dict[str, Any]]:
    """The samples of one tar as stored (bytes per field), in order. No splitting by
    distributed rank or DataLoader worker: callers choose their own shards and samples."""
    import webdataset as wds

    def whole(urls):
        return urls

    yield from wds.WebDataset(str(path), shardshuffle=False, empty_check=False,
                              nodesplitter=whole, workersplitter=whole)


def read_tar(path: Path) -> Iterator[dict[str, Any]]:
    """Samples of one shard, decoded: `flac` stays bytes, `face.npy` an array, `json` a dict."""
    for sample in raw_samples(path):
        yield {
            "__key__": sample["__key__"],
            "flac": sample["flac"],
            "face.npy": np.load(io.BytesIO(sample["face.npy"]), allow_pickle=False),
            "json": json.loads(sample["json"]),
        }
