"""Projector, UniTalker decoder (real checkpoint layout), the face-rate grid, the expression
residual, rigs and the mouth-aware loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reference import CHECKPOINT_KEYS, SHARED_REFERENCE, needs_shared, reference_checkpoint_shapes
from unitaf_data.face import ARKIT51, expression_channels
from unitaf_data.schema import Phone, RecordError
from unitaf_model.model.decoder import PRETRAINED_IDENTITIES, UniTalkerFaceDecoder
from unitaf_model.model.expression import ExpressionArgs, ExpressionResidual, moving_average
from unitaf_model.model.projector import Projector, parameter_count
from unitaf_model.model.rig import demo_rig, load_rig, mouth_openness
from unitaf_model.model.unitaf import UniTAF
from unitaf_model.training.data import bilabial_spans, collate
from unitaf_model.training.losses import (
    OpennessInterval,
    closure_loss,
    fit_openness_interval,
    masked_mse,
    openness_weight,
    rig_terms,
    side_contributions,
    velocity_loss,
    vertex_loss,
)

RIG_FILE = SHARED_REFERENCE / "unitalker_arkit_rig.npz"


def test_projector_halves_the_frame_rate_with_about_a_million_parameters():
    projector = Projector(1024, 768)
    assert 0.8e6 < parameter_count(projector) < 1.3e6
    assert projector(torch.randn(2, 101, 1024)).shape == (2, 51, 768)
    assert projector(torch.randn(1, 100, 1024)).shape == (1, 50, 768)


@needs_shared(CHECKPOINT_KEYS)
@pytest.mark.parametrize("name, width", [("UniTalker-B-D0-D7.pt", 768),
                                         ("UniTalker-L-D0-D7.pt", 1024)])
def test_a_checkpoint_with_the_reference_layout_loads_with_no_missing_decoder_keys(name,
                                                                                   width):
    shapes = reference_checkpoint_shapes(name)
    checkpoint = {k: torch.randn(s) for k, s in shapes.items()
                  if k.startswith(("decoder.", "out_head_dict."))}
    decoder = UniTalkerFaceDecoder(width, heads={"arkit51": 51})
    report = decoder.load_unitalker(checkpoint)
    assert report.missing_keys == ["out_head_dict.arkit51.weight", "out_head_dict.arkit51.bias"]
    assert report.unexpected_keys == [] and report.skipped_shapes == []
    torch.testing.assert_close(decoder.decoder.learnable_style_emb.weight,
                               checkpoint["decoder.learnable_style_emb.weight"])
    out = decoder(torch.randn(2, 30, width), torch.tensor([0, 5]), "inhouse_blendshape_weight")
    assert out.shape == (2, 30, 51)


def test_new_identities_are_appended_after_the_pretrained_ones():
    decoder = UniTalkerFaceDecoder(384, heads={"arkit51": 51})
    before = decoder.decoder.learnable_style_emb.weight.detach().clone()
    new = decoder.add_identities(3)
    assert list(new) == [PRETRAINED_IDENTITIES, PRETRAINED_IDENTITIES + 1,
                         PRETRAINED_IDENTITIES + 2]
    torch.testing.assert_close(decoder.decoder.learnable_style_emb.weight[:PRETRAINED_IDENTITIES],
                               before)
    assert decoder(torch.randn(1, 10, 384), torch.tensor([new[0]]), "arkit51").shape == (1, 10, 51)


def test_demo_rig_mouth_opens_like_the_real_rig():
    rig = demo_rig()
    weights = torch.zeros(2, 51)
    weights[1, ARKIT51.index("JawOpen")] = 1.0
    rest, jaw = mouth_openness(rig.vertices(weights), rig.mouth_idx).tolist()
    frames = np.random.default_rng(0).uniform(0, 1, (10, 51)).astype(np.float32)
    np.testing.assert_allclose(rig.mouth_openness(frames, chunk=3), mouth_openness(
        rig.vertices(torch.from_numpy(frames)), rig.mouth_idx).numpy(), rtol=1e-6)
    assert rest == pytest.approx(0.032, abs=1e-3) and jaw == pytest.approx(0.060, abs=2e-3)


@needs_shared(RIG_FILE)
def test_the_real_rigs_mouth_opens_as_measured():
    weights = torch.zeros(2, 51)
    weights[1, ARKIT51.index("JawOpen")] = 1.0
    real = load_rig(RIG_FILE)
    real_rest, real_jaw = mouth_openness(real.vertices(weights), real.mouth_idx).tolist()
    assert real_rest == pytest.approx(0.03199, abs=1e-4)
    assert real_jaw == pytest.approx(0.06025, abs=1e-4)


def test_interval_fit_covers_95_percent_and_balances_the_two_sides():
    rng = np.random.default_rng(0)  # skewed: many nearly closed frames, a long open tail
    openness = np.concatenate([rng.normal(0.033, 0.001, 6000),
                               0.033 + rng.gamma(2.0, 0.004, 4000)])
    interval = fit_openness_interval(openness)
    inside = np.mean((openness >= interval.low) & (openness <= interval.high))
    assert inside == pytest.approx(0.95, abs=0.01)
    closed, opened = side_contributions(openness, interval)
    assert abs(closed - opened) / (closed + opened) < 0.05
    naive = OpennessInterval(*np.quantile(openness, [0.025, 0.975]))
    naive_closed, naive_open = side_contributions(openness, naive)
    assert abs(closed - opened) < abs(naive_closed - naive_open)


def _jaw_faces(openings: list[float]) -> torch.Tensor:
    weights = torch.zeros(1, len(openings), 51)
    weights[0, :, ARKIT51.index("JawOpen")] = torch.tensor(openings)
    return weights


def test_the_vertex_loss_on_rig_weights_equals_the_loss_on_the_built_vertices():
    rig, scale = demo_rig(), 100.0
    generator = torch.Generator().manual_seed(0)
    predicted, target = (torch.rand(2, 6, 51, generator=generator) for _ in range(2))
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    interval = OpennessInterval(0.03, 0.05)
    built, true = rig.vertices(predicted) * scale, rig.vertices(target) * scale
    plain = masked_mse(built, true, mask)
    weight = openness_weight(interval.normalise(mouth_openness(true / scale, rig.mouth_idx)))
    mouth = (built - true)[..., rig.mouth_idx, :].square().mean((-1, -2))
    aware = plain + (weight * mouth * mask).sum() / mask.sum()
    terms = rig_terms(rig)
    torch.testing.assert_close(vertex_loss(predicted, target, mask, terms, None, scale=scale),
                               plain)
    torch.testing.assert_close(vertex_loss(predicted, target, mask, terms, interval,
                                           scale=scale), aware)


def test_padding_does_not_count_in_the_losses():
    rig = demo_rig()
    target = _jaw_faces([0.0, 1.0, 0.3, 0.0])
    predicted = target.clone()
    predicted[0, 3] += 5.0  # a padded frame
    mask = torch.tensor([[True, True, True, False]])
    assert masked_mse(predicted, target, mask) == 0
    assert vertex_loss(predicted, target, mask, rig_terms(rig), OpennessInterval(0.03, 0.05)) == 0


def test_the_velocity_loss_counts_changes_between_valid_frames_not_offsets():
    target = torch.linspace(0, 1, 12).reshape(1, 6, 2)
    mask = torch.tensor([[True, True, True, True, False, False]])
    assert float(velocity_loss(target + 0.25, target, mask)) == pytest.approx(0, abs=1e-12)
    jitter = torch.zeros_like(target)
    jitter[0, 1] = 0.1  # one frame off: two changes of ±0.1 on both channels
    assert float(velocity_loss(target + jitter, target, mask)) == pytest.approx(
        2 * 2 * 0.01 / (3 * 2))
    jitter[0, 5] = 9.0  # padding only
    jitter[0, 1] = 0
    assert float(velocity_loss(target + jitter, target, mask)) == pytest.approx(0, abs=1e-12)


def test_the_mouth_aware_loss_weights_closed_and_open_frames_above_half_open_ones():
    rig = demo_rig()
    target = _jaw_faces([0.0, 0.5, 1.0])  # closed, half-open and open mouths
    openness = mouth_openness(rig.vertices(target), rig.mouth_idx)[0]
    interval = OpennessInterval(float(openness[0]), float(openness[2]))
    normalised = interval.normalise(openness)
    torch.testing.assert_close(normalised, torch.tensor([0.0, 0.5, 1.0]), atol=0.02, rtol=0)
    terms = rig_terms(rig)
    error = torch.zeros(1, 3, 51)
    error[..., ARKIT51.index("MouthClose")] = 0.2  # the same mistake on every frame

    def frame_loss(frame: int, aware: bool) -> float:
        mask = torch.arange(3)[None] == frame
        return float(vertex_loss(target + error, target, mask, terms,
                                 interval if aware else None))

    plain = [frame_loss(i, False) for i in range(3)]
    aware = [frame_loss(i, True) for i in range(3)]
    assert plain[0] == pytest.approx(plain[1]) == pytest.approx(plain[2])
    mouth = [a - p for a, p in zip(aware, plain, strict=True)]
    expected = openness_weight(normalised).numpy()  # 3 |n - 0.5|^2: 0.75, ~0, 0.75
    assert mouth[0] > 100 * mouth[1] and mouth[2] > 100 * mouth[1]
    assert mouth[0] / mouth[2] == pytest.approx(expected[0] / expected[2], rel=1e-4)
    assert aware[0] > 1.5 * plain[0] and aware[1] == pytest.approx(plain[1], rel=0.01)


def test_the_closure_loss_charges_a_bilabial_whose_most_closed_frame_is_too_open():
    terms, scale = rig_terms(demo_rig()), 100.0
    target = _jaw_faces([0.6, 0.0, 0.6, 0.6, 0.6])  # closed on frame 1 only
    bilabial = torch.zeros(1, 1, 5, dtype=torch.bool)
    bilabial[0, 0, :3] = True  # an /m/ over frames 0-2

    def loss(openings: list[float]) -> float:
        return float(closure_loss(_jaw_faces(openings), target, bilabial, terms, scale))

    assert loss([0.6, 0.0, 0.6, 0.6, 0.6]) == 0
    assert loss([0.0, 0.3, 0.6, 0.6, 0.6]) == 0  # closed a frame early, inside the phone
    assert loss([0.6, 0.6, 0.6, 0.0, 0.6]) > 0  # closed only outside it
    half, third = loss([0.6, 0.3, 0.6, 0.6, 0.6]), loss([0.6, 0.2, 0.6, 0.6, 0.6])
    openness = mouth_openness(demo_rig().vertices(_jaw_faces([0.0, 0.2, 0.3])),
                              demo_rig().mouth_idx)[0] * scale
    assert half == pytest.approx(float(openness[2] - openness[0]) ** 2, rel=1e-4)
    assert 0 < third < half
    nothing = torch.zeros(1, 0, 5, dtype=torch.bool)  # a batch without bilabials
    assert float(closure_loss(_jaw_faces([0.6] * 5), target, nothing, terms)) == 0


def test_a_clips_bilabial_phones_become_frame_spans_padded_per_batch():
    phones = [Phone("m", 0.10, 0.20), Phone("a", 0.20, 0.30), Phone("b", 0.31, 0.32),
              Phone("p", 0.95, 1.2)]
    assert bilabial_spans(phones, 30.0, 20) == [(3, 6), (9, 10)]  # /b/: its midpoint's frame
    clip = {"key": "k", "speaker": "s", "inputs": np.zeros((4, 2), np.float32),
            "teacher": np.zeros((2, 3), np.float32), "face": np.zeros((4, 51), np.float32),
            "frames": 4, "teacher_frames": 2}
    batch = collate([{**clip, "bilabials": [(1, 3)]}, {**clip, "bilabials": []}])
    assert batch["bilabial"].tolist() == [[[False, True, True, False]],
                                          [[False, False, False, False]]]


def _model(fps: float, expression: bool = False) -> UniTAF:
    torch.manual_seed(0)
    model = UniTAF("precomputed", 8, 16, ARKIT51.name, 51, torch.full((51,), 0.1), fps=fps)
    for parameter in model.decoder.out_head_dict.parameters():
        torch.nn.init.normal_(parameter, std=0.1)  # a face that follows its input
    if expression:
        model.add_expression(ExpressionArgs.for_channels(ARKIT51.channels, "utterance",
                                                         "utterance.npy", 6, 16, 2),
                             ARKIT51.channels)
    return model.eval()


@pytest.mark.parametrize("fps", [25.0, 30.0, 60.0])
def test_a_clip_gets_its_face_frames_on_the_face_grid_alone_or_padded_in_a_batch(fps):
    model = _model(fps)
    assert model(torch.randn(1, 77, 8), torch.tensor([0]))[0].shape[1] == \
        math.ceil(77 * fps / 50)
    short, long = torch.randn(1, 39, 4), torch.randn(1, 51, 4)  # 25 fps projected features
    padded = torch.cat([torch.nn.functional.pad(short, (0, 0, 0, 12)), long])
    alone = model.on_face_grid(short, math.ceil(77 * fps / 50))
    in_batch = model.on_face_grid(padded, math.ceil(101 * fps / 50), torch.tensor([39, 51]))
    torch.testing.assert_close(in_batch[:1, :alone.shape[1]], alone)
    torch.testing.assert_close(in_batch[1:], model.on_face_grid(long, in_batch.shape[1]))


def test_projected_features_are_interpolated_between_frame_centres():
    model = _model(30.0)
    ramp = torch.arange(5.0)[None, :, None]  # 25 fps frames at centres (j + 0.5) / 25 s
    found = model.on_face_grid(ramp, 6)[0, :, 0]
    centres = (torch.arange(6) + 0.5) / 30 * 25 - 0.5  # the same times in 25 fps frames
    torch.testing.assert_close(found, centres.clamp(0, 4))


def test_an_untrained_residual_leaves_the_face_and_sends_no_gradient_into_stage_two():
    base, residual = _model(30.0), _model(30.0, expression=True)
    inputs, identity, emotion = torch.randn(2, 40, 8), torch.tensor([0, 1]), torch.randn(2, 6)
    with torch.no_grad():
        torch.testing.assert_close(residual(inputs, identity, emotion)[0],
                                   base(inputs, identity)[0])
    torch.nn.init.normal_(residual.expression.head.weight)
    pull = torch.randn(2, 24, 51)  # the same upstream gradient on the face of both
    (residual(inputs, identity, emotion)[0] * pull).sum().backward()
    (base(inputs, identity)[0] * pull).sum().backward()
    stage_two = dict(base.named_parameters())
    for name, parameter in residual.named_parameters():
        if not name.startswith("expression."):
            torch.testing.assert_close(parameter.grad, stage_two[name].grad)
    assert residual.expression.head.weight.grad.abs().sum() > 0
    changed = set(residual.expression_index.tolist())
    with torch.no_grad():
        moved = (residual(inputs, identity, emotion)[0] - base(inputs, identity)[0]).abs()
    assert {c for c in range(51) if moved[..., c].max() > 0} == changed
    with pytest.raises(ValueError, match="emotion embedding"):
        residual(inputs, identity)


def test_a_residual_record_naming_channels_the_face_lacks_is_refused():
    args = ExpressionArgs.for_channels(ARKIT51.channels, "utterance", "utterance.npy", 6, 16, 2)
    assert set(args.channels) == set(expression_channels(ARKIT51.channels))
    assert "JawOpen" in args.anchor_channels and "JawOpen" not in args.channels
    assert ExpressionArgs.from_dict(args.to_dict(), ARKIT51.channels) == args
    for bad in ({**args.to_dict(), "channels": ["Tail"]}, {**args.to_dict(), "width": 10**6},
                {**args.to_dict(), "extra": 1}, {**args.to_dict(), "anchor_channels": []},
                {**args.to_dict(), "anchor_channels": ["JawOpen", "BrowInnerUp"]}):
        with pytest.raises(RecordError):
            ExpressionArgs.from_dict(bad, ARKIT51.channels)


def test_the_residuals_output_is_a_centred_moving_average_without_frame_to_frame_flicker():
    args = ExpressionArgs.for_channels(ARKIT51.channels, "utterance", "utterance.npy", 6, 16, 2,
                                       smoothing=3)
    assert ExpressionArgs.from_dict(args.to_dict(), ARKIT51.channels) == args
    old = {k: v for k, v in args.to_dict().items() if k != "smoothing"}  # an earlier run
    assert ExpressionArgs.from_dict(old, ARKIT51.channels).smoothing == 1
    for bad in (2, 0, 33, 3.0, True):
        with pytest.raises(RecordError, match="smoothing"):
            ExpressionArgs.from_dict({**args.to_dict(), "smoothing": bad}, ARKIT51.channels)
    with pytest.raises(ValueError, match="expression_smoothing"):
        ExpressionArgs.for_channels(ARKIT51.channels, "utterance", "utterance.npy", 6, 16, 2,
                                    smoothing=4)
    torch.manual_seed(1)
    smooth = ExpressionResidual(4, 16, 6, 5, width=16, layers=2, smoothing=3).eval()
    raw = ExpressionResidual(4, 16, 6, 5, width=16, layers=2).eval()
    torch.nn.init.normal_(smooth.head.weight)
    torch.nn.init.normal_(smooth.head.bias)
    raw.load_state_dict(smooth.state_dict())
    with torch.no_grad():
        inputs = torch.randn(1, 12, 4), torch.randn(1, 12, 16), torch.randn(1, 6)
        before, after = raw(*inputs)[0], smooth(*inputs)[0]
    torch.testing.assert_close(after[1:-1], (before[:-2] + before[1:-1] + before[2:]) / 3)
    torch.testing.assert_close(after[0], before[:2].mean(0))  # the ends: the frames there are
    torch.testing.assert_close(after[-1], before[-2:].mean(0))
    flicker = torch.tensor([1.0, -1.0] * 6)[None, :, None]  # frame-to-frame alternation
    assert moving_average(flicker, 3)[0, 1:-1].abs().max() == pytest.approx(1 / 3)


def test_a_residual_on_the_emotion_label_embeds_the_requested_emotion():
    labels = ("angry", "happy", "neutral")
    args = ExpressionArgs.for_channels(ARKIT51.channels, "label", "", 3, 16, 2, labels)
    assert args.on_label and ExpressionArgs.from_dict(args.to_dict(), ARKIT51.channels) == args
    np.testing.assert_array_equal(args.one_hot("happy"), [0, 1, 0])
    with pytest.raises(ValueError, match="angry, happy, neutral.*'sad'"):
        args.one_hot("sad")
    with pytest.raises(ValueError, match="give one of"):
        args.one_hot(None)
    for bad in ({**args.to_dict(), "emotion_labels": []},  # a label residual lists them
                {**args.to_dict(), "emotion_labels": ["a", "a", "b"]},
                {**args.to_dict(), "emotion_labels": ["a", "b"]},  # not emotion_dim of them
                {**args.to_dict(), "emotion_set": "utterance"}):  # an embedding lists none
        with pytest.raises(RecordError):
            ExpressionArgs.from_dict(bad, ARKIT51.channels)
    old = {k: v for k, v in args.to_dict().items() if k != "emotion_labels"}
    old.update(emotion_set="utterance", emotion_dim=6)  # a run recorded before labels
    assert ExpressionArgs.from_dict(old, ARKIT51.channels).emotion_labels == ()
    model = _model(30.0)
    model.add_expression(args, ARKIT51.channels)
    # an embedding table: one column of a bias-free map per emotion, zero until trained
    assert model.expression.emotion.weight.shape == (16, 3)
    assert model.expression.emotion.bias is None
    assert not model.expression.emotion.weight.any()
    torch.nn.init.normal_(model.expression.head.weight)
    torch.nn.init.normal_(model.expression.emotion.weight)
    model.eval()
    inputs, identity = torch.randn(1, 40, 8), torch.tensor([0])
    with torch.no_grad():
        faces = [model(inputs, identity, torch.from_numpy(args.one_hot(label))[None])[0]
                 for label in labels]
    assert not torch.allclose(faces[0], faces[1])  # the emotion changes the expression ...
    anchors = model.anchor_index
    torch.testing.assert_close(faces[0][..., anchors], faces[1][..., anchors])  # ... not lips


@pytest.mark.parametrize("rate", [1e9, 0.0, float("nan")])
def test_a_model_record_with_an_absurd_input_rate_is_refused(rate):
    from unitaf_model.run import ModelArgs

    args = ModelArgs("precomputed", 8, 8, ARKIT51.name, ARKIT51.channels, 940).to_dict()
    assert ModelArgs.from_dict(args).input_rate == 50.0
    with pytest.raises(RecordError, match="input_rate"):
        ModelArgs.from_dict({**args, "input_rate": rate})
