"""``DomainSelector``: route each image to a learned head, with a confidence and an unknown flag."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from lifelong_monodepth.models.network import MultiDomainDepthNet
from lifelong_monodepth.models.selection.features import (
    FUSED,
    describe,
    describe_sets,
    needs_encoder_levels,
)
from lifelong_monodepth.models.selection.fitting import mahalanobis

SELECTORS = ("mahalanobis", "prototype", "classifier", "uncertainty")


@dataclass
class Routing:
    """What a selector decided for a batch: one head per image, how sure it is, and whether the
    image looks like none of the learned domains (``unknown``: its distance to the chosen domain
    exceeds that domain's calibrated threshold; always false for a state without thresholds)."""

    letters: list[str]
    confidence: Tensor
    unknown: Tensor


class DomainSelector:
    """Routes each image to a learned head, from descriptors of the fused map and/or the encoder levels
    (``levels`` of the fitted state; for ``uncertainty``, from the heads).

    - ``mahalanobis`` (default): smallest Mahalanobis distance of the image's descriptor to each
      domain's mean under a shared, shrunk covariance (linear discriminant analysis); confidence
      is the resulting posterior.
    - ``prototype`` (the paper): nearest mean descriptor (mean squared distance).
    - ``classifier``: a linear softmax classifier on standardised descriptors.
    - ``uncertainty``: run every head and keep the one with the lowest mean predicted log-variance
      (no fitting; cost grows with the number of heads; log-variances of different heads are not
      calibrated against each other).

    Whatever the routing, ``unknown`` comes from the fitted Gaussian's distance to the chosen domain:
    above ``margin ×`` that domain's calibrated quantile (``margin`` from the config, else the state's).
    """

    def __init__(
        self,
        name: str = "mahalanobis",
        state: Mapping[str, Any] | None = None,
        grid: int = 4,
        margin: float | None = None,
    ) -> None:
        if name not in SELECTORS:
            raise ValueError(f"Unknown selector {name!r}; choose one of {SELECTORS}.")
        self.name = name
        self.state = dict(state or {})
        self.grid = int(self.state.get("grid", grid))
        # The fitted tensors, copied once per (device, dtype) of the descriptors: on a GPU a fresh
        # host→device copy of every tensor at each batch cost a third of a batch-1 forward pass.
        self._placed: dict[tuple[str, torch.device, torch.dtype], dict[str, Tensor]] = {}
        self.descriptor = str(self.state.get("descriptor", "grid"))
        # Which maps the descriptor reads (states written before levels existed: the fused map).
        self.levels = [str(name) for name in self.state.get("levels", [FUSED])]
        # The unknown flag's Gaussian: its own (selector.unknown_levels) or the routing one.
        unknown = self.state.get("unknown")
        self.unknown_levels = [str(name) for name in unknown["levels"]] if unknown else self.levels
        self.unknown_gaussian = unknown["gaussian"] if unknown else self.state.get("gaussian")
        # Unknown above margin × the calibrated quantile: the config's margin, else the fitted one.
        self.margin = float(margin if margin is not None else self.state.get("margin", 1.0))
        if name != "uncertainty" and not self.state.get("letters"):
            raise ValueError(
                f"The {name} selector has no fitted state: the checkpoint holds no prototypes. "
                "Use a stage checkpoint written by run.py, or selector=uncertainty."
            )
        if name == "mahalanobis" and "gaussian" not in self.state:
            raise ValueError(
                "The mahalanobis selector needs a fitted Gaussian, which this checkpoint (written by an "
                "older version) lacks: use selector=prototype or selector=classifier, or retrain."
            )

    @property
    def needs_levels(self) -> bool:
        """Whether :meth:`route` needs the encoder levels (``net.encode_levels``), not only the fused map."""
        return bool(self.state.get("letters")) and needs_encoder_levels(self.levels + self.unknown_levels)

    def select(
        self, net: MultiDomainDepthNet, fused: Tensor, levels: Sequence[Tensor] | None = None
    ) -> list[str]:
        """The chosen head of each image (see :meth:`route` for confidences)."""
        return self.route(net, fused, levels).letters

    def describe(self, fused: Tensor, levels: Sequence[Tensor] | None = None) -> Tensor | None:
        """The fitted descriptor of each image (``None`` for a state without fitted domains)."""
        if not self.state.get("letters"):
            return None
        return describe(fused, self.descriptor, self.grid, self.levels, levels)

    def route(
        self, net: MultiDomainDepthNet, fused: Tensor, levels: Sequence[Tensor] | None = None
    ) -> Routing:
        """Scores of every learned domain → the chosen head, its softmax confidence, the unknown flag.

        ``levels`` are the encoder levels of the same images (``net.encode_levels``); required when
        the fitted descriptor reads them (:attr:`needs_levels`), ignored otherwise.
        """
        if not self.state.get("letters") or self.unknown_levels == self.levels:
            return self.route_descriptors(self.describe(fused, levels), net, fused)
        features, unknown = describe_sets(
            fused, self.descriptor, self.grid, [self.levels, self.unknown_levels], levels
        )
        return self.route_descriptors(features, net, fused, unknown)

    def route_descriptors(
        self,
        features: Tensor | None,
        net: MultiDomainDepthNet | None = None,
        fused: Tensor | None = None,
        unknown_features: Tensor | None = None,
    ) -> Routing:
        """:meth:`route` from descriptors already computed (``net`` and ``fused``: for ``uncertainty``;
        ``unknown_features``: the unknown flag's own descriptor when it differs from routing's)."""
        distances = None
        if self.name == "uncertainty":
            out = net.run_heads(fused, net.domains)
            letters = net.domains
            scores = -torch.stack([out.log_var[letter].mean(dim=(1, 2, 3)) for letter in letters], dim=1)
        else:
            letters = self.state["letters"]
            if self.name == "mahalanobis":
                distances = mahalanobis(features, self._place("gaussian", self.state["gaussian"], features))
                scores = -0.5 * distances
            elif self.name == "prototype":
                prototypes = self._place("prototypes", {"p": self.state["prototypes"]}, features)["p"]
                scores = -((features[:, None, :] - prototypes[None]) ** 2).mean(-1)
            else:
                clf = self._place("classifier", self.state["classifier"], features)
                scores = ((features - clf["mean"]) / clf["std"]) @ clf["weight"].T + clf["bias"]
        confidence, index = scores.float().softmax(1).max(1)
        chosen = [letters[i] for i in index.tolist()]
        # Routing over the fitted letters: the chosen column is the index itself (no host list).
        columns = index if letters is self.state.get("letters") else None
        return Routing(
            letters=chosen,
            confidence=confidence,
            unknown=self._unknown(features, distances, chosen, columns)
            if self.unknown_levels == self.levels
            else self._unknown(unknown_features, None, chosen, columns),
        )

    def _place(self, key: str, tensors: Mapping[str, Any], like: Tensor) -> dict[str, Tensor]:
        """The tensors of ``tensors`` on ``like``'s device and dtype, copied at the first call only."""
        slot = (key, like.device, like.dtype)
        if slot not in self._placed:
            self._placed[slot] = {
                name: value.to(like) for name, value in tensors.items() if isinstance(value, Tensor)
            }
        return self._placed[slot]

    def _unknown(
        self,
        features: Tensor | None,
        distances: Tensor | None,
        chosen: list[str],
        columns: Tensor | None = None,
    ) -> Tensor:
        """Distance to the chosen domain's mean above its calibrated threshold (``columns``: the
        chosen domains' positions among the fitted letters, when routing already has them)."""
        fitted = self.unknown_gaussian
        if features is None or fitted is None or "threshold" not in fitted:
            return torch.zeros(len(chosen), dtype=torch.bool)
        shared = fitted is self.state.get("gaussian")  # the routing Gaussian: its placement and distances
        gaussian = self._place("gaussian" if shared else "unknown", fitted, features)
        if distances is None or not shared:
            distances = mahalanobis(features, gaussian)
        if columns is None:
            known = self.state["letters"]
            columns = torch.tensor([known.index(c) if c in known else -1 for c in chosen])
            columns = columns.to(distances.device)
        valid = columns >= 0
        rows = torch.arange(len(chosen), device=distances.device)
        own = distances[rows, columns.clamp_min(0)]
        threshold = self.margin * gaussian["threshold"][columns.clamp_min(0)]
        return (own > threshold) & valid
