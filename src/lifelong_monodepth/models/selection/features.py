"""Resolution-independent descriptors of a fused feature map: what every selector compares.

The original code compared whole fused maps and therefore hard-coded one map size per dataset.
Here a map of any size becomes a fixed-length vector:

- ``grid``: the map average-pooled to ``grid × grid`` and flattened (``C·grid²`` values): the
  paper's prototype idea made size-independent. It keeps *where* features are, which mostly
  encodes scene layout; two indoor domains with the same layout (N and S) look alike.
- ``stats``: per-channel mean and standard deviation over all positions (``2·C`` values). The
  standard deviation carries texture and sharpness (S is blurred and noisy, N is not), which
  the spatial means of ``grid`` average away; this separates N from S (docs/results.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

DESCRIPTORS = ("grid", "stats")


def pooled_features(fused: Tensor, grid: int = 4) -> Tensor:
    """``(B, C, h, w)`` → ``(B, C·grid²)`` whatever ``h, w``."""
    return F.adaptive_avg_pool2d(fused, grid).flatten(1)


def channel_statistics(fused: Tensor) -> Tensor:
    """``(B, C, h, w)`` → ``(B, 2C)``: each channel's mean then its standard deviation."""
    # E[x²] − E[x]² costs two reductions; torch's per-row std is ~8× slower on the CPU.
    mean = fused.mean(dim=(2, 3))
    variance = (fused * fused).mean(dim=(2, 3)) - mean * mean
    return torch.cat([mean, variance.clamp_min(0).sqrt()], dim=1)


def describe(fused: Tensor, descriptor: str = "grid", grid: int = 4) -> Tensor:
    """The descriptor named ``descriptor`` (one of :data:`DESCRIPTORS`) of each image's fused map."""
    if descriptor == "grid":
        return pooled_features(fused, grid)
    if descriptor == "stats":
        return channel_statistics(fused)
    raise ValueError(f"Unknown selector descriptor {descriptor!r}; choose one of {DESCRIPTORS}.")


@torch.no_grad()
def collect_descriptors(
    net: Any,
    loaders: Mapping[str, Iterable[Mapping[str, Any]]],
    descriptor: str,
    grid: int,
    limit: int | None,
    device: torch.device | str = "cpu",
) -> dict[str, Tensor]:
    """Encode up to ``limit`` images of each domain's loader (eval mode) → descriptors on the CPU."""
    was_training = net.training
    net.eval()
    out = {}
    for letter, loader in loaders.items():
        chunks, seen = [], 0
        for batch in loader:
            chunks.append(describe(net.encode(batch["image"].to(device)), descriptor, grid).cpu())
            seen += len(batch["image"])
            if limit is not None and seen >= limit:
                break
        if chunks:
            out[letter] = torch.cat(chunks)[:limit]
    net.train(was_training)
    return out
