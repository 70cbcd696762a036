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
- `label_band`: a line of text on the background colour (labels and captions of the previews,
  `unitaf_model.outputs.preview`).

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

BACKGROUND = np.array([0.16, 0.17, 0.20])
SKIN = np.array([0.86, 0.70, 0.60])  # a rig without colours
AMBIENT, DIFFUSE, FILL_SHARE = 0.20, 0.75, 0.22
LIGHT = np.array([-0.35, 0.45, 1.0]) / np.linalg.norm([-0.35, 0.45, 1.0])  # upper left, front
FILL = np.array([0.8, 0.0, 0.6]) / np.linalg.norm([0.8, 0.0, 0.6])


def import_render_extra(module: str):
    """A module of the `render` extra (pygltflib, moderngl, av), or an error saying how to
    install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise RuntimeError(f"{module} is missing: pip install 'unitaf[render]'") from error


@dataclass(frozen=True)
class Camera:
    """Orthographic view: the world turned by `yaw` about the vertical axis (positive turns
    the face toward the viewer's right, showing its left cheek) and tilted by `pitch` (positive
    looks down on it), then x right, y up, the viewer on +z; `scale` in pixels per world unit;
    `depth` the world z span mapped onto the depth range."""

    width: int
    height: int
    center: tuple[float, float, float]
    scale: float
    depth: float
    yaw: float = 0.0
    pitch: float = 0.0

    def view(self, vertices: np.ndarray) -> np.ndarray:
        """(N, 3) world → (N, 3) view space (before centring and scaling)."""
        return vertices @ view_rotation(self.yaw, self.pitch).T

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """(N, 3) view space → (N, 3): pixel column, pixel row (down), depth in [-1, 1]
        (near < far)."""
        x = (vertices[:, 0] - self.center[0]) * self.scale + self.width / 2
        y = self.height / 2 - (vertices[:, 1] - self.center[1]) * self.scale
        z = -(vertices[:, 2] - self.center[2]) / self.depth
        return np.stack([x, y, z], 1)


def view_rotation(yaw: float, pitch: float) -> np.ndarray:
    """The rotation of a view: yaw about y, then pitch about x."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    turn = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    tilt = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return tilt @ turn


NECK_SHOWN = 0.20  # of the rig's height, the lowest part a preview leaves out
VIEWS = {"front": (0.0, 0.06), "three_quarter": (0.62, 0.10)}  # (yaw, pitch) in radians


def frame_mesh(vertices: np.ndarray, width: int, height: int, margin: float = 0.05,
               yaw: float = 0.0, pitch: float = 0.0) -> Camera:
    """The camera that fits the vertices' bounding box, seen from (yaw, pitch), with
    `margin` on each side."""
    seen = vertices @ view_rotation(yaw, pitch).T
    low, high = seen.min(0), seen.max(0)
    span = np.maximum(high - low, 1e-9)
    scale = min(width / (span[0] * (1 + 2 * margin)), height / (span[1] * (1 + 2 * margin)))
    depth = 2.0 * float(span.max())  # room for expressions that leave the rest bounding box
    return Camera(width, height, tuple(float(c) for c in (low + high) / 2), float(scale), depth,
                  yaw, pitch)


def frame_rig(rig: Rig, width: int, height: int, view: str = "front") -> Camera:
    """The camera that fits the rig's rest mesh and each of its blendshapes at full weight, so
    a dropped jaw or raised brows stay in view; the same for every frame of every clip.
    `view`: a name of `VIEWS`."""
    reach = rig.meanshape[None] + rig.blendshape
    points = np.concatenate([rig.meanshape, reach.reshape(-1, 3)])
    head = points[:, 1] > np.quantile(rig.meanshape[:, 1], 0.02) + NECK_SHOWN * np.ptp(
        rig.meanshape[:, 1])  # not the whole neck
    return frame_mesh(points[head], width, height, yaw=VIEWS[view][0], pitch=VIEWS[view][1])


def frame_region(rig: Rig, vertices: np.ndarray, width: int, height: int,
                 margin: float = 0.35) -> Camera:
    """A front camera close on a set of the rig's vertices (e.g. its lips) with their reach."""
    reach = rig.meanshape[vertices][None] + rig.blendshape[:, vertices]
    return frame_mesh(np.concatenate([rig.meanshape[vertices], reach.reshape(-1, 3)]), width,
                      height, margin, *VIEWS["front"])


