"""Preview rendering of a rig's mesh, headless on a CPU, and MP4 writing with the audio track.

- A fixed orthographic front camera (`frame_rig`) framing the bounding box of the rig's rest
  mesh and of each blendshape at full weight, the same for every frame of every clip.
- Two rasterisers with the same shading (Gouraud: per-vertex Lambert from a light at the
  front-top plus ambient, lit on both sides so the inside of an open mouth is shaded too):
  `GLRasterizer`, OpenGL through moderngl on a standalone EGL context (Mesa's llvmpipe on a
  machine without a GPU: Debian's `libegl1 libegl-mesa0 libgl1-mesa-dri`), and
  `NumpyRasterizer`, a z-buffer in numpy for machines where EGL cannot start.
  `open_rasterizer(backend="auto")` takes GL and falls back to numpy with a logged reason.
  On the rigs here the two give the same pixels, shade levels within 1 of 255.
- `write_video`: H.264 (libx264, yuv420p) + AAC in MP4 through PyAV, whose wheel bundles
  FFmpeg (LGPL-3.0+) and libx264 (GPL-2.0+), so no system ffmpeg and no display are needed.
  The audio is trimmed or zero-padded to the video's duration (T / fps).
- `write_face_video` (one face track, `animate --video`) and `write_comparison_video` (ground
  truth | prediction side by side with small labels, `eval --video`).

Needs the `render` extra: `pip install 'unitaf[render]'` (moderngl, av; the numpy rasteriser
itself needs neither).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from fractions import Fraction
from itertools import chain
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from unitaf_model.model.rig import Rig, match_channels, vertex_normals

log = logging.getLogger(__name__)

Backend = Literal["auto", "gl", "numpy"]

BACKGROUND = np.array([0.08, 0.08, 0.10])  # dark, so an open mouth reads as a dark hole
SKIN = np.array([0.86, 0.70, 0.60])
AMBIENT, DIFFUSE = 0.22, 0.78
LIGHT = np.array([0.0, 0.5, 1.0]) / np.linalg.norm([0.0, 0.5, 1.0])  # from the front-top


def import_render_extra(module: str):
    """A module of the `render` extra (pygltflib, moderngl, av), or an error saying how to
    install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise RuntimeError(f"{module} is missing: pip install 'unitaf[render]'") from error


@dataclass(frozen=True)
class Camera:
    """Orthographic front view: world x right, y up, the viewer on +z; `scale` in pixels per
    world unit; `depth` the world z span mapped onto the depth range."""

    width: int
    height: int
    center: tuple[float, float, float]
    scale: float
    depth: float

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """(N, 3) world → (N, 3): pixel column, pixel row (down), depth in [-1, 1] (near < far)."""
        x = (vertices[:, 0] - self.center[0]) * self.scale + self.width / 2
        y = self.height / 2 - (vertices[:, 1] - self.center[1]) * self.scale
        z = -(vertices[:, 2] - self.center[2]) / self.depth
        return np.stack([x, y, z], 1)


def frame_mesh(vertices: np.ndarray, width: int, height: int, margin: float = 0.05) -> Camera:
    """The camera that fits the vertices' bounding box with `margin` on each side."""
    low, high = vertices.min(0), vertices.max(0)
    span = np.maximum(high - low, 1e-9)
    scale = min(width / (span[0] * (1 + 2 * margin)), height / (span[1] * (1 + 2 * margin)))
    depth = 2.0 * float(span.max())  # room for expressions that leave the rest bounding box
    return Camera(width, height, tuple(float(c) for c in (low + high) / 2), float(scale), depth)


def frame_rig(rig: Rig, width: int, height: int) -> Camera:
    """The camera that fits the rig's rest mesh and each of its blendshapes at full weight, so
    a dropped jaw or raised brows stay in view; the same for every frame of every clip."""
    reach = rig.meanshape[None] + rig.blendshape
    return frame_mesh(np.concatenate([rig.meanshape, reach.reshape(-1, 3)]), width, height)


class Rasterizer(Protocol):
    backend: str

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) vertices → (height, width, 3) uint8 image."""

    def close(self) -> None: ...


def shade(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex intensity of the front and of the back side of the surface, (V,) each."""
    facing = vertex_normals(vertices, faces) @ LIGHT
    return (AMBIENT + DIFFUSE * np.clip(facing, 0, None),
            AMBIENT + DIFFUSE * np.clip(-facing, 0, None))


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


