"""The expression residual (UniTAF, arXiv 2602.15651, §4.1.3, eq. 7): `Δface = f(mouth,
latent, emotion)` on the expression channels.

Stage II drives the whole face from speech features, and speech features say little about
brows, eyes, cheeks or a smile. Stage III keeps the stage-II model frozen (so lip sync cannot
degrade) and adds a residual to the expression (non-articulation) channels
(`unitaf_data.face.expression_channels`, chosen by name), from three time-aligned inputs on
the face grid: the stage-II articulation output (the anchor), the projected TTS-side
features, and the clip's emotion. On the TTS paths the emotion is an input (the corpus label
in training, `--emotion` at synthesis), so by default (`emotion_set: label`) the residual
learns an embedding of the emotion label (a bias-free linear map of its one-hot vector: an
embedding table); it can instead read an emotion embedding of the clip's audio (IndexTTS2's
`emovec`, or the offline `utterance` embedding: mean and std of the Whisper encoder states).
A few dilated 1-D convs mix them over time; the output head starts at zero, so an untrained
residual leaves the stage-II face unchanged. A centred moving average over a few frames
(`smoothing`; 1 in runs that predate it) damps the frame-to-frame flicker of its output.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unitaf_data.face import articulation_channels, expression_channels
from unitaf_data.records import RecordError, positive, record_keys, typed

MAX_WIDTH = 4096  # the widest residual or emotion embedding a run may declare
MAX_SMOOTHING = 31  # the longest moving average over the residual's output, in frames
LABEL = "label"  # emotion_set of a residual conditioned on the clip's emotion label


@dataclass(frozen=True)
class ExpressionArgs:
    """What rebuilding a run's residual needs (`model.json`'s `expression`)."""

    channels: tuple[str, ...]  # the expression channels it adds to
    anchor_channels: tuple[str, ...]  # the stage-II articulation channels it reads
    emotion_set: str  # the feature set and field of the clip's emotion embedding
    emotion_field: str
    emotion_dim: int
    width: int = 128
    layers: int = 3
    emotion_labels: tuple[str, ...] = ()  # with emotion_set `label`: the known emotions
    smoothing: int = 1  # frames of the moving average over its output (odd)

    @staticmethod
    def for_channels(channels: tuple[str, ...], emotion_set: str, emotion_field: str,
                     emotion_dim: int, width: int, layers: int,
                     emotion_labels: tuple[str, ...] = (), smoothing: int = 1
                     ) -> ExpressionArgs:
        expression = expression_channels(channels)
        if not expression:
            raise ValueError("the face has no expression channels for a residual to add to")
        return ExpressionArgs(expression, articulation_channels(channels), emotion_set,
                              emotion_field, emotion_dim, width, layers, emotion_labels,
                              checked_smoothing(smoothing, "expression_smoothing"))

    @property
    def on_label(self) -> bool:
        """Whether the residual reads the emotion label (else an embedding of the audio)."""
        return self.emotion_set == LABEL

    def one_hot(self, label: str | None) -> np.ndarray:
        return emotion_one_hot(self.emotion_labels, label)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "channels": list(self.channels),
                "anchor_channels": list(self.anchor_channels),
                "emotion_labels": list(self.emotion_labels)}

    @staticmethod
    def from_dict(data: Any, channels: tuple[str, ...], what: str = "expression"
                  ) -> ExpressionArgs:
        """Checked against the model's own channels: a model.json from elsewhere must not
        name channels the face lacks or build a residual of any size."""
        optional = {"emotion_labels", "smoothing"}
        item = record_keys(data, what, {f.name for f in dataclasses.fields(ExpressionArgs)}
                           - optional, optional)

        def names(key: str) -> tuple[str, ...]:
            found = tuple(typed(c, str, f"{what}.{key}[]")
                          for c in typed(item[key], list, f"{what}.{key}"))
            if not set(found) <= set(channels) or len(set(found)) != len(found):
                raise RecordError(f"{what}.{key}: distinct names of the model's channels")
            return found

        sizes = {k: positive(item[k], f"{what}.{k}", int)
                 for k in ("emotion_dim", "width", "layers")}
        if max(sizes["emotion_dim"], sizes["width"]) > MAX_WIDTH or sizes["layers"] > 16:
            raise RecordError(f"{what}: widths at most {MAX_WIDTH}, at most 16 layers")
        found, anchors = names("channels"), names("anchor_channels")
        if not found or not anchors or set(found) & set(anchors):
            raise RecordError(f"{what}: channels and anchor_channels must be non-empty and "
                              "disjoint")
        emotion_set = typed(item["emotion_set"], str, f"{what}.emotion_set")
        labels = tuple(typed(label, str, f"{what}.emotion_labels[]") for label in
                       typed(item.get("emotion_labels", []), list, f"{what}.emotion_labels"))
        if (emotion_set == LABEL) != bool(labels) or len(set(labels)) != len(labels) or \
                (labels and len(labels) != sizes["emotion_dim"]):
            raise RecordError(f"{what}: a residual on the emotion label lists emotion_dim "
                              "distinct emotion_labels, any other lists none")
        return ExpressionArgs(found, anchors, emotion_set,
                              typed(item["emotion_field"], str, f"{what}.emotion_field"),
                              sizes["emotion_dim"], sizes["width"], sizes["layers"], labels,
                              checked_smoothing(item.get("smoothing", 1), f"{what}.smoothing"))


def checked_smoothing(frames: Any, what: str) -> int:
    """`frames` when it is an odd number of frames up to MAX_SMOOTHING; RecordError naming
    `what` otherwise."""
    if positive(frames, what, int) > MAX_SMOOTHING or not frames % 2:
        raise RecordError(f"{what}: an odd number of frames, at most {MAX_SMOOTHING} (got "
                          f"{frames})")
    return frames


def emotion_one_hot(labels: tuple[str, ...], label: str | None,
                    what: str = "this run's expression residual") -> np.ndarray:
    """(E,) float32 one-hot of an emotion label among `labels`; ValueError naming them."""
    if label not in labels:
        raise ValueError(f"{what} is conditioned on the emotion: give one of "
                         f"{', '.join(labels)} (got {label!r})")
    return np.eye(len(labels), dtype=np.float32)[labels.index(label)]


class ExpressionResidual(nn.Module):
    """(anchor (B, T, A), features (B, T, D), emotion (B, E)) → Δ (B, T, channels); with
    `labels`, `emotion` is a one-hot label and its map an embedding table."""

    def __init__(self, anchor_dim: int, feature_dim: int, emotion_dim: int, channels: int,
                 width: int = 128, layers: int = 3, dropout: float = 0.1,
                 labels: bool = False, smoothing: int = 1) -> None:
        super().__init__()
        self.smoothing = smoothing
        self.anchor = nn.Linear(anchor_dim, width)
        self.features = nn.Linear(feature_dim, width)
        self.emotion = nn.Linear(emotion_dim, width, bias=False) if labels else \
            nn.Sequential(nn.LayerNorm(emotion_dim), nn.Linear(emotion_dim, width))
        if labels:  # an emotion never trained on adds nothing
            nn.init.zeros_(self.emotion.weight)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 3, padding=2**i, dilation=2**i)
                                   for i in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(width, channels)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, anchor: torch.Tensor, features: torch.Tensor, emotion: torch.Tensor
                ) -> torch.Tensor:
        hidden = self.anchor(anchor) + self.features(features) + self.emotion(emotion)[:, None]
        hidden = self.dropout(hidden)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            mixed = norm(conv(hidden.transpose(1, 2)).transpose(1, 2))
            hidden = hidden + self.dropout(torch.relu(mixed))
        return moving_average(self.head(hidden), self.smoothing)


def moving_average(curves: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, T, C) curves averaged over `frames` (odd) centred frames; at the clip's ends over
    the frames there are."""
    if frames == 1:
        return curves
    return F.avg_pool1d(curves.transpose(1, 2), frames, stride=1, padding=frames // 2,
                        count_include_pad=False).transpose(1, 2)
