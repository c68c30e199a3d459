"""Optional ``torch.compile`` of the network (``model.compile=true``), with a clean eager fallback.

Training and evaluation compile the parts in place (``nn.Module.compile``: the state dict keeps
its keys, so checkpoints do not change). Batch-1 inference on CUDA can additionally use CUDA
graphs (``mode="reduce-overhead"``): at batch 1 the network is launch-bound, and a graph
replays every kernel of the forward pass with one launch.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from lifelong_monodepth.models.network import MultiDomainDepthNet

log = logging.getLogger(__name__)


def compile_unavailable_reason(device: torch.device | str = "cpu") -> str | None:
    """Why ``torch.compile`` cannot run here, or ``None`` when it can."""
    device = torch.device(device)
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    if sys.platform == "win32":
        return "torch.compile is not supported on Windows"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed (needed by the CUDA compiler backend)"
    compiler = os.environ.get("CXX")
    if not any(shutil.which(name) for name in filter(None, (compiler, "g++", "c++", "clang++"))):
        return "no C++ compiler on PATH (needed by the CPU compiler backend; install g++)"
    return None


def _options(options: bool | Mapping[str, Any] | None) -> dict[str, Any]:
    if isinstance(options, Mapping):
        return {k: v for k, v in options.items() if k != "enabled" and v is not None}
    return {}


def compile_network(net: MultiDomainDepthNet, options: bool | Mapping[str, Any] | None = True) -> bool:
    """Compile encoder, fusion and every head in place; ``False`` (and a warning) when unavailable.

    Heads added later are compiled by the next call (the module calls this at every stage's
    setup). A graph that fails to compile at its first call falls back to eager with a warning
    (``suppress_errors``) rather than stopping a long run.
    """
    if isinstance(options, Mapping) and not options.get("enabled", True):
        return False
    device = next(net.parameters()).device
    reason = compile_unavailable_reason(device)
    if reason is not None:
        warnings.warn(f"model.compile=true but {reason}: running eagerly.", RuntimeWarning, stacklevel=2)
        return False
    import torch._dynamo

    torch._dynamo.config.suppress_errors = True
    kwargs = _options(options)
    for part in (net.encoder, net.fusion, *net.heads.values()):
        if getattr(part, "_compiled_call_impl", None) is None:
            part.compile(**kwargs)
    return True


class HeadPredictor(nn.Module):
    """Images → metric depth of one head (at half resolution): what batch-1 inference runs."""

    def __init__(self, net: MultiDomainDepthNet, letter: str) -> None:
        super().__init__()
        self.net = net
        self.letter = letter

    def forward(self, images: Tensor) -> Tensor:
        return self.net.heads[self.letter](self.net.encode(images, self.letter))[0]


def compiled_predictor(net: MultiDomainDepthNet, letter: str, mode: str | None = None) -> nn.Module:
    """A compiled one-head predictor; on CUDA ``mode`` defaults to CUDA graphs (``reduce-overhead``).

    Falls back to the eager predictor (with a warning) where compilation is unavailable.
    """
    predictor = HeadPredictor(net, letter).eval()
    device = next(net.parameters()).device
    reason = compile_unavailable_reason(device)
    if reason is not None:
        warnings.warn(
            f"compiled inference unavailable ({reason}): running eagerly.", RuntimeWarning, stacklevel=2
        )
        return predictor
    if mode is None:
        mode = "reduce-overhead" if device.type == "cuda" else "default"
    return torch.compile(predictor, mode=mode, dynamic=False)
