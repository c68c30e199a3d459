"""The fused training step: one shared-encoder pass over the current batch and every replay batch.

A step of stage 3 used to run the encoder three times (current batch, then each old domain's
replay batch): three sets of small kernels where one set over the stacked images does the same
arithmetic. :func:`encode_batches` stacks every batch of one input size and encodes the stack
once, then hands back one slice per batch.

BatchNorm is the one layer that couples the images of a batch: in training mode it normalises
with the batch's statistics. So that the fused step computes exactly what separate passes did,
:func:`per_segment_batch_norm` makes training-mode BatchNorm normalise (and update its running
statistics) segment by segment during the fused pass. The convolutions, which are the cost, run
once over the stack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong_monodepth.models.network import MultiDomainDepthNet, NetOutput


@contextlib.contextmanager
def per_segment_batch_norm(sizes: Sequence[int]) -> Iterator[None]:
    """Training-mode BatchNorm inside the block uses each segment's own statistics.

    ``sizes`` are the batch sizes stacked along dimension 0. A call whose batch is not the stack
    (or in eval mode) is passed through unchanged. Running statistics are updated once per
    segment, in stack order: the same as separate passes in that order.
    """
    sizes = [int(s) for s in sizes]
    total = sum(sizes)
    original: Callable[..., Tensor] = F.batch_norm

    def batch_norm(
        input: Tensor,
        running_mean: Tensor | None,
        running_var: Tensor | None,
        weight: Tensor | None = None,
        bias: Tensor | None = None,
        training: bool = False,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> Tensor:
        if not training or len(sizes) < 2 or input.shape[0] != total:
            return original(input, running_mean, running_var, weight, bias, training, momentum, eps)
        return torch.cat(
            [
                original(part, running_mean, running_var, weight, bias, training, momentum, eps)
                for part in input.split(sizes)
            ]
        )

    F.batch_norm = batch_norm  # nn.BatchNorm2d and timm's BatchNormAct2d look it up at call time
    try:
        yield
    finally:
        F.batch_norm = original


def _stacked_passes(
    run: Callable[[Tensor], Any], batches: Sequence[Tensor], fuse: bool, segment_bn: bool
) -> list[Any]:
    """``run`` on every batch, with one call per distinct input size (outputs split back per batch).

    ``run`` returns a tensor or a list of tensors (e.g. the encoder's levels), each with the batch
    first. ``fuse=False`` calls it once per batch; ``segment_bn`` keeps training-mode BatchNorm
    normalising each batch of a stack on its own (:func:`per_segment_batch_norm`).
    """
    if not fuse:
        return [run(images) for images in batches]
    out: list[Any] = [None] * len(batches)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, images in enumerate(batches):
        groups.setdefault((tuple(images.shape[1:]), images.dtype, images.device), []).append(i)
    for members in groups.values():
        if len(members) == 1:
            out[members[0]] = run(batches[members[0]])
            continue
        sizes = [batches[i].shape[0] for i in members]
        context = per_segment_batch_norm(sizes) if segment_bn else contextlib.nullcontext()
        with context:
            result = run(torch.cat([batches[i] for i in members]))
        if isinstance(result, Tensor):
            for i, part in zip(members, result.split(sizes), strict=True):
                out[i] = part
        else:
            parts = [level.split(sizes) for level in result]
            for k, i in enumerate(members):
                out[i] = [part[k] for part in parts]
    return out


def encode_batches(
    net: MultiDomainDepthNet, batches: Sequence[Tensor], fuse: bool = True, segment_bn: bool = True
) -> list[Tensor]:
    """Fused features of every batch, with one encoder pass per distinct input size.

    ``fuse=False`` runs one pass per batch (the reference the fused step is tested against).
    ``segment_bn=False`` lets BatchNorm see the whole stack (used under ``torch.compile``, where
    stacking is only done when no shared BatchNorm is in training mode, see :func:`stack_is_exact`).
    """
    return _stacked_passes(net.encode, batches, fuse, segment_bn)


def stack_is_exact(net: MultiDomainDepthNet) -> bool:
    """True when no shared BatchNorm is in training mode: a plain stacked pass is then exact."""
    return batch_norm_frozen(net.encoder) and batch_norm_frozen(net.fusion)


def batch_norm_frozen(module: torch.nn.Module) -> bool:
    """True when no BatchNorm inside is in training mode: the module is then per-sample."""
    return not any(
        m.training for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    )


def encoder_features(
    net: MultiDomainDepthNet, batches: Sequence[Tensor], fuse: bool = True, segment_bn: bool = True
) -> list[list[Tensor]]:
    """Encoder feature levels of every batch (no fusion), stacked like :func:`encode_batches`."""
    return _stacked_passes(net.features, batches, fuse, segment_bn)


def half_size(images: Tensor) -> tuple[int, int]:
    """The fused map's size for an input batch (half resolution)."""
    return (images.shape[-2] // 2, images.shape[-1] // 2)


def encode_split(
    net: MultiDomainDepthNet,
    batches: Sequence[Tensor],
    domains: Sequence[str | Sequence[str] | None],
    fuse: bool = True,
    segment_bn: bool = True,
    frozen: str = "none",
) -> tuple[list[Tensor], list[list[Tensor]]]:
    """One (stacked) encoder pass, then each batch fused on its own under its domain(s).

    Used when the fusion depends on the domain (``domain_bn``: a stacked fusion pass would mix the
    domains' BatchNorm sets) and during the head warm-up (``frozen``: ``encoder`` runs the encoder
    without gradients, ``all`` the fusion too). Returns the fused maps and the encoder features.
    """
    no_grad_encoder = torch.no_grad() if frozen in ("encoder", "all") else contextlib.nullcontext()
    with no_grad_encoder:
        features = encoder_features(net, batches, fuse=fuse, segment_bn=segment_bn)
    no_grad_fusion = torch.no_grad() if frozen == "all" else contextlib.nullcontext()
    with no_grad_fusion:
        fused = [
            net.fuse(levels, half_size(images), letters)
            for levels, images, letters in zip(features, batches, domains, strict=True)
        ]
    return fused, features


class StepHeads:
    """Each head run once per step on every feature map the strategies asked of it.

    In stage 3 an old head reads two maps: its replay batch (replay loss) and the current batch
    (distillation student). With the head's BatchNorm frozen (``model.freeze_old_head_bn``, the
    default) a head is per-sample, so one call on the concatenation computes exactly what two
    calls did, with half the calls. A head whose BatchNorm is in training mode would normalise
    the concatenation with mixed statistics: it keeps one call per map, run when asked, in the
    same order as before.
    """

    def __init__(self, net: MultiDomainDepthNet, fuse: bool = True) -> None:
        self.net = net
        self.fuse = fuse
        self._requests: dict[str, list[Tensor]] = {}
        self._outputs: dict[tuple[str, int], tuple[Tensor, Tensor, Tensor]] = {}

    def request(self, letter: str, features: Tensor) -> None:
        maps = self._requests.setdefault(letter, [])
        if not any(m is features for m in maps):
            maps.append(features)

    def _shareable(self, letter: str) -> bool:
        """A head whose outputs may be shared between requests: sharing is on and it is per-sample."""
        return self.fuse and letter in self.net.heads and batch_norm_frozen(self.net.heads[letter])

    def run(self) -> None:
        """One call per head on its concatenated maps, where that is exact (see the class)."""
        for letter, maps in self._requests.items():
            if len(maps) < 2 or not self._shareable(letter):
                continue
            if len({(tuple(m.shape[1:]), m.dtype, m.device) for m in maps}) > 1:
                continue
            sizes = [int(m.shape[0]) for m in maps]
            depth, log_var = self.net.heads[letter](torch.cat(maps))
            for m, d, u in zip(maps, depth.split(sizes), log_var.split(sizes), strict=True):
                self._outputs[(letter, id(m))] = (m, d, u)

    def __call__(self, features: Tensor, domains: Sequence[str]) -> NetOutput:
        """Like ``net.run_heads``: outputs computed by :meth:`run` where there are, else a call now."""
        out = NetOutput(fused=features)
        for letter in domains:
            hit = self._outputs.get((letter, id(features)))
            if hit is not None and hit[0] is features:
                out.depth[letter], out.log_var[letter] = hit[1], hit[2]
            else:
                single = self.net.run_heads(features, [letter])
                out.depth[letter], out.log_var[letter] = single.depth[letter], single.log_var[letter]
                if self._shareable(letter):  # a second strategy asking for the same map gets this call
                    self._outputs[(letter, id(features))] = (features, out.depth[letter], out.log_var[letter])
        return out
