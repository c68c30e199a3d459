"""Resolution-independent descriptors of the encoder's feature maps: what every selector compares.

The original code compared whole fused maps and therefore hard-coded one map size per dataset.
Here a map of any size becomes a fixed-length vector:

- ``grid``: the map average-pooled to ``grid × grid`` and flattened (``C·grid²`` values): the
  paper's prototype idea made size-independent. It keeps *where* features are, which mostly
  encodes scene layout; two indoor domains with the same layout (N and S) look alike.
- ``stats``: per-channel mean and standard deviation over all positions (``2·C`` values). The
  standard deviation carries texture and sharpness (S is blurred and noisy, N is not), which
  the spatial means of ``grid`` average away; this separates N from S (docs/results.md).

Which maps are described is the ``levels`` option: ``fused`` (the map the heads see) and/or the
shared encoder's levels ``enc1`` (finest) … ``encL`` (coarsest). The encoder levels are computed by
every forward pass anyway (``MultiDomainDepthNet.encode_levels``), so describing them costs no
second encoder pass; their descriptors are concatenated in the order the option lists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

DESCRIPTORS = ("grid", "stats")
FUSED = "fused"


def pooled_features(fused: Tensor, grid: int = 4) -> Tensor:
    """``(B, C, h, w)`` → ``(B, C·grid²)`` whatever ``h, w``."""
    return F.adaptive_avg_pool2d(fused, grid).flatten(1)


def channel_statistics(fused: Tensor, one_pass: bool | None = None) -> Tensor:
    """``(B, C, h, w)`` → ``(B, 2C)``: each channel's mean then its standard deviation."""
    return torch.cat(_channel_statistics(fused, one_pass), dim=1)


def _channel_statistics(fused: Tensor, one_pass: bool | None = None) -> list[Tensor]:
    """``[mean, std]``, each ``(B, C)``. ``one_pass`` (default: on a GPU) takes both from one
    ``var_mean`` reduction: a GPU routing a small batch is bound by kernel launches (2 here instead
    of 7). On the CPU, E[x²] − E[x]² in two plain reductions is 3–30× faster than torch's variance
    kernels, so it stays the default there."""
    fused = fused.float()
    if fused.is_cuda if one_pass is None else one_pass:
        variance, mean = torch.var_mean(fused, dim=(2, 3), correction=0)
        return [mean, variance.sqrt()]
    mean = fused.mean(dim=(2, 3))
    variance = (fused * fused).mean(dim=(2, 3)) - mean * mean
    return [mean, variance.clamp_min(0).sqrt()]


def needs_encoder_levels(levels: Sequence[str]) -> bool:
    """Whether a ``levels`` option names an encoder level (then routing needs ``encode_levels``)."""
    return any(name != FUSED for name in levels)


ENCODER_LEVELS = 4  # the shared encoder's feature maps (strides 4, 8, 16, 32; models/encoder.py)


def check_levels(levels: Sequence[str], available: int | None = ENCODER_LEVELS) -> list[str]:
    """``levels`` as a list, refused with the valid names when one is misspelt or out of range."""
    levels = [str(name) for name in levels]
    if not levels:
        raise ValueError("selector.levels is empty: list at least one of fused, enc1, enc2, … .")
    for name in levels:
        if name == FUSED:
            continue
        number = name[3:] if name.startswith("enc") else ""
        if not number.isdigit() or int(number) < 1 or (available is not None and int(number) > available):
            known = ", ".join([FUSED] + [f"enc{i + 1}" for i in range(available or ENCODER_LEVELS)])
            raise ValueError(f"Unknown selector level {name!r} in selector.levels; choose from {known}.")
    return levels


def _describe_map(feature: Tensor, descriptor: str, grid: int) -> list[Tensor]:
    """The descriptor's parts (concatenated by the caller, once for all maps: one launch)."""
    if descriptor == "grid":
        return [pooled_features(feature, grid)]
    if descriptor == "stats":
        return _channel_statistics(feature)
    raise ValueError(f"Unknown selector descriptor {descriptor!r}; choose one of {DESCRIPTORS}.")


