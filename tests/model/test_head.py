"""The built-in head (`rig=demo`): its mesh, its vertex sets and the ARKit semantics of its
morph targets, checked on the vertices and on rendered pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unitaf_model.model.head import HINGE, JAW_ANGLE, build_head
from unitaf_model.model.rig import demo_rig, mouth_openness
from unitaf_model.outputs.render import frame_rig, open_rasterizer, rig_frames


@pytest.fixture(scope="module")
def rig():
    return demo_rig()


def weights(rig, **values: float) -> torch.Tensor:
    face = torch.zeros(len(rig.channels))
    for name, value in values.items():
        face[rig.channels.index(name)] = value
    return face


def moved(rig, name: str) -> np.ndarray:
    return rig.blendshape[rig.channels.index(name)]


def part(name: str) -> np.ndarray:
    head, _ = build_head()
    return head.parts[name]


def openness(rig, **values: float) -> float:
    return float(mouth_openness(rig.vertices(weights(rig, **values)), rig.mouth_idx))


def test_the_head_is_small_and_every_triangle_is_real(rig):
    count = len(rig.meanshape)
    assert 3000 < count < 5000 and rig.blendshape.shape == (51, count, 3)
    assert rig.faces.min() >= 0 and rig.faces.max() < count
    assert np.isin(np.arange(count), rig.faces).all()  # no stray vertex
    corners = rig.meanshape[rig.faces].astype(np.float64)
    area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0],
                                   corners[:, 2] - corners[:, 0]), axis=1)
    assert area.min() > 0
    assert rig.colors.shape == (count, 3) and 0 <= rig.colors.min() <= rig.colors.max() <= 1
    width, height = np.ptp(rig.meanshape[:, 0]), np.ptp(rig.meanshape[:, 1])
    assert 0.14 < width < 0.17 and 0.30 < height < 0.34  # metres, like the real rig's face


def test_the_lips_meet_at_rest_part_with_the_jaw_and_close_over_it(rig):
    head, skin = build_head()
    lower = head.parts["lower_line"]  # the lip line's copies that the skin below it uses
    row = np.flatnonzero((skin["lower_grid"] != skin["grid"]).any(1))
    assert len(row) == 1 and np.isin(lower, skin["lower_grid"][row[0]]).all()
    upper = skin["grid"][row[0], skin["mouth_columns"]]
    rest = rig.vertices(weights(rig)).numpy()
    np.testing.assert_array_equal(rest[upper], rest[lower])
    opened = rig.vertices(weights(rig, JawOpen=1.0)).numpy()
    gap = opened[upper, 1] - opened[lower, 1]
    assert gap.max() > 0.025 and gap.min() >= 0  # widest in the middle, never crossing
    shut = rig.vertices(weights(rig, JawOpen=0.7, MouthClose=0.7)).numpy()
    np.testing.assert_allclose(shut[upper], shut[lower], atol=1e-6)


def test_openness_grows_with_the_jaw_and_mouth_close_takes_it_back(rig):
    rest = openness(rig)
    assert rest == pytest.approx(0.032, abs=1e-3)  # like the real rig's inner mouth
    values = [openness(rig, JawOpen=j) for j in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert np.all(np.diff(values) > 0) and values[-1] == pytest.approx(0.060, abs=3e-3)
    assert openness(rig, JawOpen=1.0, MouthClose=0.5) < values[-1]
    for jaw in (0.08, 0.4, 1.0):
        assert openness(rig, JawOpen=jaw, MouthClose=jaw) == pytest.approx(rest, abs=1e-6)
    assert openness(rig, MouthFunnel=1.0, JawOpen=0.2) > openness(rig, JawOpen=0.2)
    pressed = openness(rig, MouthPressLeft=1.0, MouthPressRight=1.0)
    assert rest - 0.010 < pressed < rest - 0.006  # squeezed lips: below rest
    from unitaf_data.face import expression_channels

    for name in expression_channels(rig.channels):  # expressions leave the openness alone
        assert openness(rig, **{name: 1.0}) == rest, name
        assert openness(rig, JawOpen=0.5, **{name: 1.0}) == values[2], name


def test_the_jaw_turns_about_its_hinge(rig):
    teeth = part("lower_teeth")
    before = rig.meanshape[teeth].astype(np.float64) - HINGE
    after = before + moved(rig, "JawOpen")[teeth]
    angle = np.arctan2(before[:, 2], before[:, 1]) - np.arctan2(after[:, 2], after[:, 1])
    np.testing.assert_allclose(angle, -JAW_ANGLE, atol=1e-4)
    assert np.abs(moved(rig, "JawOpen")[part("upper_teeth")]).max() == 0
    assert np.abs(moved(rig, "JawOpen")[part("eyeLeft")]).max() == 0


def _centroid(rig, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Where a morph target acts (displacement-weighted mean position) and its mean
    displacement there."""
    field = moved(rig, name).astype(np.float64)
    size = np.linalg.norm(field, axis=1)
    share = size / size.sum()
    return share @ rig.meanshape, share @ field


