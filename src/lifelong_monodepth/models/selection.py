"""Choosing a predictor for an image of unknown domain ("inference without a domain prior").

All selectors compare **resolution-independent** statistics of the fused feature map: it is
average-pooled to a fixed ``grid × grid`` and flattened, so a prototype computed at one input
size routes images of any other size (the original hard-coded per-dataset map sizes).

- ``prototype`` (the paper): nearest per-domain mean pooled feature (mean squared distance).
- ``classifier``: a linear softmax classifier on standardised pooled features, fitted on the
  replay memory of every learned domain at the end of each stage.
- ``uncertainty``: run every head and keep the one with the lowest mean predicted log-variance
  (no fitting; cost grows with the number of heads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong_monodepth.models.network import MultiDomainDepthNet

SELECTORS = ("prototype", "classifier", "uncertainty")


@dataclass
class Routing:
    """What a selector decided for a batch: one head per image, how sure it is, and whether the
    image looks like none of the learned domains (``unknown``; always false for selectors
    without a calibrated threshold)."""

    letters: list[str]
    confidence: Tensor
    unknown: Tensor


def pooled_features(fused: Tensor, grid: int = 4) -> Tensor:
    """``(B, C, h, w)`` → ``(B, C·grid²)`` whatever ``h, w``."""
    return F.adaptive_avg_pool2d(fused, grid).flatten(1)


def fit_selector_state(
    features: Mapping[str, Tensor], grid: int, classifier_steps: int = 200, seed: int = 0
) -> dict[str, Any]:
    """From pooled replay features per domain, the state of the prototype and classifier selectors."""
    letters = list(features)
    prototypes = torch.stack([features[letter].mean(0) for letter in letters])
    x = torch.cat([features[letter] for letter in letters])
    y = torch.cat(
        [torch.full((len(features[letter]),), i, dtype=torch.long) for i, letter in enumerate(letters)]
    )
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones(x.shape[1])
    generator = torch.Generator().manual_seed(seed)
    weight = torch.zeros(len(letters), x.shape[1]).normal_(0, 0.01, generator=generator).requires_grad_(True)
    bias = torch.zeros(len(letters), requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    xs = (x - mean) / std
    with torch.enable_grad():
        for _ in range(classifier_steps if len(letters) > 1 else 0):
            optimizer.zero_grad()
            loss = F.cross_entropy(xs @ weight.T + bias, y) + 1e-3 * weight.pow(2).sum()
            loss.backward()
            optimizer.step()
    return {
        "letters": letters,
        "grid": grid,
        "prototypes": prototypes.detach().clone(),
        "classifier": {
            "weight": weight.detach().clone(),
            "bias": bias.detach().clone(),
            "mean": mean.clone(),
            "std": std.clone(),
        },
    }


class DomainSelector:
    """Routes each image to a learned head, from the fused features (and, for ``uncertainty``, the heads)."""

    def __init__(
        self, name: str = "prototype", state: Mapping[str, Any] | None = None, grid: int = 4
    ) -> None:
        if name not in SELECTORS:
            raise ValueError(f"Unknown selector {name!r}; choose one of {SELECTORS}.")
        self.name = name
        self.state = dict(state or {})
        self.grid = int(self.state.get("grid", grid))
        if name != "uncertainty" and not self.state.get("letters"):
            raise ValueError(
                f"The {name} selector has no fitted state: the checkpoint holds no prototypes. "
                "Use a stage checkpoint written by run.py, or selector=uncertainty."
            )

    def select(self, net: MultiDomainDepthNet, fused: Tensor) -> list[str]:
        """The chosen head of each image (see :meth:`route` for confidences)."""
        return self.route(net, fused).letters

    def route(self, net: MultiDomainDepthNet, fused: Tensor) -> Routing:
        """Scores of every learned domain → the chosen head, its softmax confidence, the unknown flag."""
        if self.name == "uncertainty":
            out = net.run_heads(fused, net.domains)
            letters = net.domains
            scores = -torch.stack([out.log_var[letter].mean(dim=(1, 2, 3)) for letter in letters], dim=1)
        else:
            features = pooled_features(fused, self.grid)
            letters = self.state["letters"]
            if self.name == "prototype":
                prototypes = self.state["prototypes"].to(features)
                scores = -((features[:, None, :] - prototypes[None]) ** 2).mean(-1)
            else:
                clf = {key: value.to(features) for key, value in self.state["classifier"].items()}
                scores = ((features - clf["mean"]) / clf["std"]) @ clf["weight"].T + clf["bias"]
        confidence, index = scores.softmax(1).max(1)
        return Routing(
            letters=[letters[i] for i in index.tolist()],
            confidence=confidence,
            unknown=torch.zeros_like(confidence, dtype=torch.bool),
        )
