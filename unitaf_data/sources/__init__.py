"""Corpus sources: one module per corpus, each exposing the same plain functions.

`discover(input_dir, options) -> list[RecordingRef]` (sorted, labels from path parts; every
setting `load` needs goes into `ref.extra`) and `load(ref) -> Recording` (16 kHz mono audio,
face track with its channel names and fps; `Recording.custom`, a JSON dict, is copied into
every clip's json as `custom`, e.g. which synthesiser spoke the recording and how). `load`
raises `InputError` with a countable reason for bad input; the build records it in
`rejected.parquet` and goes on.
"""

from __future__ import annotations

import importlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from unitaf_data.audio import AUDIO_ERRORS, AudioError, load_audio
from unitaf_data.schema import SAMPLE_RATE

SOURCE_NAMES = ("demo", "beat2", "folder", "unitalker")


@dataclass(frozen=True)
class SourceOptions:
    """Settings a source may need; each source reads the ones that apply to it."""

    face_fps: float | None = None  # frame rate of face files that do not carry one
    face_fps_out: float | None = None  # resample faces to this rate (default: keep)
    channel_names: str | None = None  # file: one face channel name per line
    speaker_pattern: str | None = None  # regex with a `speaker` group, on the relative path
    split_pattern: str | None = None  # regex with a `split` group (default: a stable hash)
    flame_to_arkit: str | None = None  # BEAT2: 51×103 matrix .npy
    arkit_names: str | None = None  # BEAT2: row order of that matrix (file)
    include_additional: bool = False  # BEAT2: keep `additional` recordings (as train)
    language_folder: str = "beat_english_v2.0.0"  # BEAT2 folder inside a Hub snapshot


DEFAULT_OPTIONS = SourceOptions()


# What reading a damaged face file raises (npy/npz/csv/json parsers, a truncated zip, an
# unreadable file): a recording's rejection. Anything else is a bug and surfaces.
FACE_FILE_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, MemoryError)


class InputError(Exception):
    """Bad input in one recording: `reason` is short and countable, the message says more."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def get_source(name: str) -> ModuleType:
    if name not in SOURCE_NAMES:
        raise ValueError(f"unknown source {name!r}; choose one of: {', '.join(SOURCE_NAMES)}")
    return importlib.import_module(f"unitaf_data.sources.{name}")


def read_audio(path: str | Path) -> np.ndarray:
    """16 kHz mono audio, or InputError(missing_audio, or an AudioError's reason:
    unreadable_audio, bad_sample_rate, too_many_channels, audio_too_long, empty_audio,
    nonfinite_audio)."""
    if not Path(path).exists():
        raise InputError("missing_audio", f"{path} does not exist")
    try:
        return load_audio(path, SAMPLE_RATE)
    except AudioError as error:  # unreadable, out of bounds, empty or non-finite
        raise InputError(error.reason, str(error)) from None
    except AUDIO_ERRORS as error:
        raise InputError("unreadable_audio", f"{path}: {type(error).__name__}: {error}"
                         ) from error


def require_face_file(path: str | Path) -> Path:
    if not Path(path).exists():
        raise InputError("missing_face", f"{path} does not exist")
    return Path(path)


def split_for(recording_id: str, val_fraction: float = 0.05, test_fraction: float = 0.05) -> str:
    """A stable split from the recording id alone (same id, same split, on any machine)."""
    bucket = zlib.crc32(recording_id.encode()) % 1000 / 1000
    if bucket < val_fraction:
        return "val"
    return "test" if bucket < val_fraction + test_fraction else "train"


def read_names(path: str | Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
