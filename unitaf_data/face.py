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


FLAME103_CHANNELS: tuple[str, ...] = (
    *(f"expression_{i:03d}" for i in range(100)), "jaw_x", "jaw_y", "jaw_z")

ARKIT51 = FaceType("arkit51", ARKIT51_UNITALKER)
FLAME103 = FaceType("flame103", FLAME103_CHANNELS)  # 100 expressions + jaw axis-angle

# Lips count as closed when the jaw's opening is cancelled by MouthClose to within this.
LIP_CLOSED_APERTURE = 0.06


def flame_to_arkit(
    flame: np.ndarray, matrix: np.ndarray, matrix_arkit_names: tuple[str, ...] | list[str]
) -> np.ndarray:
    """FLAME-103 frames to ARKit-51 in UniTalker order.

    `matrix` is 51×103 with `flame103 = arkit51 @ matrix`, its rows in `matrix_arkit_names`
    order (BEAT2's `mat_final.npy` is such a matrix). The inverse is the least-squares
    solution through the pseudo-inverse, clipped to the blendshape range [0, 1].
    """
    if matrix.shape != (51, 103):
        raise ValueError(f"FLAME→ARKit matrix must be 51×103, not {matrix.shape}")
    if sorted(matrix_arkit_names) != sorted(ARKIT51_UNITALKER):
        raise ValueError("the matrix's row names must be the 51 ARKit blendshape names")
    arkit = np.clip(flame @ np.linalg.pinv(matrix), 0.0, 1.0)
    order = [list(matrix_arkit_names).index(name) for name in ARKIT51_UNITALKER]
    return arkit[:, order].astype(np.float32)


def resample_face(face: np.ndarray, fps_in: float, fps_out: float) -> np.ndarray:
    """Linear interpolation of every channel onto the `fps_out` grid covering the same span:
    frame i of the output samples time i / fps_out."""
    if fps_in == fps_out:
        return face
    frames_out = int(np.floor(len(face) / fps_in * fps_out + 1e-9))
    source = np.arange(len(face)) / fps_in
    target = np.arange(frames_out) / fps_out
    return np.stack([np.interp(target, source, face[:, c]) for c in range(face.shape[1])],
                    axis=1).astype(np.float32)


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
