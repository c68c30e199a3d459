"""Index CSVs: one row per sample, columns ``rgb,depth``, paths relative to a data root.

An optional third column ``depth_scale`` overrides the domain's scale for that row (stored value /
scale = metres). It exists because one real dataset mixes encodings between splits: the original
Lifelong-MonoDepth / DenseDepth NYU-v2 release stores training depth as 8-bit PNG (255 = 10 m, scale
25.5) and test depth as 16-bit PNG in millimetres (scale 1000). The importer
(``python -m lifelong_monodepth.data.prepare``) writes the column only where it is needed, so the
row carries its own encoding wherever it goes (held-out validation rows, replay memory).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelong_monodepth.data.errors import DataError

INDEX_COLUMNS = ("rgb", "depth")
#: Optional column: per-row depth scale (overrides the domain's ``depth_scale``).
SCALE_COLUMN = "depth_scale"


@dataclass(frozen=True)
class IndexRow:
    """One RGB/depth pair, both paths already resolved against the data root."""

    rgb: Path
    depth: Path
    #: Stored value / scale = metres for this row; ``None``: the domain's ``depth_scale``.
    depth_scale: float | None = None


def read_index(index_path: str | Path, root: str | Path) -> list[IndexRow]:
    """Parse an index CSV; relative paths are resolved against ``root``, absolute ones kept."""
    index_path, root = Path(index_path), Path(root)
    if not index_path.is_file():
        raise DataError(
            f"Index file not found: {index_path}. For a real dataset write it with "
            "`python -m lifelong_monodepth.data.prepare {nyu,kitti,scannet} --source DIR` "
            "(docs/datasets.md); for the synthetic benchmark run `make data`; or point the domain's "
            "`index` entries at existing CSVs."
        )
    with index_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [column for column in INDEX_COLUMNS if column not in header]
        if missing:
            raise DataError(
                f"Index {index_path} lacks column(s) {missing}; its header is {header}. "
                f"The first line must be `{','.join(INDEX_COLUMNS)}`."
            )
        rows = []
        for line_number, record in enumerate(reader, start=2):
            record = {key.strip(): (value or "").strip() for key, value in record.items() if key}
            if not record["rgb"] or not record["depth"]:
                raise DataError(f"Index {index_path}, line {line_number}: empty rgb or depth path.")
            scale = _parse_scale(record.get(SCALE_COLUMN, ""), index_path, line_number)
            rows.append(IndexRow(rgb=root / record["rgb"], depth=root / record["depth"], depth_scale=scale))
    if not rows:
        raise DataError(
            f"Index {index_path} has no rows: list at least one `rgb,depth` pair below the header."
        )
    return rows


def _parse_scale(value: str, index_path: Path, line_number: int) -> float | None:
    if not value:
        return None
    try:
        scale = float(value)
    except ValueError:
        scale = -1.0
    if not scale > 0:
        raise DataError(
            f"Index {index_path}, line {line_number}: {SCALE_COLUMN} must be a positive number "
            f"(stored value / scale = metres), got {value!r}."
        )
    return scale


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
        writer.writerow((*INDEX_COLUMNS, SCALE_COLUMN) if with_scale else INDEX_COLUMNS)
        for row in rows:
            if with_scale:
                scale = row[2] if len(row) > 2 else None
                writer.writerow((row[0], row[1], "" if scale is None else f"{float(scale):g}"))
            else:
                writer.writerow(row[:2])
