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
from lifelong_monodepth.data.transforms import align_pair, bottom_center_window, build_transform, resize_image

log = logging.getLogger(__name__)
ON_ERROR = ("raise", "skip")


class DepthDataset(Dataset):
    """Samples ``{"image", "depth", "mask", "domain", "index"}`` for one domain split.

    ``image`` is ``3×H×W`` float in [0, 1] at the domain's input size (the network normalises).
    Training samples (``train=True``) carry depth resized and augmented jointly with the image;
    evaluation samples keep depth at its native resolution, so metrics are computed on the
    original ground truth and predictions are upsampled to it.
    ``mask`` marks valid ground truth: ``0 < depth <= max_depth``. ``frame`` is
    ``[full_height, full_width, top, left]``: where the ground truth sits in its camera's full frame
    (the image itself, a ``precropped`` release, or the ``bottom_crop`` evaluation window), so
    evaluation crops defined on full frames are placed correctly.

    ``on_error="skip"`` counts an unreadable row (``skipped``, keyed by the row) instead of raising:
    a training sample is replaced by the next readable one (batches keep their size), an evaluation
    sample is dropped (``None``, removed by the evaluation collate) so no image is counted twice.
    Augmentation is seeded per (seed, epoch, index), so a run is reproducible whatever the worker
    layout and a resumed epoch sees the same crops.
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
        self.rows = (
            rows
            if rows is not None
            else read_index(domain.index_path(split), domain.root, domain.missing_index_hint)
        )
        self.transform = build_transform(
            domain.input_size, domain.augment, train=train, input_fit=domain.input_fit
        )
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
        if row.depth_scale is not None:  # the index row states its own encoding (8- or 16-bit)
            depth = read_depth(row.depth, row.depth_scale, row.depth_scale)
        else:
            depth = read_depth(
                row.depth,
                self.domain.depth_scale,
                self.domain.depth_scale_uint8,
                key=f"domains.{self.domain.letter}.depth_scale_uint8",
            )
        image, depth = align_pair(image, depth, self.domain.align, row.rgb, row.depth)
        if not np.any(depth > 0):
            raise DataError(
                f"Depth map {row.depth} has no valid pixel (all 0): it cannot supervise anything. "
                f"Check depth_scale={row.depth_scale or self.domain.depth_scale} and the file, "
                "or remove the row."
            )
        return image, depth

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        # Training replaces a bad row by the next readable one; evaluation drops it (None).
        attempts = len(self.rows) if self.on_error == "skip" and self.train else 1
        for offset in range(attempts):
            j = (i + offset) % len(self.rows)
            try:
                image, depth = self.load_pair(j)
            except DataError as err:
                if self.on_error == "raise":
                    raise
                self.record_skip(self.rows[j], str(err))
                continue
            return self._to_sample(image, depth, i)
        if not self.train:
            return None
        raise DataError(f"No readable sample in {self.domain.index_path(self.split)}: all rows failed.")

    def record_skip(self, row: IndexRow, reason: str) -> None:
        """Count a bad row once (keyed by the row, not by one of its files), with the reason."""
        if row.key not in self.skipped:
            self.skipped[row.key] = reason
            log.warning("Skipping bad sample (%d so far): %s", len(self.skipped), reason)

    def _to_sample(self, image: np.ndarray, depth: np.ndarray, i: int) -> dict[str, Any]:
        frame = self._frame(depth.shape)
        if self.train:
            self.transform.set_random_seed(_sample_seed(self.seed, self.epoch, i))
            out = self.transform(image=image, depth=depth)
            image, depth = out["image"], out["depth"]
            frame = [depth.shape[0], depth.shape[1], 0, 0]
        else:
            if self.domain.input_fit == "bottom_crop":
                top, left, height, width = bottom_center_window(depth.shape, self.domain.input_size)
                image = image[top : top + height, left : left + width]
                depth = depth[top : top + height, left : left + width]
                frame = [frame[0], frame[1], frame[2] + top, frame[3] + left]
            image = resize_image(image, self.domain.input_size)
        depth_t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0),
            "depth": depth_t,
            "mask": (depth_t > 0) & (depth_t <= self.domain.max_depth),
            "frame": torch.tensor(frame, dtype=torch.long),
            "domain": self.domain.letter,
            "index": i,
        }

    def _frame(self, shape: tuple[int, ...]) -> list[int]:
        """``[full_h, full_w, top, left]`` of native ground truth of ``shape`` in its full frame."""
        pre = self.domain.precropped
        if pre is not None and tuple(shape[:2]) == pre.size:
            return [*pre.frame_size, *pre.offset()]
        return [int(shape[0]), int(shape[1]), 0, 0]


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])
