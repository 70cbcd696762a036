"""The field's face metrics, as pure functions over per-clip numpy arrays.

Every metric takes one array per clip (clips differ in length), pools them in the way its
result says, and returns `MetricResult`s that name the variant they follow, their units and
their pooling, so that a report prints them without knowing the formulas. Channels are chosen
by name (the groups of `unitaf_data.face`), vertices by the rig's named sets. The formulas
follow the code that defines each metric (issue 10; EVAL_EXPORT_RENDER_FACTS §1):

- `lip_vertex_error`: CodeTalker / UniTalker LVE and UniTalker's LVD (vertices).
- `mouth_l2`, `mve`, `expression_l2`: FaceDiffuser's blendshape LVE / MVE (curves).
- `fdd`: CodeTalker's upper-face dynamics deviation, signed and absolute (vertices).
- `jitter`, `jitter_ratio`: Token-to-Face's jitter (curves).
- `bilabial_closure`: Token-to-Face's bilabial closure score, on a lip-closure curve.
- `av_offset`: lag between the audio envelope and the mouth openness, a diagnostic.
- `openness_distribution`, `jaw_open_correlation`.

Phone intervals become frames by one rule (`unitaf_data.phones.phone_frames`): face frame i covers
[i/fps, (i+1)/fps) of the clip, and a phone [start, end) holds the frames whose centre
(i + 0.5)/fps lies inside it; a phone that covers no frame centre holds the one frame that
contains its midpoint. (Token-to-Face's `int(start*fps):int(end*fps)` drops such short
phones and moves every interval up to a frame early.)

Vertex metrics take iterables, so a caller may pass generators that hold one clip's vertices
at a time; the others take sequences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from unitaf_data.face import (
    channel_index,
    expression_channels,
    mouth_channels,
)
from unitaf_data.phones import is_bilabial, phone_frames
from unitaf_model.model.rig import Rig

FRAMES_POOLED = "mean over all frames pooled across clips"
CLIPS_POOLED = "mean over clips of each clip's mean over frames"
BCS_SHARE = 0.7  # ground truth's closure value that bounds this share of its bilabial frames


@dataclass(frozen=True)
class MetricResult:
    name: str
    value: float
    variant: str  # the formula, whose code it follows, and the vertex or channel set
    units: str
    pooling: str
    count: int  # how many frames, clips or intervals the value pools


@dataclass(frozen=True)
class AvOffset:
    """One clip's audio–mouth lag; None where the envelope or the mouth does not move."""

    lag_frames: int | None  # positive: the mouth moves after the sound (mouth late)
    lag_ms: float | None
    correlation: float


def lip_vertex_error(pred_vertices: Iterable[np.ndarray], true_vertices: Iterable[np.ndarray],
                     lip_idx: np.ndarray, lip_set: str = "given lip vertices"
                     ) -> tuple[MetricResult, MetricResult]:
    """(lve, lvd) over (T, V, 3) clips: per frame the maximum over the lip vertices of the
    squared L2 error (LVE), and its square root (LVD), each averaged over pooled frames."""
    per_frame = [np.square(p[:, lip_idx] - t[:, lip_idx]).sum(-1).max(-1)
                 for p, t in _pairs(pred_vertices, true_vertices)]
    squared = _concatenate(per_frame)
    where = f"lip vertices: {lip_set} ({len(lip_idx)})"
    return (
        MetricResult("lve", float(squared.mean()), "CodeTalker / UniTalker LVE: per frame "
                     f"the max over lip vertices of the squared L2 error; {where}",
                     "rig units²", FRAMES_POOLED, len(squared)),
        MetricResult("lvd", float(np.sqrt(squared).mean()), "UniTalker LVD: per frame the "
                     f"max over lip vertices of the L2 error; {where}", "rig units",
                     FRAMES_POOLED, len(squared)),
    )


def mouth_l2(pred: Sequence[np.ndarray], true: Sequence[np.ndarray], channels: Sequence[str]
             ) -> MetricResult:
    """FaceDiffuser's blendshape LVE over the ARKit Jaw*/Mouth* channels (by name)."""
    return _channel_l2("mouth_l2", pred, true, channels, mouth_channels(channels),
                       "FaceDiffuser / Token-to-Face blendshape LVE over the Jaw*/Mouth* "
                       "channels")


def mve(pred: Sequence[np.ndarray], true: Sequence[np.ndarray], channels: Sequence[str]
        ) -> MetricResult:
    """FaceDiffuser's blendshape MVE: the same error over every channel."""
    return _channel_l2("mve", pred, true, channels, tuple(channels),
                       "FaceDiffuser / Token-to-Face blendshape MVE over all channels")


