"""``python -m lifelong_monodepth.convert NKS.pth.tar --domains NKS --out NKS.ckpt``: original checkpoints.

The original Lifelong-MonoDepth release ships one ``<order>.pth.tar`` per learning order, a
``{"state_dict": ...}`` of its network (possibly with DataParallel's ``module.`` prefix):

* ``E.*``: a torchvision ResNet-34 without its classifier (``conv1``, ``bn1``, ``layer1`` … ``layer4``);
* ``MFF.*``: the multi-scale fusion: per level ``att<i>`` (avg-pool, 1×1 conv, ReLU, 1×1 conv, sigmoid;
  no biases) and ``up<i>`` (5×5 conv ``conv1`` + ``bn1`` to 16 channels, corner-aligned upsampling to
  half the input size), then ``conv`` + ``bn`` (5×5, 64 channels);
* ``task<t>.{depth,uncertainty}.*``: one predictor per domain in learning order, each branch a 5×5
  ``conv0`` + ``bn0`` + ReLU and a 5×5 ``conv2`` to one channel (with bias), depth in metres unsquashed.

This maps every tensor onto this project's network built as in ``experiment=paper_real`` (timm
``resnet34``, ``fusion.se_bias=false``, ``fusion.align_corners=true``, ``head.output=linear``), with the
domains' depth ranges, input sizes and crops from the composed config (``benchmark=real`` by default),
and writes a checkpoint that ``python run.py mode=test ckpt=<out> benchmark=real`` evaluates. The mapping
is checked both ways: every tensor of the file lands and every tensor of the network is covered.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

#: Config overrides that make this project's network the original one (see experiment/paper_real.yaml).
ORIGINAL_OVERRIDES = ("experiment=paper_real", "model.net.encoder.pretrained=false")
_WRAPPERS = ("module.",)
_TASK = re.compile(r"^task(\d+)\.(depth|uncertainty)\.(conv0|bn0|conv2)\.(.+)$")
_ATT = re.compile(r"^MFF\.att([1-4])\.([13])\.weight$")
_UP = re.compile(r"^MFF\.up([1-4])\.(conv1|bn1)\.(.+)$")
_FUSE = re.compile(r"^MFF\.(conv|bn)\.(.+)$")
_BRANCH_PART = {"conv0": "0.0", "bn0": "0.1", "conv2": "1"}


class ConversionError(Exception):
    """The file is not an original Lifelong-MonoDepth checkpoint, or does not fit the domains given."""


def looks_original(state: Mapping[str, Any]) -> bool:
    """True for a state dict in the original key layout (``E.*``, ``MFF.*``, ``task0.*``)."""
    keys = [_strip(key) for key in state]
    return any(k.startswith("E.") for k in keys) and any(k.startswith("MFF.") for k in keys)


def _strip(key: str) -> str:
    for prefix in _WRAPPERS:
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def original_key_map(keys: Sequence[str], letters: str) -> dict[str, str]:
    """Original key → this project's key (``MultiDomainDepthNet`` names) for every key of the file.

    ``letters`` names the domains of ``task0``, ``task1``, … in learning order. A key without a rule
    raises, so nothing in the file can be silently dropped.
    """
    mapping: dict[str, str] = {}
    for original in keys:
        key = _strip(original)
        if key.startswith("E."):
            target = "encoder.model." + key[2:]
        elif match := _ATT.match(key):
            target = f"fusion.attention.{int(match[1]) - 1}.gate.{match[2]}.weight"
        elif match := _UP.match(key):
            target = f"fusion.project.{int(match[1]) - 1}.{0 if match[2] == 'conv1' else 1}.{match[3]}"
        elif match := _FUSE.match(key):
            target = f"fusion.fuse.{0 if match[1] == 'conv' else 1}.{match[2]}"
        elif match := _TASK.match(key):
            task = int(match[1])
            if task >= len(letters):
                raise ConversionError(
                    f"the file has a predictor task{task} but --domains {letters!r} names only "
                    f"{len(letters)} domain(s): give one letter per learned domain, in learning order."
                )
            target = f"heads.{letters[task]}.{match[2]}_branch.{_BRANCH_PART[match[3]]}.{match[4]}"
        else:
            raise ConversionError(f"no mapping rule for key {original!r}: is this an original checkpoint?")
        mapping[original] = target
    tasks = {int(m[1]) for k in keys if (m := _TASK.match(_strip(k)))}
    if tasks != set(range(len(letters))):
        raise ConversionError(
            f"--domains {letters!r} names {len(letters)} domain(s) but the file has predictors "
            f"{sorted(f'task{t}' for t in tasks)}: give one letter per predictor, in learning order."
        )
    return mapping


def read_original(path: Path, trust: bool = False) -> dict[str, Tensor]:
    """The state dict of an original ``.pth.tar`` (``weights_only`` unless ``trust``)."""
    if not path.is_file():
        raise ConversionError(f"{path} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust)
    except Exception as err:
        raise ConversionError(
            f"cannot read {path} safely ({type(err).__name__}: {err}). If you trust the file, pass --trust "
            "(it is then unpickled with arbitrary code execution allowed)."
        ) from err
    state = obj.get("state_dict", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ConversionError(f"{path} holds no state dict (a mapping of names to tensors).")
    if not looks_original(state):
        raise ConversionError(
            f"{path} is not in the original Lifelong-MonoDepth layout (no E.* and MFF.* keys); "
            f"first keys: {list(state)[:5]}."
        )
    return dict(state)


def compose(overrides: Sequence[str] = ()) -> Any:
    """The project's config with the original network (``experiment=paper_real``) and ``overrides``."""
    import os

    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from lifelong_monodepth.cli.main import config_dir, register_resolvers

    os.environ.setdefault("LMD_ROOT", str(Path.cwd()))
    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose("config", overrides=[*ORIGINAL_OVERRIDES, "benchmark=real", *overrides])


