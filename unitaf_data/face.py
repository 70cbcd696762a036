"""Face types: named channel sets at a frame rate, and the mouth measures read from them.

Channel orders differ between corpora, so every face array travels with its channel names.
ARKit-51 here is in UniTalker's order (the order of its `inhouse_blendshape_weight` head),
which is neither Apple's enum order nor alphabetical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ARKIT51_UNITALKER: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeBlinkRight", "EyeSquintLeft", "EyeSquintRight",
    "EyeLookDownLeft", "EyeLookDownRight", "EyeLookInLeft", "EyeLookInRight",
    "EyeWideLeft", "EyeWideRight", "EyeLookOutLeft", "EyeLookOutRight",
    "EyeLookUpLeft", "EyeLookUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp",
    "BrowOuterUpLeft", "BrowOuterUpRight", "JawOpen", "MouthClose", "JawLeft", "JawRight",
    "JawForward", "MouthUpperUpLeft", "MouthUpperUpRight", "MouthLowerDownLeft",
    "MouthLowerDownRight", "MouthRollUpper", "MouthRollLower", "MouthSmileLeft",
    "MouthSmileRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft",
    "MouthStretchRight", "MouthFrownLeft", "MouthFrownRight", "MouthPressLeft",
    "MouthPressRight", "MouthPucker", "MouthFunnel", "MouthLeft", "MouthRight",
    "MouthShrugLower", "MouthShrugUpper", "NoseSneerLeft", "NoseSneerRight", "CheekPuff",
    "CheekSquintLeft", "CheekSquintRight",
)  # fmt: skip


@dataclass(frozen=True)
class FaceType:
    name: str
    channels: tuple[str, ...]

    def index(self, channel: str) -> int:
        return channel_index(self.channels, channel)


ARKIT51 = FaceType("arkit51", ARKIT51_UNITALKER)
FACE_TYPES = {ARKIT51.name: ARKIT51}

# Lips count as closed when the jaw's opening is cancelled by MouthClose to within this.
LIP_CLOSED_APERTURE = 0.06


def channel_index(channels: tuple[str, ...] | list[str], channel: str) -> int:
    try:
        return list(channels).index(channel)
    except ValueError:
        raise KeyError(f"face has no channel {channel!r}") from None


def lip_aperture(face: np.ndarray, channels: tuple[str, ...] | list[str]) -> np.ndarray:
    """Per-frame lip opening of an ARKit track: JawOpen minus MouthClose (ARKit semantics:
    MouthClose closes the lips against an open jaw), plus the lower lip pulled down."""
    jaw = face[:, channel_index(channels, "JawOpen")]
    close = face[:, channel_index(channels, "MouthClose")]
    lower = 0.5 * (
        face[:, channel_index(channels, "MouthLowerDownLeft")]
        + face[:, channel_index(channels, "MouthLowerDownRight")]
    )
    return jaw - close + 0.5 * lower


def lip_closed_frames(
    face: np.ndarray, channels: tuple[str, ...] | list[str], threshold: float = LIP_CLOSED_APERTURE
) -> np.ndarray:
    """Boolean (T,): frames whose lips are closed."""
    return lip_aperture(face, channels) < threshold


def bilabial_closure_agreement(
    closed: np.ndarray, phonemes: list[tuple[str, float, float]], fps: float,
    tolerance_frames: int = 1,
) -> tuple[float, float]:
    """How well lip closures match bilabial phonemes (p, b, m) of a timeline in the track's
    time (seconds from its frame 0).

    Returns (recall, precision): the share of bilabials fully inside the track with a closed
    frame within ±tolerance of their span, and the share of closed frames during speech
    (non-pause phonemes) within ±tolerance of a bilabial.
    """
    frames = len(closed)
    speech = np.zeros(frames, bool)
    near_bilabial = np.zeros(frames, bool)
    hits, total = 0, 0
    for label, start, end in phonemes:
        first, last = int(np.floor(start * fps)), int(np.ceil(end * fps))
        if label.startswith("_") or last <= 0 or first >= frames:
            continue
        speech[max(first, 0) : last] = True
        if label.lstrip("',")[:1] in "pbm":
            lo, hi = max(first - tolerance_frames, 0), min(last + tolerance_frames, frames)
            near_bilabial[lo:hi] = True
            if first >= 0 and last <= frames:
                total += 1
                hits += bool(closed[lo:hi].any())
    closed_in_speech = closed & speech
    recall = hits / total if total else 1.0
    precision = (closed_in_speech & near_bilabial).sum() / max(closed_in_speech.sum(), 1)
    return recall, float(precision)
