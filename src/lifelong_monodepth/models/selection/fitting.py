"""Fitting a selector's state from descriptors of each learned domain's images (at each stage end).

The state is plain tensors and lists (kilobytes: a few centroids, one ``D×D`` precision matrix,
a linear layer), stored in the stage checkpoint, so inference needs no image of any domain.

- prototypes: the mean descriptor of each domain (the paper).
- classifier: a linear softmax classifier on standardised descriptors.
- gaussian: each domain a Gaussian with its own mean and one shared ("tied") covariance, shrunk
  towards a scaled identity because a few hundred images cannot estimate ``D×D`` entries
  (Ledoit–Wolf style). Routing by the smallest Mahalanobis distance is linear discriminant
  analysis; the same distance, compared with a per-domain threshold calibrated on held-out
  images of that domain, says "none of my domains" (unknown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong_monodepth.models.selection.features import collect_descriptors


def fit_classifier(
    x: Tensor, y: Tensor, classes: int, steps: int = 200, seed: int = 0, weight_decay: float = 1e-3
) -> dict[str, Tensor]:
    """Multinomial logistic regression on standardised ``x`` (Adam, full batch)."""
    mean = x.mean(0)
    std = x.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones(x.shape[1])
    generator = torch.Generator().manual_seed(seed)
    weight = torch.zeros(classes, x.shape[1]).normal_(0, 0.01, generator=generator).requires_grad_(True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=0.05)
    xs = (x - mean) / std
    with torch.enable_grad():
        for _ in range(steps if classes > 1 else 0):
            optimizer.zero_grad()
            loss = F.cross_entropy(xs @ weight.T + bias, y) + weight_decay * weight.pow(2).sum()
            loss.backward()
            optimizer.step()
    return {
        "weight": weight.detach().clone(),
        "bias": bias.detach().clone(),
        "mean": mean.clone(),
        "std": std.clone(),
    }


def fit_gaussian(features: Mapping[str, Tensor], shrinkage: float = 0.1) -> dict[str, Tensor]:
    """Per-domain means and one shrunk, shared covariance (as its inverse) on standardised features."""
    if not 0.0 < shrinkage <= 1.0:
        raise ValueError(f"selector.shrinkage must be in (0, 1], got {shrinkage}")
    parts = [features[letter].double() for letter in features]
    x = torch.cat(parts)
    mean = x.mean(0)
    scale = x.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones_like(mean)
    z = [(part - mean) / scale for part in parts]
    centroids = torch.stack([zi.mean(0) for zi in z])
    residuals = torch.cat([zi - zi.mean(0) for zi in z])
    dof = max(len(residuals) - len(parts), 1)
    covariance = residuals.T @ residuals / dof
    target = covariance.diagonal().mean().clamp_min(1e-6) * torch.eye(len(mean), dtype=covariance.dtype)
    precision = torch.linalg.inv((1 - shrinkage) * covariance + shrinkage * target)
    return {
        "mean": mean.float(),
        "scale": scale.float(),
        "centroids": centroids.float(),
        "precision": precision.float(),
    }


def mahalanobis(features: Tensor, gaussian: Mapping[str, Tensor]) -> Tensor:
    """``(B, D)`` → ``(B, L)`` squared Mahalanobis distance to each domain's mean."""
    g = {key: value.to(features) for key, value in gaussian.items() if isinstance(value, Tensor)}
    diff = ((features - g["mean"]) / g["scale"])[:, None, :] - g["centroids"][None]
    return torch.einsum("bld,de,ble->bl", diff, g["precision"], diff)


def calibrate_thresholds(
    gaussian: Mapping[str, Tensor],
    letters: list[str],
    calibration: Mapping[str, Tensor],
    quantile: float = 0.99,
) -> Tensor:
    """Per domain: the ``quantile`` of its held-out images' distances to its own mean.

    The selector flags an image unknown above ``margin ×`` this value; ``margin`` is applied at
    routing time, so it can be changed without refitting. A domain without calibration images gets
    no threshold (``inf``: its images are never unknown).
    """
    thresholds = torch.full((len(letters),), float("inf"))
    for i, letter in enumerate(letters):
        held_out = calibration.get(letter)
        if held_out is None or len(held_out) == 0:
            continue
        distances = mahalanobis(held_out.float(), gaussian)[:, i]
        thresholds[i] = torch.quantile(distances, quantile)
    return thresholds


def fit_selector_state(
    features: Mapping[str, Tensor],
    grid: int = 4,
    classifier_steps: int = 200,
    seed: int = 0,
    descriptor: str = "grid",
    calibration: Mapping[str, Tensor] | None = None,
    shrinkage: float = 0.1,
    quantile: float = 0.99,
    margin: float = 1.0,
) -> dict[str, Any]:
    """From descriptors per domain, the state of every fitted selector (prototype, classifier, gaussian).

    ``calibration`` (held-out descriptors per domain, e.g. the validation split) sets the unknown
    thresholds (``margin`` is the default factor on them, see :class:`~.selector.DomainSelector`);
    without it no image is ever flagged unknown.
    """
    letters = list(features)
    x = torch.cat([features[letter].float() for letter in letters])
    y = torch.cat(
        [torch.full((len(features[letter]),), i, dtype=torch.long) for i, letter in enumerate(letters)]
    )
    gaussian = fit_gaussian({letter: features[letter] for letter in letters}, shrinkage)
    gaussian["threshold"] = calibrate_thresholds(gaussian, letters, calibration or {}, quantile)
    return {
        "letters": letters,
        "margin": float(margin),
        "grid": grid,
        "descriptor": descriptor,
        "prototypes": torch.stack([features[letter].float().mean(0) for letter in letters]),
        "classifier": fit_classifier(x, y, len(letters), classifier_steps, seed),
        "gaussian": gaussian,
    }


@dataclass
class SelectorOptions:
    """The ``selector`` config group's fitting keys (see configs/selector/*.yaml)."""

    name: str = "mahalanobis"
    descriptor: str = "stats"
    grid: int = 4
    max_images: int = 256
    current_split: str = "train"
    calibration_split: str | None = "val"
    calibration_images: int = 256
    shrinkage: float = 0.1
    quantile: float = 0.99
    margin: float = 1.0

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> SelectorOptions:
        known = {f.name for f in fields(cls)}
        node = dict(node or {})
        unknown = sorted(set(node) - known)
        if unknown:
            raise ValueError(f"Unknown selector option(s) {unknown}; known: {sorted(known)}.")
        return cls(**node)


def fit_selector(
    net: Any,
    fit_loaders: Mapping[str, Iterable[Mapping[str, Any]]],
    calibration_loaders: Mapping[str, Iterable[Mapping[str, Any]]],
    options: SelectorOptions,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Encode each domain's fitting and calibration images with ``net`` → the selector state."""
    features = collect_descriptors(
        net, fit_loaders, options.descriptor, options.grid, options.max_images, device
    )
    calibration = collect_descriptors(
        net, calibration_loaders, options.descriptor, options.grid, options.calibration_images, device
    )
    return fit_selector_state(
        features,
        options.grid,
        seed=seed,
        descriptor=options.descriptor,
        calibration=calibration,
        shrinkage=options.shrinkage,
        quantile=options.quantile,
        margin=options.margin,
    )
