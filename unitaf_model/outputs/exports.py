"""Face-track exports that animation tools import, every channel matched by name.

One writer per format, each taking a float32 (T, C) face, its channel names and its fps; frame
i starts at i / fps seconds.

- `NAME.npy`: the (T, C) float32 array; `NAME.csv`: a `time` column (frame start, seconds)
  then one column per channel name (`unitaf_data.face_io.read_face` reads it back).
- `NAME.livelink.csv`: Epic's Live Link Face CSV: `Timecode,BlendShapeCount,` then the 52
  ARKit blendshapes in PascalCase and 9 head/eye rotations, in the header order the app writes
  (nmfisher/blender_livelinkface `bpylivelinkface.py` LIVE_LINK_FACE_HEADER, commit
  08de03778f64, whose Blender importer reads columns by that position; the same order appears
  in other importers' copies of real captures). `BlendShapeCount` holds 61. Channels are
  matched case-insensitively; TongueOut, the rotations and any blendshape the face lacks are 0.
  Timecode `HH:MM:SS:FF.mmm` with FF counted at round(fps) and mmm the milliseconds past that
  frame's start, as J-Andersen-UvA/LiveLinkFaceCSVWriter formats a sub-frame.
- `NAME.a2f.json`: NVIDIA Audio2Face's blendshape-weight export (`exportFps`, `numFrames`,
  `numPoses`, `facsNames`, `weightMat` frames × poses, `trackPath`); ARKit channels are named
  as A2F's ARKit solve writes them, camelCase (`jawOpen`), other channels verbatim.
- `NAME.usd`: the rig as a UsdSkel blend-shape animation (`unitaf_model.outputs.usd`, the
  `usd` extra).
- `NAME.glb`: glTF 2.0 binary with the rig's mesh (POSITION, NORMAL, triangle indices), one
  morph target per rig channel (POSITION and NORMAL deltas), their names in
  `mesh.extras.targetNames` (the convention Blender, three.js and Babylon read), and one
  animation whose LINEAR sampler drives the mesh's `weights` at the frame times.

Live Link and A2F weights are clipped to [0, 1], the range both formats define; values are
written with 6 decimals. `write_exports` writes a chosen set (and `NAME.mp4` through
`unitaf_model.outputs.render`, needing the `render` extra, as do the glb's pygltflib and the video).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from unitaf_model.model.rig import Rig, check_face, folded_index, match_channels, vertex_normals
from unitaf_model.outputs.render import import_render_extra

log = logging.getLogger(__name__)

LIVE_LINK_BLENDSHAPES: tuple[str, ...] = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward",
    "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight",
    "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight",
    "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft",
    "MouthPressRight", "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft",
    "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft",
    "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft", "CheekSquintRight", "NoseSneerLeft",
    "NoseSneerRight", "TongueOut",
)  # fmt: skip
LIVE_LINK_ROTATIONS: tuple[str, ...] = (
    "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
    "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
)  # fmt: skip
LIVE_LINK_HEADER: tuple[str, ...] = ("Timecode", "BlendShapeCount", *LIVE_LINK_BLENDSHAPES,
                                     *LIVE_LINK_ROTATIONS)
DECIMALS = 6
FORMATS: tuple[str, ...] = ("npy", "csv", "livelink.csv", "a2f.json", "glb", "usd", "mp4")
MESH_FORMATS = ("glb", "usd", "mp4")  # need the rig's mesh
FILE_FORMATS: tuple[str, ...] = FORMATS[:-1]


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be positive, not {fps}")


def frame_times(frames: int, fps: float) -> np.ndarray:
    """Start time in seconds of each frame."""
    _check_fps(fps)
    return np.arange(frames) / fps


def _write_csv(path: Path, header: Sequence[str], lead: list[list[str]],
               values: np.ndarray) -> Path:
    text = np.char.mod(f"%.{DECIMALS}f", values)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(first + list(row) for first, row in zip(lead, text, strict=True))
    return path


def write_npy(path: Path, face: np.ndarray, channels: Sequence[str], fps: float) -> Path:
    """The (T, C) float32 array; its channel names travel in the CSV beside it."""
    _check_fps(fps)
    np.save(path, check_face(face, channels), allow_pickle=False)
    return Path(path)


def write_csv(path: Path, face: np.ndarray, channels: Sequence[str], fps: float) -> Path:
    """`time` (frame start, seconds) then one column per channel name."""
    face = check_face(face, channels)
    times = np.char.mod(f"%.{DECIMALS}f", frame_times(len(face), fps))
    return _write_csv(Path(path), ["time", *channels], [[t] for t in times], face)


def live_link_timecode(frame: int, fps: float) -> str:
    """`HH:MM:SS:FF.mmm` of a frame's start: FF frames at round(fps), mmm milliseconds past
    that frame's start (non-zero only when fps is not a whole number)."""
    rate = max(1, round(fps))
    time = Fraction(frame) / Fraction(fps).limit_denominator(1001)
    seconds = int(time)
    frames = (time - seconds) * rate
    millis = min(999, round((frames - int(frames)) * 1000 / rate))
    return (f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}:"
            f"{int(frames):02d}.{millis:03d}")