class NumpyRasterizer:
    """Z-buffered triangle rasterisation in numpy: the pixel centres in every triangle's
    bounding box are tested at once with barycentric coordinates, and per pixel the nearest
    covering triangle wins."""

    backend = "numpy"

    def __init__(self, faces: np.ndarray, camera: Camera):
        self.faces = np.asarray(faces, dtype=np.int64)
        self.camera = camera

    def render(self, vertices: np.ndarray) -> np.ndarray:
        cam = self.camera
        front, back = shade(vertices, self.faces)
        corners = cam.project(vertices.astype(np.float64))[self.faces]  # (F, 3, xyz)
        tri, pixel, weights, front_facing = _covered_pixels(corners, cam.width, cam.height)
        win = _nearest(pixel, (weights * corners[tri, :, 2]).sum(1), cam.width * cam.height)
        corner_ids = self.faces[tri[win]]
        light = np.where(front_facing[win, None], front[corner_ids], back[corner_ids])
        image = np.tile(_to_uint8(BACKGROUND), (cam.height * cam.width, 1))
        image[pixel[win]] = _to_uint8(SKIN * (weights[win] * light).sum(1, keepdims=True))
        return image.reshape(cam.height, cam.width, 3)

    def close(self) -> None:
        pass


def _covered_pixels(corners: np.ndarray, width: int, height: int,
                    ) -> tuple[np.ndarray, ...]:
    """Every (triangle, pixel) pair whose pixel centre lies in the triangle (edges included):
    the triangle, the pixel's flat index, its (N, 3) barycentric weights, and whether the
    triangle faces the camera."""
    x, y = corners[..., 0], corners[..., 1]
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (y[:, 1] - y[:, 0]) * (x[:, 2] - x[:, 0])
    tri = np.flatnonzero(np.abs(area) > 1e-9)
    # weight k at pixel (col, row) = a_k * col + b_k * row + c_k: the edge opposite corner k
    x1, x2, y1, y2 = (np.roll(v, -shift, 1)[tri] for v in (x, y) for shift in (1, 2))
    a, b = (y1 - y2) / area[tri, None], (x2 - x1) / area[tri, None]
    c = ((y2 - y1) * x1 - (x2 - x1) * y1) / area[tri, None] + 0.5 * (a + b)  # pixel centres
    bounds = np.array([width, height])
    low = np.clip(np.ceil(corners[tri, :, :2].min(1) - 0.5), 0, bounds).astype(np.int64)
    high = np.clip(np.floor(corners[tri, :, :2].max(1) - 0.5) + 1, 0, bounds).astype(np.int64)
    extent = high - low
    count = np.where((extent > 0).all(1), extent[:, 0] * extent[:, 1], 0)
    owner = np.repeat(np.arange(len(tri)), count)  # one entry per bounding-box pixel
    row, col = np.divmod(np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count),
                         extent[owner, 0])
    col += low[owner, 0]
    row += low[owner, 1]
    weights = (np.repeat(a, count, 0) * col[:, None] + np.repeat(b, count, 0) * row[:, None]
               + np.repeat(c, count, 0))
    inside = (weights >= -1e-9).all(1)  # a hair of overlap: no cracks from rounding
    owner = owner[inside]
    # rows point down, so a triangle counter-clockwise in the world has a negative area here
    return (tri[owner], row[inside] * width + col[inside], weights[inside],
            area[tri[owner]] < 0)


def _nearest(pixel: np.ndarray, depth: np.ndarray, pixels: int) -> np.ndarray:
    """Per covered pixel, the index of its nearest candidate: one `minimum.at` over keys that
    hold the depth (in [-1, 1]) in their high bits and the candidate's number in the low."""
    key = (np.clip((depth + 1) * 2**30, 0, 2**31 - 1).astype(np.int64) << 32
           | np.arange(len(pixel)))
    empty = np.iinfo(np.int64).max
    nearest = np.full(pixels, empty)
    np.minimum.at(nearest, pixel, key)
    return nearest[nearest != empty] & 0xFFFFFFFF


_VERTEX_SHADER = """
#version 330
uniform vec3 center;
uniform vec3 ndc_scale;
in vec3 in_position;
in vec2 in_light;
out vec2 light;
void main() {
    gl_Position = vec4((in_position - center) * ndc_scale, 1.0);
    light = in_light;
}
"""
_FRAGMENT_SHADER = """
#version 330
uniform vec3 skin;
in vec2 light;
out vec4 color;
void main() {
    color = vec4(skin * (gl_FrontFacing ? light.x : light.y), 1.0);
}
"""


