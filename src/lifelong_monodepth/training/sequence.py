"""Run a lifelong sequence stage after stage: ``python run.py order=NKS``.

For each stage: switch the DataModule's domain, grow a head, fit (one Trainer per stage),
let the strategies update (replay memory, …), fit the domain selector, write the stage
checkpoint (``N.ckpt``, ``NK.ckpt``, ``NKS.ckpt``) and evaluate every domain. A run directory
that already holds finished stages is resumed: finished stages are loaded, not repeated.
"""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from lifelong_monodepth.checkpoint import (
    attach_results,
    load_training_state,
    results_from_rows,
    training_state_path,
)
from lifelong_monodepth.data.datamodule import LifelongDataModule
from lifelong_monodepth.data.domain import DomainConfig, domains_from_config
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.evaluation.evaluate import (
    DomainEvaluation,
    evaluate_domains,
    evaluation_options,
    protocol_label,
)
from lifelong_monodepth.evaluation.results import ResultsTable
from lifelong_monodepth.evaluation.selector_fit import fit_selector_from_data
from lifelong_monodepth.lifelong.base import LifelongStrategy, Stage
from lifelong_monodepth.models.domain_norm import domain_bn_mode
from lifelong_monodepth.models.selection import DomainSelector, SelectorOptions
from lifelong_monodepth.tracking import Tracker
from lifelong_monodepth.training.checkpointing import (
    PreemptedError,
    PreemptionGuard,
    ResumeCheckpoint,
    load_checkpoint_file,
    remove_training_state,
    write_stage_files,
)
from lifelong_monodepth.training.distributed import any_rank_stops, is_global_zero, launch_ranks
from lifelong_monodepth.training.module import LifelongDepthModule
from lifelong_monodepth.training.order import resolve_order, stage_names
from lifelong_monodepth.training.precise_bn import recalibrate_domain_statistics
from lifelong_monodepth.training.stage_schedule import StageSchedule
from lifelong_monodepth.training.timing import RunTiming, StageTimer
from lifelong_monodepth.utils.io import write_json
from lifelong_monodepth.utils.run_info import run_metadata, write_run_info

log = logging.getLogger(__name__)
ENCODER_STRIDE = 32


@dataclass
class SequenceResult:
    output_dir: Path
    order: list[str]
    stages: list[Stage]
    checkpoints: dict[str, Path] = field(default_factory=dict)
    table: ResultsTable | None = None
    timing: RunTiming | None = None


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


# ------------------------------------------------------------------------------ preparation
def check_config(cfg: DictConfig) -> tuple[dict[str, DomainConfig], list[str]]:
    """Everything that can be wrong in the configuration is reported here, before any training."""
    if "domains" not in cfg or not cfg.domains:
        raise ConfigError(
            "No `domains` configured: choose a benchmark (benchmark=synthetic or benchmark=real)."
        )
    domains = domains_from_config(cfg.domains)
    order = resolve_order(str(cfg.order), domains, Path(cfg.paths.conf_dir) / "orders")
    for letter in order:
        height, width = domains[letter].input_size
        if height % ENCODER_STRIDE or width % ENCODER_STRIDE:
            raise ConfigError(
                f"domains.{letter}.input_size={[height, width]} is not divisible by the encoder stride "
                f"{ENCODER_STRIDE}; use e.g. {[_round(height), _round(width)]}."
            )
    return domains, order


def _round(size: int) -> int:
    return max(ENCODER_STRIDE, int(round(size / ENCODER_STRIDE)) * ENCODER_STRIDE)


def ensure_benchmark(cfg: DictConfig, domains: dict[str, DomainConfig], order: list[str]) -> None:
    """Generate the embedded synthetic benchmark when it is configured and missing."""
    benchmark = cfg.get("benchmark") or {}
    if not benchmark.get("generate", False):
        return
    missing = [d for d in order if not all(path.is_file() for path in domains[d].index.values())]
    if not missing:
        return
    from lifelong_monodepth.data.synthetic import generate_benchmark
    from lifelong_monodepth.data.synthetic.generate import format_summary

    log.info("Synthetic benchmark missing for %s: generating it.", "".join(missing))
    summary = generate_benchmark(
        data_dir=cfg.paths.data_dir,
        index_dir=cfg.paths.index_dir,
        seed=int(benchmark.get("seed", 0)),
        counts=_container(benchmark.get("counts")),
        verbose=False,
    )
    log.info("\n%s", format_summary(summary))


