"""Headless rendering of the rigs (numpy and EGL rasterisers) and MP4 writing with audio, read
back with PyAV."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reference import SHARED_REFERENCE, needs_shared
from unitaf_model.model.rig import demo_rig, load_rig
from unitaf_model.outputs.preview import (
    LABEL_HEIGHT,
    STRIP_HEIGHT,
    write_comparison_video,
    write_face_video,
)
from unitaf_model.outputs.render import (
    BACKGROUND,
    frame_rig,
    open_rasterizer,
    rig_frames,
    write_video,
)

av = pytest.importorskip("av")

RIG_FILE = SHARED_REFERENCE / "unitalker_arkit_rig.npz"
BACKGROUND_RGB = np.rint(BACKGROUND * 255).astype(np.uint8)
ROOT = Path(__file__).resolve().parents[2]


def gl_unavailable() -> str | None:
    """Why OpenGL through EGL cannot start here, or None when it can."""
    try:
        import moderngl

        moderngl.create_standalone_context(backend="egl").release()
    except Exception as error:
        return f"EGL/OpenGL cannot start here: {error}"
    return None


GL_REASON = gl_unavailable()
if GL_REASON:
    print(GL_REASON)


def backends():
    yield pytest.param("numpy", id="numpy")
    yield pytest.param("gl", id="gl", marks=pytest.mark.skipif(GL_REASON is not None,
                                                             reason=str(GL_REASON)))


def rigs():
    yield pytest.param("demo", id="demo")
    yield pytest.param("unitalker", id="unitalker", marks=needs_shared(RIG_FILE))


def get_rig(name: str):
    return demo_rig() if name == "demo" else load_rig(RIG_FILE)


def pose(rig, **weights: float) -> np.ndarray:
    face = np.zeros((1, len(rig.channels)), np.float32)
    for channel, value in weights.items():
        face[0, rig.channels.index(channel)] = value
    return face


def render_pose(rig, backend: str, size: int = 256, **weights: float) -> np.ndarray:
    with open_rasterizer(rig.faces, frame_rig(rig, size, size), backend) as rasterizer:
        (vertices,) = rig_frames(rig, pose(rig, **weights), rig.channels)
        return rasterizer.render(vertices)


def mouth_box(rig, size: int) -> tuple[slice, slice]:
    """Rows and columns of the image around the mouth's inner vertices, closed and with
    JawOpen = 1."""
    jaw = rig.blendshape[rig.channels.index("JawOpen"), rig.mouth_idx]
    mouth = np.concatenate([rig.meanshape[rig.mouth_idx], rig.meanshape[rig.mouth_idx] + jaw])
    camera = frame_rig(rig, size, size)
    pixels = camera.project(camera.view(mouth.astype(np.float64)))
    (x0, y0), (x1, y1) = pixels[:, :2].min(0), pixels[:, :2].max(0)
    return slice(int(y0) - 2, int(y1) + 3), slice(int(x0) - 2, int(x1) + 3)


def background_pixels(image: np.ndarray) -> np.ndarray:
    return (image == BACKGROUND_RGB).all(2)


def dark_pixels(image: np.ndarray) -> np.ndarray:
    """The inside of an open mouth: the background through a hole (a rig without one) or the
    built-in head's dark mouth cavity."""
    return image.astype(int).sum(2) < 3 * 47  # the background is (41, 43, 51)


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("rig_name", rigs())
def test_a_rendered_frame_shows_a_shaded_face_on_the_background(rig_name, backend):
    image = render_pose(get_rig(rig_name), backend)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    covered = ~background_pixels(image)
    assert 0.3 < covered.mean() < 0.95
    assert image[covered].std(0).min() > 2  # shaded, not one flat colour


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("rig_name", rigs())
def test_an_open_jaw_shows_a_dark_hole_in_the_mouth_and_a_closed_mouth_none(rig_name,
                                                                            backend):
    rig = get_rig(rig_name)
    rows, cols = mouth_box(rig, 256)
    closed = render_pose(rig, backend)[rows, cols]
    opened = render_pose(rig, backend, JawOpen=1.0)[rows, cols]
    hole_closed, hole_open = dark_pixels(closed).sum(), dark_pixels(opened).sum()
    assert hole_open > 40 and hole_open > 20 * hole_closed
    assert hole_closed <= 0.01 * closed.shape[0] * closed.shape[1]  # the real lips' slit
    assert (closed != opened).any(2).mean() > 0.05
    if rig_name == "demo":  # its lips meet, also when MouthClose shuts an open jaw
        lips_closed = render_pose(rig, backend, JawOpen=1.0, MouthClose=1.0)[rows, cols]
        assert dark_pixels(lips_closed).sum() <= max(hole_closed, 3)


@pytest.mark.skipif(GL_REASON is not None, reason=str(GL_REASON))
@pytest.mark.parametrize("rig_name", rigs())
def test_the_numpy_rasteriser_draws_what_opengl_draws(rig_name):
    rig = get_rig(rig_name)
    weights = {"JawOpen": 0.7, "MouthSmileLeft": 0.5, "EyeBlinkRight": 1.0}
    gl, numpy = (render_pose(rig, backend, size=192, **weights) for backend in ("gl", "numpy"))
    assert (background_pixels(gl) != background_pixels(numpy)).mean() < 1e-3
    assert np.abs(gl.astype(int) - numpy.astype(int)).max(2).mean() < 0.05


