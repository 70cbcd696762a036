"""The dataset contract's records: recordings, words, clips, rejections, keys and validation.

Everything a stage hands to the next is one of these small dataclasses. Times are in
seconds (`*_s` is never abbreviated away: `start`, `end`, `duration` are seconds), rates in
Hz (`sample_rate`, `fps`). `validate_clip` asserts the alignment contract of DESIGN.md.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
SAMPLE_RATE = 16_000
_KEY_PART = re.compile(r"[^A-Za-z0-9_]+")


def key_part(text: str) -> str:
    """A path part made safe for a sample key: letters, digits and `_` only."""
    cleaned = _KEY_PART.sub("_", text).strip("_")
    if not cleaned:
        raise ValueError(f"cannot build a key part from {text!r}")
    return cleaned


def make_key(source: str, speaker: str, recording: str, clip_index: int) -> str:
    """`{source}-{speaker}-{recording}-{clip:04d}`: unique, no `.` or `/`."""
    return f"{key_part(source)}-{key_part(speaker)}-{key_part(recording)}-{clip_index:04d}"


@dataclass(frozen=True)
class RecordingRef:
    """One recording as discovered: where its files are and its labels, no data loaded."""

    source: str
    speaker: str
    recording: str
    split: str
    audio_path: str
    face_path: str
    emotion: str = "neutral"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{key_part(self.source)}-{key_part(self.speaker)}-{key_part(self.recording)}"


@dataclass
class Recording:
    """A loaded recording: 16 kHz mono audio and a face track on the same clock."""

    ref: RecordingRef
    audio: np.ndarray  # float32 (N,) at sample_rate
    sample_rate: int
    face: np.ndarray  # float32 (T, C) at fps
    face_type: str
    channels: tuple[str, ...]
    fps: float
    reference_words: list[Word] | None = None  # timed transcript (e.g. a TextGrid)
    reference_text: str | None = None  # untimed transcript

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    prob: float = 1.0


@dataclass(frozen=True)
class AsrSegment:
    """One decoder segment of the ASR with the statistics used to spot hallucinations."""

    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float


@dataclass
class Transcript:
    words: list[Word]
    segments: list[AsrSegment]
    language: str
    model: str


@dataclass(frozen=True)
class ClipSpan:
    """A clip in recording time: `start` on a face-frame boundary, `num_frames` frames long."""

    index: int
    start: float
    num_frames: int
    fps: float

    @property
    def end(self) -> float:
        return self.start + self.num_frames / self.fps

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def first_frame(self) -> int:
        return round(self.start * self.fps)

    def num_samples(self, sample_rate: int) -> int:
        return round(self.num_frames * sample_rate / self.fps)

    def first_sample(self, sample_rate: int) -> int:
        return round(self.start * sample_rate)


@dataclass(frozen=True)
class Rejection:
    """A recording or clip that was dropped: what it is, where it came from and why."""

    what: str  # "recording" or "clip"
    where: str  # recording id or clip key
    reason: str  # short, countable: `dropped_{reason}`
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def validate_clip(
    key: str, audio: np.ndarray, face: np.ndarray, meta: dict[str, Any], channels: int
) -> None:
    """Assert the alignment contract for one clip; every message names the key."""
    assert "." not in key and "/" not in key, f"{key}: key contains '.' or '/'"
    assert face.dtype == np.float32 and face.ndim == 2, f"{key}: face must be float32 (T, C)"
    assert face.shape[1] == channels, f"{key}: face has {face.shape[1]} channels, not {channels}"
    frames = face.shape[0]
    expected = frames * meta["sample_rate"] / meta["fps"]
    assert abs(len(audio) - round(expected)) <= 1, (
        f"{key}: {len(audio)} samples for {frames} frames (expected {expected:.1f})"
    )
    assert abs(meta["duration"] - frames / meta["fps"]) < 1e-6, f"{key}: duration != T/fps"
    for word in meta["words"]:
        assert 0.0 <= word["start"] <= word["end"] <= meta["duration"] + 1e-6, (
            f"{key}: word {word['word']!r} [{word['start']}, {word['end']}] outside the clip"
        )
    assert np.isfinite(face).all(), f"{key}: face has NaN or inf"
