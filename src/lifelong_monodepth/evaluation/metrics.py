"""Monocular metric-depth error metrics, accumulated over a whole test set.

Two protocols (``configs/evaluation/*.yaml``):

* ``standard``: a pixel is valid when its ground truth is finite, ``> 0``, inside the domain's
  crop and in ``(min_depth, max_depth]`` (each bound only when given); predictions are clamped to
  ``[min_depth, max_depth]`` (the lower bound is at least ``EPS`` so logarithms stay finite).
* ``paper``: what the original code measured: valid means finite ground truth ``> 0``, no crop and
  no cap; predictions are only clamped to ``EPS`` to keep the logarithms finite.

Predictions are never masked: a non-finite prediction on a valid pixel makes the metrics NaN, so a
diverged model cannot look good. With ``median_scaling`` each image's prediction is multiplied by
``median(gt) / median(pred)`` over that image's valid pixels (before clamping, as Monodepth2 does).

``reduction="pixel"`` (default) pools the sums over every valid pixel of the test set, so large
images weigh more and RMSE is ``sqrt`` of the pooled mean squared error; ``reduction="image"``
averages per-image metrics (per-image RMSE, then the mean over images), as e.g. the NYU code of
BTS/AdaBins does. Images without valid pixels contribute nothing in either case, and with no valid
pixel at all every metric is NaN.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torchmetrics import Metric

from lifelong_monodepth.evaluation.crops import CROPS, crop_mask, crop_mask_in_frame

METRIC_NAMES: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "mae",
    "delta1",
    "delta2",
    "delta3",
)
LOWER_IS_BETTER: frozenset[str] = frozenset({"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "mae"})
PROTOCOLS: tuple[str, ...] = ("standard", "paper")
REDUCTIONS: tuple[str, ...] = ("pixel", "image")
EPS = 1e-3
"""Smallest prediction (metres) used in the metrics: keeps ``log`` finite for non-positive outputs."""

# Accumulated sums. Under ``pixel`` they are sums over valid pixels; under ``image`` sums over
# images of per-image means (with ``sq_err``/``log_sq_err`` holding per-image RMSE / RMSE-log).
_SUMS: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "sq_err",
    "log_sq_err",
    "log10",
    "abs_err",
    "delta1",
    "delta2",
    "delta3",
)


def _median(values: torch.Tensor) -> torch.Tensor:
    """Median that averages the two middle values for even counts, like ``numpy.median``."""
    ordered = values.sort().values
    n = ordered.numel()
    return 0.5 * (ordered[(n - 1) // 2] + ordered[n // 2])


def _as_bhw(tensor: torch.Tensor, what: str) -> torch.Tensor:
    if tensor.dim() == 4:
        if tensor.shape[1] != 1:
            raise ValueError(f"{what} must be (B,1,H,W) or (B,H,W), got shape {tuple(tensor.shape)}")
        return tensor[:, 0]
    if tensor.dim() == 3:
        return tensor
    raise ValueError(f"{what} must be (B,1,H,W) or (B,H,W), got shape {tuple(tensor.shape)}")


class DepthMetrics(Metric):
    """AbsRel, SqRel, RMSE, RMSE-log, log10, MAE and δ<1.25^k for metric depth, over a test set.

    States are float64 sums with ``dist_reduce_fx="sum"``, so results do not depend on batch size
    or the number of processes (pooling across ``update`` calls equals one update on everything).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(
        self,
        min_depth: float | None = None,
        max_depth: float | None = None,
        crop: str = "none",
        median_scaling: bool = False,
        protocol: str = "standard",
        reduction: str = "pixel",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if protocol not in PROTOCOLS:
            raise ValueError(f"Unknown evaluation protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"Unknown reduction {reduction!r}; known: {', '.join(REDUCTIONS)}")
        crop = "none" if crop is None else str(crop)
        if crop not in CROPS:
            raise ValueError(f"Unknown evaluation crop {crop!r}; known crops: {', '.join(sorted(CROPS))}")
        if min_depth is not None and max_depth is not None and not min_depth < max_depth:
            raise ValueError(f"min_depth ({min_depth}) must be smaller than max_depth ({max_depth})")
        self.min_depth = None if min_depth is None else float(min_depth)
        self.max_depth = None if max_depth is None else float(max_depth)
        self.crop = crop
        self.median_scaling = bool(median_scaling)
        self.protocol = protocol
        self.reduction = reduction
        for name in (*_SUMS, "count"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    # ------------------------------------------------------------------------------ masking
    def valid_mask(self, target: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Valid pixels of a ``(B,H,W)`` ground truth under this metric's protocol.

        ``frames`` (``B×4``: full height, full width, top, left) places each sample in its camera's
        full frame, where the crop is defined; without it each image is its own full frame.
        """
        valid = torch.isfinite(target) & (target > 0)
        if self.protocol == "paper":
            return valid
        if self.crop != "none":
            height, width = target.shape[-2], target.shape[-1]
            if frames is None:
                valid &= crop_mask(self.crop, height, width, device=target.device)
            else:
                valid &= crop_mask_in_frame(self.crop, height, width, frames, device=target.device)
        if self.min_depth is not None:
            valid &= target > self.min_depth
        if self.max_depth is not None:
            valid &= target <= self.max_depth
        return valid

    def _clamp(self, pred: torch.Tensor) -> torch.Tensor:
        if self.protocol == "paper":
            return pred.clamp(min=EPS)
        low = max(self.min_depth, EPS) if self.min_depth is not None else EPS
        return pred.clamp(min=low, max=self.max_depth)

    # ------------------------------------------------------------------------------- update
    def update(self, pred: torch.Tensor, target: torch.Tensor, frames: torch.Tensor | None = None) -> None:
        """Add a batch; ``pred`` must already be at the ground truth's size (``frames``: see valid_mask)."""
        pred, target = _as_bhw(pred, "pred"), _as_bhw(target, "target")
        if pred.shape != target.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ: resize the prediction "
                "to the ground truth's size before update()"
            )
        pred = pred.detach().to(torch.float64)
        target = target.detach().to(torch.float64)
        valid = self.valid_mask(target, frames)
        counts = valid.flatten(1).sum(1).to(torch.float64)  # (B,)
        if self.median_scaling:
            ratios = torch.ones(pred.shape[0], dtype=torch.float64, device=pred.device)
            for i in range(pred.shape[0]):
                if counts[i] > 0:
                    ratios[i] = _median(target[i][valid[i]]) / _median(pred[i][valid[i]]).clamp_min(EPS)
            pred = pred * ratios[:, None, None]
        pred = self._clamp(pred)
        # Neutral values outside the mask keep every term finite there; the mask zeroes them anyway.
        gt = torch.where(valid, target, torch.ones_like(target))
        pred = torch.where(valid, pred, torch.ones_like(pred))
        diff = pred - gt
        ratio = torch.maximum(pred / gt, gt / pred)
        terms = {
            "abs_rel": diff.abs() / gt,
            "sq_rel": diff.square() / gt,
            "sq_err": diff.square(),
            "log_sq_err": (pred.log() - gt.log()).square(),
            "log10": (pred.log10() - gt.log10()).abs(),
            "abs_err": diff.abs(),
            "delta1": (ratio < 1.25).to(torch.float64),
            "delta2": (ratio < 1.25**2).to(torch.float64),
            "delta3": (ratio < 1.25**3).to(torch.float64),
        }
        weight = valid.to(torch.float64)
        sums = {name: (term * weight).flatten(1).sum(1) for name, term in terms.items()}  # (B,)
        if self.reduction == "pixel":
            for name, per_image in sums.items():
                setattr(self, name, getattr(self, name) + per_image.sum())
            self.count = self.count + counts.sum()
            return
        has_pixels = counts > 0
        denom = counts.clamp_min(1.0)
        for name, per_image in sums.items():
            mean = per_image / denom
            if name in ("sq_err", "log_sq_err"):
                mean = mean.sqrt()
            setattr(self, name, getattr(self, name) + mean[has_pixels].sum())
        self.count = self.count + has_pixels.sum().to(torch.float64)

    # ------------------------------------------------------------------------------ compute
    def compute(self) -> dict[str, torch.Tensor]:
        """Metrics keyed by ``METRIC_NAMES`` (float32 scalars); all NaN when nothing was valid."""
        count = self.count
        if count <= 0:
            nan = torch.tensor(math.nan, dtype=torch.float32, device=count.device)
            return {name: nan.clone() for name in METRIC_NAMES}

        def mean(name: str) -> torch.Tensor:
            return getattr(self, name) / count

        if self.reduction == "pixel":
            rmse, rmse_log = mean("sq_err").sqrt(), mean("log_sq_err").sqrt()
        else:
            rmse, rmse_log = mean("sq_err"), mean("log_sq_err")
        values = {
            "abs_rel": mean("abs_rel"),
            "sq_rel": mean("sq_rel"),
            "rmse": rmse,
            "rmse_log": rmse_log,
            "log10": mean("log10"),
            "mae": mean("abs_err"),
            "delta1": mean("delta1"),
            "delta2": mean("delta2"),
            "delta3": mean("delta3"),
        }
        return {name: values[name].to(torch.float32) for name in METRIC_NAMES}