def test_auto_falls_back_to_numpy_where_egl_cannot_start_and_gl_says_why():
    script = """
from unitaf_model.outputs.render import frame_mesh, open_rasterizer
import numpy as np
faces, camera = np.array([[0, 1, 2]]), frame_mesh(np.eye(3), 8, 8)
with open_rasterizer(faces, camera, "auto") as rasterizer:
    print(rasterizer.backend)
try:
    open_rasterizer(faces, camera, "gl")
except RuntimeError as error:
    print("gl:", error)
"""
    env = dict(os.environ, __EGL_VENDOR_LIBRARY_FILENAMES="/nonexistent/egl_vendor.json")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "numpy"
    assert lines[1].startswith("gl: OpenGL rendering through EGL is unavailable")
    assert "rendering with the numpy rasteriser" in result.stderr


def tone(seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def read_video(path: Path) -> dict:
    """What PyAV finds in an MP4: streams, decoded frames and audio samples."""
    with open(path, "rb") as file, av.open(file) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        info = {"video_codec": video.codec_context.name, "pix_fmt": video.codec_context.pix_fmt,
                "audio_codec": audio.codec_context.name, "sample_rate": audio.sample_rate,
                "audio_seconds": float(audio.duration * audio.time_base),
                "video_seconds": float(video.duration * video.time_base)}
    with open(path, "rb") as file, av.open(file) as container:
        info["frames"] = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with open(path, "rb") as file, av.open(file) as container:
        info["audio"] = np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])
    return info


@pytest.mark.parametrize("audio_seconds", [1.3, 0.5])
def test_a_video_has_every_frame_in_h264_and_aac_audio_trimmed_or_padded_to_it(tmp_path,
                                                                                audio_seconds):
    rig, fps, sample_rate = demo_rig(), 25.0, 16000
    face = np.zeros((25, 51), np.float32)
    face[:, rig.channels.index("JawOpen")] = np.sin(np.linspace(0, np.pi, 25))
    path = write_face_video(tmp_path / "clip.mp4", rig, face, rig.channels, fps,
                            tone(audio_seconds, sample_rate), sample_rate, size=64,
                            backend="numpy")
    info = read_video(path)
    assert (info["video_codec"], info["pix_fmt"], info["audio_codec"]) == ("h264", "yuv420p",
                                                                           "aac")
    assert len(info["frames"]) == 25  # front and three-quarter views over the curve strip
    assert info["frames"][0].shape == (LABEL_HEIGHT + 64 + STRIP_HEIGHT, 2 * 64, 3)
    assert info["sample_rate"] == sample_rate
    assert abs(info["audio_seconds"] - 1.0) <= 1 / fps
    assert abs(info["video_seconds"] - 1.0) <= 1 / fps
    assert abs(len(info["audio"]) / sample_rate - 1.0) <= 1 / fps
    heard = np.sqrt(np.mean(info["audio"][2048:7000] ** 2))
    assert heard == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    tail = np.sqrt(np.mean(info["audio"][round(0.6 * sample_rate):15000] ** 2))
    assert (tail > 0.3) if audio_seconds > 1 else (tail < 0.01)  # zero-padded past 0.5 s
    assert not list(tmp_path.glob("*.partial"))


def test_a_comparison_video_shows_both_faces_with_the_clip_audio(tmp_path):
    rig, fps, sample_rate = demo_rig(), 25.0, 16000
    truth = np.zeros((10, 51), np.float32)
    truth[:, rig.channels.index("JawOpen")] = 1.0
    path = write_comparison_video(tmp_path / "compare.mp4", rig, truth, np.zeros_like(truth),
                                  rig.channels, fps, tone(0.4, sample_rate), sample_rate,
                                  size=96, backend="numpy")
    info = read_video(path)
    assert len(info["frames"]) == 10
    assert info["frames"][0].shape == (LABEL_HEIGHT + 96 + STRIP_HEIGHT, 4 * 96, 3)
    assert abs(info["audio_seconds"] - 0.4) <= 1 / fps


def test_a_video_write_that_fails_leaves_no_file(tmp_path):
    frames = [np.zeros((16, 16, 3), np.uint8), np.zeros((18, 16, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame of"):
        write_video(tmp_path / "bad.mp4", frames, 25.0)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd.mp4", [np.zeros((15, 16, 3), np.uint8)], 25.0)
    with pytest.raises(ValueError, match="sample_rate"):
        write_video(tmp_path / "x.mp4", frames[:1], 25.0, audio=np.zeros(100))
    assert list(tmp_path.iterdir()) == []


def test_write_exports_renders_the_mp4_with_the_audio_beside_the_files(tmp_path):
    from unitaf_model.outputs.exports import write_exports

    rig, fps, sample_rate = demo_rig(), 25.0, 16000
    face = np.zeros((8, 51), np.float32)
    paths = write_exports(tmp_path, "clip", face, rig.channels, fps, rig=rig,
                          audio=tone(1.0, sample_rate), sample_rate=sample_rate,
                          formats=("csv", "mp4"))
    assert sorted(paths) == ["csv", "mp4"] and paths["mp4"] == tmp_path / "clip.mp4"
    info = read_video(paths["mp4"])
    assert len(info["frames"]) == 8
    assert info["frames"][0].shape == (LABEL_HEIGHT + 256 + STRIP_HEIGHT, 512, 3)
    assert abs(info["audio_seconds"] - 8 / fps) <= 1 / fps
