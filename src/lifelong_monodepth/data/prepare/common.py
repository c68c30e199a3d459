"""What every importer shares: the pairs it found, what it skipped and why, the split files it writes.

An importer turns a dataset as downloaded into the index CSVs the domain configs read
(``data_index/<domain>/{train,val,test,replay}.csv``, header ``rgb,depth[,depth_scale]``, paths relative
to the domain's data root, which is the ``--source`` folder). It never copies images, except where the
download has no image files at all (the NYU labeled ``.mat``).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lifelong_monodepth.data.index import write_index

#: The splits every importer writes, in this order.
SPLITS = ("train", "val", "test", "replay")


class SourceError(Exception):
    """``--source`` is not the download the importer expects (the message says what it expected)."""


@dataclass(frozen=True)
class Pair:
    """One RGB/depth pair found in the source, as absolute paths, with the group it belongs to.

    ``group`` is the scene or drive: validation is held out by whole groups, so that no validation
    frame has a near-duplicate neighbour in training.
    """

    rgb: Path
    depth: Path
    group: str = ""
    depth_scale: float | None = None


@dataclass
class PrepareResult:
    """Pairs per split plus every skipped candidate, counted by reason (printed and saved as JSON)."""

    dataset: str
    source: Path
    splits: dict[str, list[Pair]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str, example: str | Path, limit: int = 3) -> None:
        """Count one skipped candidate under ``reason`` (a few examples are kept for the report)."""
        self.skipped[reason] += 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < limit:
            examples.append(str(example))

    def counts(self) -> dict[str, int]:
        return {split: len(self.splits.get(split, [])) for split in SPLITS}


def relative_to(path: Path, root: Path) -> str:
    """``path`` relative to the domain root (POSIX separators), or absolute when it lies outside it."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def hold_out_val(
    pairs: Sequence[Pair], fraction: float, seed: int, by_group: bool = True
) -> tuple[list[Pair], list[Pair]]:
    """Split ``pairs`` into (train, val): about ``fraction`` of the pairs, as whole groups when possible."""
    pairs = list(pairs)
    if fraction <= 0 or len(pairs) < 2:
        return pairs, []
    target = max(1, int(round(len(pairs) * fraction)))
    rng = np.random.default_rng(seed)
    groups = sorted({pair.group for pair in pairs})
    if by_group and len(groups) > 1:
        chosen: set[str] = set()
        size = Counter(pair.group for pair in pairs)
        for index in rng.permutation(len(groups)).tolist():
            if sum(size[g] for g in chosen) >= target:
                break
            if len(chosen) + 1 < len(groups):  # keep at least one group for training
                chosen.add(groups[index])
        return [p for p in pairs if p.group not in chosen], [p for p in pairs if p.group in chosen]
    picked = set(rng.choice(len(pairs), size=min(target, len(pairs) - 1), replace=False).tolist())
    train = [p for i, p in enumerate(pairs) if i not in picked]
    return train, [p for i, p in enumerate(pairs) if i in picked]


def sample_replay(pairs: Sequence[Pair], count: int, seed: int) -> list[Pair]:
    """The exemplar memory: ``count`` training pairs drawn without replacement (seeded, in index order)."""
    pairs = list(pairs)
    count = min(count, len(pairs))
    picked = np.random.default_rng(seed).choice(len(pairs), size=count, replace=False)
    return [pairs[i] for i in sorted(picked.tolist())]


def write_result(result: PrepareResult, out: Path, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Write one CSV per non-empty split and ``prepare.json`` (counts, skips, source, command)."""
    out.mkdir(parents=True, exist_ok=True)
    empty = [split for split in ("train", "test") if not result.splits.get(split)]
    if empty:
        raise SourceError(
            f"No usable {' or '.join(empty)} pairs found in {result.source} "
            f"(skipped: {dict(result.skipped) or 'none'}). Check --source and the options."
        )
    written = {}
    for split in SPLITS:
        pairs = result.splits.get(split, [])
        path = out / f"{split}.csv"
        if not pairs:
            if path.exists():
                path.unlink()  # a stale file from an earlier run would be read as this split
            continue
        write_index(
            path,
            [
                (relative_to(p.rgb, result.source), relative_to(p.depth, result.source), p.depth_scale)
                for p in pairs
            ],
        )
        written[split] = str(path)
    manifest = {
        "dataset": result.dataset,
        "source": str(result.source.resolve()),
        "counts": result.counts(),
        "skipped": dict(result.skipped),
        "skipped_examples": result.skipped_examples,
        "notes": result.notes,
        "files": written,
        "command": list(argv) if argv is not None else sys.argv,
    }
    (out / "prepare.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def format_report(result: PrepareResult, out: Path, domain: str, letter: str) -> str:
    """The lines printed after an import: counts, skips with reasons and examples, how to use the data."""
    counts = result.counts()
    lines = [f"{result.dataset}: wrote {out}/" + "{" + ",".join(s for s in SPLITS if counts[s]) + "}.csv"]
    lines.append("  " + "  ".join(f"{split} {counts[split]:,}" for split in SPLITS))
    if result.skipped:
        lines.append(f"  skipped {sum(result.skipped.values()):,}:")
        for reason, count in result.skipped.most_common():
            example = ", ".join(result.skipped_examples.get(reason, [])[:2])
            lines.append(f"    {count:,} {reason} (e.g. {example})")
    else:
        lines.append("  skipped nothing")
    lines.extend(f"  note: {note}" for note in result.notes)
    source = result.source.resolve()
    if source.name == domain:
        hint = f"LMD_DATA_DIR={source.parent}"
    else:
        hint = f"domains.{letter}.root={source} (or link it as $LMD_DATA_DIR/{domain})"
    lines.append(f"  paths are relative to {source}: train with {hint}")
    return "\n".join(lines)
