"""Index CSVs: one row per sample, ``rgb,depth[,depth_scale]``, paths relative to a data root.

The optional ``depth_scale`` column overrides the domain's scale for that row, for releases that
mix encodings in one split (the original NYU-v2 release: 8-bit training maps with 255 = 10 m,
16-bit test maps in millimetres). A row's own scale is explicit, so it also admits an 8-bit PNG.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelong_monodepth.data.errors import DataError

INDEX_COLUMNS = ("rgb", "depth")
OPTIONAL_COLUMNS = ("depth_scale",)
DEFAULT_MISSING_HINT = (
    "Point the domain's `index` entries at existing CSVs: for a real dataset write them with "
    "`python -m lifelong_monodepth.data.prepare {nyu,kitti,scannet} --source DIR` (docs/datasets.md); "
    "for the synthetic benchmark run `make data`."
)


@dataclass(frozen=True)
class IndexRow:
    """One RGB/depth pair, both paths already resolved against the data root."""

    rgb: Path
    depth: Path
    depth_scale: float | None = None

    @property
    def key(self) -> str:
        """How a skipped row is named: both files, since rows may share an image or a depth map."""
        return f"{self.rgb},{self.depth}"


def read_index(index_path: str | Path, root: str | Path, missing_hint: str | None = None) -> list[IndexRow]:
    """Parse an index CSV; relative paths are resolved against ``root``, absolute ones kept.

    ``missing_hint`` says how to create a missing file (e.g. the importer of a real dataset).
    """
    index_path, root = Path(index_path), Path(root)
    if not index_path.is_file():
        raise DataError(f"Index file not found: {index_path}. {missing_hint or DEFAULT_MISSING_HINT}")
    with index_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [column for column in INDEX_COLUMNS if column not in header]
        if missing:
            raise DataError(
                f"Index {index_path} lacks column(s) {missing}; its header is {header}. "
                f"The first line must be `{','.join(INDEX_COLUMNS)}` (optionally `,depth_scale`)."
            )
        rows = []
        for line_number, record in enumerate(reader, start=2):
            record = {key.strip(): (value or "").strip() for key, value in record.items() if key}
            if not record["rgb"] or not record["depth"]:
                raise DataError(f"Index {index_path}, line {line_number}: empty rgb or depth path.")
            rows.append(
                IndexRow(
                    rgb=root / record["rgb"],
                    depth=root / record["depth"],
                    depth_scale=_scale(record.get("depth_scale", ""), index_path, line_number),
                )
            )
    if not rows:
        raise DataError(
            f"Index {index_path} has no rows: list at least one `rgb,depth` pair below the header."
        )
    return rows


def _scale(text: str, index_path: Path, line_number: int) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise DataError(
            f"Index {index_path}, line {line_number}: depth_scale must be a positive number, got {text!r} "
            "(stored value / depth_scale = metres; leave it empty to use the domain's)."
        )
    return value


def write_index(index_path: str | Path, pairs: Iterable[Sequence[Any]]) -> None:
    """Write an index CSV with the standard header; ``pairs`` are paths relative to the data root.

    A pair may carry a third item, its ``depth_scale`` (or ``None``); the column is written only
    when some row has one.
    """
    index_path = Path(index_path)
    index_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [tuple(pair) for pair in pairs]
    with_scale = any(len(row) > 2 and row[2] is not None for row in rows)
    with index_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS + OPTIONAL_COLUMNS if with_scale else INDEX_COLUMNS)
        for row in rows:
            if with_scale:
                scale = row[2] if len(row) > 2 else None
                writer.writerow((row[0], row[1], "" if scale is None else f"{float(scale):g}"))
            else:
                writer.writerow(row[:2])
