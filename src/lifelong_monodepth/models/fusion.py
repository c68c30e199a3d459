"""Multi-scale feature fusion (MFF): the shared block between the encoder and the heads."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong_monodepth.models.domain_norm import DomainBatchNorm2d, domain_bn_mode


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """5×5 conv (no bias: BN follows) + BN + ReLU, the building block of fusion and heads."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def conv_domain_bn_relu(in_channels: int, out_channels: int, kernel_size: int, mode: str) -> nn.Sequential:
    """:func:`conv_bn_relu` with one BatchNorm set per domain (``domain_bn``); same state-dict prefix."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        DomainBatchNorm2d(out_channels, mode),
        nn.ReLU(inplace=True),
    )


def run_block(block: nn.Sequential, x: Tensor, domain: str | None) -> Tensor:
    """Conv → (domain) BN → ReLU: the domain reaches the BatchNorm when it keeps one set per domain."""
    conv, norm, act = block
    x = conv(x)
    return act(norm(x, domain) if isinstance(norm, DomainBatchNorm2d) else norm(x))


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

    ``domain_bn`` (``stats`` | ``affine``, default off): every BatchNorm of the block keeps one set
    per domain (models/domain_norm.py); ``forward(..., domain=X)`` normalises with X's set and
    ``domain=None`` with the shared, pre-domain set (what the domain selector reads).
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
        domain_bn: bool | str = False,
    ) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.domain_bn = domain_bn_mode(domain_bn)

        def block(cin: int, cout: int) -> nn.Sequential:
            if self.domain_bn == "off":
                return conv_bn_relu(cin, cout, kernel_size)
            return conv_domain_bn_relu(cin, cout, kernel_size, self.domain_bn)

        self.attention = nn.ModuleList(ChannelAttention(c, se_reduction, se_bias) for c in in_channels)
        self.project = nn.ModuleList(block(c, mid_channels) for c in in_channels)
        self.fuse = block(mid_channels * len(in_channels), out_channels)
        self.out_channels = out_channels

    def add_domain(self, letter: str) -> None:
        """Grow every domain BatchNorm a set for ``letter`` (a no-op without ``domain_bn``)."""
        for module in self.modules():
            if isinstance(module, DomainBatchNorm2d):
                module.add_domain(letter)

    def forward(self, features: Sequence[Tensor], size: tuple[int, int], domain: str | None = None) -> Tensor:
        levels = [
            F.interpolate(
                run_block(project, attend(x), domain),
                size=size,
                mode="bilinear",
                align_corners=self.align_corners,
            )
            for x, attend, project in zip(features, self.attention, self.project, strict=True)
        ]
        return run_block(self.fuse, torch.cat(levels, dim=1), domain)
