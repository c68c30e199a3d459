"""The multi-domain network: shared encoder + fusion, one predictor per learned domain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from lifelong_monodepth.models.encoder import Encoder
from lifelong_monodepth.models.fusion import MultiScaleFeatureFusion
from lifelong_monodepth.models.heads import DomainPredictor


@dataclass
class NetOutput:
    """Fused features plus depth/log-variance of each head that was run (at half input size)."""

    fused: Tensor
    depth: dict[str, Tensor] = field(default_factory=dict)
    log_var: dict[str, Tensor] = field(default_factory=dict)


class MultiDomainDepthNet(nn.Module):
    """Shared encoder → MFF → ``heads[letter]``.

    ``forward(x, domains=[...])`` runs only the requested heads, so inference with a chosen
    head costs the same whatever the number of learned domains. Input images are in [0, 1];
    the backbone's normalisation is applied here so a checkpoint carries it.
    """

    def __init__(
        self,
        encoder: Encoder | Mapping[str, Any],
        fusion: Mapping[str, Any] | None = None,
        head: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder if isinstance(encoder, nn.Module) else _build_encoder(encoder)
        self.fusion = MultiScaleFeatureFusion(self.encoder.channels, **dict(fusion or {}))
        self.head_kwargs = dict(head or {})
        self.heads = nn.ModuleDict()
        self.register_buffer("input_mean", torch.tensor(self.encoder.input_mean).view(1, 3, 1, 1))
        self.register_buffer("input_std", torch.tensor(self.encoder.input_std).view(1, 3, 1, 1))

    @property
    def domains(self) -> list[str]:
        """Letters of the learned domains, in the order their heads were added."""
        return list(self.heads.keys())

    def add_domain(
        self, letter: str, min_depth: float, max_depth: float, reinit: bool = False
    ) -> DomainPredictor:
        """Grow a predictor for a new domain; an existing head is kept unless ``reinit``."""
        if letter in self.heads and not reinit:
            return self.heads[letter]  # type: ignore[return-value]
        head = DomainPredictor(
            in_channels=self.fusion.out_channels, min_depth=min_depth, max_depth=max_depth, **self.head_kwargs
        )
        reference = next(self.fusion.parameters())
        self.heads[letter] = head.to(device=reference.device, dtype=reference.dtype)
        return head

    def encode(self, images: Tensor) -> Tensor:
        """Images in [0, 1] → fused features at half resolution."""
        return self.encode_levels(images)[0]

    def encode_levels(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The fused features and the encoder's levels (finest first) they were fused from.

        One encoder pass: a domain selector that describes the encoder levels (``selector.levels``)
        reads them from here instead of encoding the images a second time.
        """
        features = self.encoder((images - self.input_mean) / self.input_std)
        size = (images.shape[-2] // 2, images.shape[-1] // 2)
        return self.fusion(features, size), list(features)

    def run_heads(self, fused: Tensor, domains: Sequence[str]) -> NetOutput:
        out = NetOutput(fused=fused)
        for letter in domains:
            if letter not in self.heads:
                raise KeyError(f"No head for domain {letter!r}; learned domains: {self.domains}.")
            out.depth[letter], out.log_var[letter] = self.heads[letter](fused)
        return out

    def forward(self, images: Tensor, domains: Sequence[str] | None = None) -> NetOutput:
        return self.run_heads(self.encode(images), self.domains if domains is None else domains)


def _build_encoder(cfg: Mapping[str, Any]) -> Encoder:
    cfg = dict(cfg)
    cfg.pop("_target_", None)
    return Encoder(**cfg)
