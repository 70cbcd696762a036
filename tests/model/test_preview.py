"""The sync previews: the curve strip (curves, /p b m/ intervals, captions, cursor), the
panels of each system, and the contact sheet of closures."""

from __future__ import annotations

import numpy as np
import pytest

from unitaf_model.model.rig import demo_rig
from unitaf_model.outputs.preview import (
    BILABIAL_SHADE,
    CAPTION_HEIGHT,
    LABEL_HEIGHT,
    STRIP_HEIGHT,
    STRIP_SECONDS,
    CurveStrip,
    Timeline,
    closure_frames,
    openness_curve,
    preview_frames,
    write_closure_sheet,
)
from unitaf_model.outputs.render import BACKGROUND, _to_uint8

FPS = 25.0


@pytest.fixture(scope="module")
def rig():
    return demo_rig()


def jaw_track(rig, values) -> np.ndarray:
    face = np.zeros((len(values), len(rig.channels)), np.float32)
    face[:, rig.channels.index("JawOpen")] = values
    return face


def test_openness_is_zero_at_rest_and_one_with_the_jaw_open(rig):
    curve = openness_curve(rig, jaw_track(rig, [0.0, 0.5, 1.0]), rig.channels)
    np.testing.assert_allclose(curve[[0, 2]], [0.0, 1.0], atol=1e-6)
    assert 0.3 < curve[1] < 0.7


def test_the_strip_shades_intervals_draws_curves_and_captions_the_word_being_spoken():
    width, frames = 400, 100  # 4 s at 25 fps
    curve = np.linspace(0, 1, frames)
    timeline = Timeline([(2.0, 2.2)], [("hello", 1.9, 2.3), ("there", 2.4, 2.8)])
    strip = CurveStrip(width, FPS, {"JawOpen": curve}, timeline)
    image = strip.frame(50)  # t = 2 s: the cursor in the middle
    assert image.shape == (STRIP_HEIGHT, width, 3)
    per_second = width / STRIP_SECONDS
    shaded = (image[CAPTION_HEIGHT + 2] == _to_uint8(np.array(BILABIAL_SHADE))).all(1)
    columns = np.flatnonzero(shaded)
    assert columns.min() == pytest.approx(width / 2, abs=2)  # the interval starts now
    assert columns.max() == pytest.approx(width / 2 + 0.2 * per_second, abs=3)
    assert (image[CAPTION_HEIGHT:, width // 2] >= 200).all(1).mean() > 0.5  # the cursor
    caption = image[:CAPTION_HEIGHT]
    background = _to_uint8(BACKGROUND)
    written = np.flatnonzero((caption != background).any(2).any(0))
    assert written.min() == pytest.approx(width / 2 - 0.1 * per_second, abs=3)
    brightest = caption.max(2)
    assert brightest[:, : int(width / 2 + 0.3 * per_second)].max() > 240  # "hello": lit
    assert brightest[:, int(width / 2 + 0.45 * per_second):].max() < 200  # "there": not yet
    rows = np.flatnonzero((image[CAPTION_HEIGHT:, 20] != background).any(1))
    assert len(rows)  # the rising curve drawn before the cursor


def test_each_system_gets_a_labelled_panel_of_two_views_over_its_strip(rig):
    truth, prediction = jaw_track(rig, [0.0, 1.0]), jaw_track(rig, [0.0, 0.0])
    frames = list(preview_frames(rig, {"truth": truth, "model": prediction}, rig.channels,
                                 FPS, size=64, backend="numpy"))
    assert len(frames) == 2
    assert frames[0].shape == (LABEL_HEIGHT + 64 + STRIP_HEIGHT, 4 * 64, 3)
    faces = slice(LABEL_HEIGHT, LABEL_HEIGHT + 64)
    # the second frame: the truth's jaw is open, the model's shut, in both views
    assert (frames[1][faces, :128] != frames[0][faces, :128]).any()
    np.testing.assert_array_equal(frames[1][faces, 128:], frames[0][faces, 128:])
    with pytest.raises(ValueError, match="differ in length"):
        list(preview_frames(rig, {"a": truth, "b": truth[:1]}, rig.channels, FPS))


def test_the_closure_sheet_shows_each_bilabial_at_its_most_closed_frame(rig, tmp_path):
    opening = np.full(50, 0.6)
    opening[10:15] = [0.4, 0.2, 0.05, 0.3, 0.5]  # most closed at frame 12
    opening[30:35] = [0.5, 0.4, 0.35, 0.1, 0.6]  # and at frame 33
    truth = jaw_track(rig, opening)
    bilabials = [(10 / FPS, 15 / FPS), (30 / FPS, 35 / FPS), (3.0, 3.2)]  # the last: past
    picked = closure_frames(openness_curve(rig, truth, rig.channels), bilabials, FPS)
    assert [frame for frame, _ in picked] == [12, 33]
    path = write_closure_sheet(tmp_path / "sheet.png", rig, {"truth": truth, "model": truth},
                               rig.channels, FPS, Timeline(bilabials, [("mama", 0.3, 1.5)]),
                               size=64, backend="numpy")
    from matplotlib.image import imread

    sheet = imread(path)
    assert sheet.shape[:2] == (LABEL_HEIGHT + 2 * 64, 3 * 64)
    assert write_closure_sheet(tmp_path / "none.png", rig, {"truth": truth}, rig.channels, FPS,
                               Timeline()) is None
    assert not (tmp_path / "none.png").exists()
