"""Check a composed config before anything is created: one line per problem, each naming its key.

Hydra accepts any value a YAML scalar can hold (``trainer.max_epochs=-1`` trains forever,
``data.batch_size=0`` fails deep inside a DataLoader). :func:`validate_config` turns those into
:class:`ConfigError` lines such as ``trainer.max_epochs=-1: must be an integer ≥ 1 …`` and runs
from a Hydra callback before the run directory exists (see ``cli/callbacks.py``). Allowed names
(selectors, protocols, …) are imported from the modules that use them, so they cannot drift.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from lifelong_monodepth.data.errors import ConfigError, LifelongDepthError

MISSING = object()
Check = Callable[[Any], str | None]  # returns what is wrong, or None


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def int_at_least(low: int, why: str = "") -> Check:
    def check(value: Any) -> str | None:
        if _is_int(value) and value >= low:
            return None
        return f"must be an integer ≥ {low}{why}"

    return check


def number_at_least(low: float, why: str = "") -> Check:
    def check(value: Any) -> str | None:
        return None if _is_number(value) and value >= low else f"must be a number ≥ {low}{why}"

    return check


def positive_number(why: str = "") -> Check:
    return lambda value: None if _is_number(value) and value > 0 else f"must be a number > 0{why}"


def fraction(value: Any) -> str | None:
    """Lightning's ``limit_*_batches``: null, a count ≥ 1 or a fraction in (0, 1]."""
    if value is None or (_is_int(value) and value >= 1) or (_is_number(value) and 0 < value <= 1):
        return None
    return "must be null, an integer ≥ 1 (batches) or a fraction in (0, 1]"


def optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def one_of(choices: Sequence[str]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(map(str, choices))}"

    return check


def _get(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=MISSING, throw_on_missing=False)
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _rules() -> list[tuple[str, Check]]:
    """(key, check): keys absent from the config are skipped (a trimmed config stays valid)."""
    from lifelong_monodepth.data.dataset import ON_ERROR
    from lifelong_monodepth.evaluation.metrics import PROTOCOLS
    from lifelong_monodepth.models.domain_norm import DOMAIN_BN_MODES
    from lifelong_monodepth.models.network import HEAD_INITS
    from lifelong_monodepth.models.selection import SELECTORS
    from lifelong_monodepth.training.module import FREEZE_SHARED_BN

    return [
        ("mode", one_of(("train", "test"))),
        ("seed", int_at_least(0)),
        ("trainer.max_epochs", int_at_least(1, " (epochs per domain; -1 or null would train forever)")),
        ("trainer.log_every_n_steps", int_at_least(1)),
        ("trainer.check_val_every_n_epoch", optional(int_at_least(1))),
        ("trainer.accumulate_grad_batches", int_at_least(1)),
        ("trainer.limit_train_batches", fraction),
        ("trainer.limit_val_batches", fraction),
        ("trainer.gradient_clip_val", optional(number_at_least(0))),
        ("data.batch_size", int_at_least(1)),
        ("data.eval_batch_size", int_at_least(1)),
        ("data.num_workers", lambda v: None if v == "auto" else int_at_least(0, " or 'auto'")(v)),
        ("data.on_error", one_of(ON_ERROR)),
        ("data.val_fraction", lambda v: None if _is_number(v) and 0 <= v < 1 else "must be in [0, 1)"),
        ("checkpoint.every_n_steps", int_at_least(0, " (0: epoch ends only)")),
        ("model.optimizer.lr", positive_number()),
        ("model.max_bad_steps", int_at_least(1)),
        ("model.precise_bn_batches", optional(int_at_least(0, " (batches; null: all; 0: off)"))),
        ("model.freeze_shared_bn", one_of(FREEZE_SHARED_BN)),
        ("model.freeze_shared_bn_from_stage", int_at_least(1, " (1: from the first stage)")),
        ("model.head_warmup_steps", int_at_least(0, " (optimiser steps of the new head alone; 0: off)")),
        ("model.net.head.init", one_of(HEAD_INITS)),
        ("model.net.fusion.domain_bn", lambda v: None if v is False else one_of(DOMAIN_BN_MODES)(v)),
        ("selector.name", one_of((*SELECTORS, "none"))),
        ("selector.grid", int_at_least(1)),
        ("selector.max_images", int_at_least(1)),
        ("selector.rank", optional(int_at_least(1, " or null (full covariance)"))),
        ("selector.unknown_rank", optional(int_at_least(1, " or null (full covariance)"))),
        (
            "selector.unknown_own_covariance",
            lambda v: None if _is_number(v) and 0 <= v <= 1 else "must be in [0, 1] (0: shared covariance)",
        ),
        ("selector.calibration_folds", int_at_least(0, " (0: calibrate on calibration_split only)")),
        ("evaluation.protocol", one_of(PROTOCOLS)),
        ("evaluation.split", one_of(("train", "val", "test"))),
        ("evaluation.limit_batches", optional(int_at_least(1))),
        ("threads", optional(int_at_least(1, " (torch threads per job; null: the library default)"))),
    ]


