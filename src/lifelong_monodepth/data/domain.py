"""A depth domain (one dataset) as described by a ``conf/domains/<name>.yaml`` file.

Fields (all from YAML; paths may use ``${paths...}`` interpolation):
``letter`` single upper-case letter used in orders (``NKS``); ``name``; ``root`` data root
that index paths are relative to; ``index`` with ``train``/``test``/``replay`` and optional
``val`` CSVs; ``depth_scale`` (stored PNG value / scale = metres); ``min_depth`` /
``max_depth`` in metres (the head's output range and the evaluation cap);
``input_size`` ``[H, W]`` fed to the network; ``eval_crop`` (``eigen_nyu``, ``garg``,
``eigen_kitti``, ``none``); ``augment`` a list of albumentations transforms (``_target_``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong_monodepth.data.errors import ConfigError

REQUIRED_FIELDS = ("letter", "name", "root", "index", "depth_scale", "min_depth", "max_depth", "input_size")


@dataclass(frozen=True)
class DomainConfig:
    """Everything the data layer and the heads need to know about one domain."""

    letter: str
    name: str
    root: Path
    index: dict[str, Path]
    depth_scale: float
    min_depth: float
    max_depth: float
    input_size: tuple[int, int]
    eval_crop: str = "none"
    augment: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], key: str = "?") -> DomainConfig:
        """Validate a (resolved) mapping; ``key`` names the config entry in error messages."""
        cfg = _to_dict(cfg)
        missing = [name for name in REQUIRED_FIELDS if cfg.get(name) in (None, "")]
        if missing:
            raise ConfigError(
                f"Domain config `domains.{key}` is missing {missing}. "
                f"Every domain file in conf/domains/ must set: {', '.join(REQUIRED_FIELDS)}."
            )
        letter = str(cfg["letter"])
        if len(letter) != 1 or not letter.isalpha() or not letter.isupper():
            raise ConfigError(
                f"Domain `domains.{key}`: letter must be one upper-case letter, got {letter!r}."
            )
        index = cfg["index"]
        if not isinstance(index, Mapping) or "train" not in index or "test" not in index:
            raise ConfigError(
                f"Domain `domains.{key}`: `index` must map at least `train` and `test` to CSV files."
            )
        depth_scale = float(cfg["depth_scale"])
        if depth_scale <= 0:
            raise ConfigError(
                f"Domain `domains.{key}`: depth_scale must be > 0 (KITTI 256, NYU/ScanNet 1000)."
            )
        min_depth, max_depth = float(cfg["min_depth"]), float(cfg["max_depth"])
        if not 0 <= min_depth < max_depth:
            raise ConfigError(
                f"Domain `domains.{key}`: need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}."
            )
        size = cfg["input_size"]
        if len(size) != 2 or min(int(s) for s in size) <= 0:
            raise ConfigError(f"Domain `domains.{key}`: input_size must be [height, width], got {size}.")
        return cls(
            letter=letter,
            name=str(cfg["name"]),
            root=Path(cfg["root"]),
            index={split: Path(path) for split, path in index.items() if path},
            depth_scale=depth_scale,
            min_depth=min_depth,
            max_depth=max_depth,
            input_size=(int(size[0]), int(size[1])),
            eval_crop=str(cfg.get("eval_crop") or "none"),
            augment=list(cfg.get("augment") or []),
            description=str(cfg.get("description") or ""),
        )

    def index_path(self, split: str) -> Path:
        """The CSV of a split; a clear error when the domain defines none."""
        if split not in self.index:
            raise ConfigError(
                f"Domain {self.letter} ({self.name}) has no `{split}` index; defined: {sorted(self.index)}."
            )
        return self.index[split]


def _to_dict(cfg: Mapping[str, Any]) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    return dict(cfg)


def domains_from_config(domains_cfg: Mapping[str, Any]) -> dict[str, DomainConfig]:
    """Build ``{letter: DomainConfig}`` from the ``domains`` config node (keys are letters)."""
    domains: dict[str, DomainConfig] = {}
    for key, value in _to_dict(domains_cfg).items():
        domain = DomainConfig.from_config(value, key=str(key))
        if domain.letter != str(key):
            raise ConfigError(
                f"Domain config `domains.{key}` declares letter {domain.letter!r}; they must match."
            )
        domains[domain.letter] = domain
    return domains
