"""``LifelongDataModule``: serves the current domain(s) of a lifelong sequence.

The sequence runner calls :meth:`set_current` before each stage; Lightning then gets that
domain's train/val loaders. Test loaders for any domain and replay datasets of earlier
domains are available at all times (the replay callback draws from them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Subset

from lifelong_monodepth.data.collate import EvalDataLoader
from lifelong_monodepth.data.dataset import DepthDataset
from lifelong_monodepth.data.domain import DomainConfig, domains_from_config
from lifelong_monodepth.data.errors import ConfigError, DataError
from lifelong_monodepth.data.index import IndexRow, read_index
from lifelong_monodepth.data.preflight import check_index_files
from lifelong_monodepth.data.sampling import EpochIndexedDataset, EpochSeededSampler, ResumableDataLoader


class LifelongDataModule(pl.LightningDataModule):
    """Train/val loaders of the current domain(s), test loaders and replay sets of all domains."""

    def __init__(
        self,
        domains: Mapping[str, Any],
        batch_size: int = 8,
        eval_batch_size: int = 8,
        num_workers: int | str = 0,
        on_error: str = "raise",
        seed: int = 0,
        val_fraction: float = 0.1,
        check_files: bool = True,
        drop_last: bool = True,
        val_old_domains: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        self.domains: dict[str, DomainConfig] = (
            dict(domains)
            if all(isinstance(d, DomainConfig) for d in domains.values())
            else domains_from_config(domains)
        )
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = resolve_num_workers(num_workers)
        # Pinned host memory lets the copy to the GPU run asynchronously (only meaningful with CUDA).
        self.pin_memory = bool(pin_memory) and torch.cuda.is_available()
        # Workers that live across epochs: no process start-up at every epoch of a stage.
        self.persistent_workers = bool(persistent_workers) and self.num_workers > 0
        self.on_error = on_error
        self.seed = seed
        self.val_fraction = val_fraction
        self.check_files = check_files
        self.drop_last = drop_last
        self.val_old_domains = int(val_old_domains)
        self.current: list[str] = []
        self.previous: list[str] = []
        self._datasets: dict[tuple[str, str], DepthDataset] = {}
        self._built: list[DepthDataset] = []  # every dataset handed out, for the skipped-row count

    # ----------------------------------------------------------------------------- domains
    def set_current(self, letters: Sequence[str], previous: Sequence[str] = ()) -> None:
        """Make ``letters`` the domain(s) being learned (several for joint training); ``previous``
        are the domains learned before, validated on a small fixed subset (``val_old_domains``)."""
        for letter in [*letters, *previous]:
            self.domain(letter)
        self.current = list(letters)
        self.previous = [letter for letter in previous if letter not in self.current]

    def domain(self, letter: str) -> DomainConfig:
        if letter not in self.domains:
            raise ConfigError(
                f"Unknown domain letter {letter!r}; known letters: {''.join(sorted(self.domains))}."
            )
        return self.domains[letter]

    # ---------------------------------------------------------------------------- datasets
    def dataset(self, letter: str, split: str) -> DepthDataset:
        """Datasets are built once and cached; ``val`` falls back to a held-out slice of ``train``."""
        key = (letter, split)
        if key not in self._datasets:
            domain = self.domain(letter)
            train = split in ("train", "replay")
            if split in ("train", "val") and "val" not in domain.index:
                rows = read_index(domain.index_path("train"), domain.root, domain.missing_index_hint)
                n_val = max(1, int(round(len(rows) * self.val_fraction)))
                if len(rows) <= n_val:
                    raise DataError(
                        f"Index {domain.index_path('train')} has {len(rows)} rows: too few to hold out a "
                        "validation split. Add rows or give the domain a `val` index."
                    )
                rows = rows[:-n_val] if split == "train" else rows[-n_val:]
                dataset = self.make_dataset(domain, "train", train=train, rows=rows)
            else:
                rows = read_index(domain.index_path(split), domain.root, domain.missing_index_hint)
                dataset = self.make_dataset(domain, split, train=train, rows=rows)
            if self.check_files:
                _check_files_exist(dataset)
            self._datasets[key] = dataset
        return self._datasets[key]

    def make_dataset(
        self, domain: DomainConfig, split: str, train: bool, rows: list[IndexRow], seed: int | None = None
    ) -> DepthDataset:
        """Every dataset of a run is built here: it takes ``on_error`` and its skips are counted."""
        dataset = DepthDataset(
            domain,
            split,
            train=train,
            on_error=self.on_error,
            seed=self.seed if seed is None else seed,
            rows=rows,
        )
        self._built.append(dataset)
        return dataset

    def skipped(self) -> dict[str, str]:
        """Bad rows skipped so far (``rgb,depth`` → reason), each once, over every dataset of this module."""
        out: dict[str, str] = {}
        for dataset in self._built:
            for key, reason in dataset.skipped.items():
                out.setdefault(key, reason)
        return out

    def check_index_files(self, letters: Sequence[str], splits: Sequence[str]) -> None:
        """Before any training: every index CSV the run will read exists (see ``data/preflight.py``)."""
        check_index_files([self.domain(letter) for letter in letters], splits)

    def fit_split(self, letter: str) -> str:
        """What end-of-stage fits (selector, EWC Fisher) read: the replay index if it exists, else train."""
        path = self.domain(letter).index.get("replay")
        return "replay" if path is not None and path.is_file() else "train"

    # ------------------------------------------------------------------------- dataloaders
    def train_dataloader(self) -> DataLoader:
        if not self.current:
            raise RuntimeError("LifelongDataModule.set_current(...) must be called before training.")
        dataset = EpochIndexedDataset([self.dataset(letter, "train") for letter in self.current])
        stage_seed = self.seed * 31 + sum(ord(c) for c in "".join(self.current))
        # Several domains at once (joint training): single-domain batches, since sizes differ.
        groups = list(zip(dataset.offsets[:-1], dataset.offsets[1:], strict=True))
        batch_size = min(self.batch_size, *(stop - start for start, stop in groups))
        replicas, rank = self._replicas()
        sampler = EpochSeededSampler(
            len(dataset), stage_seed, groups=groups, batch_size=batch_size, num_replicas=replicas, rank=rank
        )
        return self._loader(dataset, batch_size, sampler, self.drop_last)

    @property
    def val_letters(self) -> list[str]:
        """Domains validated during a stage: the current one(s), then a subset of each earlier one."""
        return [*self.current, *(self.previous if self.val_old_domains > 0 else [])]

    def _replicas(self) -> tuple[int, int]:
        """(world size, rank) of the Trainer using this module: DDP ranks split every batch."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def val_dataloader(self) -> list[DataLoader]:
        loaders = [self.eval_loader(letter, "val") for letter in self.current]
        for letter in self.val_letters[len(self.current) :]:
            full = self.eval_loader(letter, "val")  # its first images, the same in every stage
            subset = Subset(full.dataset, range(min(self.val_old_domains, len(full.dataset))))
            loaders.append(
                type(full)(subset, batch_size=full.batch_size, shuffle=False, num_workers=self.num_workers)
            )
        return loaders

    def test_dataloader(self) -> list[DataLoader]:
        return [self.eval_loader(letter, "test") for letter in self.current]

    def eval_loader(self, letter: str, split: str = "test") -> DataLoader:
        """Evaluation batches at native ground-truth size (any mix of sizes); skipped rows dropped."""
        dataset = self.dataset(letter, split)
        if split in ("train", "replay"):  # evaluation path: no augmentation, native depth
            dataset = self.make_dataset(dataset.domain, dataset.split, train=False, rows=dataset.rows)
        return EvalDataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=False,
        )

    def replay_loader(self, letter: str, batch_size: int, seed: int) -> DataLoader:
        """Endless-friendly loader over a domain's replay split (training transforms)."""
        dataset = EpochIndexedDataset([self.dataset(letter, "replay")])
        return self._loader(dataset, batch_size, EpochSeededSampler(len(dataset), seed), False)

    def _loader(self, dataset: Any, batch_size: int, sampler: Any, drop_last: bool) -> DataLoader:
        batch_size = min(batch_size, len(dataset)) if drop_last else batch_size
        return ResumableDataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            drop_last=drop_last,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )


def resolve_num_workers(value: int | str) -> int:
    """``auto``: one loader process per spare core, at most 8 (the GPU preset's default)."""
    if str(value) == "auto":
        import os

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(0, min(8, cores - 1))
    if int(value) < 0:
        raise ConfigError(f"data.num_workers must be >= 0 or 'auto', got {value!r}.")
    return int(value)


def _check_files_exist(dataset: DepthDataset) -> None:
    """Fail (or, with on_error=skip, only count) before training when listed files are missing."""
    missing = [
        (row, row.rgb if not row.rgb.is_file() else row.depth)
        for row in dataset.rows
        if not (row.rgb.is_file() and row.depth.is_file())
    ]
    if not missing:
        return
    index = dataset.domain.index.get(dataset.split, dataset.split)
    if dataset.on_error == "raise":
        shown = ", ".join(str(path) for _, path in missing[:3])
        raise DataError(
            f"{len(missing)} file(s) listed in {index} do not exist (first: {shown}). Fix the data root "
            f"`domains.{dataset.domain.letter}.root` ({dataset.domain.root}) or the index, "
            "or set data.on_error=skip."
        )
    for row, path in missing:
        dataset.record_skip(row, f"File not found: {path}")