def _weights(node: Any, key: str) -> Iterator[tuple[str, Any]]:
    """Every loss weight below ``node``: keys named ``weight``/``*_weight`` and entries of ``*_weights``."""
    if isinstance(node, Mapping):
        for name, value in node.items():
            child = f"{key}.{name}"
            if str(name) == "weight" or str(name).endswith("_weight"):
                yield child, value
            elif str(name).endswith("_weights") and isinstance(value, Mapping):
                yield from ((f"{child}.{k}", v) for k, v in value.items())
            elif str(name).endswith("_weights") and isinstance(value, list):
                yield from ((f"{child}[{i}]", v) for i, v in enumerate(value))
            else:
                yield from _weights(value, child)


def _strategy_problems(cfg: DictConfig) -> list[str]:
    """Weights ≥ 0, then each strategy callback built once: bad names or unknown arguments surface here."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    problems = []
    strategy = _get(cfg, "strategy")
    if strategy is MISSING:
        return problems
    for key, value in _weights(strategy, "strategy"):
        if not (_is_number(value) and value >= 0):
            problems.append(f"{key}={value!r}: a loss weight must be a number ≥ 0")
    if problems:
        return problems
    for name, node in (cfg.strategy.get("callbacks") or {}).items():
        if node is None:
            continue
        key = f"strategy.callbacks.{name}"
        if "_target_" not in node:
            problems.append(
                f"{key}: settings without a `_target_` (strategy={cfg.strategy.get('name')} has no `{name}` "
                "callback; an experiment or an override sets options for it)"
            )
            continue
        try:
            instantiate(node, _convert_="all")
        except InstantiationException as err:
            cause = err.__cause__ or err
            problems.append(f"{key}: {str(cause).splitlines()[0]}")
    callbacks = cfg.strategy.get("callbacks") or {}
    distillation = callbacks.get("distillation")
    inputs = distillation.get("inputs", "current") if distillation is not None else "current"
    if inputs in ("replay", "both") and callbacks.get("replay") is None:
        problems.append(
            f"strategy.callbacks.distillation.inputs={inputs}: distils the old heads on the replay memory's "
            f"images, but strategy={cfg.strategy.get('name')} has no replay; use inputs=current"
        )
    return problems


def _order_problems(cfg: DictConfig) -> list[str]:
    from lifelong_monodepth.data.domain import domains_from_config
    from lifelong_monodepth.training.order import resolve_order

    if "order" not in cfg or not cfg.get("domains"):
        return []
    try:
        letters = list(domains_from_config(cfg.domains))
        resolve_order(str(cfg.order), letters, Path(cfg.paths.conf_dir) / "orders")
    except LifelongDepthError as err:
        return [str(err)]
    return []


def _path_problems(cfg: DictConfig) -> list[str]:
    problems = []
    if cfg.get("mode") == "test":
        ckpt = cfg.get("ckpt")
        if not ckpt:
            problems.append(
                "ckpt: mode=test needs ckpt=<a stage checkpoint, e.g. outputs/.../checkpoints/NKS.ckpt>"
            )
        elif not Path(str(ckpt)).is_file():
            problems.append(f"ckpt={ckpt}: no such file")
    resume = cfg.get("resume")
    if resume and not Path(str(resume)).is_dir():
        problems.append(f"resume={resume}: no such run directory (give the directory of the run to continue)")
    return problems


def config_problems(cfg: DictConfig) -> list[str]:
    """Every problem of ``cfg``, one line each (empty when the config is fine)."""
    problems = []
    for key, check in _rules():
        value = _get(cfg, key)
        if value is MISSING:
            continue
        wrong = check(value)
        if wrong:
            problems.append(f"{key}={value!r}: {wrong}")
    return (
        problems
        + _order_problems(cfg)
        + _schedule_problems(cfg)
        + _path_problems(cfg)
        + _strategy_problems(cfg)
    )


def _schedule_problems(cfg: DictConfig) -> list[str]:
    """``stage_schedule`` lists: one valid entry per stage of the order (training/stage_schedule.py)."""
    from lifelong_monodepth.data.domain import domains_from_config
    from lifelong_monodepth.training.order import resolve_order
    from lifelong_monodepth.training.stage_schedule import StageSchedule

    node = _get(cfg, "stage_schedule")
    if node is MISSING or node is None or "order" not in cfg or not cfg.get("domains"):
        return []
    strategy = cfg.get("strategy") or {}
    try:
        letters = list(domains_from_config(cfg.domains))
        order = resolve_order(str(cfg.order), letters, Path(cfg.paths.conf_dir) / "orders")
    except LifelongDepthError:
        return []  # reported once, by the order check
    try:
        StageSchedule.from_config(node, 1 if strategy.get("joint", False) else len(order))
    except LifelongDepthError as err:
        return [str(err)]
    return []


def validate_config(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` listing every problem (one line each) before anything is built."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("\n".join(f"Invalid config: {p}" for p in problems))
