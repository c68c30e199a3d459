"""A depth domain (one dataset) as described by a ``conf/domains/<name>.yaml`` file.

Fields (all from YAML; paths may use ``${paths...}`` interpolation):
``letter`` single upper-case letter used in orders (``NKS``); ``name``; ``root`` data root
that index paths are relative to; ``index`` with ``train``/``test``/``replay`` and optional
``val`` CSVs; ``depth_scale`` (stored PNG value / scale = metres); ``min_depth`` /
``max_depth`` in metres (the head's output range and the evaluation cap);
``input_size`` ``[H, W]`` fed to the network; ``eval_crop`` (``eigen_nyu``, ``garg``,
``eigen_kitti``, ``none``); ``augment`` a list of albumentations transforms (``_target_``).

Optional, for real datasets as they come: ``depth_scale_uint8`` (8-bit depth PNGs are read only
with it, e.g. 25.5 when 255 = 10 m); ``align`` what to do when RGB and depth differ in size
(``error``, ``resize_rgb_to_depth``, ``resize_depth_to_rgb``; depth is resized nearest-neighbour);
``input_fit`` how an image becomes ``input_size`` (``stretch``, or ``bottom_crop``: the bottom rows
and a window, random in training and centred in evaluation, without changing the focal length);
``precropped`` images of ``size`` are a crop of a ``frame_size`` frame at ``anchor``
(``bottom_center``, like KITTI's ``val_selection_cropped``), so evaluation crops defined on the
full frame land where they should; ``paper_eval`` the original code's test geometry
(``resize_short``, ``center_crop``) used by ``evaluation=paper``; ``prepare`` the command that
builds the domain's index CSVs (quoted when one is missing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong_monodepth.data.errors import ConfigError

REQUIRED_FIELDS = ("letter", "name", "root", "index", "depth_scale", "min_depth", "max_depth", "input_size")
ALIGN_MODES = ("error", "resize_rgb_to_depth", "resize_depth_to_rgb")
INPUT_FITS = ("stretch", "bottom_crop")
ANCHORS = ("bottom_center", "center", "top_left")


@dataclass(frozen=True)
class Precropped:
    """Images of ``size`` [H, W] were cut from a ``frame_size`` frame at ``anchor``."""

    size: tuple[int, int]
    frame_size: tuple[int, int]
    anchor: str = "bottom_center"

    def offset(self) -> tuple[int, int]:
        """Top-left corner of the crop in the full frame (KITTI's kb-crop arithmetic)."""
        return frame_offset(self.frame_size, self.size, self.anchor)


def frame_offset(frame_size: tuple[int, int], size: tuple[int, int], anchor: str) -> tuple[int, int]:
    """Where a ``size`` window sits inside ``frame_size`` for an anchor: ``(top, left)``."""
    dh, dw = frame_size[0] - size[0], frame_size[1] - size[1]
    if anchor == "bottom_center":
        return dh, dw // 2
    if anchor == "center":
        return dh // 2, dw // 2
    return 0, 0


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
    depth_scale_uint8: float | None = None
    align: str = "error"
    input_fit: str = "stretch"
    precropped: Precropped | None = None
    paper_eval: dict[str, Any] | None = None
    prepare: str = ""

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
        options = _options(cfg, key)
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
            **options,
        )

    @property
    def missing_index_hint(self) -> str:
        """What to do about a missing index CSV of this domain."""
        if self.prepare:
            return f"Build the index with `{self.prepare}` or point `domains.{self.letter}.index` at CSVs."
        return f"Point `domains.{self.letter}.index` at existing CSVs (see docs/datasets.md)."

    def index_path(self, split: str) -> Path:
        """The CSV of a split; a clear error when the domain defines none."""
        if split not in self.index:
            raise ConfigError(
                f"Domain {self.letter} ({self.name}) has no `{split}` index; defined: {sorted(self.index)}."
            )
        return self.index[split]


def _options(cfg: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The optional real-data fields, validated with messages that name the key."""

    def choice(name: str, allowed: tuple[str, ...], default: str) -> str:
        value = str(cfg.get(name) or default)
        if value not in allowed:
            raise ConfigError(
                f"Domain `domains.{key}.{name}` is {value!r}; choose one of {', '.join(allowed)}."
            )
        return value

    def pair(value: Any, name: str) -> tuple[int, int]:
        if value is None or len(value) != 2 or min(int(v) for v in value) <= 0:
            raise ConfigError(f"Domain `domains.{key}.{name}` must be [height, width], got {value}.")
        return int(value[0]), int(value[1])

    scale8 = cfg.get("depth_scale_uint8")
    if scale8 is not None and float(scale8) <= 0:
        raise ConfigError(f"Domain `domains.{key}.depth_scale_uint8` must be > 0 (25.5 when 255 = 10 m).")
    precropped = cfg.get("precropped")
    if precropped:
        size = pair(precropped.get("size"), "precropped.size")
        frame = pair(precropped.get("frame_size"), "precropped.frame_size")
        if size[0] > frame[0] or size[1] > frame[1]:
            raise ConfigError(f"Domain `domains.{key}.precropped`: size {size} exceeds frame_size {frame}.")
        precropped = Precropped(size, frame, _anchor(precropped, key))
    paper_eval = cfg.get("paper_eval") or None
    if paper_eval is not None:
        paper_eval = {
            "resize_short": int(paper_eval["resize_short"]) if paper_eval.get("resize_short") else None,
            "center_crop": pair(paper_eval["center_crop"], "paper_eval.center_crop")
            if paper_eval.get("center_crop")
            else None,
        }
    return {
        "depth_scale_uint8": None if scale8 is None else float(scale8),
        "align": choice("align", ALIGN_MODES, "error"),
        "input_fit": choice("input_fit", INPUT_FITS, "stretch"),
        "precropped": precropped or None,
        "paper_eval": paper_eval,
        "prepare": str(cfg.get("prepare") or ""),
    }


def _anchor(node: Mapping[str, Any], key: str) -> str:
    anchor = str(node.get("anchor") or "bottom_center")
    if anchor not in ANCHORS:
        raise ConfigError(f"Domain `domains.{key}.precropped.anchor` is {anchor!r}; choose one of {ANCHORS}.")
    return anchor


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
