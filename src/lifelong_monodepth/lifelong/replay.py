"""Replay: a small exemplar memory per learned domain, rehearsed through that domain's head."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from lifelong_monodepth.data.dataset import DepthDataset
from lifelong_monodepth.data.index import IndexRow, read_index
from lifelong_monodepth.lifelong.base import LifelongStrategy, Stage
from lifelong_monodepth.training.losses import uncertainty_depth_loss

if TYPE_CHECKING:
    from lifelong_monodepth.data.datamodule import LifelongDataModule
    from lifelong_monodepth.training.module import LifelongDepthModule

SELECTIONS = ("random", "first")
SOURCES = ("index", "train")


class ReplayBuffer:
    """Which rows of each domain are kept as exemplars (row paths, so a checkpoint carries them)."""

    def __init__(self, capacity_per_domain: int = 500, selection: str = "random", seed: int = 0) -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"replay selection must be one of {SELECTIONS}, got {selection!r}")
        self.capacity = int(capacity_per_domain)
        self.selection = selection
        self.seed = seed
        self.rows: dict[str, list[IndexRow]] = {}

    def add_domain(self, letter: str, candidates: Sequence[IndexRow]) -> list[IndexRow]:
        """Choose up to ``capacity`` exemplars of a domain among ``candidates``."""
        candidates = list(candidates)
        count = min(self.capacity, len(candidates))
        if self.selection == "random":
            rng = np.random.default_rng([self.seed, ord(letter)])
            picked = sorted(rng.choice(len(candidates), size=count, replace=False).tolist())
        else:
            picked = list(range(count))
        self.rows[letter] = [candidates[i] for i in picked]
        return self.rows[letter]

    def __contains__(self, letter: str) -> bool:
        return letter in self.rows

    def __len__(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def state_dict(self) -> dict[str, Any]:
        # A row's own depth_scale (mixed 8/16-bit releases) travels with it, as a third item.
        return {
            letter: [
                (str(r.rgb), str(r.depth))
                if r.depth_scale is None
                else (str(r.rgb), str(r.depth), r.depth_scale)
                for r in rows
            ]
            for letter, rows in self.rows.items()
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        from pathlib import Path

        self.rows = {
            letter: [IndexRow(Path(row[0]), Path(row[1]), *(float(x) for x in row[2:3])) for row in rows]
            for letter, rows in state.items()
        }


class ReplayCallback(LifelongStrategy):
    """Each training step adds, per old domain, a replay batch through that domain's head.

    ``source="index"`` takes exemplars from the domain's ``replay`` CSV (the paper's fixed
    subsets); ``"train"`` samples them from its training set at the end of its stage.
    ``every_step=True`` (default) cycles the memory so every step rehearses; ``False`` matches
    the original scripts, whose replay iterator ran dry after one pass per epoch.
    ``num_workers`` loader processes decode and augment the replay batches ahead of the step
    (``"auto"``: up to 2, none when ``data.num_workers`` is 0), with ``data.pin_memory``: on a GPU,
    decoding them in the training process cost more than the step itself (docs/benchmarks.md).
    The batches are the same whatever the worker count (augmentation is seeded per sample).
    """

    def __init__(
        self,
        memory_per_domain: int = 500,
        batch_size: int = 4,
        selection: str = "random",
        source: str = "index",
        every_step: bool = True,
        weight: float = 10.0,
        domain_weights: Mapping[str, float] | None = None,
        position_weights: Sequence[float] | None = None,
        seed: int = 0,
        num_workers: int | str = "auto",
    ) -> None:
        super().__init__(weight, domain_weights, position_weights)
        if not (num_workers == "auto" or (isinstance(num_workers, int) and num_workers >= 0)):
            raise ValueError(f"replay num_workers must be >= 0 or 'auto', got {num_workers!r}")
        self.num_workers = num_workers
        # This step's replay images and their fused maps, by letter (``DistillationCallback(inputs=replay)``).
        self.step_images: dict[str, Tensor] = {}
        self.step_features: dict[str, Tensor] = {}
        self._loader_options: dict[str, Any] = {}
        self._per_pass: dict[str, int] = {}
        if source not in SOURCES:
            raise ValueError(f"replay source must be one of {SOURCES}, got {source!r}")
        self.buffer = ReplayBuffer(memory_per_domain, selection, seed)
        self.batch_size = batch_size
        self.source = source
        self.every_step = every_step
        self.seed = seed
        self.learned: list[str] = []
        self._datasets: dict[str, DepthDataset] = {}
        self._iterators: dict[str, Iterator[dict[str, Any]] | None] = {}
        # Position of each domain's replay stream: pass number and batches drawn in that pass.
        # It is checkpointed, so a resumed run draws exactly the batches it would have drawn.
        self._passes: dict[str, int] = {}
        self._drawn: dict[str, int] = {}
        self._pending: dict[str, tuple[int, int]] = {}
        self.last_batches: dict[str, dict[str, Any]] = {}
        self._step_batches: dict[str, dict[str, Any]] = {}

    @property
    def required_splits(self) -> tuple[str, ...]:
        return ("replay",) if self.source == "index" else ()

    # ------------------------------------------------------------------ stage bookkeeping
    def on_stage_start(
        self, stage: Stage, module: LifelongDepthModule, datamodule: LifelongDataModule
    ) -> None:
        super().on_stage_start(stage, module, datamodule)
        data_workers = int(getattr(datamodule, "num_workers", 0))
        workers = min(2, data_workers) if self.num_workers == "auto" else int(self.num_workers)
        self._loader_options = {
            "num_workers": workers,
            "pin_memory": bool(getattr(datamodule, "pin_memory", False)),
        }
        self._datasets = {}
        for letter in self.learned:
            self._datasets[letter] = datamodule.make_dataset(
                datamodule.domain(letter), "replay", train=True, rows=self.buffer.rows[letter], seed=self.seed
            )
        self._iterators = {letter: None for letter in self._datasets}
        self._passes = {letter: -1 for letter in self._datasets}
        self._drawn = {letter: 0 for letter in self._datasets}
        self._pending = {}

    def on_stage_end(self, stage: Stage, module: LifelongDepthModule, datamodule: LifelongDataModule) -> None:
        self._iterators = {letter: None for letter in self._iterators}  # stops the loader workers
        for letter in stage.current:
            domain = datamodule.domain(letter)
            if self.source == "index":
                candidates = read_index(domain.index_path("replay"), domain.root, domain.missing_index_hint)
            else:
                candidates = datamodule.dataset(letter, "train").rows
            self.buffer.add_domain(letter, candidates)
            if letter not in self.learned:
                self.learned.append(letter)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if not self.every_step:  # original behaviour: a fresh single pass each epoch
            self._iterators = {letter: None for letter in self._datasets}
            self._pending = {}

    # ---------------------------------------------------------------------------- batches
    def _open_pass(self, letter: str, pass_index: int, skip: int = 0) -> Iterator[dict[str, Any]]:
        """One loader streaming this domain's replay batches from ``pass_index`` on (after ``skip``
        batches of it): endless with ``every_step``, else that pass only."""
        from torch.utils.data import DataLoader

        from lifelong_monodepth.data.sampling import EpochIndexedDataset, EpochSeededSampler, PassBatchSampler

        dataset = EpochIndexedDataset([self._datasets[letter]])
        # DDP: every rank draws its share of one global replay batch (see EpochSeededSampler).
        replicas, rank = self._replicas
        sampler = EpochSeededSampler(
            len(dataset), self.seed * 7919 + ord(letter), num_replicas=replicas, rank=rank
        )
        batches = PassBatchSampler(
            sampler,
            min(self.batch_size, len(sampler)),
            pass_index,
            skip,
            passes=None if self.every_step else 1,
        )
        self._passes[letter], self._drawn[letter] = pass_index, skip
        self._per_pass[letter] = batches.batches_per_pass
        # An explicit generator keeps the global RNG untouched (DataLoader draws a base seed from it).
        generator = torch.Generator().manual_seed(self.seed)
        loader = DataLoader(dataset, batch_sampler=batches, generator=generator, **self._loader_options)
        self._iterators[letter] = iter(loader)
        return self._iterators[letter]

    def next_batch(self, letter: str) -> dict[str, Any] | None:
        """Next replay batch of a domain; ``None`` when a single-pass epoch has run dry."""
        iterator = self._iterators.get(letter)
        if iterator is None:
            if letter in self._pending:
                iterator = self._open_pass(letter, *self._pending.pop(letter))
            else:
                iterator = self._open_pass(letter, self._passes.get(letter, -1) + 1)
        try:
            batch = next(iterator)
        except StopIteration:  # single-pass mode only: the stream is endless with every_step
            return None
        # Position of the batch just drawn: the stream moves to the next pass after a full one.
        if self._drawn[letter] >= self._per_pass[letter]:
            self._passes[letter], self._drawn[letter] = self._passes[letter] + 1, 0
        self._drawn[letter] += 1
        return batch

    def step_inputs(self, module: LifelongDepthModule, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Draws this step's replay batch of every old domain; the module encodes them with the current."""
        self._step_batches = {}
        for letter in self._datasets:
            replay = self.next_batch(letter)
            if replay is not None:
                self._step_batches[letter] = replay
        self.last_batches.update(self._step_batches)
        self.step_images = {
            letter: replay["image"].to(module.device, non_blocking=True)
            for letter, replay in self._step_batches.items()
        }
        return dict(self.step_images)

    @property
    def _replicas(self) -> tuple[int, int]:
        trainer = getattr(self, "_trainer", None)
        return (int(trainer.world_size), int(trainer.global_rank)) if trainer is not None else (1, 0)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._trainer = trainer

    def head_inputs(
        self,
        module: LifelongDepthModule,
        batch: Mapping[str, Any],
        fused: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> list[tuple[str, Tensor]]:
        """Each old domain's head on its replay batch's features (kept for distillation on replay)."""
        self.step_features = dict(features or {})
        return [
            (letter, features[letter]) for letter in self._step_batches if features and letter in features
        ]

    def extra_loss(
        self,
        module: LifelongDepthModule,
        batch: Mapping[str, Any],
        fused: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        for letter, replay in self._step_batches.items():
            if features is not None and letter in features:
                replay_fused = features[letter]
            else:  # called on its own: encode here
                replay_fused = module.net.encode(replay["image"].to(module.device), letter)
            out = module.run_heads(replay_fused, [letter])
            loss = uncertainty_depth_loss(
                out.depth[letter],
                out.log_var[letter],
                replay["depth"].to(module.device, non_blocking=True),
                replay["mask"].to(module.device, non_blocking=True),
            )
            terms[f"replay_{letter}"] = self.weight_for(letter, self.learned) * loss
        return terms

    # -------------------------------------------------------------------- checkpoint state
    def state_dict(self) -> dict[str, Any]:
        positions = {
            letter: [self._passes[letter], self._drawn[letter]]
            for letter in self._passes
            if self._passes[letter] >= 0
        }
        return {"buffer": self.buffer.state_dict(), "learned": list(self.learned), "positions": positions}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state_dict["buffer"])
        self.learned = list(state_dict["learned"])
        self._iterators = {letter: None for letter in self._iterators}
        self._pending = {
            letter: (int(p), int(k)) for letter, (p, k) in state_dict.get("positions", {}).items()
        }
