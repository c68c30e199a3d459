"""Experiment tracking as a user sees it: the offline W&B run files read back record by record."""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import FAST_OVERRIDES, ROOT, compose_config, domain_node, tiny_domains_at
from lifelong_monodepth.evaluation.evaluate import DomainEvaluation
from lifelong_monodepth.evaluation.results import ResultsTable
from lifelong_monodepth.tracking.lifelong_metrics import flatten_summary, stage_metrics
from lifelong_monodepth.tracking.offline import offline_runs, read_offline_run
from lifelong_monodepth.training.checkpointing import PreemptedError
from lifelong_monodepth.training.sequence import run_sequence

WANDB = [o for o in FAST_OVERRIDES if o != "logger=csv"] + ["logger=wandb"]


def _finished_runs(directory: Path, count: int) -> list:
    """The offline runs under ``directory`` once W&B's service has written their exit record.

    ``run.finish()`` returns when the service has the data; under load its writer may flush the
    ``.wandb`` file a moment later, so wait for the records instead of reading a half-written file.
    """
    for _ in range(300):
        runs = offline_runs(directory)
        if len(runs) == count and all(run.exit_code is not None for run in runs):
            return runs
        time.sleep(0.2)
    return offline_runs(directory)


def _tiny_benchmark(directory: Path, data: Path) -> Path:
    """A `benchmark=tiny` config group file holding the tiny test domains (for run.py subprocesses)."""
    domains = {letter: domain_node(d) for letter, d in tiny_domains_at(data).items()}
    path = directory / "benchmark" / "tiny.yaml"
    path.parent.mkdir(parents=True)
    body = {"domains": domains, "benchmark": {"name": "tiny", "generate": False}}
    path.write_text("# @package _global_\n" + yaml.safe_dump(body))
    return directory


@pytest.mark.slow
def test_multirun_gives_one_finished_wandb_run_per_job(tmp_path: Path) -> None:
    configs = _tiny_benchmark(tmp_path / "cfg", tmp_path / "data")
    sweep = tmp_path / "sweep_nk_kn"
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "order=NK,KN",
        "benchmark=tiny",
        f"hydra.searchpath=[file://{ROOT / 'conf'},file://{configs}]",
        f"hydra.sweep.dir={sweep}",
        *WANDB,
        "logger.wandb.log_model=true",
        "tracking.panels.images=2",
    ]
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'tests'}"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    _check_sweep(sweep)


def _check_sweep(sweep: Path) -> None:
    runs = {run.config["order"]: run for run in offline_runs(sweep)}
    assert sorted(runs) == ["KN", "NK"] and len(offline_runs(sweep)) == 2  # one run per job
    for order, run in runs.items():
        assert run.group == sweep.name and run.job_type == "lifelong" and run.exit_code == 0
        assert run.name == f"{order}-lifelong-s42" and run.tags[:2] == [order, "lifelong"]
        assert run.config["strategy.name"] == "lifelong" and run.config["seed"] == 42
        assert run.config["trainer.max_epochs"] == 1 and run.config["selector.name"] == "mahalanobis"
        assert "resolved_config.yaml" in run.files
        # eval/* per stage on the `stage` axis: init, first, second stage
        assert run.metrics["eval/*"] == "stage" and run.column("stage") == [0, 1, 2]
        first, second = order
        assert len(run.column(f"eval/rmse/{first}")) == 3 and len(run.column(f"eval/rmse/{second}")) == 2
        assert len(run.column("eval/forgetting/rmse")) == 1 and run.column("eval/avg/delta1")
        # training curves: the old domain is validated during the second stage, steps keep increasing
        assert run.column(f"val/{first}/rmse") and len(run.column(f"val/{first}/rmse")) == 2
        steps = run.column("trainer/global_step")
        assert steps == sorted(steps) and steps[-1] == 3
        # panels per stage and domain, the matrix tables and heatmap, summary.json numbers
        panels = [row[f"panels/{first}"] for row in run.history if f"panels/{first}" in row]
        assert [panel["_type"] for panel in panels] == ["image-file"] * 2
        assert run.summary["lifelong_matrix/rmse"]["_type"] == "table-file"
        assert run.summary["lifelong_matrix/heatmap"]["_type"] == "image-file"
        run_dir = run.path.parents[2]  # <job dir>/wandb/offline-run-*/run-<id>.wandb
        summary = json.loads((run_dir / "results" / "summary.json").read_text())
        expected = flatten_summary(summary)
        assert f"forgetting/per_domain/{first}/rmse" in expected and "backward_transfer/rmse" in expected
        for key, value in expected.items():
            assert run.summary[key] == pytest.approx(value), key
        models = [a for a in run.artifacts if a["type"] == "model"]
        assert [a["name"] for a in models] == [f"model-{run.id}"] * 2
        assert [set(a["aliases"]) - {"latest"} for a in models] == [{first}, {order}]
        assert len(list((run_dir / "results" / "panels").glob("*.png"))) == 3


@pytest.mark.slow
def test_resume_continues_the_same_wandb_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    data, out = tmp_path / "data", tmp_path / "run"
    overrides = [*WANDB, "order=NK", "tracking.panels.images=0"]
    with pytest.raises(PreemptedError):
        run_sequence(
            compose_config(
                out,
                [*overrides, "+callbacks.sigterm._target_=conftest.SigtermAtFitEnd"],
                tiny_domains_at(data),
            )
        )
    run_sequence(compose_config(out, overrides, tiny_domains_at(data)))
    first, second = _finished_runs(out, 2)
    assert first.id == second.id and first.exit_code != 0 and second.exit_code == 0
    # W&B's own step and the training step both continue where the stopped process left off
    assert min(row["_step"] for row in second.history) > max(row["_step"] for row in first.history)
    assert min(second.column("trainer/global_step")) > max(first.column("trainer/global_step"))
    assert first.column("stage") == [0, 1] and second.column("stage") == [2]


