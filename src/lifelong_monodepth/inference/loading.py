"""A stage checkpoint → a ready network plus what inference needs to know about its domains.

Loads with ``torch.load(weights_only=True)`` (no code runs on load) and rebuilds the network from
the config stored in the checkpoint, without the training configs, the data or a model hub: the
encoder is built with ``pretrained=false`` because the checkpoint's weights replace it anyway.
Full Lightning checkpoints of older runs load too (their optimizer state is ignored).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lifelong_monodepth.checkpoint import STAGE_FORMAT, load_checkpoint_file
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.models.network import MultiDomainDepthNet
from lifelong_monodepth.models.selection import SELECTORS, DomainSelector

log = logging.getLogger(__name__)

#: Stored depth PNG value per metre when an older checkpoint does not say (millimetres, as NYU/ScanNet).
FALLBACK_DEPTH_SCALE = 1000.0


@dataclass(frozen=True)
class DomainInfo:
    """One learned domain as inference sees it."""

    letter: str
    name: str
    min_depth: float
    max_depth: float
    input_size: tuple[int, int]
    depth_scale: float
    eval_crop: str = "none"

    @classmethod
    def from_checkpoint(cls, info: dict[str, Any]) -> DomainInfo:
        scale = info.get("depth_scale")
        if scale is None:
            log.warning(
                "Checkpoint has no depth_scale for domain %s (older run): 16-bit PNGs use %g per metre.",
                info["letter"],
                FALLBACK_DEPTH_SCALE,
            )
        return cls(
            letter=str(info["letter"]),
            name=str(info.get("name", info["letter"])),
            min_depth=float(info["min_depth"]),
            max_depth=float(info["max_depth"]),
            input_size=(int(info["input_size"][0]), int(info["input_size"][1])),
            depth_scale=float(scale if scale is not None else FALLBACK_DEPTH_SCALE),
            eval_crop=str(info.get("eval_crop", "none")),
        )


@dataclass
class LoadedModel:
    """The network (eval mode) with its domains, selector state and the checkpoint's metadata."""

    path: Path
    net: MultiDomainDepthNet
    domains: dict[str, DomainInfo]
    learned: list[str]
    selector_state: dict[str, Any]
    stage: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    net_config: dict[str, Any] = field(default_factory=dict)
    slim: bool = True

    @property
    def backbone(self) -> str:
        return str(self.net_config.get("encoder", {}).get("backbone", "?"))

    @property
    def selector_name(self) -> str:
        return str(self.stage.get("selector", {}).get("name", "prototype"))

    def selector(self, name: str | None = None) -> DomainSelector:
        """The run's selector (or ``name``), fitted state from the checkpoint."""
        name = name or self.selector_name
        if name not in SELECTORS:
            raise ConfigError(f"selector={name!r} is unknown; choose one of {', '.join(SELECTORS)}.")
        return DomainSelector(
            name, self.selector_state, grid=int(self.stage.get("selector", {}).get("grid", 4))
        )

    def parameter_counts(self) -> dict[str, int]:
        def count(module: torch.nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        counts = {"encoder": count(self.net.encoder), "fusion": count(self.net.fusion)}
        counts.update({f"head {letter}": count(head) for letter, head in self.net.heads.items()})
        counts["total"] = count(self.net)
        return counts

    def domain(self, letter: str) -> DomainInfo:
        if letter not in self.domains:
            raise ConfigError(
                f"domain={letter!r}: checkpoint {self.path.name} knows {', '.join(self.domains)} "
                "(or use domain=auto)."
            )
        return self.domains[letter]


def build_net(net_config: dict[str, Any]) -> MultiDomainDepthNet:
    """The network class and arguments stored in the checkpoint; no pretrained download (weights follow)."""
    config = dict(net_config)
    target = config.pop("_target_", "lifelong_monodepth.models.network.MultiDomainDepthNet")
    module_name, _, class_name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"The checkpoint's network class {target!r} cannot be imported: {err}.") from err
    encoder = dict(config.get("encoder") or {})
    encoder.pop("_target_", None)
    encoder.update(pretrained=False, weights_path=None)
    config["encoder"] = encoder
    return cls(**config)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a stage checkpoint (``weights_only=True``) and rebuild its network in eval mode."""
    path = Path(path)
    checkpoint = load_checkpoint_file(path)
    net_config = (checkpoint.get("hyper_parameters") or {}).get("net")
    info = checkpoint.get("lifelong") or {}
    if not isinstance(net_config, dict) or not info.get("domains"):
        raise ConfigError(
            f"{path} is not a lifelong-monodepth stage checkpoint (no network config or no learned domains); "
            "use checkpoints/<stage>.ckpt of a run (e.g. NKS.ckpt)."
        )
    net = build_net(net_config)
    domains = {}
    for entry in info["domains"]:
        domain = DomainInfo.from_checkpoint(entry)
        net.add_domain(domain.letter, domain.min_depth, domain.max_depth)
        domains[domain.letter] = domain
    state = {k.removeprefix("net."): v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")}
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"The weights in {path} do not fit the network it describes: {err}") from err
    net.eval().to(device)
    return LoadedModel(
        path=path,
        net=net,
        domains=domains,
        learned=list(info.get("learned", domains)),
        selector_state=dict(info.get("selector") or {}),
        stage=dict(checkpoint.get("stage") or {}),
        results=dict(checkpoint.get("results") or {}),
        net_config=net_config,
        slim=checkpoint.get("format") == STAGE_FORMAT,
    )
