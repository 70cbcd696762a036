"""The projector: TTS-side features at 50 Hz → the face decoder's feature space at 25 fps.

A 1-D bottleneck conv stack (UniTAF, arXiv 2602.15651): a strided input conv halves the
frame rate, then residual bottleneck blocks (1×1 reduce → grouped k3 conv → 1×1 expand →
norm), LayerNorm and a learnable output scale. About 1M parameters at the default sizes for
a 1024-d input and a 768-d teacher.
"""

from __future__ import annotations

import torch
from torch import nn


class BottleneckBlock(nn.Module):
    def __init__(self, channels: int, bottleneck: int, groups: int) -> None:
        super().__init__()
        self.reduce = nn.Conv1d(channels, bottleneck, 1)
        self.mix = nn.Conv1d(bottleneck, bottleneck, 3, padding=1, groups=groups)
        self.expand = nn.Conv1d(bottleneck, channels, 1)
        self.norm = nn.GroupNorm(1, channels)  # LayerNorm over (C, T) per frame set

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(torch.relu(self.mix(torch.relu(self.reduce(x)))))
        return x + self.norm(y)


class Projector(nn.Module):
    """(B, T50, in_dim) → (B, ceil(T50 / 2), out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, width: int = 256, bottleneck: int = 128,
                 blocks: int = 4, groups: int = 8) -> None:
        super().__init__()
        self.down = nn.Conv1d(in_dim, width, kernel_size=2, stride=2)  # 50 Hz → 25 fps
        self.blocks = nn.Sequential(*(BottleneckBlock(width, bottleneck, groups)
                                      for _ in range(blocks)))
        self.out = nn.Conv1d(width, out_dim, 1)
        self.norm = nn.LayerNorm(out_dim)
        self.scale = nn.Parameter(torch.ones(out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.transpose(1, 2)
        if x.shape[2] % 2:  # odd lengths: one frame more, so T25 = ceil(T50 / 2)
            x = nn.functional.pad(x, (0, 1), mode="replicate")
        x = self.out(self.blocks(self.down(x))).transpose(1, 2)
        return self.norm(x) * self.scale


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
