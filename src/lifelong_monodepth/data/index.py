"""Index CSVs: one row per sample, columns ``rgb,depth``, paths relative to a data root."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lifelong_monodepth.data.errors import DataError

INDEX_COLUMNS = ("rgb", "depth")


@dataclass(frozen=True)
class IndexRow:
    """One RGB/depth pair, both paths already resolved against the data root."""

    rgb: Path
    depth: Path


def read_index(index_path: str | Path, root: str | Path) -> list[IndexRow]:
    """Parse an index CSV; relative paths are resolved against ``root``, absolute ones kept."""
    index_path, root = Path(index_path), Path(root)
    if not index_path.is_file():
        raise DataError(
            f"Index file not found: {index_path}. Generate the synthetic benchmark with `make data`, "
            "or point the domain's `index` entries at existing CSVs."
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
            rows.append(IndexRow(rgb=root / record["rgb"], depth=root / record["depth"]))
    if not rows:
        raise DataError(
            f"Index {index_path} has no rows: list at least one `rgb,depth` pair below the header."
        )
    return rows


def write_index(index_path: str | Path, pairs: Iterable[tuple[str, str]]) -> None:
    """Write an index CSV with the standard header; ``pairs`` are paths relative to the data root."""
    index_path = Path(index_path)
    index_path.parent.mkdir(parents=True, exist_ok=True)
    with index_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS)
        writer.writerows(pairs)
