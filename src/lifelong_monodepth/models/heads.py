"""Domain-specific predictor: a depth branch and a log-variance (uncertainty) branch."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lifelong_monodepth.models.fusion import conv_bn_relu

#: How the depth branch's output becomes metres: squashed into the domain's range, or as it is.
OUTPUTS = ("range", "linear")


class DomainPredictor(nn.Module):
    """Two small branches on the fused map, each 5×5 conv+BN+ReLU then 5×5 conv to one channel.

    With ``output="range"`` (default) the depth branch is squashed into the domain's
    ``[min_depth, max_depth]`` range, so a head can never predict an 80 m wall indoors and every
    domain starts from a sensible mid-range output. ``output="linear"`` returns the raw conv output
    in metres, as the original network does (``experiment=paper_real``, converted checkpoints).
    The range is stored as buffers so a checkpoint carries it.
    """

    def __init__(
        self,
        in_channels: int = 64,
        hidden_channels: int = 64,
        kernel_size: int = 5,
        min_depth: float = 0.1,
        max_depth: float = 10.0,
        output: str = "range",
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"model.net.head.output must be one of {OUTPUTS}, got {output!r}")
        self.output = output
        self.depth_branch = nn.Sequential(
            conv_bn_relu(in_channels, hidden_channels, kernel_size),
            nn.Conv2d(hidden_channels, 1, kernel_size, padding=kernel_size // 2),
        )
        self.uncertainty_branch = nn.Sequential(
            conv_bn_relu(in_channels, hidden_channels, kernel_size),
            nn.Conv2d(hidden_channels, 1, kernel_size, padding=kernel_size // 2),
        )
        self.register_buffer("depth_range", torch.tensor([float(min_depth), float(max_depth)]))

    @property
    def min_depth(self) -> float:
        return float(self.depth_range[0])

    @property
    def max_depth(self) -> float:
        return float(self.depth_range[1])

    def forward(self, fused: Tensor) -> tuple[Tensor, Tensor]:
        raw = self.depth_branch(fused)
        if self.output == "linear":
            return raw, self.uncertainty_branch(fused)
        low, high = self.depth_range[0], self.depth_range[1]
        return low + (high - low) * torch.sigmoid(raw), self.uncertainty_branch(fused)