def convert(
    state: Mapping[str, Tensor], letters: str, net_cfg: Mapping[str, Any], domains: Mapping[str, Any]
) -> Any:
    """A ``LifelongDepthModule`` holding the original weights (heads ``letters`` in learning order)."""
    from lifelong_monodepth.training.module import LifelongDepthModule

    module = LifelongDepthModule(net=dict(net_cfg))
    for letter in letters:
        if letter not in domains:
            raise ConversionError(
                f"--domains has letter {letter!r} but the config knows {''.join(sorted(domains))}; "
                "choose the benchmark whose domains the checkpoint learned (--override benchmark=...)."
            )
        module.add_domain(domains[letter])
    module.mark_learned(list(letters))
    target = module.net.state_dict()
    mapping = original_key_map(list(state), letters)
    new_state: dict[str, Tensor] = {}
    for key, tensor in state.items():
        name = mapping[key]
        if name not in target:
            raise ConversionError(f"{key} maps to {name}, which the network does not have.")
        if tuple(tensor.shape) != tuple(target[name].shape):
            raise ConversionError(
                f"shape mismatch: {key} {tuple(tensor.shape)} -> {name} {tuple(target[name].shape)}; "
                "the network config differs from the original (see experiment/paper_real.yaml)."
            )
        new_state[name] = tensor
    # Buffers that are this project's own: normalisation, per-head range, BN step counters (no effect).
    own = ("input_mean", "input_std")
    missing = [
        k
        for k in target
        if k not in new_state and k not in own and not k.endswith(("depth_range", "num_batches_tracked"))
    ]
    if missing:
        raise ConversionError(f"the file does not cover {len(missing)} network tensors: {missing[:8]}")
    module.net.load_state_dict(new_state, strict=False)
    return module


def save(module: Any, path: Path, source: Path) -> Path:
    """Write a checkpoint as ``run.py`` does (``state_dict``, ``hyper_parameters``, ``lifelong``)."""
    import pytorch_lightning as pl

    from lifelong_monodepth.utils.io import atomic_write

    checkpoint: dict[str, Any] = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "pytorch-lightning_version": pl.__version__,
        "epoch": 0,
        "global_step": 0,
        "converted_from": str(source),
    }
    module.on_save_checkpoint(checkpoint)
    return atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lifelong_monodepth.convert",
        description="Convert an original Lifelong-MonoDepth checkpoint (<order>.pth.tar) into a checkpoint "
        "of this project, evaluated with `python run.py mode=test ckpt=<out> benchmark=real`.",
    )
    parser.add_argument("checkpoint", type=Path, help="the original file, e.g. NKS.pth.tar")
    parser.add_argument(
        "--domains", required=True, help="domain letters of task0, task1, … in learning order (e.g. NKS)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint to write, e.g. NKS.ckpt")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="a config override for the domains (depth ranges, input sizes), e.g. benchmark=real; repeatable",
    )
    parser.add_argument("--trust", action="store_true", help="unpickle a file that weights_only refuses")
    args = parser.parse_args(argv)
    from omegaconf import OmegaConf

    from lifelong_monodepth.data.domain import DomainConfig

    try:
        cfg = compose(args.override)
        net_cfg = OmegaConf.to_container(cfg.model.net, resolve=True)
        domains = {
            letter: DomainConfig.from_config(cfg.domains[letter], key=letter)
            for letter in args.domains
            if letter in cfg.domains
        }
        state = read_original(args.checkpoint, trust=args.trust)
        module = convert(state, args.domains, net_cfg, domains)
        out = save(module, args.out, args.checkpoint)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{args.checkpoint} -> {out}: {len(state)} tensors, domains {' → '.join(args.domains)}. "
        f"Evaluate with: python run.py mode=test ckpt={out} benchmark=real evaluation=paper"
    )
    return 0


if __name__ == "__main__":  # the package __init__ (torchvision workaround) is imported first
    raise SystemExit(main())