def build_module(cfg: DictConfig) -> LifelongDepthModule:
    model = cfg.model
    return LifelongDepthModule(
        net=_container(model.net),
        optimizer=_container(model.get("optimizer")),
        scheduler=_container(model.get("scheduler")),
        freeze_old_head_bn=bool(model.get("freeze_old_head_bn", True)),
        max_bad_steps=int(model.get("max_bad_steps", 10)),
        freeze_shared_bn=str(model.get("freeze_shared_bn", "none")),
        freeze_shared_bn_from_stage=int(model.get("freeze_shared_bn_from_stage", 1)),
        fused_step=bool(model.get("fused_step", True)),
        channels_last=bool(model.get("channels_last", False)),
        compile=_container(model.get("compile", False)),
        matmul_precision=model.get("matmul_precision"),
        head_warmup_steps=int(model.get("head_warmup_steps", 0) or 0),
        head_warmup_fusion=bool(model.get("head_warmup_fusion", False)),
    )


def build_strategies(cfg: DictConfig) -> list[LifelongStrategy]:
    strategies = []
    for name, node in (cfg.strategy.get("callbacks") or {}).items():
        if node is None:
            continue
        strategy = instantiate(node, _convert_="all")
        if not isinstance(strategy, LifelongStrategy):
            raise ConfigError(
                f"strategy.callbacks.{name} must be a LifelongStrategy, got {type(strategy).__name__}."
            )
        strategies.append(strategy)
    return strategies


def plan_stages(order: list[str], joint: bool) -> list[Stage]:
    if joint:
        return [Stage(index=0, name="".join(order), current=list(order), previous=[])]
    names = stage_names(order)
    return [Stage(index=i, name=names[i], current=[order[i]], previous=order[:i]) for i in range(len(order))]


