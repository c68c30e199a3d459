"""The method's losses: uncertainty-aware scale-normalised depth loss and head distillation.

Every loss runs in float32 with autocast off: under ``bf16-mixed`` the heads' outputs are
bfloat16, and a squared relative error or an ``exp(-u)`` in bfloat16 loses most of its mantissa
(autocast would also cast operand by operand, each cast a kernel of its own). In a float32 run
the casts are no-ops: the arithmetic is unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

LossFn = TypeVar("LossFn", bound=Callable[..., Tensor])

# Keeps exp(-u) finite if a head's log-variance runs away early in training.
LOG_VAR_CLAMP = 20.0


def float32_loss(fn: LossFn) -> LossFn:
    """Run ``fn`` with autocast off and its floating-point tensor arguments in float32."""

    def to_float(value: object) -> object:
        return value.float() if isinstance(value, Tensor) and value.is_floating_point() else value

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> Tensor:
        args = tuple(to_float(a) for a in args)
        kwargs = {k: to_float(v) for k, v in kwargs.items()}
        device = next((a.device.type for a in (*args, *kwargs.values()) if isinstance(a, Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def upsample_to(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize of a prediction to the ground truth's size (no-op when equal)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@float32_loss
def uncertainty_depth_loss(depth: Tensor, log_var: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """``mean(exp(-u)·(d/m − d*/m)² + 2u)`` over valid pixels, ``m`` = median of valid ground truth.

    Dividing by the batch median keeps a 6 m and an 80 m domain on one loss scale. A batch with
    no valid pixel gives a zero that is still attached to the graph (no NaN, no crash).

    On a GPU the same value is computed without host synchronisation (:func:`_masked_loss`):
    selecting the valid pixels by a boolean mask makes the host wait for the device at every
    selection, which stalls a launch-bound step. On the CPU there is nothing to wait for, and the
    selection form (whose summation order the published results were computed with) is kept.
    """
    size = (target.shape[-2], target.shape[-1])
    depth, log_var = upsample_to(depth, size), upsample_to(log_var, size)
    mask = mask & torch.isfinite(target) & (target > 0)
    if depth.device.type != "cpu":
        return _masked_loss(depth, log_var, target, mask)
    if not bool(mask.any()):
        return (depth.sum() + log_var.sum()) * 0.0
    valid_target = target[mask]
    median = valid_target.median().clamp_min(1e-6)
    u = log_var[mask].clamp(-LOG_VAR_CLAMP, LOG_VAR_CLAMP)
    error = (depth[mask] / median - valid_target / median) ** 2
    return (torch.exp(-u) * error + 2.0 * u).mean()


def _masked_loss(depth: Tensor, log_var: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """:func:`uncertainty_depth_loss` as mask-weighted sums: no data-dependent shapes, no host wait.

    ``nanmedian`` over the target with invalid pixels set to NaN is the median of the valid ones
    (both take the lower middle value); a batch without a valid pixel gives 0 through the count.
    """
    weight = mask.to(depth.dtype)
    count = weight.sum()
    safe_target = torch.where(mask, target, torch.ones_like(target))
    median = torch.where(mask, target, torch.full_like(target, float("nan"))).nanmedian()
    median = torch.nan_to_num(median, nan=1.0).clamp_min(1e-6)
    u = log_var.clamp(-LOG_VAR_CLAMP, LOG_VAR_CLAMP)
    error = (depth / median - safe_target / median) ** 2
    return (weight * (torch.exp(-u) * error + 2.0 * u)).sum() / count.clamp_min(1.0)


@float32_loss
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


@float32_loss
def feature_distillation_loss(fused: Tensor, teacher_fused: Tensor) -> Tensor:
    """Mean squared difference of the fused maps: keeps the shared representation in place."""
    return F.mse_loss(fused, teacher_fused.detach())
