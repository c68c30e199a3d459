"""``Tracker``: what the sequence runner reports, where it goes (W&B, CSV, ``results/``).

The runner calls a few hooks (``start``, ``loggers``, ``fit_callbacks``, ``stage_trained``,
``stage_evaluated``, ``finished``) and uses the tracker as a context manager: leaving it finishes
the job's W&B run, marked failed when an exception (or a non-zero exit) left the block.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

from lifelong_monodepth.tracking import lifelong_metrics as lm
from lifelong_monodepth.tracking.loggers import SequenceWandbLogger
from lifelong_monodepth.tracking.panels import PanelOptions, predict_panel_rows, render_panel
from lifelong_monodepth.tracking.wandb_run import check_reachable, finish_run, flat_config, sweep_group
from lifelong_monodepth.utils.io import write_json

if TYPE_CHECKING:
    from lifelong_monodepth.evaluation.results import ResultsTable
    from lifelong_monodepth.lifelong.base import Stage

log = logging.getLogger(__name__)
STATE_FILE = "tracking.json"
TRAINING_AXIS = "trainer/global_step"


class Tracker:
    def __init__(self, cfg: DictConfig, output_dir: Path, order: list[str]) -> None:
        self.cfg = cfg
        self.output_dir = Path(output_dir)
        self.panels_dir = self.output_dir / "results" / "panels"
        self.order = list(order)
        node = (cfg.get("logger") or {}).get("wandb")
        self.wandb_node: dict[str, Any] | None = (
            OmegaConf.to_container(node, resolve=True) if node is not None else None
        )
        tracking = OmegaConf.to_container(cfg.get("tracking") or {}, resolve=True)
        self.panels = PanelOptions(**{k: v for k, v in (tracking.get("panels") or {}).items()})
        self.state_path = self.output_dir / STATE_FILE
        self.state: dict[str, Any] = (
            json.loads(self.state_path.read_text()) if self.state_path.is_file() else {}
        )
        self.run: Any = None
        if self.wandb_node is not None:
            check_reachable(self.wandb_node.get("mode", "auto"), self.wandb_node.get("init_timeout", 10))

    # ------------------------------------------------------------------------ W&B run lifecycle
    def start(self) -> None:
        """Open (or, with an id stored in the run dir, resume) the W&B run; log the whole config."""
        if self.wandb_node is None or self.run is not None:
            return
        node = dict(self.wandb_node)
        node.pop("log_model", None)
        previous = self.state.get("wandb", {})
        node["group"] = node.get("group") or sweep_group()
        # Called, not instantiated: a TrackingError must reach the CLI as itself (a one-line message).
        target = get_method(node.pop("_target_"))
        log.info("W&B: starting run %s (mode %s)", node.get("name"), node.get("mode"))
        self.run = target(**node, run_config=flat_config(self.cfg), run_id=previous.get("id"))
        if self.run is None:
            return
        self.state["wandb"] = {**previous, "id": self.run.id, "project": self.run.project}
        self._save_state()
        for name in (TRAINING_AXIS, lm.STAGE_AXIS):
            self.run.define_metric(name)
        for pattern in ("train/*", "val/*", "lr-*", "epoch"):
            self.run.define_metric(pattern, step_metric=TRAINING_AXIS)
        for pattern in ("eval/*", "panels/*"):
            self.run.define_metric(pattern, step_metric=lm.STAGE_AXIS)
        last = int(previous.get("step", 0))
        if previous.get("id") and self.run.step < last:
            # An offline resume restarts W&B's own step at 0; rows below the last one would be dropped.
            self.run.log({"resume/count": int(previous.get("resumes", 0)) + 1}, step=last)
            self.state["wandb"]["resumes"] = int(previous.get("resumes", 0)) + 1
            self._remember_step()
        config_file = self.output_dir / "resolved_config.yaml"
        if config_file.is_file() and getattr(self.run, "dir", None):
            # A copy inside the run folder: `save` of a file elsewhere would symlink it and warn.
            copy = Path(self.run.dir) / config_file.name
            shutil.copyfile(config_file, copy)
            self.run.save(str(copy), base_path=self.run.dir, policy="now")

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: Any) -> None:
        if self.run is None:
            return
        from lifelong_monodepth.training.checkpointing import PreemptedError

        if exc is None:
            code = 0
        elif isinstance(exc, SystemExit):
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            code = 143 if isinstance(exc, PreemptedError) else 1
        self._remember_step()
        finish_run(self.run, code, preempted=isinstance(exc, PreemptedError))
        self.run = None

    def _save_state(self) -> None:
        write_json(self.state_path, self.state)

    def _remember_step(self) -> None:
        if self.run is not None:
            self.state.setdefault("wandb", {})["step"] = int(self.run.step)
            self._save_state()

    # ------------------------------------------------------------------------------- training
    def step_offset(self, stage: Stage) -> int:
        """Training steps of the stages finished before this one (a resumed stage is not among them)."""
        steps = self.state.get("stage_steps", {})
        return sum(int(count) for name, count in steps.items() if name != stage.name)

    def loggers(self, stage: Stage) -> list[Any]:
        """This stage's Lightning loggers: ``logger.*`` of the config, W&B bound to the job's run."""
        loggers: list[Any] = []
        for name, node in (self.cfg.get("logger") or {}).items():
            if node is None:
                continue
            if name == "wandb":
                if self.run is not None:
                    loggers.append(
                        SequenceWandbLogger(self.run, self.step_offset(stage), on_log=self._remember_step)
                    )
            else:
                loggers.append(instantiate(node, version=stage.name))
        return loggers

    def fit_callbacks(self, callbacks: list[pl.Callback], loggers: list[Any]) -> list[pl.Callback]:
        """Drop callbacks that need a logger when there is none (``logger=none``)."""
        if loggers:
            return callbacks
        from pytorch_lightning.callbacks import LearningRateMonitor

        return [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]

    def stage_trained(self, stage: Stage, trainer: pl.Trainer) -> None:
        self.state.setdefault("stage_steps", {})[stage.name] = int(trainer.global_step)
        self._save_state()

    # ----------------------------------------------------------------------------- evaluation
    def stage_evaluated(
        self,
        stage: Stage | None,
        table: ResultsTable,
        module: Any = None,
        datamodule: Any = None,
        checkpoint: Path | None = None,
    ) -> None:
        """``eval/*`` of a stage (``None``: the untrained reference, stage 0) on the ``stage`` axis,
        depth panels, the stage checkpoint artifact."""
        name = "init" if stage is None else stage.name
        values: dict[str, Any] = {lm.STAGE_AXIS: 0 if stage is None else stage.index + 1}
        values.update(lm.stage_metrics(table, name))
        if module is not None and datamodule is not None:
            values.update(self._panels(name, module, datamodule))
        if self.run is not None:
            self.run.log(values)
            self._remember_step()
            if checkpoint is not None:
                self._log_checkpoint(name, checkpoint)

    def _panels(self, stage: str, module: Any, datamodule: Any) -> dict[str, Any]:
        if self.panels.images <= 0:
            return {}
        logged = {}
        for letter in [d for d in self.order if d in module.learned]:
            info = module.domain_info[letter]
            rows = predict_panel_rows(module, datamodule, letter, self.panels)
            if not rows:
                continue
            path = render_panel(
                rows,
                self.panels_dir / f"{letter}_{stage}.png",
                f"after stage {stage}: domain {letter} ({info['name']}), {self.panels.split} images",
                float(info["min_depth"]),
                float(info["max_depth"]),
                self.panels,
            )
            if self.run is not None:
                import wandb

                logged[f"panels/{letter}"] = wandb.Image(str(path), caption=f"after stage {stage}")
        return logged

    def _log_checkpoint(self, stage: str, checkpoint: Path) -> None:
        if not (self.wandb_node or {}).get("log_model") or not Path(checkpoint).is_file():
            return
        import wandb

        artifact = wandb.Artifact(
            f"model-{self.run.id}",
            type="model",
            metadata={"stage": stage, "order": "".join(self.order), "learned": list(stage)},
        )
        artifact.add_file(str(checkpoint), name=Path(checkpoint).name)
        self.run.log_artifact(artifact, aliases=[stage])

    def finished(self, table: ResultsTable) -> None:
        """The lifelong matrix (a table per metric and a heatmap) and every summary number."""
        heatmap = lm.heatmap_png(table, self.output_dir / "results" / "lifelong_matrix.png")
        if self.run is None:
            return
        import wandb

        from lifelong_monodepth.evaluation.metrics import METRIC_NAMES

        values: dict[str, Any] = {"lifelong_matrix/heatmap": wandb.Image(str(heatmap))}
        for metric in (*METRIC_NAMES, "selection_acc"):
            columns, rows = lm.matrix_rows(table, metric)
            if metric == "selection_acc":
                rows = [
                    [row[0], *(_none(table.value(row[0], d, "auto", metric)) for d in table.order)]
                    for row in rows
                ]
            values[f"lifelong_matrix/{metric}"] = wandb.Table(columns=columns, data=rows)
        self.run.log(values)
        self.run.summary.update(lm.flatten_summary(table.summary))
        self._remember_step()


def _none(value: float) -> float | None:
    return None if value != value else value
