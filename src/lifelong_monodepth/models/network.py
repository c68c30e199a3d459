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
    #: With per-domain fusion BatchNorm: the fused map each head read (``fused`` is the first one's).
    fused_by_domain: dict[str, Tensor] = field(default_factory=dict)


#: ``model.net.head.init``: how a new domain's head starts.
HEAD_INITS = ("fresh", "newest")


class MultiDomainDepthNet(nn.Module):
    """Shared encoder → MFF → ``heads[letter]``.

    ``forward(x, domains=[...])`` runs only the requested heads, so inference with a chosen
    head costs the same whatever the number of learned domains. Input images are in [0, 1];
    the backbone's normalisation is applied here so a checkpoint carries it.

    With per-domain BatchNorm in the fusion block (``fusion.domain_bn``) the fused map depends on
    the domain: ``encode(images, domain)`` fuses under that domain's set, ``encode(images)`` under
    the shared pre-domain set (the domain selector's input), and ``forward`` runs the encoder once
    and the fusion once per requested head.
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
        # fresh: a new domain's head starts from a random initialisation; newest: from a copy of the
        # newest head's weights (its depth range stays the new domain's), a warm start for the stage.
        self.head_init = str(self.head_kwargs.pop("init", "fresh"))
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"model.net.head.init must be one of {HEAD_INITS}, got {self.head_init!r}")
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
        if self.head_init == "newest":
            newest = next((self.heads[k] for k in reversed(self.domains) if k != letter), None)
            if newest is not None:
                weights = {k: v for k, v in newest.state_dict().items() if k != "depth_range"}
                head.load_state_dict(weights, strict=False)
        reference = next(self.fusion.parameters())
        self.heads[letter] = head.to(device=reference.device, dtype=reference.dtype)
        self.fusion.add_domain(letter)
        return head

    @property
    def domain_bn(self) -> bool:
        """True when the fusion block keeps one BatchNorm set per domain."""
        return getattr(self.fusion, "domain_bn", "off") != "off"

    def features(self, images: Tensor) -> list[Tensor]:
        """Images in [0, 1] → the encoder's feature levels (domain-free)."""
        return self.encoder((images - self.input_mean) / self.input_std)

    def fuse(
        self, features: Sequence[Tensor], size: tuple[int, int], domains: str | Sequence[str] | None = None
    ) -> Tensor:
        """Fused map of encoder features; ``domains`` (one letter, or one per row) picks the fusion
        BatchNorm set with ``domain_bn`` and is ignored without it. Rows of several domains are fused
        group by group (training-mode BatchNorm then normalises each domain with its own statistics)."""
        if not self.domain_bn or domains is None or isinstance(domains, str):
            return self.fusion(features, size, domains if self.domain_bn else None)
        letters = list(domains)
        groups = {
            letter: [i for i, value in enumerate(letters) if value == letter]
            for letter in dict.fromkeys(letters)
        }
        if len(groups) == 1:
            return self.fusion(features, size, letters[0])
        out: Tensor | None = None
        for letter, rows in groups.items():
            index = torch.tensor(rows, device=features[0].device)
            part = self.fusion([f.index_select(0, index) for f in features], size, letter)
            if out is None:
                out = part.new_empty((len(letters), *part.shape[1:]))
            out = out.index_copy(0, index, part)
        assert out is not None
        return out

    def encode(self, images: Tensor, domains: str | Sequence[str] | None = None) -> Tensor:
        """Images in [0, 1] → fused features at half resolution (see :meth:`fuse` for ``domains``)."""
        size = (images.shape[-2] // 2, images.shape[-1] // 2)
        return self.fuse(self.features(images), size, domains)

    def run_domains(
        self, features: Sequence[Tensor], size: tuple[int, int], domains: Sequence[str]
    ) -> NetOutput:
        """Each head on the fused map under its own fusion BatchNorm set (``domain_bn``)."""
        if not domains:
            return NetOutput(fused=self.fuse(features, size))
        maps = {letter: self.fuse(features, size, letter) for letter in domains}
        out = NetOutput(fused=maps[domains[0]])
        for letter, fused in maps.items():
            out.depth[letter], out.log_var[letter] = self._head(letter)(fused)
        out.fused_by_domain = maps
        return out

    def _head(self, letter: str) -> nn.Module:
        if letter not in self.heads:
            raise KeyError(f"No head for domain {letter!r}; learned domains: {self.domains}.")
        return self.heads[letter]

    def encode_levels(
        self, images: Tensor, domains: str | Sequence[str] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """The fused features and the encoder's levels (finest first) they were fused from.

        One encoder pass: a domain selector that describes the encoder levels (``selector.levels``)
        reads them from here instead of encoding the images a second time.
        """
        features = self.features(images)
        size = (images.shape[-2] // 2, images.shape[-1] // 2)
        return self.fuse(features, size, domains), list(features)

    def run_heads(self, fused: Tensor, domains: Sequence[str]) -> NetOutput:
        out = NetOutput(fused=fused)
        for letter in domains:
            out.depth[letter], out.log_var[letter] = self._head(letter)(fused)
        return out

    def forward(self, images: Tensor, domains: Sequence[str] | None = None) -> NetOutput:
        letters = self.domains if domains is None else list(domains)
        if self.domain_bn:
            size = (images.shape[-2] // 2, images.shape[-1] // 2)
            return self.run_domains(self.features(images), size, letters)
        return self.run_heads(self.encode(images), letters)


def _build_encoder(cfg: Mapping[str, Any]) -> Encoder:
    cfg = dict(cfg)
    cfg.pop("_target_", None)
    return Encoder(**cfg)
