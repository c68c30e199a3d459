"""Multi-scale feature fusion (MFF): the shared block between the encoder and the heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """5×5 conv (no bias: BN follows) + BN + ReLU, the building block of fusion and heads."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation re-weighting of one feature level's channels."""

    def __init__(self, channels: int, reduction: int = 16, bias: bool = True) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)


class MultiScaleFeatureFusion(nn.Module):
    """Re-weight each level (SE), project to ``mid_channels``, upsample to a common size, fuse.

    The output (``out_channels`` at half the input resolution) is what every domain head
    reads, what the domain selector compares and what feature distillation keeps stable.
    ``se_bias=False`` and ``align_corners=True`` are the original network's choices (attention convs
    without bias, corner-aligned upsampling); ``experiment=paper_real`` and converted original
    checkpoints (``python -m lifelong_monodepth.convert``) use them.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        mid_channels: int = 16,
        out_channels: int = 64,
        kernel_size: int = 5,
        se_reduction: int = 16,
        se_bias: bool = True,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.attention = nn.ModuleList(ChannelAttention(c, se_reduction, se_bias) for c in in_channels)
        self.project = nn.ModuleList(conv_bn_relu(c, mid_channels, kernel_size) for c in in_channels)
        self.fuse = conv_bn_relu(mid_channels * len(in_channels), out_channels, kernel_size)
        self.out_channels = out_channels

    def forward(self, features: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        levels = [
            F.interpolate(project(attend(x)), size=size, mode="bilinear", align_corners=self.align_corners)
            for x, attend, project in zip(features, self.attention, self.project, strict=True)
        ]
        return self.fuse(torch.cat(levels, dim=1))