def expression_l2(pred: Sequence[np.ndarray], true: Sequence[np.ndarray],
                  channels: Sequence[str]) -> MetricResult:
    """The same error over the expression (non-articulation) channels: eyes, brows, cheeks,
    nose, smile, frown, dimple."""
    return _channel_l2("expression_l2", pred, true, channels, expression_channels(channels),
                       "blendshape error over the expression (non-articulation) channels")


def _channel_l2(name: str, pred: Sequence[np.ndarray], true: Sequence[np.ndarray],
                channels: Sequence[str], selected: Sequence[str], variant: str
                ) -> MetricResult:
    """Per frame the L2 norm of the error over the selected channels, a mean per clip, then
    the mean over clips (FaceDiffuser's pooling)."""
    if not selected:
        raise ValueError(f"{name}: the face's {len(channels)} channels hold none it reads")
    columns = [channel_index(channels, c) for c in selected]
    per_clip = [np.linalg.norm(p[:, columns] - t[:, columns], axis=1).mean()
                for p, t in _pairs(pred, true) if len(t)]
    return MetricResult(name, float(_concatenate([per_clip], "clips").mean()),
                        f"{variant}: per frame the L2 norm over {len(columns)} channels",
                        "blendshape weight", CLIPS_POOLED, len(per_clip))


def fdd(pred_vertices: Iterable[np.ndarray], true_vertices: Iterable[np.ndarray],
        template: np.ndarray, upper_idx: np.ndarray, upper_set: str = "given upper vertices"
        ) -> tuple[MetricResult, MetricResult]:
    """(fdd, fdd_abs), CodeTalker's upper-face dynamics deviation over (T, V, 3) clips.

    Per clip, each upper-face vertex's squared offset from the (V, 3) template, its
    population std over time, averaged over those vertices; FDD is the mean over clips of
    ground truth's value minus the prediction's (positive: ground truth moves more), and
    `fdd_abs` the mean of its absolute value (FaceDiffuser's ABS FDD)."""

    def dynamics(vertices: np.ndarray) -> float:
        offset = np.square(vertices[:, upper_idx] - template[upper_idx]).sum(-1)
        return float(offset.std(axis=0).mean())

    gaps = _concatenate([[dynamics(t) - dynamics(p)
                          for p, t in _pairs(pred_vertices, true_vertices) if len(t)]], "clips")
    where = f"upper-face vertices: {upper_set} ({len(upper_idx)})"
    variant = "CodeTalker FDD: per clip the mean over upper-face vertices of the std over " \
              f"time of the squared offset from the template; {where}"
    return (
        MetricResult("fdd", float(gaps.mean()), f"{variant}; ground truth − prediction",
                     "rig units²", "mean over clips", len(gaps)),
        MetricResult("fdd_abs", float(np.abs(gaps).mean()),
                     f"{variant}; |ground truth − prediction|", "rig units²",
                     "mean over clips", len(gaps)),
    )


def jitter(curves: Sequence[np.ndarray], fps: float, name: str = "jitter",
           channel_set: str = "all channels") -> MetricResult:
    """Token-to-Face's jitter of (T, C) clips: per frame the L2 norm over channels of the
    second difference × fps², averaged over the pooled frames (never across clip ends);
    `channel_set` says which channels the curves hold."""
    per_frame = [np.linalg.norm(np.diff(np.asarray(c, np.float64), n=2, axis=0) * fps**2,
                                axis=1) for c in curves]
    values = _concatenate(per_frame)
    return MetricResult(name, float(values.mean()), f"Token-to-Face jitter: L2 norm over "
                        f"{channel_set} of the second difference × fps²", "blendshape weight/s²",
                        FRAMES_POOLED, len(values))


def jitter_ratio(pred: MetricResult, true: MetricResult) -> MetricResult:
    """Prediction's jitter over ground truth's (below 1: smoother than ground truth; NaN
    where ground truth does not move)."""
    return MetricResult(f"{pred.name}_ratio",
                        pred.value / true.value if true.value else math.nan,
                        f"Token-to-Face {pred.name} ratio: prediction / ground truth", "ratio",
                        pred.pooling, pred.count)


def bilabial_intervals(phones: Iterable[tuple[str, float, float]]
                       ) -> list[tuple[float, float]]:
    """(start, end) seconds of the bilabial phones of a (label, start, end) timeline."""
    return [(start, end) for label, start, end in phones if is_bilabial(label)]