class Rasterizer(Protocol):
    backend: str

    def render(self, vertices: np.ndarray) -> np.ndarray:
        """(V, 3) vertices → (height, width, 3) uint8 image."""

    def close(self) -> None: ...


class Normals:
    """Vertex normals of a fixed triangle list, fast: the sum over each vertex's triangles is
    one sparse product (the same values as `exports.vertex_normals`)."""

    def __init__(self, faces: np.ndarray, count: int):
        from scipy.sparse import csr_matrix

        self.faces = faces
        rows = faces.T.ravel()
        cols = np.tile(np.arange(len(faces)), 3)
        self.incidence = csr_matrix((np.ones(len(rows)), (rows, cols)), (count, len(faces)))

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        corners = vertices[self.faces]
        summed = self.incidence @ np.cross(corners[:, 1] - corners[:, 0],
                                           corners[:, 2] - corners[:, 0])
        length = np.linalg.norm(summed, axis=1, keepdims=True)
        return np.where(length > 0, summed / np.where(length > 0, length, 1), [0.0, 0.0, 1.0])


def shade(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None,
          normals: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex (V, 3) colour of the front and of the back side of the surface: a key light
    from the viewer's upper left and a dimmer fill from the right, on view-space vertices."""
    normals = vertex_normals(vertices, faces) if normals is None else normals
    base = SKIN if colors is None else colors

    def lit(facing: np.ndarray) -> np.ndarray:
        key = np.clip(facing @ LIGHT, 0, None)
        fill = np.clip(facing @ FILL, 0, None)
        return base * (AMBIENT + DIFFUSE * key + FILL_SHARE * fill)[:, None]

    return lit(normals), lit(-normals)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


class NumpyRasterizer:
    """Z-buffered triangle rasterisation in numpy: the pixel centres in every triangle's
    bounding box are tested at once with barycentric coordinates, and per pixel the nearest
    covering triangle wins."""

    backend = "numpy"

    def __init__(self, faces: np.ndarray, camera: Camera, colors: np.ndarray | None = None):
        self.faces = np.asarray(faces, dtype=np.int64)
        self.camera = camera
        self.colors = colors
        self.normals = Normals(self.faces, int(self.faces.max()) + 1)

    def render(self, vertices: np.ndarray) -> np.ndarray:
        cam = self.camera
        seen = cam.view(vertices.astype(np.float64))
        front, back = shade(seen, self.faces, self.colors, self.normals(seen))
        corners = cam.project(seen)[self.faces]  # (F, 3, xyz)
        tri, pixel, weights, front_facing = _covered_pixels(corners, cam.width, cam.height)
        win = _nearest(pixel, (weights * corners[tri, :, 2]).sum(1), cam.width * cam.height)
        corner_ids = self.faces[tri[win]]
        light = np.where(front_facing[win, None, None], front[corner_ids], back[corner_ids])
        image = np.tile(_to_uint8(BACKGROUND), (cam.height * cam.width, 1))
        image[pixel[win]] = _to_uint8((weights[win, :, None] * light).sum(1))
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
in vec3 in_front;
in vec3 in_back;
out vec3 front;
out vec3 back;
void main() {
    gl_Position = vec4((in_position - center) * ndc_scale, 1.0);
    front = in_front;
    back = in_back;
}
"""
_FRAGMENT_SHADER = """
#version 330
in vec3 front;
in vec3 back;
out vec4 color;
void main() {
    color = vec4(gl_FrontFacing ? front : back, 1.0);
}
"""


class GLRasterizer:
    """OpenGL 3.3 through moderngl on a standalone EGL context: no display needed."""

    backend = "gl"

    def __init__(self, faces: np.ndarray, camera: Camera, colors: np.ndarray | None = None):
        moderngl = import_render_extra("moderngl")
        self.faces = np.asarray(faces, dtype=np.int64)
        self.camera = camera
        self.colors = colors
        self.normals = Normals(self.faces, int(self.faces.max()) + 1)
        self.ctx = moderngl.create_standalone_context(backend="egl")
        try:
            program = self.ctx.program(vertex_shader=_VERTEX_SHADER,
                                       fragment_shader=_FRAGMENT_SHADER)
            program["center"].value = camera.center
            program["ndc_scale"].value = (2 * camera.scale / camera.width,
                                          2 * camera.scale / camera.height, -1 / camera.depth)
            self.vertex_count = int(self.faces.max()) + 1
            self.vbo = self.ctx.buffer(reserve=self.vertex_count * 9 * 4, dynamic=True)
            indices = self.ctx.buffer(self.faces.astype("u4").tobytes())
            self.vao = self.ctx.vertex_array(program, [(self.vbo, "3f 3f 3f", "in_position",
                                                        "in_front", "in_back")],
                                             index_buffer=indices, index_element_size=4)
            size = (camera.width, camera.height)
            self.fbo = self.ctx.framebuffer(color_attachments=[self.ctx.renderbuffer(size)],
                                            depth_attachment=self.ctx.depth_renderbuffer(size))
            self.ctx.enable(moderngl.DEPTH_TEST)
        except Exception:
            self.ctx.release()
            raise

    def render(self, vertices: np.ndarray) -> np.ndarray:
        seen = self.camera.view(vertices.astype(np.float64))
        front, back = shade(seen, self.faces, self.colors, self.normals(seen))
        count = self.vertex_count
        data = np.concatenate([seen[:count], front[:count], back[:count]], 1)
        self.vbo.write(data.astype("f4").tobytes())
        self.fbo.use()
        self.fbo.clear(*BACKGROUND, 1.0, depth=1.0)
        self.vao.render()
        pixels = np.frombuffer(self.fbo.read(components=3), np.uint8)
        return pixels.reshape(self.camera.height, self.camera.width, 3)[::-1].copy()

    def close(self) -> None:
        self.ctx.release()


def open_rasterizer(faces: np.ndarray, camera: Camera, backend: Backend = "auto",
                    colors: np.ndarray | None = None) -> AbstractContextManager[Rasterizer]:
    """A rasteriser that closes on leaving its `with`: `gl`, `numpy`, or `auto` (GL where EGL
    starts, else numpy with a logged reason)."""
    if backend not in ("auto", "gl", "numpy"):
        raise ValueError(f"unknown render backend {backend!r}: auto, gl or numpy")
    if backend == "numpy":
        return closing(NumpyRasterizer(faces, camera, colors))
    try:
        return closing(GLRasterizer(faces, camera, colors))
    except Exception as error:  # no moderngl, no EGL, no Mesa driver: all mean "no GL here"
        if backend == "gl":
            raise RuntimeError(f"OpenGL rendering through EGL is unavailable: {error}") from error
        log.warning("EGL/OpenGL unavailable (%s); rendering with the numpy rasteriser", error)
        return closing(NumpyRasterizer(faces, camera, colors))


def rig_frames(rig: Rig, face: np.ndarray, channels: Sequence[str]) -> Iterator[np.ndarray]:
    """Mesh vertices (V, 3) of every frame of a (T, C) face, channels matched to the rig's by
    name."""
    weights = match_channels(face, channels, rig.channels)
    basis = rig.blendshape.reshape(len(rig.channels), -1)
    for start in range(0, len(weights), 64):  # one product per 64 frames: far fewer BLAS calls
        block = (weights[start : start + 64] @ basis).reshape(-1, *rig.meanshape.shape)
        yield from rig.meanshape + block


def render_face(rig: Rig, face: np.ndarray, channels: Sequence[str], size: int = 512,
                backend: Backend = "auto") -> Iterator[np.ndarray]:
    """(size, size, 3) uint8 images of a face track on the rig's mesh, one per frame."""
    camera = frame_rig(rig, size, size)
    with open_rasterizer(rig.faces, camera, backend) as rasterizer:
        for vertices in rig_frames(rig, face, channels):
            yield rasterizer.render(vertices)


def label_band(text: str, width: int, height: int = 24, color: str = "0.85",
               centred: bool = True) -> np.ndarray:
    """(height, width, 3) uint8: `text` (light grey by default), centred (or from the left) on
    the background colour, drawn once with matplotlib's Agg canvas (already a dependency)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    figure = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=tuple(BACKGROUND))
    canvas = FigureCanvasAgg(figure)
    figure.text(0.5 if centred else 0.0, 0.5, text, ha="center" if centred else "left",
                va="center", color=color,
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
