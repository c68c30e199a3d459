"""Batched depth prediction for images of any size, with a forced domain or automatic selection.

Each image is resized (not tiled) to a domain's input size, run through the network, and its
depth and log-variance maps are resized back (bilinear) to the image's own resolution. With
``domain=auto`` an image is first encoded at the input size of the learned domain whose aspect
ratio is closest to its own; the selector (``DomainSelector.route``) picks a head from those
features; if the chosen domain's input size differs, the image is encoded again at that size.

Speed: ``torch.inference_mode``, batches, channels_last memory (CPU and CUDA), and on CUDA bf16
autocast (where the GPU supports it) and ``torch.compile`` of the encoder (falls back to eager if
compiling fails).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.inference.loading import LoadedModel
from lifelong_monodepth.models.selection import DomainSelector

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """One image's result at the image's own resolution."""

    depth: np.ndarray  # metres, float32, H×W
    log_var: np.ndarray  # predicted log-variance, float32, H×W
    domain: str
    confidence: float  # the selector's softmax confidence (1.0 for a forced domain)
    unknown: bool  # the selector's "none of the learned domains" flag


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device}: CUDA is not available on this machine; use device=cpu or auto.")
    return torch.device(device)


def _flag(value: str | bool, default: bool, name: str) -> bool:
    if isinstance(value, bool):
        return value
    value = str(value).lower()  # OmegaConf reads `true` on the command line as a boolean
    if value == "auto":
        return default
    if value in ("true", "false"):
        return value == "true"
    raise ConfigError(f"{name}={value!r}: use auto, true or false.")


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``H×W×3`` float → ``size`` (area averaging when shrinking, bilinear when enlarging)."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    shrink = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def nearest_aspect(image: np.ndarray, sizes: Mapping[str, tuple[int, int]]) -> str:
    """The key of the ``(height, width)`` whose aspect ratio is closest to the image's (log ratio)."""
    aspect = image.shape[1] / image.shape[0]
    return min(sizes, key=lambda key: abs(np.log(aspect * sizes[key][0] / sizes[key][1])))


