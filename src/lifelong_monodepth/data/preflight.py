"""Checks run before any training: every index CSV the run will read exists.

A missing replay or test index used to surface only at the end of the first stage, after an hour
of training. Here every missing file of every domain is listed at once, with the domain's own way
to build it (``prepare`` in its YAML: the importer of a real dataset, ``make data`` for the
synthetic benchmark).
"""

from __future__ import annotations

from collections.abc import Sequence

from lifelong_monodepth.data.domain import DomainConfig
from lifelong_monodepth.data.errors import DataError

OPTIONAL_SPLITS = ("val",)  # read only when the domain defines it (otherwise held out of train)


def check_index_files(domains: Sequence[DomainConfig], splits: Sequence[str]) -> None:
    """Raise one ``DataError`` naming every missing index CSV among ``splits`` of ``domains``."""
    problems = []
    for domain in domains:
        missing = []
        for split in dict.fromkeys(splits):
            path = domain.index.get(split)
            if path is None:
                if split not in OPTIONAL_SPLITS:
                    missing.append(f"{split} (no `index.{split}` in its YAML)")
            elif not path.is_file():
                missing.append(f"{split}: {path}")
        if missing:
            problems.append(
                f"domain {domain.letter} ({domain.name}): "
                + "; ".join(missing)
                + f". {domain.missing_index_hint}"
            )
    if problems:
        replay = (
            "\n  Without a replay CSV, strategy.callbacks.replay.source=train draws replay from train."
            if ("replay" in splits)
            else ""
        )
        raise DataError("Missing index file(s), nothing was trained:\n  " + "\n  ".join(problems) + replay)
