"""UniTAF: TTS-side features → projector → UniTalker decoder → face.

Backbones (the TTS side):
- `units`: a learned embedding of discrete speech codes (the offline k-means `units`, or
  IndexTTS2's `semantic_codes`): the label-based representation of arXiv 2606.13630;
- `precomputed`: pre-extracted frozen-TTS latents (`tts_latent`, the fast path).
The face is the decoder's output plus a template (the training set's mean face), so an
untrained decoder (zero-initialised heads) starts at the mean face.

The projector halves the input rate (50 Hz → 25 fps); the decoder runs at the face frame
rate `fps`, onto which the projected features are interpolated linearly (as UniTalker
interpolates its audio features onto each dataset's frame rate). A clip of `T` input frames
has `ceil(T · fps / input_rate)` face frames: `ceil(T / 2)` at 25 fps.

A stage-III model also has an expression residual (`unitaf_model.model.expression`) that adds to
the expression channels of the face, from its articulation channels, the features on the
face grid and the clip's emotion embedding; it never sends gradients into the rest.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unitaf_model.model.decoder import PRETRAINED_IDENTITIES, UniTalkerFaceDecoder
from unitaf_model.model.expression import ExpressionArgs, ExpressionResidual
from unitaf_model.model.projector import Projector

UNIT_EMBEDDING_DIM = 512


def face_frames(input_frames: int, fps: float, input_rate: float = 50.0) -> int:
    """Face frames of a clip of `input_frames` input frames at `input_rate`."""
    return math.ceil(input_frames * fps / input_rate - 1e-9)


class UniTAF(nn.Module):
    def __init__(self, backbone: str, backbone_size: int, teacher_dim: int, face_type: str,
                 channels: int, template: torch.Tensor,
                 identities: int = PRETRAINED_IDENTITIES, fps: float = 25.0,
                 input_rate: float = 50.0, decoder_dilation: int = 1) -> None:
        super().__init__()
        self.fps, self.input_rate = fps, input_rate
        if backbone == "units":
            self.backbone = nn.Embedding(backbone_size, UNIT_EMBEDDING_DIM)
            in_dim = UNIT_EMBEDDING_DIM
        elif backbone == "precomputed":
            self.backbone = nn.Identity()
            in_dim = backbone_size
        else:
            raise ValueError(f"unknown backbone {backbone!r}: units or precomputed")
        self.face_type = face_type
        self.projector = Projector(in_dim, teacher_dim)
        self.decoder = UniTalkerFaceDecoder(teacher_dim, heads={face_type: channels},
                                            identities=identities, dilation=decoder_dilation)
        self.register_buffer("template", template.float())
        self.expression: ExpressionResidual | None = None

    def add_expression(self, args: ExpressionArgs, channels: tuple[str, ...],
                       dropout: float = 0.1) -> None:
        """Attach an (untrained) expression residual; `channels` names the face's."""
        index = {name: i for i, name in enumerate(channels)}
        self.register_buffer("anchor_index", torch.tensor(
            [index[c] for c in args.anchor_channels]), persistent=False)
        self.register_buffer("expression_index", torch.tensor(
            [index[c] for c in args.channels]), persistent=False)
        self.expression = ExpressionResidual(len(args.anchor_channels),
                                             self.decoder.decoder.audio_feature_map.in_features,
                                             args.emotion_dim, len(args.channels), args.width,
                                             args.layers, dropout, args.on_label,
                                             args.smoothing)

    def project(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T50) codes or (B, T50, D) latents → (B, ceil(T50/2), teacher_dim)."""
        return self.projector(self.backbone(inputs))

    def frames(self, input_frames: int) -> int:
        return face_frames(input_frames, self.fps, self.input_rate)

    def on_face_grid(self, projected: torch.Tensor, frames: int,
                     lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T25, D) projected features → (B, frames, D) at `fps`: linear interpolation
        between frame centres. `lengths` (B,) are the clips' true projected lengths in a
        padded batch: each clip reads only its own features, so it gets the same face alone
        and padded."""
        rate = self.input_rate / 2
        if self.fps == rate:
            return projected[:, :frames]
        batch, available, width = projected.shape
        last = torch.full((batch,), available, device=projected.device) \
            if lengths is None else lengths.to(projected.device)
        last = (last.long() - 1).clamp(min=0)[:, None]
        centres = (torch.arange(frames, device=projected.device) + 0.5) * rate / self.fps - 0.5
        position = torch.minimum(centres[None].clamp(min=0), last)
        low = position.floor().long()
        high = torch.minimum(low + 1, last)
        weight = (position - low)[..., None].to(projected.dtype)

        def at(index: torch.Tensor) -> torch.Tensor:
            return projected.gather(1, index[..., None].expand(-1, -1, width))

        return at(low) * (1 - weight) + at(high) * weight

    def forward(self, inputs: torch.Tensor, identity: torch.Tensor,
                emotion: torch.Tensor | None = None, lengths: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(face (B, T_face, C) at `fps`, projected features (B, T25, teacher_dim));
        `emotion` (B, E) is the clip's emotion embedding, for a model with a residual;
        `lengths` (B,) the clips' projected lengths in a padded batch."""
        projected = self.project(inputs)
        features = self.on_face_grid(projected, self.frames(inputs.shape[1]), lengths)
        face = self.decoder(features, identity, self.face_type) + self.template
        if self.expression is not None:
            if emotion is None:
                raise ValueError("this model's expression residual needs the clip's emotion "
                                 "embedding")
            delta = self.expression(face[..., self.anchor_index].detach(), features.detach(),
                                    emotion.to(features.dtype))
            face = face.index_add(-1, self.expression_index, delta)
        return face, projected
