"""What the tests read from `../shared/reference` (present in CI, absent beside a bare clone),
and small readers of a built dataset shared by several test modules.

`../shared` is the workplace's shared reference folder beside the checkout (UniTalker's
checkpoint key list, its ARKit rig and channel names); the tests that need it skip without
it, with `SHARED_REASON` saying so.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unitaf_data.dataset import Dataset, Sample

SHARED_REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
CHECKPOINT_KEYS = SHARED_REFERENCE / "unitalker_checkpoint_keys.txt"
ARKIT_RIG = SHARED_REFERENCE / "unitalker_arkit_rig.npz"
ARKIT_NAMES = SHARED_REFERENCE / "unitalker_arkit_names.txt"
SHARED_REASON = ("needs ../shared/reference/{name} (the workplace's shared reference folder "
                 "beside the checkout; CI has it), absent here")
DEMO_SETS = ("whisper", "units", "utterance")  # the offline sets of the demo_features fixture


def needs_shared(path: Path) -> pytest.MarkDecorator:
    """Skip, saying what from ../shared is missing, when `path` is absent."""
    return pytest.mark.skipif(not path.exists(), reason=SHARED_REASON.format(name=path.name))


def reference_checkpoint_shapes(checkpoint: str) -> dict[str, tuple[int, ...]]:
    """{key: shape} of one released UniTalker checkpoint, from the reference key list."""
    shapes, current = {}, None
    for line in CHECKPOINT_KEYS.read_text().splitlines():
        if line.startswith("====="):
            current = line.strip("= ").strip()
        elif line.strip() and current == checkpoint:
            key, shape = line.split(None, 1)
            shapes[key] = tuple(int(n) for n in re.findall(r"\d+", shape))
    return shapes


def all_samples(root: Path, sidecars: dict[str, list[str]] | None = None) -> dict[str, Sample]:
    """Every sample of a dataset folder by key, read through the safe reader."""
    dataset = Dataset.open_folder(root)
    return {s.key: s for s in dataset.samples(dataset.shards(), sidecars)}