class GLRasterizer:
    """OpenGL 3.3 through moderngl on a standalone EGL context: no display needed."""

    backend = "gl"

    def __init__(self, faces: np.ndarray, camera: Camera):
        moderngl = import_render_extra("moderngl")
        self.faces = np.asarray(faces, dtype=np.int64)
        self.camera = camera
        self.ctx = moderngl.create_standalone_context(backend="egl")
        try:
            program = self.ctx.program(vertex_shader=_VERTEX_SHADER,
                                       fragment_shader=_FRAGMENT_SHADER)
            program["center"].value = camera.center
            program["ndc_scale"].value = (2 * camera.scale / camera.width,
                                          2 * camera.scale / camera.height, -1 / camera.depth)
            program["skin"].value = tuple(SKIN)
            self.vertex_count = int(self.faces.max()) + 1
            self.vbo = self.ctx.buffer(reserve=self.vertex_count * 5 * 4, dynamic=True)
            indices = self.ctx.buffer(self.faces.astype("u4").tobytes())
            self.vao = self.ctx.vertex_array(program, [(self.vbo, "3f 2f", "in_position",
                                                        "in_light")],
                                             index_buffer=indices, index_element_size=4)
            size = (camera.width, camera.height)
            self.fbo = self.ctx.framebuffer(color_attachments=[self.ctx.renderbuffer(size)],
                                            depth_attachment=self.ctx.depth_renderbuffer(size))
            self.ctx.enable(moderngl.DEPTH_TEST)
        except Exception:
            self.ctx.release()
            raise

    def render(self, vertices: np.ndarray) -> np.ndarray:
        front, back = shade(vertices, self.faces)
        data = np.concatenate([vertices[: self.vertex_count], front[: self.vertex_count, None],
                               back[: self.vertex_count, None]], 1)
        self.vbo.write(data.astype("f4").tobytes())
        self.fbo.use()
        self.fbo.clear(*BACKGROUND, 1.0, depth=1.0)
        self.vao.render()
        pixels = np.frombuffer(self.fbo.read(components=3), np.uint8)
        return pixels.reshape(self.camera.height, self.camera.width, 3)[::-1].copy()

    def close(self) -> None:
        self.ctx.release()


def open_rasterizer(faces: np.ndarray, camera: Camera,
                    backend: Backend = "auto") -> AbstractContextManager[Rasterizer]:
    """A rasteriser that closes on leaving its `with`: `gl`, `numpy`, or `auto` (GL where EGL
    starts, else numpy with a logged reason)."""
    if backend not in ("auto", "gl", "numpy"):
        raise ValueError(f"unknown render backend {backend!r}: auto, gl or numpy")
    if backend == "numpy":
        return closing(NumpyRasterizer(faces, camera))
    try:
        return closing(GLRasterizer(faces, camera))
    except Exception as error:  # no moderngl, no EGL, no Mesa driver: all mean "no GL here"
        if backend == "gl":
            raise RuntimeError(f"OpenGL rendering through EGL is unavailable: {error}") from error
        log.warning("EGL/OpenGL unavailable (%s); rendering with the numpy rasteriser", error)
        return closing(NumpyRasterizer(faces, camera))


def rig_frames(rig: Rig, face: np.ndarray, channels: Sequence[str]) -> Iterator[np.ndarray]:
    """Mesh vertices (V, 3) of every frame of a (T, C) face, channels matched to the rig's by
    name."""
    weights = match_channels(face, channels, rig.channels)
    for frame in weights:
        yield rig.meanshape + np.tensordot(frame, rig.blendshape, 1)


def render_face(rig: Rig, face: np.ndarray, channels: Sequence[str], size: int = 512,
                backend: Backend = "auto") -> Iterator[np.ndarray]:
    """(size, size, 3) uint8 images of a face track on the rig's mesh, one per frame."""
    camera = frame_rig(rig, size, size)
    with open_rasterizer(rig.faces, camera, backend) as rasterizer:
        for vertices in rig_frames(rig, face, channels):
            yield rasterizer.render(vertices)


def side_by_side(left: Iterable[np.ndarray], right: Iterable[np.ndarray],
                 labels: tuple[str, str] | None = ("ground truth", "prediction"),
                 ) -> Iterator[np.ndarray]:
    """Frames of two equally long sequences next to each other, each under a small label."""
    bands = None
    for a, b in zip(left, right, strict=True):
        if labels:
            bands = bands or [label_band(labels[0], a.shape[1]), label_band(labels[1], b.shape[1])]
            a, b = np.concatenate([bands[0], a]), np.concatenate([bands[1], b])
        yield np.concatenate([a, b], axis=1)


