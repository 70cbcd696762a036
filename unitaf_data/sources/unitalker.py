"""UniTalker's dataset layout: split files listing audio and annotation pairs.

UniTalker (Fan et al., ECCV 2024, Apache-2.0) trains on many A2F corpora converted to one
layout: `{train,val,test}.json` in the dataset folder, each a list of items (or a dict of
them) with `audio_path`, `annot_path` (a `.npy` of (T, C): blendshape weights or flattened
vertices), `id` (the speaker or identity), `annot_type` (e.g. `inhouse_blendshape_weight`,
ARKit-51 in UniTalker's order; `FLAME_5023_vertices`) and `fps`. Paths are relative to the
folder. Each corpus keeps its own licence.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unitaf_data.face import ARKIT51
from unitaf_data.schema import SAMPLE_RATE, Recording, RecordingRef, key_part
from unitaf_data.sources import (
    DEFAULT_OPTIONS,
    FACE_FILE_ERRORS,
    InputError,
    SourceOptions,
    read_audio,
    require_face_file,
)

NAME = "unitalker"
SPLITS = ("train", "val", "test")
ARKIT_ANNOTATION = "inhouse_blendshape_weight"


def _items(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    return list(data.values()) if isinstance(data, dict) else list(data)


def discover(
    input_dir: str | Path, options: SourceOptions = DEFAULT_OPTIONS
) -> list[RecordingRef]:
    root = Path(input_dir)
    split_files = [root / f"{s}.json" for s in SPLITS if (root / f"{s}.json").exists()]
    if not split_files:
        raise FileNotFoundError(f"no train.json, val.json or test.json in {root}")
    refs = []
    for split_file in split_files:
        for item in _items(split_file):
            audio = root / item["audio_path"]
            refs.append(RecordingRef(
                source=NAME, speaker=str(item["id"]),
                recording=key_part(Path(item["audio_path"]).with_suffix("").as_posix()),
                split=split_file.stem, audio_path=str(audio),
                face_path=str(root / item["annot_path"]),
                extra={"annot_type": item["annot_type"], "fps": float(item["fps"])},
            ))
    return sorted(refs, key=lambda ref: ref.id)


def load(ref: RecordingRef) -> Recording:
    audio = read_audio(ref.audio_path)
    try:
        face = np.load(require_face_file(ref.face_path), allow_pickle=False).astype(np.float32)
    except FACE_FILE_ERRORS as error:
        raise InputError("unreadable_face", f"{ref.face_path}: {error}") from error
    face = face.reshape(len(face), -1)
    annot_type = ref.extra["annot_type"]
    if annot_type == ARKIT_ANNOTATION:
        face_type, channels = ARKIT51.name, ARKIT51.channels
    else:
        face_type, channels = annot_type, tuple(f"{annot_type}_{i}" for i in range(face.shape[1]))
    if len(channels) != face.shape[1]:
        raise InputError("unreadable_face", f"{ref.face_path}: {face.shape[1]} channels for "
                         f"{annot_type}")
    return Recording(ref=ref, audio=audio, sample_rate=SAMPLE_RATE, face=face, face_type=face_type,
                     channels=channels, fps=ref.extra["fps"])
