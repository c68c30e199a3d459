"""Scoring one batch: predictions at network resolution against ground truth at native resolution.

Ground truth may differ in size within a batch (``data/collate.py``); each size group gets the
prediction upsampled to its size, and each sample's crop is placed in its full frame (``frame``).
Under ``evaluation=paper`` a domain's ``paper_eval`` geometry reproduces the original code's test
transform instead: the ground truth resized (nearest) so its short side is ``resize_short``, then
centre-cropped to ``center_crop``; the prediction is upsampled to the resized size and cropped alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong_monodepth.data.collate import size_groups
from lifelong_monodepth.evaluation.metrics import DepthMetrics
from lifelong_monodepth.training.losses import upsample_to


def score_batch(
    metric: DepthMetrics,
    pred: Tensor,
    batch: Mapping[str, Any],
    paper_eval: Mapping[str, Any] | None = None,
    rows: Sequence[int] | None = None,
) -> None:
    """Add a batch to ``metric``; ``pred`` is ``B×1×h×w`` at any resolution.

    ``rows`` limits scoring to those samples of the batch (``pred`` then has ``len(rows)`` items).
    """
    position = {int(r): k for k, r in enumerate(rows)} if rows is not None else None
    for group, target, _, frames in size_groups(dict(batch)):
        if position is not None:
            keep = [k for k, r in enumerate(group.tolist()) if r in position]
            if not keep:
                continue
            pred_rows = torch.tensor([position[int(group[k])] for k in keep], device=pred.device)
            target, frames = target[keep], frames[keep]
        else:
            pred_rows = group.to(pred.device)
        target = target.to(pred.device)
        sample_pred = pred.index_select(0, pred_rows)
        if paper_eval and metric.protocol == "paper":
            sample_pred, target = paper_view(sample_pred, target, paper_eval)
            metric.update(sample_pred, target)
        else:
            metric.update(
                upsample_to(sample_pred, tuple(target.shape[-2:])), target, frames=frames.to(pred.device)
            )


def paper_view(pred: Tensor, target: Tensor, geometry: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
    """The original test geometry: short side → ``resize_short`` (nearest for depth), centre crop.

    Sizes follow PIL as the original ``Scale``/``CenterCrop`` did: the long side is
    ``int(short * long / short_in)`` and the crop corner ``round((size - crop) / 2)``.
    """
    height, width = target.shape[-2:]
    short = geometry.get("resize_short")
    if short:
        if width <= height:
            size = (int(short * height / width), int(short))
        else:
            size = (int(short), int(short * width / height))
        target = F.interpolate(target, size=size, mode="nearest-exact")
    pred = upsample_to(pred, tuple(target.shape[-2:]))
    crop = geometry.get("center_crop")
    if crop:
        crop_h, crop_w = int(crop[0]), int(crop[1])
        top = int(round((target.shape[-2] - crop_h) / 2.0))
        left = int(round((target.shape[-1] - crop_w) / 2.0))
        target = target[..., top : top + crop_h, left : left + crop_w]
        pred = pred[..., top : top + crop_h, left : left + crop_w]
    return pred, target