def label_band(text: str, width: int, height: int = 24) -> np.ndarray:
    """(height, width, 3) uint8: `text` in light grey, centred on the background colour, drawn
    once with matplotlib's Agg canvas (already a dependency)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=tuple(BACKGROUND))
    canvas = FigureCanvasAgg(figure)
    figure.text(0.5, 0.5, text, ha="center", va="center", color="0.85",
                fontsize=0.55 * height * 72 / dpi)
    canvas.draw()
    band = np.asarray(canvas.buffer_rgba())[..., :3]
    return np.ascontiguousarray(band[:height, :width])


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float,
                audio: np.ndarray | None = None, sample_rate: int | None = None,
                crf: int = 20) -> Path:
    """Encode (H, W, 3) uint8 frames (H and W even) as H.264 yuv420p at `fps`, with mono
    `audio` (float in [-1, 1] or int16) as AAC, trimmed or zero-padded to T / fps seconds.
    Written to a temporary name beside `path`, then renamed."""
    av = import_render_extra("av")

    if audio is not None:
        if not sample_rate:
            raise ValueError("audio needs its sample_rate")
        audio = _mono_float(audio)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("no frames to write")
    _check_frame(first, first.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        _encode(av, partial, chain([first], frames), first.shape, fps, audio, sample_rate, crf)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return path


def _encode(av, path: Path, frames: Iterable[np.ndarray], shape: tuple[int, ...], fps: float,
            audio: np.ndarray | None, sample_rate: int | None, crf: int) -> None:
    # an open file, not a path string: FFmpeg would read a path as a URL with a protocol
    with open(path, "wb") as file, av.open(file, "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        video.height, video.width = shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": str(crf), "preset": "veryfast"}
        sound = None if audio is None else container.add_stream("aac", rate=sample_rate,
                                                                 layout="mono")
        for count, image in enumerate(frames, 1):
            _check_frame(image, shape)
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            if sound is not None:  # interleaved: the audio up to the end of this frame
                _mux_audio(av, container, sound, audio, round((count - 1) * sample_rate / fps),
                           round(count * sample_rate / fps))
        container.mux(video.encode())
        if sound is not None:
            container.mux(sound.encode())


def _check_frame(image: np.ndarray, shape: tuple[int, ...]) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) uint8, not {image.shape} {image.dtype}")
    if image.shape != shape:
        raise ValueError(f"frame of {image.shape} in a video of {shape}")
    if image.shape[0] % 2 or image.shape[1] % 2:
        raise ValueError(f"H.264 yuv420p needs an even width and height, not {image.shape[:2]}")


def _mono_float(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono (N,), not {audio.shape}")
    return (audio / 32768.0 if audio.dtype == np.int16 else audio).astype(np.float32)


def _mux_audio(av, container, stream, audio: np.ndarray, start: int, stop: int) -> None:
    """Samples [start, stop) of the track, zeros past its end, as one AAC input frame (PyAV
    re-chunks to the encoder's frame size)."""
    chunk = np.zeros((1, stop - start), np.float32)
    part = audio[start:stop]
    chunk[0, : len(part)] = part
    frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
    frame.sample_rate = stream.sample_rate
    frame.pts = start
    container.mux(stream.encode(frame))


def write_face_video(path: Path, rig: Rig, face: np.ndarray, channels: Sequence[str],
                     fps: float, audio: np.ndarray | None = None,
                     sample_rate: int | None = None, size: int = 512,
                     backend: Backend = "auto") -> Path:
    """MP4 of a face track on the rig's mesh with its audio (`unitaf animate --video`)."""
    return write_video(path, render_face(rig, face, channels, size, backend), fps, audio,
                       sample_rate)


def write_comparison_video(path: Path, rig: Rig, truth: np.ndarray, prediction: np.ndarray,
                           channels: Sequence[str], fps: float, audio: np.ndarray | None = None,
                           sample_rate: int | None = None, size: int = 512,
                           labels: tuple[str, str] | None = ("ground truth", "prediction"),
                           backend: Backend = "auto") -> Path:
    """MP4 of ground truth | prediction side by side with the clip's audio (`eval --video`)."""
    if truth.shape != prediction.shape:
        raise ValueError(f"ground truth {truth.shape} and prediction {prediction.shape} differ")
    camera = frame_rig(rig, size, size)
    with open_rasterizer(rig.faces, camera, backend) as rasterizer:
        left = (rasterizer.render(v) for v in rig_frames(rig, truth, channels))
        right = (rasterizer.render(v) for v in rig_frames(rig, prediction, channels))
        return write_video(path, side_by_side(left, right, labels), fps, audio, sample_rate)