def describe(
    fused: Tensor,
    descriptor: str = "grid",
    grid: int = 4,
    levels: Sequence[str] = (FUSED,),
    encoder_levels: Sequence[Tensor] | None = None,
) -> Tensor:
    """The descriptor named ``descriptor`` of each image's maps named in ``levels``, concatenated."""
    return describe_sets(fused, descriptor, grid, [levels], encoder_levels)[0]


def describe_sets(
    fused: Tensor,
    descriptor: str,
    grid: int,
    level_sets: Sequence[Sequence[str]],
    encoder_levels: Sequence[Tensor] | None = None,
) -> list[Tensor]:
    """:func:`describe` for several ``levels`` lists at once, each map described once: routing and
    the unknown flag both read the fused map, and on a GPU every repeated reduction is launches."""
    available = ENCODER_LEVELS if encoder_levels is None else len(encoder_levels)
    described: dict[str, list[Tensor]] = {}
    out = []
    for levels in level_sets:
        parts = []
        for name in check_levels(levels, available):
            if name not in described:
                if name != FUSED and encoder_levels is None:
                    raise ValueError(
                        f"selector.levels lists the encoder level {name!r} but only the fused map was "
                        "passed: encode with `net.encode_levels(images)` and pass `levels=` to "
                        "`DomainSelector.route`."
                    )
                feature = fused if name == FUSED else encoder_levels[int(name[3:]) - 1]
                described[name] = _describe_map(feature, descriptor, grid)
            parts.extend(described[name])
        out.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
    return out


@torch.no_grad()
def collect_level_descriptors(
    net: Any,
    loaders: Mapping[str, Iterable[Mapping[str, Any]]],
    descriptor: str,
    grid: int,
    limit: int | None,
    device: torch.device | str = "cpu",
    names: Sequence[str] = (FUSED,),
) -> dict[str, dict[str, Tensor]]:
    """Encode up to ``limit`` images of each domain's loader once (eval mode) → per domain, the
    descriptor of each map in ``names`` on the CPU (:func:`join_levels` concatenates them)."""
    was_training = net.training
    net.eval()
    deep = needs_encoder_levels(names)
    out: dict[str, dict[str, Tensor]] = {}
    for letter, loader in loaders.items():
        chunks: dict[str, list[Tensor]] = {name: [] for name in names}
        seen = 0
        for batch in loader:
            images = batch["image"].to(device)
            fused, encoder_levels = net.encode_levels(images) if deep else (net.encode(images), None)
            for name in names:
                chunks[name].append(describe(fused, descriptor, grid, [name], encoder_levels).cpu())
            seen += len(batch["image"])
            if limit is not None and seen >= limit:
                break
        if seen:
            out[letter] = {name: torch.cat(parts)[:limit] for name, parts in chunks.items()}
    net.train(was_training)
    return out


def join_levels(per_level: Mapping[str, Mapping[str, Tensor]], levels: Sequence[str]) -> dict[str, Tensor]:
    """Per domain, the descriptors of ``levels`` concatenated in that order (as :func:`describe` does)."""
    return {letter: torch.cat([maps[name] for name in levels], dim=1) for letter, maps in per_level.items()}


def collect_descriptors(
    net: Any,
    loaders: Mapping[str, Iterable[Mapping[str, Any]]],
    descriptor: str,
    grid: int,
    limit: int | None,
    device: torch.device | str = "cpu",
    levels: Sequence[str] = (FUSED,),
) -> dict[str, Tensor]:
    """Encode up to ``limit`` images of each domain's loader (eval mode) → descriptors on the CPU."""
    names = list(dict.fromkeys(levels))
    return join_levels(
        collect_level_descriptors(net, loaders, descriptor, grid, limit, device, names), levels
    )
