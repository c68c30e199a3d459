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
        for split in dict.fromkeys(splits):
            if split not in domain.index:
                if split in OPTIONAL_SPLITS:
                    continue
                problems.append(
                    f"domains.{domain.letter} ({domain.name}) has no `{split}` index; add "
                    f"`index.{split}` to its YAML. {domain.missing_index_hint}"
                )
                continue
            path = domain.index[split]
            if not path.is_file():
                problems.append(
                    f"{split} index of domain {domain.letter} ({domain.name}) not found: {path}. "
                    f"{domain.missing_index_hint}"
                )
    if problems:
        raise DataError("Missing index file(s), nothing was trained:\n  " + "\n  ".join(problems))
