"""The UniTalker TCN face decoder, with parameter names that load the released checkpoints.

UniTalker (Fan et al., ECCV 2024, Apache-2.0): audio features (B, T, D) at the face frame
rate → linear map to 256 → concatenated with a 64-d identity embedding → three 1-D conv
layers (kernel 3, LayerNorm over channels, residual, ReLU) → one linear head per annotation
type. The module's `state_dict` keys are exactly the checkpoints' `decoder.*` and
`out_head_dict.*` keys (`../shared/reference/unitalker_checkpoint_keys.txt`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

PRETRAINED_IDENTITIES = 935
STYLE_DIM = 64
DECODER_DIM = 256


class ConvLayer(nn.Module):
    """conv(k3) → LayerNorm over channels → + residual → ReLU, on (B, C, T). A dilation
    widens the receptive field without changing any parameter's shape."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size=3, padding=dilation,
                              dilation=dilation)
        self.norm = nn.LayerNorm(out_channels)
        self.residual_layer = (nn.Identity() if in_channels == out_channels else
                               nn.Sequential(nn.Conv1d(in_channels, out_channels, 3,
                                                       padding=dilation, dilation=dilation)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)
        return torch.relu(out + self.residual_layer(x))


class _FirstNet(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1,
                 layers: int = 3) -> None:
        super().__init__()
        self.conv_layers = nn.Sequential(
            ConvLayer(in_channels, out_channels),
            *(ConvLayer(out_channels, out_channels, dilation**i) for i in range(1, layers)))


class _TCN(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1) -> None:
        super().__init__()
        self.first_net = _FirstNet(in_channels, out_channels, dilation)


class _Decoder(nn.Module):
    def __init__(self, feature_dim: int, identities: int, dilation: int = 1) -> None:
        super().__init__()
        self.learnable_style_emb = nn.Embedding(identities, STYLE_DIM)
        self.audio_feature_map = nn.Linear(feature_dim, DECODER_DIM)
        self.tcn = _TCN(DECODER_DIM + STYLE_DIM, DECODER_DIM, dilation)
        self.dropout = nn.Dropout(0.1)


@dataclass
class LoadReport:
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    skipped_shapes: list[str] = field(default_factory=list)  # same name, other shape


class UniTalkerFaceDecoder(nn.Module):
    """Features (B, T, feature_dim) at the face rate + identity index → face per type.
    `dilation` d makes the second and third conv layers dilate by d and d² (1: UniTalker's
    receptive field of 7 frames; 2: 15)."""

    def __init__(self, feature_dim: int, heads: dict[str, int],
                 identities: int = PRETRAINED_IDENTITIES, dilation: int = 1) -> None:
        super().__init__()
        self.decoder = _Decoder(feature_dim, identities, dilation)
        self.out_head_dict = nn.ModuleDict({name: _zero_head(dim) for name, dim in heads.items()})

    def forward(self, features: torch.Tensor, identity: torch.Tensor, face_type: str
                ) -> torch.Tensor:
        decoder = self.decoder
        hidden = decoder.dropout(decoder.audio_feature_map(features).transpose(1, 2))
        style = decoder.learnable_style_emb(identity)[:, :, None].expand(-1, -1, hidden.shape[2])
        hidden = decoder.tcn.first_net.conv_layers(torch.cat([hidden, style], dim=1))
        return self.out_head_dict[face_type](hidden.transpose(1, 2))

    @property
    def identities(self) -> int:
        return self.decoder.learnable_style_emb.num_embeddings

    def add_identities(self, count: int) -> range:
        """Append `count` new identity rows after the existing ones (pretrained rows are
        never reused); returns their indices."""
        old = self.decoder.learnable_style_emb
        new = nn.Embedding(old.num_embeddings + count, STYLE_DIM)
        with torch.no_grad():
            new.weight[: old.num_embeddings] = old.weight
            new.weight[old.num_embeddings:] = old.weight.mean(0)  # start from the average
        self.decoder.learnable_style_emb = new
        return range(old.num_embeddings, new.num_embeddings)

    def add_head(self, face_type: str, dim: int) -> None:
        """A new zero-initialised head for a face type the checkpoint does not have."""
        if face_type not in self.out_head_dict:
            self.out_head_dict[face_type] = _zero_head(dim)

    def load_unitalker(self, checkpoint: dict[str, torch.Tensor]) -> LoadReport:
        """Load the `decoder.*` and `out_head_dict.*` tensors of a UniTalker checkpoint;
        heads of types this decoder lacks are added first."""
        for key, value in checkpoint.items():
            if key.startswith("out_head_dict.") and key.endswith(".weight"):
                self.add_head(key.split(".")[1], value.shape[0])
        own = self.state_dict()
        wanted = {k: v for k, v in checkpoint.items()
                  if k.startswith(("decoder.", "out_head_dict."))}
        report = LoadReport(skipped_shapes=[k for k, v in wanted.items()
                                            if k in own and own[k].shape != v.shape])
        result = self.load_state_dict({k: v for k, v in wanted.items()
                                       if k not in report.skipped_shapes}, strict=False)
        report.missing_keys = list(result.missing_keys)
        report.unexpected_keys = list(result.unexpected_keys)
        return report


def _zero_head(dim: int) -> nn.Linear:
    head = nn.Linear(DECODER_DIM, dim)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head
