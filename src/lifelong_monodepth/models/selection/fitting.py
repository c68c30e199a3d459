"""Fitting a selector's state from descriptors of each learned domain's images (at each stage end).

The state is plain tensors and lists (kilobytes: a few centroids, one ``D×D`` precision matrix,
a linear layer), stored in the stage checkpoint, so inference needs no image of any domain.

- prototypes: the mean descriptor of each domain (the paper).
- classifier: a linear softmax classifier on standardised descriptors.
- gaussian: each domain a Gaussian with its own mean and one shared ("tied") covariance, shrunk
  towards a scaled identity because a few hundred images cannot estimate ``D×D`` entries
  (Ledoit–Wolf style). Routing by the smallest Mahalanobis distance is linear discriminant
  analysis; the same distance, compared with a per-domain threshold calibrated on held-out
  images of that domain, says "none of my domains" (unknown). With ``rank`` the covariance keeps
  its ``rank`` leading principal directions and one variance for the rest (probabilistic PCA),
  so the state grows as ``D·rank`` instead of ``D²`` for long descriptors (encoder levels).
- thresholds: a quantile of held-out distances of each domain: its calibration split's images
  and, with ``calibration_folds``, every fitting image's distance under a Gaussian fitted without
  it (k-fold cross-fitting), so the quantile rests on hundreds of images instead of a few dozen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong_monodepth.models.selection.features import (
    FUSED,
    check_levels,
    collect_level_descriptors,
    join_levels,
)


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


def fit_gaussian(
    features: Mapping[str, Tensor],
    shrinkage: float = 0.1,
    rank: int | None = None,
    own_covariance: float = 0.0,
) -> dict[str, Tensor]:
    """Per-domain means and one shrunk, shared covariance on standardised features.

    Stored as its inverse (``precision``, ``D×D``) or, when ``rank < D``, as its ``rank`` leading
    eigenvectors (``components``), their variances and the mean variance of the remaining directions
    (``residual``); both shrink every variance towards the mean variance by ``shrinkage``.

    ``own_covariance = w > 0`` gives each domain its own covariance instead, ``w ×`` its own plus
    ``(1 − w) ×`` the shared one, shrunk the same way (``precisions``, ``L×D×D``; full rank only).
    A domain's spread differs from the pooled one (an indoor domain varies along directions the
    outdoor one does not): under the shared covariance its own images in those directions look far
    away, which makes the unknown flag's threshold sit in a heavy tail.
    """
    if not 0.0 < shrinkage <= 1.0:
        raise ValueError(f"selector.shrinkage must be in (0, 1], got {shrinkage}")
    if rank is not None and rank < 1:
        raise ValueError(f"selector.rank must be a positive number of components or null, got {rank}")
    if not 0.0 <= own_covariance <= 1.0:
        raise ValueError(f"selector.unknown_own_covariance must be in [0, 1], got {own_covariance}")
    if own_covariance > 0 and rank is not None and rank < len(next(iter(features.values()))[0]):
        raise ValueError(
            "selector.unknown_own_covariance > 0 needs a full covariance: set selector.unknown_rank: null."
        )
    parts = [features[letter].double() for letter in features]
    x = torch.cat(parts)
    mean = x.mean(0)
    scale = x.std(0).clamp_min(1e-6) if len(x) > 1 else torch.ones_like(mean)
    z = [(part - mean) / scale for part in parts]
    centroids = torch.stack([zi.mean(0) for zi in z])
    deviations = [zi - zi.mean(0) for zi in z]
    residuals = torch.cat(deviations)
    dof = max(len(residuals) - len(parts), 1)
    covariance = residuals.T @ residuals / dof
    state = {"mean": mean.float(), "scale": scale.float(), "centroids": centroids.float()}
    dim = len(mean)
    if own_covariance > 0:
        own = [d.T @ d / max(len(d) - 1, 1) for d in deviations]
        state["precisions"] = torch.stack(
            [shrunk_inverse(own_covariance * c + (1 - own_covariance) * covariance, shrinkage) for c in own]
        ).float()
        return state
    if rank is None or rank >= dim:
        state["precision"] = shrunk_inverse(covariance, shrinkage).float()
        return state
    average = covariance.diagonal().mean().clamp_min(1e-6)  # the shrinkage target's variance
    values, vectors = torch.linalg.eigh(covariance)  # ascending
    values = values.clamp_min(0)
    rest = values[: dim - rank].sum() / (dim - rank)
    state["components"] = vectors[:, dim - rank :].T.contiguous().float()
    state["variances"] = ((1 - shrinkage) * values[dim - rank :] + shrinkage * average).float()
    state["residual"] = ((1 - shrinkage) * rest + shrinkage * average).reshape(1).float()
    return state


def shrunk_inverse(covariance: Tensor, shrinkage: float) -> Tensor:
    """Inverse of the covariance with every variance pulled towards their mean by ``shrinkage``."""
    average = covariance.diagonal().mean().clamp_min(1e-6)
    target = average * torch.eye(len(covariance), dtype=covariance.dtype)
    return torch.linalg.inv((1 - shrinkage) * covariance + shrinkage * target)


def mahalanobis(features: Tensor, gaussian: Mapping[str, Tensor]) -> Tensor:
    """``(B, D)`` → ``(B, L)`` squared Mahalanobis distance to each domain's mean."""
    g = {key: value.to(features) for key, value in gaussian.items() if isinstance(value, Tensor)}
    diff = ((features - g["mean"]) / g["scale"])[:, None, :] - g["centroids"][None]
    if "precisions" in g:  # one covariance per domain (``own_covariance``)
        return torch.einsum("bld,lde,ble->bl", diff, g["precisions"], diff)
    if "precision" in g:
        return torch.einsum("bld,de,ble->bl", diff, g["precision"], diff)
    projected = diff @ g["components"].T  # (B, L, rank)
    squared = projected.pow(2)
    rest = (diff.pow(2).sum(-1) - squared.sum(-1)).clamp_min(0)
    return (squared / g["variances"]).sum(-1) + rest / g["residual"]


