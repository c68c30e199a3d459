"""Epoch-seeded sampling: shuffles and augmentation that depend on (seed, epoch) only.

Why: a resumed or re-run job must see exactly the same batches. A ``DataLoader`` shuffle
driven by a global generator depends on how many epochs ran in this process; here the
permutation is a pure function of (seed, epoch) and the epoch travels inside the index
(``epoch * len + i``) so that dataloader worker processes know it too.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lifelong_monodepth.data.dataset import DepthDataset


class EpochIndexedDataset(Dataset):
    """Concatenation of one or more ``DepthDataset``s addressed by ``epoch * len + i``."""

    def __init__(self, datasets: Sequence[DepthDataset]) -> None:
        self.datasets = list(datasets)
        self.offsets = [0]
        for dataset in self.datasets:
            self.offsets.append(self.offsets[-1] + len(dataset))

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, key: int) -> dict[str, Any]:
        epoch, i = divmod(int(key), len(self))
        for dataset, start, stop in zip(self.datasets, self.offsets[:-1], self.offsets[1:], strict=True):
            if i < stop:
                dataset.epoch = epoch
                return dataset[i - start]
        raise IndexError(key)


class EpochSeededSampler(Sampler[int]):
    """Random permutation per epoch from (seed, epoch); Lightning calls ``set_epoch``.

    With ``groups`` (index ranges, one per domain) and ``batch_size``, the order is made of whole
    single-domain batches in shuffled order: domains of different image sizes (joint training)
    cannot share a batch. Each domain's incomplete last batch is left out of that epoch.

    Distributed (``num_replicas > 1``): every rank computes the same order and keeps positions
    ``rank, rank + R, …``; a global batch of ``R × batch_size`` consecutive samples of the one-process
    order is then split over the ranks, so R processes see the batches one process would see at
    ``R ×`` the batch size. The order is cut to a multiple of R so every rank takes the same number
    of steps. ``batch_size`` is per rank.
    """

    def __init__(
        self,
        length: int,
        seed: int,
        shuffle: bool = True,
        groups: Sequence[tuple[int, int]] | None = None,
        batch_size: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"sampler rank {rank} is outside 0..{num_replicas - 1}")
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.groups = list(groups) if groups is not None and len(groups) > 1 else None
        self.batch_size = int(batch_size or 1)
        self.dataset_length = sum(stop - start for start, stop in self.groups) if self.groups else length
        if self.groups is not None:
            step = self.batch_size * self.num_replicas  # single-domain global batches
            length = sum((stop - start) // step * step for start, stop in self.groups)
        self.global_length = length // self.num_replicas * self.num_replicas
        self.length = self.global_length // self.num_replicas
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_from(self, epoch: int, skip: int) -> None:
        """The next pass over ``epoch`` starts after its first ``skip`` samples (mid-epoch resume)."""
        self._resume = (epoch, skip)

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.groups is not None:
            order = self._grouped_order(generator)
        elif self.shuffle:
            order = torch.randperm(self.dataset_length, generator=generator).tolist()
        else:
            order = list(range(self.global_length))
        order = order[: self.global_length][self.rank :: self.num_replicas]
        if self._resume is not None and self._resume[0] == self.epoch:
            order = order[self._resume[1] :]
        self._resume = None
        base = self.epoch * self.dataset_length
        return iter([base + i for i in order])

    def _grouped_order(self, generator: torch.Generator) -> list[int]:
        assert self.groups is not None
        batches = []
        for start, stop in self.groups:
            count = stop - start
            inner = torch.randperm(count, generator=generator).tolist() if self.shuffle else range(count)
            indices = [start + i for i in inner]
            step = self.batch_size * self.num_replicas
            usable = count // step * step
            batches += [indices[i : i + step] for i in range(0, usable, step)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return [i for batch in batches for i in batch]


class PassBatchSampler(Sampler[list[int]]):
    """Batches of consecutive passes of an :class:`EpochSeededSampler` (pass ``p`` = its epoch ``p``).

    Why: a loader with worker processes must not be rebuilt at every pass over a small memory
    (replay: 64 exemplars are 16 batches), or every pass pays the workers' start-up; this streams
    pass after pass through one loader. Each pass drops its incomplete last batch, as one loader
    per pass with ``drop_last=True`` did, so the batches are the same. ``passes=None``: endless.
    """

    def __init__(
        self,
        sampler: EpochSeededSampler,
        batch_size: int,
        first_pass: int,
        skip_batches: int = 0,
        passes: int | None = None,
    ) -> None:
        if batch_size < 1 or len(sampler) < batch_size:
            raise ValueError(f"a pass of {len(sampler)} samples holds no batch of {batch_size}")
        self.sampler, self.batch_size = sampler, int(batch_size)
        self.first_pass, self.skip_batches, self.passes = int(first_pass), int(skip_batches), passes

    @property
    def batches_per_pass(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        pass_index, skip = self.first_pass, self.skip_batches
        while self.passes is None or pass_index < self.first_pass + self.passes:
            self.sampler.set_epoch(pass_index)
            if skip:
                self.sampler.resume_from(pass_index, skip * self.batch_size)
            batch: list[int] = []
            for index in self.sampler:
                batch.append(index)
                if len(batch) == self.batch_size:
                    yield batch
                    batch = []
            pass_index, skip = pass_index + 1, 0


class ResumableDataLoader(DataLoader):
    """A DataLoader Lightning can checkpoint: it records how many batches of the epoch were consumed.

    Lightning saves ``state_dict()`` in its checkpoints and calls ``load_state_dict`` before
    iterating again, so a run resumed mid-epoch continues with exactly the batches it had not
    seen (``consumed`` is set by the checkpoint callback, since prefetching makes the loader's
    own count run ahead of training).
    """

    consumed: int = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": int(getattr(self.sampler, "epoch", 0)), "consumed": int(self.consumed)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, EpochSeededSampler) and state:
            self.sampler.resume_from(int(state["epoch"]), int(state["consumed"]) * int(self.batch_size or 1))
