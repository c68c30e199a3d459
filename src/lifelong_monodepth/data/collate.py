"""Evaluation batches: ground truth stays at each sample's native size, skipped rows are dropped.

Frames of one dataset need not share a size (raw KITTI drives: 1242×375, 1238×374, …). Images are
all resized to the network input, so they stack; ``depth``/``mask`` stack when every sample has
the same size and are otherwise a list of ``1×H×W`` tensors (one per sample), which the
evaluation code scores sample group by sample group (``evaluation/scoring.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, default_collate

PER_SAMPLE_KEYS = ("depth", "mask")


def eval_collate(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Collate readable samples (``None`` = a row skipped under ``on_error=skip``); ``None`` if none."""
    samples = [sample for sample in samples if sample is not None]
    if not samples:
        return None
    sizes = {tuple(sample["depth"].shape) for sample in samples}
    if len(sizes) == 1:
        return default_collate(samples)
    batch = default_collate([{k: v for k, v in s.items() if k not in PER_SAMPLE_KEYS} for s in samples])
    for key in PER_SAMPLE_KEYS:
        batch[key] = [sample[key] for sample in samples]
    return batch


class SizeGroup(NamedTuple):
    """Samples of a batch whose ground truth has one size: their rows and stacked tensors."""

    rows: torch.Tensor
    depth: torch.Tensor
    mask: torch.Tensor
    frames: torch.Tensor


def size_groups(batch: dict[str, Any]) -> Iterator[SizeGroup]:
    """One :class:`SizeGroup` per ground-truth size of a batch (a single one when it was stacked)."""
    depth, mask = batch["depth"], batch["mask"]
    n = len(depth)
    frames = batch.get("frame")
    if frames is None:  # batches built elsewhere: every sample is its own full frame
        shape = depth[0].shape[-2:]
        frames = torch.tensor([[shape[0], shape[1], 0, 0]] * n, dtype=torch.long)
    if isinstance(depth, torch.Tensor):
        yield SizeGroup(torch.arange(n), depth, mask, frames)
        return
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, target in enumerate(depth):
        by_size.setdefault(tuple(target.shape), []).append(i)
    for rows in by_size.values():
        index = torch.tensor(rows)
        yield SizeGroup(
            index, torch.stack([depth[i] for i in rows]), torch.stack([mask[i] for i in rows]), frames[index]
        )


class EvalDataLoader(DataLoader):
    """A ``DataLoader`` with :func:`eval_collate` that leaves out batches whose rows were all skipped."""

    def __init__(self, dataset: Any, **kwargs: Any) -> None:
        kwargs.setdefault("collate_fn", eval_collate)
        super().__init__(dataset, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        return (batch for batch in super().__iter__() if batch is not None)