def calibrate_thresholds(
    gaussian: Mapping[str, Tensor],
    letters: list[str],
    calibration: Mapping[str, Tensor],
    quantile: float = 0.99,
    extra: Mapping[str, Tensor] | None = None,
) -> Tensor:
    """Per domain: the ``quantile`` of its held-out images' distances to its own mean.

    ``calibration`` holds descriptors scored with ``gaussian``; ``extra`` holds distances already
    computed elsewhere (the cross-fitted ones of :func:`cross_fitted_distances`). The selector flags
    an image unknown above ``margin ×`` this value; ``margin`` is applied at routing time, so it can
    be changed without refitting. A domain without held-out images gets no threshold (``inf``: its
    images are never unknown).
    """
    thresholds = torch.full((len(letters),), float("inf"))
    for i, letter in enumerate(letters):
        parts = []
        held_out = calibration.get(letter)
        if held_out is not None and len(held_out):
            parts.append(mahalanobis(held_out.float(), gaussian)[:, i])
        if extra is not None and letter in extra and len(extra[letter]):
            parts.append(extra[letter].float())
        if parts:
            thresholds[i] = torch.quantile(torch.cat(parts), quantile)
    return thresholds


def cross_fitted_distances(
    features: Mapping[str, Tensor],
    folds: int,
    shrinkage: float,
    rank: int | None,
    own_covariance: float = 0.0,
) -> dict[str, Tensor]:
    """Each fitting image's distance to its domain's mean under a Gaussian fitted without its fold.

    Distances of the images a Gaussian was fitted on are optimistic (the tail is underestimated);
    out-of-fold distances behave like new images of the domain, and every fitting image gives one.
    """
    letters = list(features)
    out: dict[str, list[Tensor]] = {letter: [] for letter in letters}
    for fold in range(folds):
        kept, held = {}, {}
        for letter in letters:
            rows = torch.arange(len(features[letter]))
            kept[letter] = features[letter][rows % folds != fold]
            held[letter] = features[letter][rows % folds == fold]
        if any(len(part) < 2 for part in kept.values()):
            continue
        gaussian = fit_gaussian(kept, shrinkage, rank, own_covariance)
        for i, letter in enumerate(letters):
            if len(held[letter]):
                out[letter].append(mahalanobis(held[letter].float(), gaussian)[:, i])
    return {letter: torch.cat(parts) for letter, parts in out.items() if parts}


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
    levels: Sequence[str] = (FUSED,),
    rank: int | None = None,
    calibration_folds: int = 0,
) -> dict[str, Any]:
    """From descriptors per domain, the state of every fitted selector (prototype, classifier, gaussian).

    ``calibration`` (held-out descriptors per domain, e.g. the validation split) and, with
    ``calibration_folds > 1``, the cross-fitted distances of the fitting images set the unknown
    thresholds (``margin`` is the default factor on them, see :class:`~.selector.DomainSelector`);
    without either no image is ever flagged unknown.
    """
    letters = list(features)
    x = torch.cat([features[letter].float() for letter in letters])
    y = torch.cat(
        [torch.full((len(features[letter]),), i, dtype=torch.long) for i, letter in enumerate(letters)]
    )
    gaussian = fit_gaussian({letter: features[letter] for letter in letters}, shrinkage, rank)
    extra = (
        cross_fitted_distances(features, calibration_folds, shrinkage, rank)
        if calibration_folds > 1
        else None
    )
    gaussian["threshold"] = calibrate_thresholds(gaussian, letters, calibration or {}, quantile, extra)
    return {
        "letters": letters,
        "margin": float(margin),
        "grid": grid,
        "descriptor": descriptor,
        "levels": list(levels),
        "prototypes": torch.stack([features[letter].float().mean(0) for letter in letters]),
        "classifier": fit_classifier(x, y, len(letters), classifier_steps, seed),
        "gaussian": gaussian,
    }


