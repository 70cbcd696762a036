"""UniTAF: TTS-side features → projector → UniTalker decoder → face.

Backbones (the TTS side):
- `units`: a learned embedding of discrete speech codes (the offline k-means `units`, or
  IndexTTS2's `semantic_codes`): the label-based representation of arXiv 2606.13630;
- `precomputed`: pre-extracted frozen-TTS latents (`tts_latent`, the fast path).
The face is the decoder's output plus a template (the training set's mean face), so an
untrained decoder (zero-initialised heads) starts at the mean face.
"""

from __future__ import annotations

import torch
from torch import nn

from unitaf_model.decoder import PRETRAINED_IDENTITIES, UniTalkerFaceDecoder
from unitaf_model.projector import Projector

UNIT_EMBEDDING_DIM = 512


class UniTAF(nn.Module):
    def __init__(self, backbone: str, backbone_size: int, teacher_dim: int, face_type: str,
                 channels: int, template: torch.Tensor,
                 identities: int = PRETRAINED_IDENTITIES) -> None:
        super().__init__()
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
                                            identities=identities)
        self.register_buffer("template", template.float())

    def project(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T50) codes or (B, T50, D) latents → (B, ceil(T50/2), teacher_dim)."""
        return self.projector(self.backbone(inputs))

    def forward(self, inputs: torch.Tensor, identity: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """(face (B, T25, C), projected features (B, T25, teacher_dim))."""
        projected = self.project(inputs)
        face = self.decoder(projected, identity, self.face_type) + self.template
        return face, projected