@pytest.mark.parametrize("side, sign", [("Left", 1.0), ("Right", -1.0)])
def test_left_and_right_channels_act_on_the_subjects_own_side(rig, side, sign):
    for name in (f"EyeBlink{side}", f"MouthSmile{side}", f"BrowOuterUp{side}",
                 f"CheekSquint{side}", f"MouthFrown{side}", f"NoseSneer{side}"):
        where, _ = _centroid(rig, name)
        assert sign * where[0] > 0.005, name
    _, smile = _centroid(rig, f"MouthSmile{side}")
    assert smile[1] > 0 and sign * smile[0] > 0  # up and out
    _, frown = _centroid(rig, f"MouthFrown{side}")
    assert frown[1] < 0
    _, look_in = _centroid(rig, f"EyeLookIn{side}")
    assert -sign * look_in[0] > 0  # toward the nose
    _, jaw_side = _centroid(rig, f"Jaw{side}")
    assert sign * jaw_side[0] > 0


def test_mouth_and_brow_shapes_move_the_way_apple_describes(rig):
    _, pucker = _centroid(rig, "MouthPucker")
    assert pucker[2] > 0.004  # forward
    _, brows = _centroid(rig, "BrowInnerUp")
    assert brows[1] > 0.004
    _, down = _centroid(rig, "BrowDownLeft")
    assert down[1] < 0
    _, puff = _centroid(rig, "CheekPuff")
    assert puff[2] > 0
    _, roll = _centroid(rig, "MouthRollLower")
    assert roll[2] < 0  # the lip turns in
    _, forward = _centroid(rig, "JawForward")
    assert forward[2] > 0
    for name in rig.channels:
        assert np.abs(moved(rig, name)).max() > 1e-3, name  # every channel does something


def _pixel(rig, image: np.ndarray, vertex: int, size: int) -> np.ndarray:
    camera = frame_rig(rig, size, size)
    x, y, _ = camera.project(camera.view(rig.meanshape[[vertex]].astype(np.float64)))[0]
    return image[int(y), int(x)].astype(int)


def render(rig, size: int = 256, **values: float) -> np.ndarray:
    face = weights(rig, **values).numpy()[None]
    with open_rasterizer(rig.faces, frame_rig(rig, size, size), "numpy", rig.colors) as r:
        (vertices,) = rig_frames(rig, face, rig.channels)
        return r.render(vertices)


def test_a_blink_covers_the_pupil_with_the_lid(rig):
    pupil = int(part("pupilLeft")[0])
    open_eye = _pixel(rig, render(rig), pupil, 256)
    shut = _pixel(rig, render(rig, EyeBlinkLeft=1.0), pupil, 256)
    other = _pixel(rig, render(rig, EyeBlinkLeft=1.0), int(part("pupilRight")[0]), 256)
    assert open_eye.sum() < 100 and other.sum() < 100  # the dark pupil
    assert shut.sum() > 300 and shut[0] > shut[2]  # skin
