"""Corpus sources: one module per corpus, each exposing the same plain functions.

`discover(input_dir, options) -> list[RecordingRef]` (sorted, labels from path parts; every
setting `load` needs goes into `ref.extra`) and `load(ref) -> Recording` (16 kHz mono audio,
face track with its channel names and fps; `Recording.custom`, a JSON dict, is copied into
every clip's json as `custom`, e.g. which synthesiser spoke the recording and how). `load`
raises `InputError` with a countable reason for bad input; the build records it in
`rejected.parquet` and goes on.

A corpus may live in object storage (`--input s3://bucket/corpus`): `discover` then reads its
index files through the storage layer and puts keys relative to the corpus root into the
refs' paths, with the root (the user's URL) in `ref.extra["corpus"]`; `load`, on whichever
machine it runs, fetches each file of its recording with `input_files` into a temporary
folder of its own. Local corpora keep plain paths.
"""

from __future__ import annotations

import importlib
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from unitaf_data.audio import AUDIO_ERRORS, AudioError, load_audio
from unitaf_data.dataset import Location, Storage, is_url
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


def corpus_storage(input_dir: str | Path) -> Storage | None:
    """The corpus's storage when `--input` is an object-store URL (None for a local folder)."""
    return Storage.of(str(input_dir)) if is_url(input_dir) else None


def corpus_extra(storage: Storage | None) -> dict[str, str]:
    """What a ref of a corpus in storage carries: its root (read back by `input_files`)."""
    return {"corpus": storage.root} if storage is not None else {}


def corpus_path(root: Path | Storage, key: str) -> str:
    """A ref's path: the file under a local folder, or the key under a storage root."""
    return str(root / key) if isinstance(root, Path) else Location(root, key).key


@contextmanager
def input_files(corpus: str | None, *paths: str | None) -> Iterator[list[Path | None]]:
    """A ref's files as local paths (`corpus`: its `extra["corpus"]`): as they are for a
    local corpus; for a corpus in storage, each key fetched into a temporary folder (a
    missing object gives a path that does not exist, so the source's own checks name what
    is missing). Option files given
    as URLs (`--flame-to-arkit s3://...`) are fetched the same way."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unitaf-in-")))
        found: list[Path | None] = []
        for index, value in enumerate(paths):
            if value is None:
                found.append(None)
            elif corpus is None and not is_url(value):
                found.append(Path(value))
            else:
                found.append(_fetch(Storage.of(corpus) if corpus and not is_url(value)
                                    else None, value, folder / str(index)))
        yield found


def _fetch(storage: Storage | None, value: str, folder: Path) -> Path:
    if storage is None:  # a URL the user gave as an option
        parent, _, name = value.rpartition("/")
        storage, value = Storage.of(parent), name
    folder.mkdir()
    target = folder / value.rsplit("/", 1)[-1]
    if storage.exists(value):
        target.write_bytes(storage.read_bytes(value))
    return target
