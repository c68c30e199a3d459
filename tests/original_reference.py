"""A small reference implementation of the original Lifelong-MonoDepth network, in its key layout.

Written from the architecture as published (Hu et al.; the code base derives from Hu et al., "Revisiting
single image depth estimation"): ``E`` a ResNet-34 trunk (torchvision layout), ``MFF`` the multi-scale
fusion (bias-free squeeze-excitation ``att<i>``, ``up<i>`` = 5×5 conv + BN + ReLU then corner-aligned
bilinear upsampling to twice the first block's size, ``conv`` + ``bn`` 5×5 fusion), and one ``task<t>``
per domain with ``depth`` and ``uncertainty`` branches (``conv0`` + ``bn0`` + ReLU, ``conv2`` with bias).
Only the converter's tests use it: a random network in this layout is the stand-in for a published file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BLOCK_CHANNELS = (64, 128, 256, 512)


class Trunk(nn.Module):
    """ResNet-34 without pooling/classifier; returns the four block outputs."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import resnet34

        net = resnet34(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        b1 = self.layer1(x)
        b2 = self.layer2(b1)
        b3 = self.layer3(b2)
        return b1, b2, b3, self.layer4(b3)


class Up(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 16, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(16)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return F.interpolate(F.relu(self.bn1(self.conv1(x))), size=size, mode="bilinear", align_corners=True)


def _attention(channels: int) -> nn.Sequential:
    hidden = channels // 16
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(channels, hidden, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(hidden, channels, 1, bias=False),
        nn.Sigmoid(),
    )


class Fusion(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        for i, c in enumerate(BLOCK_CHANNELS, start=1):
            self.add_module(f"att{i}", _attention(c))
            self.add_module(f"up{i}", Up(c))
        self.conv = nn.Conv2d(64, 64, 5, padding=2, bias=False)
        self.bn = nn.BatchNorm2d(64)

    def forward(self, blocks: tuple[Tensor, ...], size: tuple[int, int]) -> Tensor:
        ups = [
            getattr(self, f"up{i}")(x * getattr(self, f"att{i}")(x), size)
            for i, x in enumerate(blocks, start=1)
        ]
        return F.relu(self.bn(self.conv(torch.cat(ups, 1))))


class Branch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(64, 64, 5, padding=2, bias=False)
        self.bn0 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 1, 5, padding=2, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.relu(self.bn0(self.conv0(x))))


class Predictor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.depth, self.uncertainty = Branch(), Branch()


class OriginalNet(nn.Module):
    """``E`` → ``MFF`` → ``task0`` … ``task<n-1>``; forward takes ImageNet-normalised images."""

    def __init__(self, num_tasks: int) -> None:
        super().__init__()
        self.E, self.MFF = Trunk(), Fusion()
        self.num_tasks = num_tasks
        for t in range(num_tasks):
            self.add_module(f"task{t}", Predictor())

    def forward(self, x: Tensor) -> tuple[dict[int, tuple[Tensor, Tensor]], Tensor]:
        blocks = self.E(x)
        fused = self.MFF(blocks, (blocks[0].shape[2] * 2, blocks[0].shape[3] * 2))
        out = {}
        for t in range(self.num_tasks):
            task = getattr(self, f"task{t}")
            out[t] = (task.depth(fused), task.uncertainty(fused))
        return out, fused


def randomise_batchnorm(net: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so eval-mode BN mapping errors show up."""
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
