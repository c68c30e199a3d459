"""``DepthDataset``: one split of one domain, read through its index CSV in native formats."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lifelong_monodepth.data.depth_io import read_depth, read_rgb
from lifelong_monodepth.data.domain import DomainConfig
from lifelong_monodepth.data.errors import DataError
from lifelong_monodepth.data.index import IndexRow, read_index
from lifelong_monodepth.data.transforms import build_transform, resize_image

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


class DepthDataset(Dataset):
    """Samples ``{"image", "depth", "mask", "domain", "index"}`` for one domain split.

    ``image`` is ``3×H×W`` float in [0, 1] at the domain's input size (the network normalises).
    Training samples (``train=True``) carry depth resized and augmented jointly with the image;
    evaluation samples keep depth at its native resolution, so metrics are computed on the
    original ground truth and predictions are upsampled to it.
    ``mask`` marks valid ground truth: ``0 < depth <= max_depth``.

    ``on_error="skip"`` replaces an unreadable sample by the next readable one and counts it
    (``skipped``) instead of raising. Augmentation is seeded per (seed, epoch, index), so a
    run is reproducible whatever the worker layout and a resumed epoch sees the same crops.
    """

    def __init__(
        self,
        domain: DomainConfig,
        split: str,
        train: bool = False,
        on_error: str = "raise",
        seed: int = 0,
        rows: list[IndexRow] | None = None,
    ) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.domain = domain
        self.split = split
        self.train = train
        self.on_error = on_error
        self.seed = seed
        self.epoch = 0
        self.rows = rows if rows is not None else read_index(domain.index_path(split), domain.root)
        self.transform = build_transform(domain.input_size, domain.augment, train=train)
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        """Called at each epoch start so augmentation differs between epochs but not between runs."""
        self.epoch = epoch

    def load_pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Read and check one RGB/depth pair (metres), raising ``DataError`` on bad input."""
        row = self.rows[i]
        image = read_rgb(row.rgb)
        scale = row.depth_scale or self.domain.depth_scale  # a row's own scale wins (see data/index.py)
        depth = read_depth(row.depth, scale)
        if depth.shape != image.shape[:2]:
            raise DataError(
                f"Depth {row.depth} is {depth.shape[1]}×{depth.shape[0]} but image {row.rgb} is "
                f"{image.shape[1]}×{image.shape[0]} (W×H); the pair must have the same size. "
                "Fix the index row or the files."
            )
        if not np.any(depth > 0):
            raise DataError(
                f"Depth map {row.depth} has no valid pixel (all 0): it cannot supervise anything. "
                f"Check depth_scale={scale} and the file, or remove the row."
            )
        return image, depth

    def __getitem__(self, i: int) -> dict[str, Any]:
        attempts = len(self.rows) if self.on_error == "skip" else 1
        for offset in range(attempts):
            j = (i + offset) % len(self.rows)
            try:
                image, depth = self.load_pair(j)
            except DataError as err:
                if self.on_error == "raise":
                    raise
                key = str(self.rows[j].rgb)
                if key not in self.skipped:
                    self.skipped[key] = str(err)
                    log.warning("Skipping bad sample (%d so far): %s", len(self.skipped), err)
                continue
            return self._to_sample(image, depth, i)
        raise DataError(f"No readable sample in {self.domain.index_path(self.split)}: all rows failed.")

    def _to_sample(self, image: np.ndarray, depth: np.ndarray, i: int) -> dict[str, Any]:
        if self.train:
            self.transform.set_random_seed(_sample_seed(self.seed, self.epoch, i))
            out = self.transform(image=image, depth=depth)
            image, depth = out["image"], out["depth"]
        else:
            image = resize_image(image, self.domain.input_size)
        depth_t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0),
            "depth": depth_t,
            "mask": (depth_t > 0) & (depth_t <= self.domain.max_depth),
            "domain": self.domain.letter,
            "index": i,
        }


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