def lip_closure(face: np.ndarray, channels: Sequence[str], rig: Rig | None) -> np.ndarray:
    """The lip-closure curve BCS reads, lower = more closed: the rig's mouth openness, or
    JawOpen where the face has no rig."""
    if rig is not None:
        return rig.mouth_openness(np.ascontiguousarray(face, dtype=np.float32))
    return face[:, channel_index(channels, "JawOpen")]


def bilabial_closure(true_closure: Sequence[np.ndarray], pred_closure: Sequence[np.ndarray],
                     bilabials: Sequence[Sequence[tuple[float, float]]], fps: float,
                     closure: str) -> tuple[MetricResult, MetricResult, MetricResult]:
    """(bcs, bcs_intervals, bcs_threshold): Token-to-Face's bilabial closure score.

    The threshold is ground truth's closure value that bounds 70% of its frames inside the
    bilabial intervals: the smallest of those frame values that at least 70% of them do not
    exceed, so ground truth scores 70% on the frame form by construction (up to rounding to
    whole frames, more where values tie). `bcs` is the share
    of predicted frames inside the intervals at or below it; `bcs_intervals` the share of
    intervals whose most closed predicted frame is. `closure` names the closure curve (see
    `lip_closure`); `bilabials` holds each clip's (start, end) intervals in seconds."""
    clips = [(p, t, _spans(intervals, fps, len(t))) for (p, t), intervals in
             zip(_pairs(pred_closure, true_closure), bilabials, strict=True)]
    inside_true = _concatenate([t[span] for _, t, spans in clips for span in spans],
                               "bilabial frames")
    threshold = float(np.quantile(inside_true, BCS_SHARE, method="inverted_cdf"))
    inside_pred = _concatenate([p[span] for p, _, spans in clips for span in spans])
    most_closed = np.array([p[span].min() for p, _, spans in clips for span in spans])
    variant = f"Token-to-Face BCS on {closure}, threshold: ground truth's value bounding " \
              f"{BCS_SHARE:.0%} of its bilabial (/p b m/) frames"
    return (
        MetricResult("bcs", float(np.mean(inside_pred <= threshold)),
                     f"{variant}; share of predicted bilabial frames at or below it "
                     f"(ground truth: {BCS_SHARE:.0%} by construction)", "share",
                     "frames pooled across clips", len(inside_pred)),
        MetricResult("bcs_intervals", float(np.mean(most_closed <= threshold)),
                     f"{variant}; share of bilabial intervals whose most closed predicted "
                     "frame is at or below it", "share", "intervals pooled across clips",
                     len(most_closed)),
        MetricResult("bcs_threshold", threshold, variant, closure,
                     "frames pooled across clips", len(inside_true)),
    )


def _spans(intervals: Sequence[tuple[float, float]], fps: float, frames: int
           ) -> list[np.ndarray]:
    spans = (phone_frames(start, end, fps, frames) for start, end in intervals)
    return [span for span in spans if len(span)]


def rms_envelope(audio: np.ndarray, sample_rate: int, fps: float, frames: int) -> np.ndarray:
    """RMS of the audio samples under each face frame: frame i covers samples
    [round(i·sr/fps), round((i+1)·sr/fps)); missing samples at the end count as silence."""
    edges = np.round(np.arange(frames + 1) * sample_rate / fps).astype(np.int64)
    padded = np.zeros(edges[-1], np.float64)
    audio = np.asarray(audio, np.float64)[: edges[-1]]
    padded[: len(audio)] = audio
    sums = np.add.reduceat(np.square(padded), edges[:-1]) if frames else np.zeros(0)
    return np.sqrt(sums / np.maximum(np.diff(edges), 1))


def av_offset(audio: np.ndarray, sample_rate: int, openness: np.ndarray, fps: float,
              max_lag_frames: int = 10) -> AvOffset:
    """The lag, within ±max_lag_frames, of the largest normalised cross-correlation between
    the z-scored RMS envelope of the audio on the face frame grid and the z-scored mouth
    openness: lag L pairs the envelope at frame t with the mouth at t + L, so a positive lag
    means the mouth moves after the sound (mouth late). A diagnostic, not a literature
    metric."""
    envelope = _zscore(rms_envelope(audio, sample_rate, fps, len(openness)))
    mouth = _zscore(np.asarray(openness, np.float64))
    if envelope is None or mouth is None:
        return AvOffset(None, None, math.nan)
    lags = range(-max_lag_frames, max_lag_frames + 1)
    scores = [_lagged_correlation(envelope, mouth, lag) for lag in lags]
    best = int(np.nanargmax(scores))
    return AvOffset(lags[best], lags[best] * 1000.0 / fps, float(scores[best]))


