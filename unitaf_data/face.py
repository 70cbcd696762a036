"""Face types: named channel sets at a frame rate, their named channel groups (articulation,
expression, mouth), and the lip aperture read from ARKit curves.

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


def resample_face(face: np.ndarray, fps_in: float, fps_out: float,
                  frames: int | None = None) -> np.ndarray:
    """Linear interpolation of every channel onto the `fps_out` grid: frame i of the output
    samples time i / fps_out (holding the last frame past the end). `frames` output frames,
    by default those covering the same span."""
    frames_out = int(np.floor(len(face) / fps_in * fps_out + 1e-9)) if frames is None \
        else frames
    if fps_in == fps_out and frames_out == len(face):
        return face
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


# Channel groups by name prefix, compared lower-cased so that UniTalker's PascalCase, Apple's
# and Live Link's camelCase and FLAME-103's `jaw_*` all match. Articulation = what moves to
# make speech sounds: the jaw and the lips (and ARKit-52's TongueOut); the smile, frown and
# dimple shapes move the mouth but carry expression, so they are not articulation.
_ARTICULATION_PREFIXES = (
    "jaw", "mouthclose", "mouthfunnel", "mouthpucker", "mouthroll", "mouthpress",
    "mouthlowerdown", "mouthupperup", "mouthstretch", "mouthshrug", "mouthleft", "mouthright",
    "tongue",
)  # fmt: skip
# The mouth mask of FaceDiffuser's and Token-to-Face's blendshape LVE: every ARKit Jaw* and
# Mouth* channel (Token-to-Face's `range(22, 49)` in alphabetical ARKit-51 order).
_MOUTH_PREFIXES = ("jaw", "mouth")


def articulation_channels(channels: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The jaw and lip channels, in the given order: ARKit Jaw*, MouthClose, MouthFunnel,
    MouthPucker, MouthRoll*, MouthPress*, MouthLowerDown*, MouthUpperUp*, MouthStretch*,
    MouthShrug*, MouthLeft/Right (and TongueOut); FLAME-103's jaw_x/y/z."""
    return tuple(c for c in channels if c.lower().startswith(_ARTICULATION_PREFIXES))


def expression_channels(channels: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Every channel that is not articulation, in the given order: ARKit Eye*, Brow*, Cheek*,
    Nose*, MouthSmile*, MouthFrown*, MouthDimple*; FLAME-103's expression_*."""
    articulation = set(articulation_channels(channels))
    return tuple(c for c in channels if c not in articulation)


def mouth_channels(channels: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """ARKit Jaw* and Mouth* channels (FLAME-103: jaw_*), in the given order: the channels of
    the blendshape mouth metrics."""
    return tuple(c for c in channels if c.lower().startswith(_MOUTH_PREFIXES))
