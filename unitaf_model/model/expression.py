"""The expression residual (UniTAF, arXiv 2602.15651, §4.1.3, eq. 7): `Δface = f(mouth,
latent, emotion)` on the expression channels.

Stage II drives the whole face from speech features, and speech features say little about
brows, eyes, cheeks or a smile. Stage III keeps the stage-II model frozen (so lip sync cannot
degrade) and adds a residual to the expression (non-articulation) channels
(`unitaf_data.face.expression_channels`, chosen by name), from three time-aligned inputs on
the face grid: the stage-II articulation output (the anchor), the projected TTS-side
features, and one emotion embedding of the clip's audio (IndexTTS2's `emovec`, or the offline
`utterance` embedding: mean and std of the Whisper encoder states). A few dilated 1-D convs
mix them over time; the output head starts at zero, so an untrained residual leaves the
stage-II face unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from unitaf_data.face import articulation_channels, expression_channels
from unitaf_data.records import RecordError, positive, record_keys, typed

MAX_WIDTH = 4096  # the widest residual or emotion embedding a run may declare


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

    @staticmethod
    def for_channels(channels: tuple[str, ...], emotion_set: str, emotion_field: str,
                     emotion_dim: int, width: int, layers: int) -> ExpressionArgs:
        expression = expression_channels(channels)
        if not expression:
            raise ValueError("the face has no expression channels for a residual to add to")
        return ExpressionArgs(expression, articulation_channels(channels), emotion_set,
                              emotion_field, emotion_dim, width, layers)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "channels": list(self.channels),
                "anchor_channels": list(self.anchor_channels)}

    @staticmethod
    def from_dict(data: Any, channels: tuple[str, ...], what: str = "expression"
                  ) -> ExpressionArgs:
        """Checked against the model's own channels: a model.json from elsewhere must not
        name channels the face lacks or build a residual of any size."""
        item = record_keys(data, what, {f.name for f in dataclasses.fields(ExpressionArgs)})

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
        return ExpressionArgs(found, anchors,
                              typed(item["emotion_set"], str, f"{what}.emotion_set"),
                              typed(item["emotion_field"], str, f"{what}.emotion_field"),
                              sizes["emotion_dim"], sizes["width"], sizes["layers"])


class ExpressionResidual(nn.Module):
    """(anchor (B, T, A), features (B, T, D), emotion (B, E)) → Δ (B, T, channels)."""

    def __init__(self, anchor_dim: int, feature_dim: int, emotion_dim: int, channels: int,
                 width: int = 128, layers: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.anchor = nn.Linear(anchor_dim, width)
        self.features = nn.Linear(feature_dim, width)
        self.emotion = nn.Sequential(nn.LayerNorm(emotion_dim), nn.Linear(emotion_dim, width))
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
        return self.head(hidden)