def write_live_link_csv(path: Path, face: np.ndarray, channels: Sequence[str],
                        fps: float) -> Path:
    """Epic Live Link Face CSV (see the module docstring for the layout and its source)."""
    face = check_face(face, channels)
    _check_fps(fps)
    shapes = np.clip(match_channels(face, channels, LIVE_LINK_BLENDSHAPES), 0, 1)
    values = np.concatenate([shapes, np.zeros((len(face), len(LIVE_LINK_ROTATIONS)))], 1)
    count = str(len(LIVE_LINK_BLENDSHAPES) + len(LIVE_LINK_ROTATIONS))
    lead = [[live_link_timecode(i, fps), count] for i in range(len(face))]
    return _write_csv(Path(path), LIVE_LINK_HEADER, lead, values)


_A2F_ARKIT_NAMES = {name.lower(): name[0].lower() + name[1:] for name in LIVE_LINK_BLENDSHAPES}


def a2f_name(channel: str) -> str:
    """A channel's name in an Audio2Face export: ARKit names camelCase, others verbatim."""
    return _A2F_ARKIT_NAMES.get(channel.lower(), channel)


def write_a2f_json(path: Path, face: np.ndarray, channels: Sequence[str], fps: float,
                   track_path: str = "") -> Path:
    """Audio2Face blendshape-weight JSON, one pose per channel in the face's own order;
    `track_path` is the audio file the animation belongs to."""
    face = check_face(face, channels)
    _check_fps(fps)
    folded_index(channels, "face")
    document = {
        "exportFps": float(fps),
        "trackPath": str(track_path),
        "numPoses": len(channels),
        "numFrames": len(face),
        "facsNames": [a2f_name(name) for name in channels],
        "weightMat": np.round(np.clip(face, 0, 1).astype(np.float64), DECIMALS).tolist(),
    }
    Path(path).write_text(json.dumps(document))
    return Path(path)


def write_glb(path: Path, face: np.ndarray, channels: Sequence[str], fps: float, rig: Rig,
              name: str = "face") -> Path:
    """glTF 2.0 binary: the rig's mesh with one morph target per rig channel and the face as
    an animation of the morph weights (channels matched to the rig's by name)."""
    gl = import_render_extra("pygltflib")
    weights = match_channels(face, channels, rig.channels)
    times = frame_times(len(weights), fps).astype(np.float32)
    mean = rig.meanshape.astype(np.float32)
    rest_normals = vertex_normals(mean, rig.faces)
    packer = _BinaryPacker()
    position = packer.add(mean, gl.VEC3, gl.ARRAY_BUFFER, bounds=True)
    normal = packer.add(rest_normals, gl.VEC3, gl.ARRAY_BUFFER)
    indices = packer.add(rig.faces.astype(np.uint32).ravel(), gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)
    targets = [gl.Attributes(
        POSITION=packer.add(delta, gl.VEC3, gl.ARRAY_BUFFER, bounds=True),
        NORMAL=packer.add(vertex_normals(mean + delta, rig.faces) - rest_normals, gl.VEC3,
                          gl.ARRAY_BUFFER),
    ) for delta in rig.blendshape.astype(np.float32)]
    key_times = packer.add(times, gl.SCALAR, bounds=True)
    key_weights = packer.add(weights.ravel(), gl.SCALAR)  # frame-major: T × C
    document = gl.GLTF2(
        asset=gl.Asset(version="2.0", generator="unitaf"),
        scene=0, scenes=[gl.Scene(nodes=[0])], nodes=[gl.Node(name=name, mesh=0)],
        meshes=[gl.Mesh(
            name=name, weights=[0.0] * len(rig.channels),
            extras={"targetNames": list(rig.channels)},
            primitives=[gl.Primitive(attributes=gl.Attributes(POSITION=position, NORMAL=normal),
                                     indices=indices, targets=targets, mode=gl.TRIANGLES)],
        )],
        animations=[gl.Animation(
            name=name,
            samplers=[gl.AnimationSampler(input=key_times, output=key_weights,
                                          interpolation=gl.ANIM_LINEAR)],
            channels=[gl.AnimationChannel(sampler=0, target=gl.AnimationChannelTarget(
                node=0, path=gl.WEIGHTS))],
        )],
        accessors=packer.accessors, bufferViews=packer.views,
        buffers=[gl.Buffer(byteLength=packer.size)],
    )
    document.set_binary_blob(packer.blob())
    document.save_binary(str(path))
    return Path(path)