class DepthPredictor:
    """``predictor(list of H×W×3 float RGB images) -> list[Prediction]``."""

    def __init__(
        self,
        model: LoadedModel,
        domain: str = "auto",
        device: str = "auto",
        selector: str | None = None,
        precision: str = "auto",
        channels_last: str | bool = "auto",
        compile: str | bool = "auto",  # noqa: A002 (the option's name on the command line)
    ) -> None:
        self.model = model
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        self.forced = None if domain == "auto" else model.domain(domain).letter
        self.selector: DomainSelector | None = None if self.forced else model.selector(selector)
        if precision == "auto":
            precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
        if precision not in ("fp32", "bf16"):
            raise ConfigError(f"precision={precision!r}: use auto, fp32 or bf16.")
        self.precision = precision
        # channels_last: faster convolutions on CUDA and on CPU (oneDNN, ~15 % at batch 1 and 8).
        self.channels_last = _flag(channels_last, self.device.type in ("cuda", "cpu"), "channels_last")
        self.net = model.net.to(self.device).eval()
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self._encode: Callable[[Tensor], tuple[Tensor, list[Tensor]]] = self.net.encode_levels
        self.compiled = False
        if _flag(compile, cuda, "compile") and hasattr(torch, "compile"):
            try:
                self._encode = torch.compile(self.net.encode_levels, dynamic=True)
                self.compiled = True
            except Exception as err:  # an unsupported platform: eager is still correct
                log.warning("torch.compile unavailable (%s); running eagerly.", err)

    def describe(self) -> str:
        return (
            f"device={self.device} precision={self.precision} channels_last={self.channels_last} "
            f"compiled={self.compiled} domain={self.forced or 'auto (' + self.selector.name + ' selector)'}"
        )

    # ------------------------------------------------------------------------------ helpers
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _batch(self, images: Sequence[np.ndarray], size: tuple[int, int]) -> Tensor:
        array = np.stack([resize_image(image, size) for image in images]).transpose(0, 3, 1, 2)
        batch = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def encode(
        self, images: Sequence[np.ndarray], size: tuple[int, int], domain: str | None = None
    ) -> Tensor:
        """Fused map; ``domain`` picks the fusion BatchNorm set of a network with ``domain_bn`` (eager)."""
        return self.encode_levels(images, size, domain)[0]

    def encode_levels(
        self, images: Sequence[np.ndarray], size: tuple[int, int], domain: str | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Fused features and the encoder levels of one pass (the selector may read the levels)."""
        x = self._batch(images, size)
        if domain is not None and self.net.domain_bn:
            return self.net.encode_levels(x, domain)
        if not self.compiled:
            return self.net.encode_levels(x)
        try:
            return self._encode(x)
        except Exception as err:  # compile errors surface at the first call
            log.warning("Compiled encoder failed (%s: %s); running eagerly.", type(err).__name__, err)
            self.compiled, self._encode = False, self.net.encode_levels
            return self.net.encode_levels(x)

    def routing_size(self, image: np.ndarray) -> tuple[int, int]:
        """The input size of the learned domain whose aspect ratio is closest to the image's."""
        sizes = {letter: info.input_size for letter, info in self.model.domains.items()}
        return sizes[nearest_aspect(image, sizes)]

    # -------------------------------------------------------------------------------- predict
    @torch.inference_mode()
    def __call__(self, images: Sequence[np.ndarray]) -> list[Prediction]:
        n = len(images)
        letters: list[str] = [""] * n
        confidence = [1.0] * n
        unknown = [False] * n
        depth: list[Tensor | None] = [None] * n
        log_var: list[Tensor | None] = [None] * n

        def run_head(letter: str, rows: list[int], fused: Tensor) -> None:
            out = self.net.run_heads(fused, [letter])
            for j, i in enumerate(rows):
                letters[i] = letter
                depth[i], log_var[i] = out.depth[letter][j : j + 1], out.log_var[letter][j : j + 1]

        with self._autocast():
            if self.forced:
                size = self.model.domains[self.forced].input_size
                run_head(self.forced, list(range(n)), self.encode(images, size, self.forced))
            else:
                groups: dict[tuple[int, int], list[int]] = {}
                for i, image in enumerate(images):
                    groups.setdefault(self.routing_size(image), []).append(i)
                for size, rows in groups.items():
                    fused, levels = self.encode_levels([images[i] for i in rows], size)
                    routing = self.selector.route(self.net, fused, levels)
                    for j, i in enumerate(rows):
                        confidence[i] = float(routing.confidence[j])
                        unknown[i] = bool(routing.unknown[j])
                    for letter in dict.fromkeys(routing.letters):
                        picked = [j for j, chosen in enumerate(routing.letters) if chosen == letter]
                        own = self.model.domains[letter].input_size
                        if tuple(own) == tuple(size) and not self.net.domain_bn:
                            part = fused[torch.tensor(picked, device=fused.device)]
                        else:
                            # domain_bn: a second pass fuses under the chosen head's BatchNorm set
                            part = self.encode([images[rows[j]] for j in picked], own, letter)
                        run_head(letter, [rows[j] for j in picked], part)
        results = []
        for i, image in enumerate(images):
            size = image.shape[:2]
            up_depth = F.interpolate(depth[i].float(), size=size, mode="bilinear", align_corners=False)
            up_var = F.interpolate(log_var[i].float(), size=size, mode="bilinear", align_corners=False)
            results.append(
                Prediction(
                    depth=up_depth[0, 0].cpu().numpy().astype(np.float32),
                    log_var=up_var[0, 0].cpu().numpy().astype(np.float32),
                    domain=letters[i],
                    confidence=confidence[i],
                    unknown=unknown[i],
                )
            )
        return results
