"""Face metrics on hand-made sequences with known answers, the rigs' vertex sets and the
named channel groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reference import SHARED_REFERENCE, needs_shared
from unitaf_data.face import (
    ARKIT51_UNITALKER,
    FLAME103_CHANNELS,
    articulation_channels,
    expression_channels,
    mouth_channels,
)
from unitaf_model.evaluation import metrics
from unitaf_model.model.rig import demo_rig, load_rig
from unitaf_model.training.losses import OpennessInterval, openness_weight, side_contributions

RIG_FILE = SHARED_REFERENCE / "unitalker_arkit_rig.npz"
CHANNELS = ARKIT51_UNITALKER
FPS = 25.0
SAMPLE_RATE = 16000


def _curves(rng: np.random.Generator, *lengths: int) -> list[np.ndarray]:
    return [rng.uniform(0, 1, (n, len(CHANNELS))).astype(np.float32) for n in lengths]


def _vertices(rig, curves: list[np.ndarray]) -> list[np.ndarray]:
    return [rig.vertices(torch.from_numpy(c)).numpy() for c in curves]


def _rigs():
    yield demo_rig()
    if RIG_FILE.exists():
        yield load_rig(RIG_FILE)


def test_a_prediction_equal_to_ground_truth_scores_zero_on_every_error_metric():
    rig = demo_rig()
    curves = _curves(np.random.default_rng(0), 40, 65)
    vertices = _vertices(rig, curves)
    errors = [*metrics.lip_vertex_error(vertices, vertices, rig.lip_idx, rig.lip_set),
              metrics.mouth_l2(curves, curves, CHANNELS), metrics.mve(curves, curves, CHANNELS),
              metrics.expression_l2(curves, curves, CHANNELS),
              *metrics.fdd(vertices, vertices, rig.meanshape, rig.upper_idx, rig.upper_set)]
    assert {e.name: e.value for e in errors} == {
        "lve": 0, "lvd": 0, "mouth_l2": 0, "mve": 0, "expression_l2": 0, "fdd": 0, "fdd_abs": 0}
    own = metrics.jitter(curves, FPS)
    assert own.value > 0 and metrics.jitter_ratio(own, metrics.jitter(curves, FPS)).value == 1
    assert metrics.jaw_open_correlation(curves, curves, CHANNELS).value == pytest.approx(1)


def test_every_result_names_its_variant_units_and_pooling():
    rig = demo_rig()
    curves = _curves(np.random.default_rng(1), 30)
    lve, lvd = metrics.lip_vertex_error(_vertices(rig, curves), _vertices(rig, curves[::-1]),
                                        rig.lip_idx, rig.lip_set)
    assert "CodeTalker" in lve.variant and rig.lip_set in lve.variant
    assert (lve.units, lvd.units, lve.pooling, lve.count) == (
        "rig units²", "rig units", metrics.FRAMES_POOLED, 30)
    offset = metrics.median_av_offset([metrics.AvOffset(1, 40.0, 0.5)])
    assert "diagnostic" in offset.variant and offset.units == "ms"


def _lip_offset_clip(frames: int, vertex: int, shift: float, rig) -> np.ndarray:
    vertices = np.repeat(rig.meanshape[None].astype(np.float64), frames, 0)
    moved = vertices.copy()
    moved[:, vertex, 0] += shift
    return vertices, moved


def test_lve_pools_frames_and_mouth_l2_pools_clips():
    rig = demo_rig()
    lip = int(rig.lip_idx[0])
    true_a, pred_a = _lip_offset_clip(2, lip, 0.1, rig)
    true_b, pred_b = _lip_offset_clip(8, lip, 0.3, rig)
    lve, lvd = metrics.lip_vertex_error([pred_a, pred_b], [true_a, true_b], rig.lip_idx)
    assert lve.value == pytest.approx((2 * 0.1**2 + 8 * 0.3**2) / 10)
    assert lvd.value == pytest.approx((2 * 0.1 + 8 * 0.3) / 10)
    jaw = CHANNELS.index("JawOpen")
    true = [np.zeros((2, 51)), np.zeros((8, 51))]
    pred = [t.copy() for t in true]
    pred[0][:, jaw], pred[1][:, jaw] = 0.1, 0.3
    assert metrics.mouth_l2(pred, true, CHANNELS).value == pytest.approx((0.1 + 0.3) / 2)
    assert metrics.mouth_l2(pred, true, CHANNELS).count == 2


def test_lve_equals_a_per_vertex_loop():
    rig = demo_rig()
    rng = np.random.default_rng(2)
    pred, true = _vertices(rig, _curves(rng, 7, 13)), _vertices(rig, _curves(rng, 7, 13))
    worst = []
    for p, t in zip(pred, true, strict=True):
        for frame in range(len(p)):
            worst.append(max(sum((float(p[frame, v, k]) - float(t[frame, v, k])) ** 2
                                 for k in range(3)) for v in rig.lip_idx))
    lve, lvd = metrics.lip_vertex_error(pred, true, rig.lip_idx)
    assert lve.value == pytest.approx(sum(worst) / len(worst), rel=1e-9)
    assert lvd.value == pytest.approx(sum(math.sqrt(w) for w in worst) / len(worst), rel=1e-9)


def test_lve_equals_torchmetrics_over_the_pooled_frames():
    multimodal = pytest.importorskip("torchmetrics.functional.multimodal")
    rig = demo_rig()
    rng = np.random.default_rng(3)
    pred, true = _vertices(rig, _curves(rng, 9, 21)), _vertices(rig, _curves(rng, 9, 21))
    expected = multimodal.lip_vertex_error(torch.from_numpy(np.concatenate(pred)).double(),
                                           torch.from_numpy(np.concatenate(true)).double(),
                                           rig.lip_idx.tolist())
    lve, _ = metrics.lip_vertex_error(pred, true, rig.lip_idx)
    assert lve.value == pytest.approx(float(expected), rel=1e-9)


def _sine_on_one_vertex(rig, frames: int, amplitude: float, vertex: int) -> np.ndarray:
    vertices = np.repeat(rig.meanshape[None].astype(np.float64), frames, 0)
    vertices[:, vertex, 0] += amplitude * np.sin(2 * np.pi * 3 * np.arange(frames) / frames)
    return vertices


def test_fdd_is_positive_when_ground_truth_moves_more_than_the_prediction():
    rig = demo_rig()
    vertex, upper = int(rig.upper_idx[5]), len(rig.upper_idx)
    moving = _sine_on_one_vertex(rig, 60, 0.2, vertex)
    still = np.repeat(rig.meanshape[None], 60, 0)
    # (A sin θ)² over whole periods has population std A² / (2√2)
    expected = 0.2**2 / (2 * math.sqrt(2)) / upper
    fdd, fdd_abs = metrics.fdd([still], [moving], rig.meanshape, rig.upper_idx)
    assert fdd.value == pytest.approx(expected) and fdd_abs.value == pytest.approx(expected)
    reverse, reverse_abs = metrics.fdd([moving], [still], rig.meanshape, rig.upper_idx)
    assert reverse.value == pytest.approx(-expected)
    assert reverse_abs.value == pytest.approx(expected)
    mixed, mixed_abs = metrics.fdd([still, moving], [moving, still], rig.meanshape,
                                   rig.upper_idx)
    assert mixed.value == pytest.approx(0) and mixed_abs.value == pytest.approx(expected)


def test_fdd_measures_offsets_from_the_template():
    rig = demo_rig()
    vertex = int(rig.upper_idx[0])
    moving = _sine_on_one_vertex(rig, 60, 0.2, vertex)
    still = np.repeat(rig.meanshape[None], 60, 0)
    fdd, _ = metrics.fdd([still], [moving], rig.meanshape, rig.upper_idx)
    shift = np.array([0.5, -1.0, 2.0])
    shifted, _ = metrics.fdd([still + shift], [moving + shift], rig.meanshape + shift,
                             rig.upper_idx)
    assert shifted.value == pytest.approx(fdd.value)
    # measured from a template 0.1 off in x, the sine's squared offset swings more
    off = rig.meanshape.copy()
    off[vertex, 0] -= 0.1
    far, _ = metrics.fdd([still], [moving], off, rig.upper_idx)
    assert far.value > fdd.value


def test_moving_only_lower_face_vertices_leaves_fdd_zero():
    rig = demo_rig()
    lower = int(np.setdiff1d(np.arange(len(rig.meanshape)), rig.upper_idx)[0])
    moving = _sine_on_one_vertex(rig, 60, 0.2, lower)
    still = np.repeat(rig.meanshape[None], 60, 0)
    fdd, _ = metrics.fdd([still], [moving], rig.meanshape, rig.upper_idx)
    assert fdd.value == 0


def test_jitter_of_a_parabola_is_twice_its_curvature_and_noise_raises_it():
    times = np.arange(50) / FPS
    parabola = np.stack([3.0 * times**2, -4.0 * times**2], 1)
    assert metrics.jitter([parabola], FPS).value == pytest.approx(math.hypot(6.0, 8.0))
    assert metrics.jitter([np.stack([times, 2 * times], 1)], FPS).value == pytest.approx(0)
    smooth = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * 2 * times)] * 3, 1)
    noisy = smooth + np.random.default_rng(4).normal(0, 0.02, smooth.shape)
    assert metrics.jitter([smooth], FPS).value < metrics.jitter([noisy], FPS).value
    ratio = metrics.jitter_ratio(metrics.jitter([smooth], FPS), metrics.jitter([noisy], FPS))
    assert ratio.value < 1


def test_jitter_never_differences_across_the_end_of_a_clip():
    first, second = np.zeros((10, 2)), np.ones((10, 2))  # a jump between the two clips
    result = metrics.jitter([first, second], FPS)
    assert result.value == 0 and result.count == 16


def test_mouth_l2_picks_channels_by_name_whatever_their_order():
    rng = np.random.default_rng(5)
    pred, true = _curves(rng, 20, 35), _curves(rng, 20, 35)
    order = rng.permutation(len(CHANNELS))
    names = [CHANNELS[i] for i in order]
    for metric in (metrics.mouth_l2, metrics.mve, metrics.expression_l2):
        permuted = metric([p[:, order] for p in pred], [t[:, order] for t in true], names)
        assert permuted.value == pytest.approx(metric(pred, true, CHANNELS).value, rel=1e-12)
    mouth = [i for i, name in enumerate(CHANNELS) if name.startswith(("Jaw", "Mouth"))]
    by_hand = np.mean([np.sqrt(((p[:, mouth] - t[:, mouth]).astype(np.float64) ** 2).sum(1))
                       .mean() for p, t in zip(pred, true, strict=True)])
    assert metrics.mouth_l2(pred, true, CHANNELS).value == pytest.approx(by_hand)


def test_an_eye_error_is_expression_error_not_mouth_error():
    true = [np.zeros((12, 51))]
    pred = [true[0].copy()]
    pred[0][:, CHANNELS.index("EyeBlinkLeft")] = 0.5
    assert metrics.mouth_l2(pred, true, CHANNELS).value == 0
    assert metrics.expression_l2(pred, true, CHANNELS).value == pytest.approx(0.5)
    assert metrics.mve(pred, true, CHANNELS).value == pytest.approx(0.5)


def test_channel_groups_are_chosen_by_name_for_any_face_type():
    articulation, expression = articulation_channels(CHANNELS), expression_channels(CHANNELS)
    assert set(articulation) | set(expression) == set(CHANNELS)
    assert not set(articulation) & set(expression)
    assert {"JawOpen", "MouthClose", "MouthRollLower", "MouthLeft"} <= set(articulation)
    assert {"MouthSmileLeft", "MouthFrownRight", "MouthDimpleLeft", "CheekPuff", "EyeBlinkLeft",
            "NoseSneerLeft", "BrowInnerUp"} <= set(expression)
    assert (len(articulation), len(expression)) == (21, 30)
    # Token-to-Face's mouth mask: range(22, 49) in alphabetical ARKit-51 order
    alphabetical = sorted(CHANNELS, key=str.lower)
    assert set(mouth_channels(CHANNELS)) == set(alphabetical[22:49])
    assert articulation_channels(["jawOpen", "mouthSmileLeft", "tongueOut"]) == (
        "jawOpen", "tongueOut")
    assert articulation_channels(FLAME103_CHANNELS) == ("jaw_x", "jaw_y", "jaw_z")
    assert len(expression_channels(FLAME103_CHANNELS)) == 100


def test_phones_hold_the_frames_whose_centres_they_cover_and_short_ones_one_frame():
    assert metrics.phone_frames(0.2, 0.4, FPS, 100).tolist() == [5, 6, 7, 8, 9]
    assert metrics.phone_frames(0.205, 0.215, FPS, 100).tolist() == [5]
    assert metrics.phone_frames(0.23, 0.235, FPS, 100).tolist() == [5]  # frame 5 ends at 0.24
    assert metrics.phone_frames(3.9, 4.5, FPS, 100).tolist() == [97, 98, 99]
    assert metrics.phone_frames(5.0, 5.2, FPS, 100).tolist() == []
    assert metrics.phone_frames(-0.3, 0.05, FPS, 100).tolist() == [0]


def test_bilabials_are_p_b_m_in_espeak_and_arpabet_labels():
    labels = ["p", "'b", ",m", "M", "B1", "P0", "pf", "mb", "AH0", "_", "f", "n", "'m-"]
    assert [lab for lab in labels if metrics.is_bilabial(lab)] == ["p", "'b", ",m", "M", "B1",
                                                                   "P0", "'m-"]
    phones = [("h", 0.0, 0.1), ("'m", 0.1, 0.2), ("AA1", 0.2, 0.3), ("P", 0.3, 0.35)]
    assert metrics.bilabial_intervals(phones) == [(0.1, 0.2), (0.3, 0.35)]


def _bilabial_clips():
    """Two clips of 50 frames, four 5-frame bilabials; ground truth closes to 20 distinct
    values inside them and is wide open elsewhere."""
    intervals = [[(0.2, 0.4), (1.0, 1.2)], [(0.4, 0.6), (1.4, 1.6)]]
    inside = np.random.default_rng(6).permutation(np.linspace(0.01, 0.03, 20))
    true = [np.full(50, 0.05), np.full(50, 0.05)]
    spans = [(0, slice(5, 10)), (0, slice(25, 30)), (1, slice(10, 15)), (1, slice(35, 40))]
    for k, (clip, span) in enumerate(spans):
        true[clip][span] = inside[5 * k : 5 * k + 5]
    return true, intervals


def test_a_constant_open_mouth_scores_bcs_zero_and_ground_truth_seventy_percent():
    true, intervals = _bilabial_clips()
    closure = "test closure"
    frames, per_interval, threshold = metrics.bilabial_closure(true, true, intervals, FPS,
                                                               closure=closure)
    assert frames.value == pytest.approx(0.7) and frames.count == 20
    assert threshold.value == pytest.approx(np.sort(np.linspace(0.01, 0.03, 20))[13])
    assert per_interval.value == 1.0 and per_interval.count == 4
    open_mouth = [np.full(50, 0.05), np.full(50, 0.05)]
    frames, per_interval, _ = metrics.bilabial_closure(true, open_mouth, intervals, FPS,
                                                       closure=closure)
    assert frames.value == 0 and per_interval.value == 0
    shut = [np.zeros(50), np.zeros(50)]
    frames, per_interval, _ = metrics.bilabial_closure(true, shut, intervals, FPS,
                                                       closure=closure)
    assert frames.value == 1 and per_interval.value == 1


def test_lip_closure_is_the_rig_openness_or_jaw_open_without_a_rig():
    rig = demo_rig()
    face = _curves(np.random.default_rng(7), 15)[0]
    np.testing.assert_array_equal(metrics.lip_closure(face, CHANNELS, rig),
                                  rig.mouth_openness(face))
    np.testing.assert_array_equal(metrics.lip_closure(face, CHANNELS, None),
                                  face[:, CHANNELS.index("JawOpen")])


def _speech_and_mouth(shift: int, frames: int = 250, margin: int = 20):
    """Audio whose loudness follows a random syllable envelope, and a mouth that follows the
    same envelope `shift` frames later."""
    rng = np.random.default_rng(8)
    syllables = rng.uniform(0.05, 1.0, (frames + 2 * margin) // 4 + 1)
    envelope = np.convolve(np.repeat(syllables, 4), np.ones(3) / 3, "same")
    loudness = envelope[margin : margin + frames]
    per_frame = SAMPLE_RATE // int(FPS)
    audio = rng.normal(0, 1, frames * per_frame) * np.repeat(loudness, per_frame)
    mouth = envelope[margin - shift : margin - shift + frames]
    return audio, mouth


@pytest.mark.parametrize("shift", [3, -3, 0])
def test_a_face_shifted_by_k_frames_gives_av_offset_k(shift):
    audio, mouth = _speech_and_mouth(shift)
    offset = metrics.av_offset(audio, SAMPLE_RATE, mouth, FPS)
    assert offset.lag_frames == shift and offset.lag_ms == pytest.approx(shift * 40.0)
    assert offset.correlation > 0.9


def test_av_offsets_pool_as_a_median_and_a_share_near_ground_truth():
    def lag(frames):
        return metrics.AvOffset(frames, None if frames is None else frames * 40.0, 0.5)

    pred = [lag(2), lag(3), lag(10), lag(None)]
    true = [lag(1), lag(0), lag(None), lag(0)]
    median = metrics.median_av_offset(pred)
    assert median.value == pytest.approx(120.0) and median.count == 3
    agreement = metrics.av_offset_agreement(pred, true)
    assert agreement.value == pytest.approx(1 / 3) and agreement.count == 3


def test_a_still_mouth_has_no_av_offset():
    audio, _ = _speech_and_mouth(0)
    offset = metrics.av_offset(audio, SAMPLE_RATE, np.full(250, 0.03), FPS)
    assert offset.lag_frames is None and math.isnan(offset.correlation)


def test_the_rms_envelope_sits_on_the_face_frame_grid():
    audio = np.concatenate([np.full(640, 0.5), np.full(640, -2.0), np.full(300, 1.0)])
    envelope = metrics.rms_envelope(audio, SAMPLE_RATE, FPS, 3)
    np.testing.assert_allclose(envelope, [0.5, 2.0, math.sqrt(300 / 640)])


def test_openness_distribution_counts_frames_outside_the_interval():
    openness = [np.array([0.01, 0.03, 0.05]), np.array([0.02, 0.06, 0.07, 0.04])]
    closed, wide = metrics.openness_distribution(openness, 0.025, 0.055)
    assert (closed.value, wide.value, closed.count) == (pytest.approx(2 / 7),
                                                        pytest.approx(2 / 7), 7)


def test_jaw_open_correlation_is_pearson_over_pooled_frames():
    rng = np.random.default_rng(9)
    true = _curves(rng, 10, 30)
    jaw = CHANNELS.index("JawOpen")
    scaled = [t.copy() for t in true]
    flipped = [t.copy() for t in true]
    for s, f in zip(scaled, flipped, strict=True):
        s[:, jaw] = 2 * s[:, jaw] + 1
        f[:, jaw] = -f[:, jaw]
    assert metrics.jaw_open_correlation(scaled, true, CHANNELS).value == pytest.approx(1)
    assert metrics.jaw_open_correlation(flipped, true, CHANNELS).value == pytest.approx(-1)
    still = [np.zeros_like(t) for t in true]
    assert math.isnan(metrics.jaw_open_correlation(still, true, CHANNELS).value)


def test_clips_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="clip 1"):
        metrics.mve([np.zeros((5, 51)), np.zeros((6, 51))],
                    [np.zeros((5, 51)), np.zeros((7, 51))], CHANNELS)


def test_the_openness_weight_is_one_formula_for_tensors_and_arrays():
    n = np.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(openness_weight(n), [0.75, 0.1875, 0.0, 0.75])
    np.testing.assert_allclose(openness_weight(torch.from_numpy(n)).numpy(), openness_weight(n))
    closed, opened = side_contributions(np.array([0.0, 0.25, 1.0]), OpennessInterval(0, 1))
    assert (closed, opened) == (pytest.approx(0.9375), pytest.approx(0.75))


@pytest.mark.parametrize("rig", list(_rigs()), ids=lambda rig: rig.upper_set.split(":")[0])
def test_upper_and_lip_sets_avoid_the_mouth_and_articulation_barely_moves_the_upper_face(rig):
    assert not np.intersect1d(rig.upper_idx, rig.lip_idx).size
    assert not np.intersect1d(rig.upper_idx, rig.mouth_idx).size
    displacement = np.linalg.norm(rig.blendshape, axis=2)[:, rig.upper_idx]  # (C, upper)
    articulation = [CHANNELS.index(c) for c in articulation_channels(CHANNELS)]
    expression = [CHANNELS.index(c) for c in expression_channels(CHANNELS)]
    largest_by_articulation = displacement[articulation].max(0).mean()
    assert largest_by_articulation < 0.2 * displacement[expression].max(0).mean()


@needs_shared(RIG_FILE)
def test_the_unitalker_upper_face_is_every_vertex_outside_its_lower_face():
    rig = load_rig(RIG_FILE)
    with np.load(RIG_FILE) as data:
        lower = data["lower_face_idx"]
    assert len(rig.upper_idx) == 526 and not np.intersect1d(rig.upper_idx, lower).size
    assert len(np.union1d(rig.upper_idx, lower)) == len(rig.meanshape)
    assert np.isin(rig.lip_idx, lower).all() and np.isin(rig.mouth_idx, lower).all()


def test_the_demo_upper_face_is_the_face_above_the_nose_and_the_lids():
    # the built-in head (v2 sets): the front skin above the nose's base, and the eyelids
    rig = demo_rig()
    assert 900 < len(rig.upper_idx) < 1100
    assert rig.meanshape[rig.upper_idx, 1].min() > rig.meanshape[rig.lip_idx, 1].max()
    blink = rig.blendshape[CHANNELS.index("EyeBlinkLeft")]
    assert np.isin(np.flatnonzero(np.abs(blink).max(1) > 1e-3), rig.upper_idx).all()


def test_a_rig_file_without_its_vertex_sets_or_with_bad_indices_is_refused(tmp_path):
    rig = demo_rig()
    arrays = {"meanshape": rig.meanshape, "blendshape": rig.blendshape, "faces": rig.faces,
              "inner_mouth_idx": rig.mouth_idx, "outer_mouth_idx": rig.lip_idx}
    np.savez(tmp_path / "no_lower.npz", **arrays)
    with pytest.raises(ValueError, match="lower_face_idx"):
        load_rig(tmp_path / "no_lower.npz")
    np.savez(tmp_path / "bad.npz", **arrays, lower_face_idx=np.array([0, 10**6]))
    with pytest.raises(ValueError, match="lower_face_idx must be vertex indices"):
        load_rig(tmp_path / "bad.npz")
    lower = np.setdiff1d(np.arange(len(rig.meanshape)), rig.upper_idx)
    np.savez(tmp_path / "good.npz", **arrays, lower_face_idx=lower)
    np.testing.assert_array_equal(load_rig(tmp_path / "good.npz").upper_idx, rig.upper_idx)
