"""A folder of recordings: audio files with face files of the same stem.

Any corpus that is not one of the named layouts: each `*.wav|flac|ogg|mp3` needs a face file
with the same stem and path: `.npy` (T, C) with `--channel-names FILE`, `.csv` with a header
of channel names, or BEAT-v1 ARKit `.json` (60 fps). Optional transcripts beside them:
`.TextGrid` (word tier, timed; a phone tier, if any, gives the clips' phones) or `.txt`
(plain text). `--face-fps` gives the frame rate of `.npy`/`.csv` faces. The speaker comes
from `--speaker-pattern` (a regex with a `speaker` group matched against the path relative to
`--input`), by default the parent folder's name. Splits are stable per recording (~90/5/5
from a hash of its id).

    corpus/
      alice/take01.wav  alice/take01.csv  alice/take01.txt
      bob/s1.flac       bob/s1.json       bob/s1.TextGrid
"""

from __future__ import annotations

import re
from pathlib import Path

from unitaf_data.audio import AUDIO_SUFFIXES
from unitaf_data.face_io import BEAT_V1_FPS, as_face_type, read_face
from unitaf_data.phones import read_textgrid_phones
from unitaf_data.schema import SAMPLE_RATE, Recording, RecordingRef, key_part
from unitaf_data.sources import (
    DEFAULT_OPTIONS,
    FACE_FILE_ERRORS,
    InputError,
    SourceOptions,
    read_audio,
    read_names,
    split_for,
)
from unitaf_data.sources.beat2 import read_textgrid_words

NAME = "folder"
FACE_SUFFIXES = (".npy", ".csv", ".json")


def speaker_of(relative: Path, pattern: str | None) -> str:
    if pattern:
        match = re.search(pattern, relative.as_posix())
        if not match or "speaker" not in match.groupdict():
            raise ValueError(f"--speaker-pattern {pattern!r} has no 'speaker' group matching "
                             f"{relative}")
        return match["speaker"]
    return relative.parent.name or "speaker"


def discover(
    input_dir: str | Path, options: SourceOptions = DEFAULT_OPTIONS
) -> list[RecordingRef]:
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    refs = []
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        relative = audio.relative_to(root)
        faces = [audio.with_suffix(s) for s in FACE_SUFFIXES if audio.with_suffix(s).exists()]
        recording = key_part(relative.with_suffix("").as_posix().replace("/", "_"))
        speaker = speaker_of(relative, options.speaker_pattern)
        refs.append(RecordingRef(
            source=NAME, speaker=speaker, recording=recording,
            split=split_for(f"{key_part(speaker)}-{recording}"), audio_path=str(audio),
            face_path=str(faces[0] if faces else audio.with_suffix(".npy")),
            extra={"face_fps": options.face_fps, "channel_names": options.channel_names,
                   "textgrid_path": str(audio.with_suffix(".TextGrid")),
                   "text_path": str(audio.with_suffix(".txt"))},
        ))
    return sorted(refs, key=lambda ref: ref.id)


def load(ref: RecordingRef) -> Recording:
    audio = read_audio(ref.audio_path)
    face_path = Path(ref.face_path)
    if not face_path.exists():
        raise InputError("missing_face", f"no face file beside {ref.audio_path}")
    names = read_names(ref.extra["channel_names"]) if ref.extra.get("channel_names") else None
    try:
        face, names = read_face(face_path, names)
    except FACE_FILE_ERRORS as error:  # unreadable file, wrong shape, no names
        raise InputError("unreadable_face", f"{face_path}: {error}") from error
    fps = BEAT_V1_FPS if face_path.suffix == ".json" else ref.extra.get("face_fps")
    if not fps:
        raise InputError("unknown_face_fps", f"{face_path}: pass --face-fps")
    face, face_type, channels = as_face_type(face, names)
    textgrid = Path(ref.extra["textgrid_path"])
    return Recording(ref=ref, audio=audio, sample_rate=SAMPLE_RATE, face=face, face_type=face_type,
                     channels=channels, fps=float(fps),
                     reference_words=read_textgrid_words(textgrid),
                     reference_phones=read_textgrid_phones(textgrid),
                     reference_text=_read_text(Path(ref.extra["text_path"])))


def _read_text(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