def test_failed_job_finishes_its_run_as_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifelong_monodepth.tracking import Tracker

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config(tmp_path / "run", [*WANDB, "order=N"], tiny_domains_at(tmp_path / "data"))
    tracker = Tracker(cfg, tmp_path / "run", ["N"])
    with pytest.raises(RuntimeError), tracker:
        tracker.start()
        raise RuntimeError("boom")
    (run,) = _finished_runs(tmp_path / "run", 1)
    assert run.exit_code == 1 and tracker.run is None
    assert json.loads((tmp_path / "run" / "tracking.json").read_text())["wandb"]["id"] == run.id


def test_logger_none_runs_and_still_writes_panels(tmp_path: Path) -> None:
    overrides = [*FAST_OVERRIDES, "logger=none", "callbacks=default", "order=N", "tracking.panels.images=2"]
    out = tmp_path / "run"
    run_sequence(compose_config(out, overrides, tiny_domains_at(tmp_path / "data")))
    assert (out / "results" / "panels" / "N_N.png").is_file()
    assert not (out / "wandb").exists() and not (out / "csv").exists()


def test_csv_curves_are_appended_when_a_stage_resumes(tmp_path: Path) -> None:
    from lifelong_monodepth.tracking.loggers import AppendingCSVLogger

    for step, keys in ((0, ("train/loss",)), (1, ("train/loss", "val/N/rmse"))):
        logger = AppendingCSVLogger(tmp_path, name="csv", version="N")  # a new process after a kill
        logger.log_metrics(dict.fromkeys(keys, float(step)), step=step)
        logger.save()
    lines = (tmp_path / "csv" / "N" / "metrics.csv").read_text().splitlines()
    assert lines == ["step,train/loss,val/N/rmse", "0,0.0,", "1,1.0,1.0"]


def test_wandb_online_without_network_fails_fast_with_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wandb

    from lifelong_monodepth.tracking.wandb_run import TrackingError, check_reachable

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("WANDB_MODE", raising=False)
    wandb.teardown()  # settings are read from the environment again
    try:
        with pytest.raises(
            TrackingError, match=r"cannot reach http://127\.0\.0\.1:9 .*mode=offline .*logger=csv"
        ):
            check_reachable("online", timeout=2)  # the runner's check, before any data or model work
    finally:
        wandb.teardown()


def test_stage_metrics_match_a_hand_computation() -> None:
    """eval/avg, eval/forgetting and overall selection accuracy of a known two-stage table."""
    table = ResultsTable(["N", "K"], "lifelong", "standard")

    def evaluation(rmse: float | None, auto: float, chosen: list[str], letter: str) -> DomainEvaluation:
        prior = None if rmse is None else {"rmse": rmse, "delta1": 0.5}
        return DomainEvaluation(letter, prior, {"rmse": auto}, true=[letter] * len(chosen), chosen=chosen)

    table.add_stage("N", {"N": evaluation(2.0, 2.5, ["N", "N"], "N"), "K": evaluation(None, 9.0, ["N"], "K")})
    table.add_stage("NK", {"N": evaluation(3.0, 3.5, ["N", "K"], "N"), "K": evaluation(6.0, 6.0, ["K"], "K")})
    values = stage_metrics(table, "NK")
    assert values["eval/rmse/N"] == 3.0 and values["eval/auto/rmse/K"] == 6.0
    assert values["eval/avg/rmse"] == pytest.approx(4.5)
    assert values["eval/forgetting/rmse"] == pytest.approx(1.0)  # N: 3.0 after NK - 2.0 after N
    assert values["eval/forgetting/delta1"] == pytest.approx(0.0)
    assert values["eval/selection_acc/overall"] == pytest.approx(2 / 3)
    first = stage_metrics(table, "N")
    assert "eval/rmse/K" not in first and "eval/forgetting/rmse" not in first
    assert first["eval/avg/rmse"] == 2.0 and first["eval/selection_acc/overall"] == pytest.approx(2 / 3)
    assert flatten_summary({"a": {"b": 1.0, "c": math.nan, "d": "text"}, "e": 2}) == {"a/b": 1.0, "e": 2}


def test_offline_reader_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "run-x.wandb"
    path.write_bytes(b"not a run file")
    with pytest.raises(ValueError, match="not a W&B run file"):
        read_offline_run(path)


def test_progress_bar_names_the_stage_and_domain() -> None:
    from types import SimpleNamespace

    from lifelong_monodepth.tracking.progress import stage_label

    module = SimpleNamespace(
        current=["K"], learned=["N"], domain_info={"N": {"name": "nyu"}, "K": {"name": "kitti"}}
    )
    trainer = SimpleNamespace(
        lightning_module=module, datamodule=SimpleNamespace(domains={"N": 0, "K": 0, "S": 0})
    )
    assert stage_label(trainer) == "stage 2/3 K (kitti)"
    module.current, module.learned = ["N", "K"], []
    assert stage_label(trainer) == "stage 1/1 NK (nyu, kitti)"  # joint training: one stage


def test_known_notices_are_silenced_and_others_kept(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    import warnings

    from pytorch_lightning.utilities.rank_zero import rank_zero_info

    from lifelong_monodepth.utils.notices import silence_known_notices

    silence_known_notices()
    with caplog.at_level(logging.INFO, logger="pytorch_lightning.utilities.rank_zero"):
        rank_zero_info("💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]")
        rank_zero_info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    with warnings.catch_warnings(record=True) as caught:
        silence_known_notices()  # catch_warnings reset the filters
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", FutureWarning, stacklevel=1)
        warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else"]