class _BinaryPacker:
    """Float32 / uint32 arrays laid end to end in one buffer, one view and accessor each."""

    def __init__(self):
        self.gl = import_render_extra("pygltflib")
        self.parts: list[bytes] = []
        self.size = 0
        self.views: list = []
        self.accessors: list = []

    def add(self, array: np.ndarray, kind: str, target: int | None = None,
            bounds: bool = False) -> int:
        gl = self.gl
        array = np.ascontiguousarray(array, np.uint32 if array.dtype == np.uint32
                                     else np.float32)
        component = gl.UNSIGNED_INT if array.dtype == np.uint32 else gl.FLOAT
        data = array.tobytes()
        self.views.append(gl.BufferView(buffer=0, byteOffset=self.size, byteLength=len(data),
                                        target=target))
        rows = array.reshape(len(array), -1)
        self.accessors.append(gl.Accessor(
            bufferView=len(self.views) - 1, componentType=component, count=len(rows),
            type=kind, min=rows.min(0).tolist() if bounds else None,
            max=rows.max(0).tolist() if bounds else None))
        self.parts.append(data)
        self.size += len(data)  # every part is 4-byte values, so views stay 4-byte aligned
        return len(self.accessors) - 1

    def blob(self) -> bytes:
        return b"".join(self.parts)


def write_exports(out_dir: Path, name: str, face: np.ndarray, channels: Sequence[str],
                  fps: float, rig: Rig | None = None, audio: np.ndarray | None = None,
                  sample_rate: int | None = None, formats: Sequence[str] = FILE_FORMATS,
                  track_path: str = "") -> dict[str, Path]:
    """Write `out_dir/NAME.{format}` for each of `formats` (see `FORMATS`) and return the
    paths by format. `glb` and `mp4` need the rig; `mp4` muxes `audio` when given."""
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"export name must be a plain file name, not {name!r}")
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown export formats {sorted(unknown)}; known: {FORMATS}")
    if rig is None and set(MESH_FORMATS) & set(formats):
        raise ValueError(f"{', '.join(MESH_FORMATS)} exports need the rig's mesh")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {fmt: out_dir / f"{name}.{fmt}" for fmt in formats}
    writers = {
        "npy": lambda p: write_npy(p, face, channels, fps),
        "csv": lambda p: write_csv(p, face, channels, fps),
        "livelink.csv": lambda p: write_live_link_csv(p, face, channels, fps),
        "a2f.json": lambda p: write_a2f_json(p, face, channels, fps, track_path),
        "glb": lambda p: write_glb(p, face, channels, fps, rig, name),
        "usd": lambda p: _write_usd(p, face, channels, fps, rig),
        "mp4": lambda p: _write_mp4(p, rig, face, channels, fps, audio, sample_rate),
    }
    for fmt, path in paths.items():
        writers[fmt](path)
    return paths


def _write_usd(path: Path, face: np.ndarray, channels: Sequence[str], fps: float,
               rig: Rig) -> Path:
    from unitaf_model.outputs.usd import write_usd  # usd imports this module

    return write_usd(path, face, channels, fps, rig)


def _write_mp4(path: Path, rig: Rig, face: np.ndarray, channels: Sequence[str], fps: float,
               audio: np.ndarray | None, sample_rate: int | None) -> Path:
    from unitaf_model.outputs.preview import write_face_video

    return write_face_video(path, rig, face, channels, fps, audio, sample_rate)
