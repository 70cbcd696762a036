"""Reading face tracks from the file formats corpora use, with their channel names.

`.npy` (T, C) with names from a file; `.csv` with a header of channel names; BEAT-v1 ARKit
`.json` (`{"frames": [{"weights": [...]}, ...]}`, 60 fps, names from the file's `names`
key or a names file). Tracks whose names are the ARKit blendshapes (in any order or case)
become `arkit51` in UniTalker's order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unitaf_data.face import ARKIT51, ARKIT51_UNITALKER

BEAT_V1_FPS = 60.0
_NOT_CHANNELS = {"time", "timecode", "frame", "frame_index", "timestamp"}
_ARKIT_BY_FOLDED = {name.lower(): name for name in ARKIT51_UNITALKER}


def read_face(path: Path, names: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """(float32 (T, C), channel names) of one face file."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        face = np.load(path, allow_pickle=False)
        if names is None:
            raise ValueError(f"{path}: .npy faces need --channel-names (one name per line)")
    elif suffix == ".csv":
        face, names = _read_csv(path)
    elif suffix == ".json":
        data = json.loads(path.read_text())
        names = data.get("names", names)
        if names is None:
            raise ValueError(f"{path}: no 'names' in the file; pass --channel-names")
        face = np.array([frame["weights"] for frame in data["frames"]], dtype=np.float32)
    else:
        raise ValueError(f"{path}: unknown face format {suffix}")
    face = np.asarray(face, dtype=np.float32)
    if face.ndim != 2 or face.shape[1] != len(names):
        raise ValueError(f"{path}: face shape {face.shape} does not match {len(names)} names")
    return face, list(names)


def _read_csv(path: Path) -> tuple[np.ndarray, list[str]]:
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(path)
    names = [n for n in table.column_names if n.strip().lower() not in _NOT_CHANNELS]
    face = np.stack([table.column(n).to_numpy().astype(np.float32) for n in names], axis=1)
    return face, names


def as_face_type(face: np.ndarray, names: list[str]) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """ARKit tracks (51 names, plus an optional tongueOut that is dropped) are reordered to
    UniTalker's order as `arkit51`; anything else keeps its names as `custom{C}`."""
    folded = {n.lower(): i for i, n in enumerate(names)}
    if set(folded) - {"tongueout"} == set(_ARKIT_BY_FOLDED):
        order = [folded[name.lower()] for name in ARKIT51_UNITALKER]
        return face[:, order], ARKIT51.name, ARKIT51.channels
    return face, f"custom{len(names)}", tuple(names)