# --------------------------------------------------------------------------------- the run
class SequenceRunner:
    """Holds what lives across stages: the module, the strategies, the datamodule, the results."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.domains, self.order = check_config(cfg)
        self.output_dir = Path(cfg.paths.output_dir)
        self.ckpt_dir = self.output_dir / "checkpoints"
        self.results_dir = self.output_dir / "results"
        self.evaluation = cfg.get("evaluation") or {}
        self.tracker = Tracker(cfg, self.output_dir, self.order)  # before data and model: fails fast
        ensure_benchmark(cfg, self.domains, self.order)
        pl.seed_everything(int(cfg.seed), workers=True, verbose=False)
        self.datamodule: LifelongDataModule = instantiate(
            cfg.data, domains={letter: self.domains[letter] for letter in self.order}, _convert_="all"
        )
        self.module = build_module(cfg)
        self.strategies = build_strategies(cfg)
        required = [split for strategy in self.strategies for split in strategy.required_splits]
        eval_split = evaluation_options(self.evaluation)["split"]
        self.datamodule.check_index_files(self.order, ["train", "val", eval_split, *required])
        self.stages = plan_stages(self.order, bool(cfg.strategy.get("joint", False)))
        self.schedule = StageSchedule.from_config(_container(cfg.get("stage_schedule")), len(self.stages))
        self.table = ResultsTable.load_or_new(
            self.results_dir,
            order=self.order,
            strategy=str(cfg.strategy.name),
            protocol=protocol_label(self.evaluation),
        )
        self.table.meta = run_metadata(cfg)
        self.guard = PreemptionGuard()
        self.rank_zero = is_global_zero()  # DDP: rank 0 alone evaluates and writes the run's files
        self.timing = RunTiming(self.results_dir)
        self.timer = StageTimer()

    # --------------------------------------------------------------------------- helpers
    def _callbacks(self, stage: Stage) -> list[pl.Callback]:
        standard = [
            instantiate(node) for node in (self.cfg.get("callbacks") or {}).values() if node is not None
        ]
        every = int((self.cfg.get("checkpoint") or {}).get("every_n_steps", 0))
        resume = ResumeCheckpoint(self.stage_resume_path(stage), every_n_steps=every, guard=self.guard)
        self.timer = StageTimer()
        return [*self.strategies, *standard, resume, self.timer]

    def stage_checkpoint(self, stage: Stage) -> Path:
        return self.ckpt_dir / f"{stage.name}.ckpt"

    def stage_resume_path(self, stage: Stage) -> Path:
        return self.ckpt_dir / "resume" / stage.name / "last.ckpt"

    def stage_info(self, stage: Stage) -> dict[str, Any]:
        """What the slim stage checkpoint says about where it comes from (``inspect`` prints it)."""
        selector = self.cfg.get("selector") or {}
        return {
            **self.manifest(),
            "name": stage.name,
            "index": stage.index,
            "selector": {"name": selector.get("name", "mahalanobis"), "grid": int(selector.get("grid", 4))},
        }

    def selector(self) -> DomainSelector | None:
        node = self.cfg.get("selector") or {}
        name = node.get("name", "mahalanobis")
        if name in (None, "none"):
            return None
        margin = node.get("margin")
        return DomainSelector(
            name,
            self.module.selector_state,
            grid=int(node.get("grid", 4)),
            margin=None if margin is None else float(margin),
        )

    # ---------------------------------------------------------------------------- stages
    def prepare_stage(self, stage: Stage) -> None:
        self.datamodule.set_current(stage.current, previous=stage.previous)
        self.module.set_current(stage.current)
        self.module.stage_index = stage.index  # model.freeze_shared_bn_from_stage
        # New heads are initialised from (seed, stage) alone, so a resumed run builds the same ones.
        with torch.random.fork_rng():
            torch.manual_seed(int(self.cfg.seed) * 1000 + stage.index)
            for letter in stage.current:
                self.module.add_domain(self.domains[letter])
            if self.cfg.get("reinit_old_heads", False):
                for letter in stage.previous:
                    self.module.add_domain(self.domains[letter], reinit=True)

    def manifest(self) -> dict[str, Any]:
        """What a run directory is for; a resume must match it."""
        return {
            "order": "".join(self.order),
            "strategy": str(self.cfg.strategy.name),
            "backbone": _container(self.cfg.model.net).get("encoder", {}).get("backbone"),
            "domains": {letter: self.domains[letter].name for letter in self.order},
            "seed": int(self.cfg.seed),
        }

    def check_resume(self) -> None:
        """A run directory that already holds a run must hold this one: say so before training."""
        path = self.output_dir / "run_manifest.json"
        if path.is_file():
            saved = json.loads(path.read_text())
            wanted = self.manifest()
            different = {k: (saved.get(k), v) for k, v in wanted.items() if saved.get(k) != v}
            if different:
                details = "; ".join(
                    f"{k}: directory has {a!r}, this run {b!r}" for k, (a, b) in different.items()
                )
                raise ConfigError(
                    f"Cannot resume in {self.output_dir}: it holds a different run ({details}). "
                    f"Resume with the original settings (see {self.output_dir / 'resolved_config.yaml'}) "
                    "or start a new run directory."
                )
        for stage in self.stages:
            path = self.stage_checkpoint(stage)
            if not path.is_file():
                continue
            checkpoint = load_checkpoint_file(path)
            learned = list(checkpoint.get("lifelong", {}).get("learned", []))
            saved = checkpoint.get("hyper_parameters", {}).get("net", {}).get("encoder", {}).get("backbone")
            wanted = _container(self.cfg.model.net).get("encoder", {}).get("backbone")
            problems = []
            if learned != stage.seen:
                problems.append(
                    f"it learned {''.join(learned) or 'nothing'}, this run expects {''.join(stage.seen)}"
                )
            if saved != wanted:
                problems.append(f"its backbone is {saved}, this run uses {wanted}")
            fusion = checkpoint.get("hyper_parameters", {}).get("net", {}).get("fusion") or {}
            saved_bn = domain_bn_mode(fusion.get("domain_bn", False))
            wanted_bn = domain_bn_mode(
                (_container(self.cfg.model.net).get("fusion") or {}).get("domain_bn", False)
            )
            if saved_bn != wanted_bn:
                problems.append(f"its model.net.fusion.domain_bn is {saved_bn}, this run uses {wanted_bn}")
            if problems:
                raise ConfigError(
                    f"Cannot resume in {self.output_dir}: checkpoint {path.name} does not match this run "
                    f"({'; '.join(problems)}). Resume with the original settings (see "
                    f"{self.output_dir / 'resolved_config.yaml'}) or start a new run directory."
                )

    def report_skipped(self) -> None:
        skipped = self.datamodule.skipped()
        if skipped:
            log.warning(
                "%d bad file(s) skipped (data.on_error=skip): results/skipped_files.json", len(skipped)
            )
            write_json(self.results_dir / "skipped_files.json", skipped)

    def fit_selector(self) -> None:
        """Old domains' replay memory + the current domain's images → the selector's state; held-out
        images of every learned domain calibrate its unknown threshold (evaluation/selector_fit)."""
        self.module.selector_state = fit_selector_from_data(
            self.module,
            self.datamodule,
            self.module.learned,
            SelectorOptions.from_config(_container(self.cfg.get("selector"))),
            current=self.module.current,
            seed=int(self.cfg.seed),
        )

    def evaluate(self, stage_name: str, letters: list[str]) -> dict[str, DomainEvaluation]:
        selector = self.selector()
        results = evaluate_domains(
            self.module,
            self.datamodule,
            letters,
            selector,
            **evaluation_options(self.evaluation),
        )
        self.table.add_stage(stage_name, results)
        return results

    def evaluate_stage(self, stage: Stage) -> None:
        """Rank 0 evaluates every domain after a stage (timed) and saves the matrix."""
        letters = self.order if self.evaluation.get("evaluate_unseen", True) else stage.seen
        with self.timing.evaluation(stage.name, self.module):
            self.evaluate(stage.name, letters)
        self.table.save(self.results_dir)
        self.timing.save()

    def evaluate_reference(self) -> None:
        """An untrained model (fresh heads on the initial encoder): the floor every stage must beat."""
        if "init" in self.table.stages or not self.evaluation.get("reference_init", True):
            return
        reference = copy.deepcopy(self.module)
        with torch.random.fork_rng():
            for letter in self.order:
                reference.add_domain(self.domains[letter])
        results = evaluate_domains(
            reference,
            self.datamodule,
            self.order,
            None,
            **evaluation_options(self.evaluation),
        )
        self.table.add_stage("init", results)
        self.table.save(self.results_dir)
        self.tracker.stage_evaluated(None, self.table)

    def restore_stage(self, stage: Stage) -> None:
        """Load a finished stage's checkpoint into the module and the strategies (resume)."""
        checkpoint = load_checkpoint_file(self.stage_checkpoint(stage))
        self.prepare_stage(stage)
        self.module.on_load_checkpoint(checkpoint)
        self.module.load_state_dict(checkpoint["state_dict"])
        # Strategies' state lives in the training state (older full checkpoints held it themselves).
        states = load_training_state(training_state_path(self.ckpt_dir / "resume", stage.name))
        states = checkpoint.get("callbacks", {}) if states is None else states
        if not states and self.strategies and stage is not self.stages[-1]:
            # A finished run drops its training state (checkpoint.keep_training_state): rebuild what the
            # strategies keep after a stage from its data and its final weights (replay memory: exactly
            # the run's; EWC's Fisher: taken after the precise statistics; see docs/reliability.md).
            log.warning(
                "No training state for finished stage %s: rebuilding the strategies' state from its "
                "data and final weights.",
                stage.name,
            )
            for strategy in self.strategies:
                strategy.on_stage_start(stage, self.module, self.datamodule)
                strategy.on_stage_end(stage, self.module, self.datamodule)
        for strategy in self.strategies:
            state = states.get(strategy.state_key)
            if state is not None:
                strategy.load_state_dict(state)
        self.module.mark_learned(stage.current)

    def run_stage(self, stage: Stage) -> None:
        self.prepare_stage(stage)
        for strategy in self.strategies:
            strategy.on_stage_start(stage, self.module, self.datamodule)
        resume_path = self.stage_resume_path(stage)
        ckpt_path = None
        if resume_path.is_file():
            load_checkpoint_file(resume_path)  # rejects a truncated file with a clear message
            ckpt_path = str(resume_path)
            log.info("Resuming stage %s from %s", stage.name, resume_path)
        loggers = self.tracker.loggers(stage)
        self.module.lr_factor = self.schedule.lr_factor(stage.index)
        trainer: pl.Trainer = instantiate(
            self.cfg.trainer,
            callbacks=self.tracker.fit_callbacks(self._callbacks(stage), loggers),
            logger=loggers or False,
            default_root_dir=str(self.output_dir),
            **self.schedule.trainer_overrides(stage.index),
        )
        trainer.fit(self.module, datamodule=self.datamodule, ckpt_path=ckpt_path)
        self.timing.record_training(stage.name, self.timer)
        for strategy in self.strategies:
            strategy.on_stage_end(stage, self.module, self.datamodule)
        self.module.mark_learned(stage.current)
        self.recalibrate(stage)
        if self.rank_zero:  # DDP: the ranks hold the same weights; one writes the stage's files
            self.tracker.stage_trained(stage, trainer)
            self.fit_selector()
            write_stage_files(
                self.module,
                self.strategies,
                self.stage_checkpoint(stage),
                training_state_path(self.ckpt_dir / "resume", stage.name),
                self.stage_info(stage),
            )
        if self.rank_zero and resume_path.is_file():
            resume_path.unlink()

    def recalibrate(self, stage: Stage) -> None:
        """Precise per-domain fusion statistics of the stage's domains (``model.precise_bn_batches``).

        Every rank computes the same values (same weights, same unshuffled batches)."""
        batches = self.cfg.model.get("precise_bn_batches", 0)
        if batches == 0 or not self.module.net.domain_bn:
            return
        seen = recalibrate_domain_statistics(
            self.module.net,
            stage.current,
            lambda letter: self.datamodule.eval_loader(letter, "train"),
            None if batches is None else int(batches),
        )
        log.info("Fusion BatchNorm statistics re-estimated on %s", seen)

    def run(self) -> SequenceResult:
        with self.guard, self.tracker:  # the tracker finishes the W&B run, failed on an exception
            return self._run()

    def _run(self) -> SequenceResult:
        result = SequenceResult(self.output_dir, self.order, self.stages)
        self.check_resume()
        if self.rank_zero:
            write_json(self.output_dir / "run_manifest.json", self.manifest())
            write_run_info(self.output_dir, self.cfg)
            self.tracker.start()
            self.evaluate_reference()
        for stage in self.stages:
            checkpoint = self.stage_checkpoint(stage)
            if checkpoint.is_file():
                log.info("Stage %s already finished: loading %s", stage.name, checkpoint)
                self.restore_stage(stage)
            else:
                log.info(
                    "Stage %d/%d: learning %s", stage.index + 1, len(self.stages), "".join(stage.current)
                )
                self.run_stage(stage)
                if self.rank_zero:
                    self.report_skipped()
            if self.rank_zero and stage.name not in self.table.stages:
                self.evaluate_stage(stage)
                attach_results(checkpoint, results_from_rows(self.table.rows, stage.name))
                self.tracker.stage_evaluated(stage, self.table, self.module, self.datamodule, checkpoint)
            result.checkpoints[stage.name] = checkpoint
            # Every rank asks, here (rank 0 after its evaluation): a SIGTERM on any rank stops them all.
            if stage is not self.stages[-1] and any_rank_stops(self.guard.received):
                raise PreemptedError(
                    f"Stopped by SIGTERM after stage {stage.name} (finished: {checkpoint}); continue with "
                    f"the same command plus resume={self.output_dir}"
                )
        result.table, result.timing = self.table, self.timing
        if not self.rank_zero:
            return result
        self.table.finalise(self.results_dir)
        self.timing.add_to_summary(self.table.summary, self.results_dir / "summary.json")
        if not (self.cfg.get("checkpoint") or {}).get("keep_training_state", False):
            remove_training_state(self.ckpt_dir / "resume")
        self.tracker.finished(self.table)
        return result


def run_sequence(cfg: DictConfig) -> SequenceResult:
    launch_ranks(cfg)  # trainer=ddp on one node: the other ranks start here, once
    return SequenceRunner(cfg).run()