@dataclass
class SelectorOptions:
    """The ``selector`` config group's fitting keys (see configs/selector/*.yaml)."""

    name: str = "mahalanobis"
    descriptor: str = "stats"
    levels: list[str] = field(default_factory=lambda: [FUSED])
    unknown_levels: list[str] | None = None  # the unknown flag's own descriptor (null: levels')
    unknown_rank: int | None = None  # its covariance rank (null: full)
    unknown_own_covariance: float = 0.0  # weight of each domain's own covariance in its own (0: shared)
    grid: int = 4
    max_images: int = 256
    current_split: str = "train"
    calibration_split: str | None = "val"
    calibration_images: int = 256
    calibration_folds: int = 0
    shrinkage: float = 0.1
    rank: int | None = None
    quantile: float = 0.99
    margin: float = 1.0

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> SelectorOptions:
        known = {f.name for f in fields(cls)}
        node = dict(node or {})
        unknown = sorted(set(node) - known)
        if unknown:
            raise ValueError(f"Unknown selector option(s) {unknown}; known: {sorted(known)}.")
        options = cls(**node)
        options.levels = check_levels(list(options.levels))
        if options.unknown_levels is not None:
            options.unknown_levels = check_levels(list(options.unknown_levels))
        return options

    @property
    def separate_unknown(self) -> bool:
        """Whether the unknown flag has its own Gaussian: it reads other maps than routing does, or it
        gives each domain its own covariance (``unknown_own_covariance``)."""
        other_maps = self.unknown_levels is not None and list(self.unknown_levels) != list(self.levels)
        return other_maps or self.unknown_own_covariance > 0


def fit_selector(
    net: Any,
    fit_loaders: Mapping[str, Iterable[Mapping[str, Any]]],
    calibration_loaders: Mapping[str, Iterable[Mapping[str, Any]]],
    options: SelectorOptions,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Encode each domain's fitting and calibration images with ``net`` (once) → the selector state."""
    names = list(dict.fromkeys([*options.levels, *(options.unknown_levels or [])]))
    features = collect_level_descriptors(
        net, fit_loaders, options.descriptor, options.grid, options.max_images, device, names
    )
    calibration = collect_level_descriptors(
        net,
        calibration_loaders,
        options.descriptor,
        options.grid,
        options.calibration_images,
        device,
        names,
    )
    return fit_state_from_descriptors(features, calibration, options, seed)


def fit_state_from_descriptors(
    features: Mapping[str, Mapping[str, Tensor]],
    calibration: Mapping[str, Mapping[str, Tensor]],
    options: SelectorOptions,
    seed: int = 0,
) -> dict[str, Any]:
    """The selector state from per-level descriptors (``{letter: {level: (N, d)}}``, see
    ``collect_level_descriptors``): the fitting step of :func:`fit_selector`."""
    state = fit_selector_state(
        join_levels(features, options.levels),
        options.grid,
        seed=seed,
        descriptor=options.descriptor,
        calibration=join_levels(calibration, options.levels),
        shrinkage=options.shrinkage,
        quantile=options.quantile,
        margin=options.margin,
        levels=options.levels,
        rank=options.rank,
        calibration_folds=options.calibration_folds,
    )
    if options.separate_unknown:
        unknown_levels = options.unknown_levels or options.levels
        state["unknown"] = fit_unknown_state(
            join_levels(features, unknown_levels),
            join_levels(calibration, unknown_levels),
            unknown_levels,
            options,
        )
    return state


def fit_unknown_state(
    features: Mapping[str, Tensor],
    calibration: Mapping[str, Tensor],
    levels: Sequence[str],
    options: SelectorOptions,
) -> dict[str, Any]:
    """A Gaussian (with thresholds) on the unknown flag's own descriptor; routing keeps its own."""
    letters = list(features)
    own = options.unknown_own_covariance
    gaussian = fit_gaussian(features, options.shrinkage, options.unknown_rank, own)
    extra = (
        cross_fitted_distances(
            features, options.calibration_folds, options.shrinkage, options.unknown_rank, own
        )
        if options.calibration_folds > 1
        else None
    )
    gaussian["threshold"] = calibrate_thresholds(gaussian, letters, calibration, options.quantile, extra)
    return {"levels": list(levels), "gaussian": gaussian}