def _lagged_correlation(envelope: np.ndarray, mouth: np.ndarray, lag: int) -> float:
    if lag >= 0:
        a, b = envelope[: len(envelope) - lag], mouth[lag:]
    else:
        a, b = envelope[-lag:], mouth[: len(mouth) + lag]
    return float(np.mean(a * b)) if len(a) else math.nan


def median_av_offset(offsets: Sequence[AvOffset], name: str = "av_offset") -> MetricResult:
    """The median lag in ms over the clips that have one."""
    lags = [o.lag_ms for o in offsets if o.lag_ms is not None]
    return MetricResult(name, float(np.median(lags)) if lags else math.nan,
                        f"{_AV_VARIANT}; positive: mouth late", "ms",
                        "median over clips with a moving envelope and mouth", len(lags))


def av_offset_agreement(pred: Sequence[AvOffset], true: Sequence[AvOffset],
                        tolerance_frames: int = 1) -> MetricResult:
    """The share of clips whose predicted lag is within ±tolerance of ground truth's, over
    the clips where ground truth has a lag."""
    pairs = [(p, t) for p, t in zip(pred, true, strict=True) if t.lag_frames is not None]
    near = [p.lag_frames is not None and abs(p.lag_frames - t.lag_frames) <= tolerance_frames
            for p, t in pairs]
    return MetricResult("av_offset_agreement", float(np.mean(near)) if near else math.nan,
                        f"{_AV_VARIANT}; prediction within ±{tolerance_frames} frame of ground "
                        "truth's lag", "share", "clips", len(near))


_AV_VARIANT = "diagnostic, not a literature metric: lag of the peak cross-correlation of " \
              "the audio RMS envelope and mouth openness (z-scored)"


def openness_distribution(openness: Sequence[np.ndarray], low: float, high: float,
                          prefix: str = "") -> tuple[MetricResult, MetricResult]:
    """(closed, wide_open): the share of pooled frames whose mouth openness is below `low` /
    above `high`, the fitted normalisation interval."""
    values = _concatenate(openness)
    variant = f"mouth openness outside the fitted interval [{low:.6g}, {high:.6g}]"
    return (
        MetricResult(f"{prefix}closed_share", float(np.mean(values < low)),
                     f"{variant}: below it", "share", "frames pooled across clips",
                     len(values)),
        MetricResult(f"{prefix}wide_open_share", float(np.mean(values > high)),
                     f"{variant}: above it", "share", "frames pooled across clips",
                     len(values)),
    )


def jaw_open_correlation(pred: Sequence[np.ndarray], true: Sequence[np.ndarray],
                         channels: Sequence[str]) -> MetricResult:
    """Pearson r of the JawOpen curves over the pooled frames; NaN where one is constant."""
    column = channel_index(channels, "JawOpen")
    pairs = list(_pairs(pred, true))
    p = _concatenate([p[:, column] for p, _ in pairs])
    t = _concatenate([t[:, column] for _, t in pairs])
    constant = np.ptp(p) == 0 or np.ptp(t) == 0
    r = math.nan if constant else float(np.corrcoef(p, t)[0, 1])
    return MetricResult("jaw_open_correlation", r, "Pearson r of predicted and true JawOpen",
                        "r", "frames pooled across clips", len(p))


def _pairs(pred: Iterable[np.ndarray], true: Iterable[np.ndarray]
           ) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    """(prediction, ground truth) per clip as float64, shapes checked."""
    for clip, (p, t) in enumerate(zip(pred, true, strict=True)):
        p, t = np.asarray(p, np.float64), np.asarray(t, np.float64)
        if p.shape != t.shape:
            raise ValueError(f"clip {clip}: prediction {p.shape} and ground truth {t.shape} "
                             "differ in shape")
        yield p, t


def _concatenate(parts: Iterable, what: str = "frames") -> np.ndarray:
    values = np.concatenate([np.asarray(v, np.float64).ravel() for v in parts] or [[]])
    if not len(values):
        raise ValueError(f"no {what} to pool")
    return values


def _zscore(values: np.ndarray) -> np.ndarray | None:
    """None for a constant series, whose std is rounding noise and whose lag means nothing."""
    if not len(values) or np.ptp(values) == 0 or not np.isfinite(values).all():
        return None
    return (values - values.mean()) / values.std()
