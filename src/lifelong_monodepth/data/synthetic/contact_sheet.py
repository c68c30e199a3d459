"""A single PNG to eyeball the benchmark: per domain a block of RGB | colourised depth pairs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from lifelong_monodepth.data.depth_io import read_depth, read_rgb

SCALE = 2  # tiles are upscaled so 120×160 images are readable
GAP = 6
TITLE = 26
SHEET_WIDTH = 4 * (SCALE * 2 * 160 + GAP + 2 * GAP) + GAP  # four 120×160 pairs side by side
MAX_ROWS = 2


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """Log-depth turbo colour map (near = red, far = blue); invalid pixels black (RGB uint8)."""
    valid = depth > 0
    near = np.zeros_like(depth, dtype=np.float32)
    span = np.log(max_depth) - np.log(min_depth)
    near[valid] = np.clip((np.log(max_depth) - np.log(np.maximum(depth[valid], min_depth))) / span, 0, 1)
    colored = cv2.applyColorMap((near * 255).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1].copy()
    colored[~valid] = 0
    return colored


def _pair(rgb: np.ndarray, depth: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    height, width = rgb.shape[:2]
    big = (width * SCALE, height * SCALE)
    left = cv2.resize(rgb, big, interpolation=cv2.INTER_NEAREST)
    right = cv2.resize(colorize_depth(depth, *depth_range), big, interpolation=cv2.INTER_NEAREST)
    return np.concatenate([left, np.full((big[1], GAP, 3), 255, np.uint8), right], axis=1)


def write_contact_sheet(
    path: str | Path, blocks: Sequence[tuple[str, float, tuple[float, float], Sequence[tuple[Path, Path]]]]
) -> Path:
    """``blocks``: (label, depth scale, (min, max) depth, [(rgb path, depth path), ...]) per domain."""
    loaded = [
        (label, [_pair(read_rgb(rgb), read_depth(depth, scale), depth_range) for rgb, depth in pairs])
        for label, scale, depth_range, pairs in blocks
    ]
    loaded = [(label, tiles) for label, tiles in loaded if tiles]
    width = max([SHEET_WIDTH] + [tiles[0].shape[1] + 2 * GAP for _, tiles in loaded])
    rows = []
    for label, tiles in loaded:
        per_row = max(1, (width - GAP) // (tiles[0].shape[1] + 2 * GAP))
        title = np.full((TITLE, width, 3), 40, np.uint8)
        cv2.putText(
            title, label, (GAP, TITLE - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA
        )
        rows.append(title)
        for start in range(0, min(len(tiles), MAX_ROWS * per_row), per_row):
            line = np.full((tiles[0].shape[0] + 2 * GAP, width, 3), 255, np.uint8)
            x = GAP
            for tile in tiles[start : start + per_row]:
                line[GAP : GAP + tile.shape[0], x : x + tile.shape[1]] = tile
                x += tile.shape[1] + 2 * GAP
            rows.append(line)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = np.concatenate(rows, axis=0) if rows else np.zeros((TITLE, width, 3), np.uint8)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path
