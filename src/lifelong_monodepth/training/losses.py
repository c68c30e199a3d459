"""The method's losses: uncertainty-aware scale-normalised depth loss and head distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Keeps exp(-u) finite if a head's log-variance runs away early in training.
LOG_VAR_CLAMP = 20.0


def upsample_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of a prediction to the ground truth's size (no-op when equal)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def uncertainty_depth_loss(depth: Tensor, log_var: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``mean(exp(-u)·(d/m − d*/m)² + 2u)`` over valid pixels, ``m`` = median of valid ground truth.

    Dividing by the batch median keeps a 6 m and an 80 m domain on one loss scale. A batch with
    no valid pixel gives a zero that is still attached to the graph (no NaN, no crash).
    """
    size = (target.shape[-2], target.shape[-1])
    depth, log_var = upsample_to(depth, size), upsample_to(log_var, size)
    mask = mask & torch.isfinite(target) & (target > 0)
    if not bool(mask.any()):
        return (depth.sum() + log_var.sum()) * 0.0
    valid_target = target[mask]
    median = valid_target.median().clamp_min(1e-6)
    u = log_var[mask].clamp(-LOG_VAR_CLAMP, LOG_VAR_CLAMP)
    error = (depth[mask] / median - valid_target / median) ** 2
    return (torch.exp(-u) * error + 2.0 * u).mean()


def distillation_loss(
    depth: Tensor, log_var: Tensor, teacher_depth: Tensor, teacher_log_var: Tensor
) -> Tensor:
    """``mean(|d/m' − d'/m'| + |u/m'_u − u'/m'_u|)`` with ``'`` the frozen teacher.

    ``m'`` is the teacher's median depth. A log-variance can be zero or negative, so its
    normaliser ``m'_u`` is the median of ``|u'|`` (floored at 1e-3) rather than a plain median.
    """
    median = teacher_depth.detach().median().clamp_min(1e-6)
    median_u = teacher_log_var.detach().abs().median().clamp_min(1e-3)
    depth_term = (depth / median - teacher_depth.detach() / median).abs()
    uncertainty_term = (log_var / median_u - teacher_log_var.detach() / median_u).abs()
    return (depth_term + uncertainty_term).mean()


def feature_distillation_loss(fused: Tensor, teacher_fused: Tensor) -> Tensor:
    """Mean squared difference of the fused maps: keeps the shared representation in place."""
    return F.mse_loss(fused, teacher_fused.detach())
