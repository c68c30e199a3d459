"""Sweeps: failed jobs recorded while the sweep goes on, launchers, presets, config validation,
``--help``, and the paper table (mean ± std over seeds equal to a hand computation)."""

import json
import math
import os
import subprocess
import sys
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import FAST_OVERRIDES, ROOT, compose_config
from lifelong_monodepth.cli.callbacks import ValidateConfig
from lifelong_monodepth.cli.failures import record_failure, remove_rejected_run_dir, sweep_status
from lifelong_monodepth.cli.validate import config_problems
from lifelong_monodepth.evaluation.results import ResultsTable
from lifelong_monodepth.report import build_report
from lifelong_monodepth.report import main as report_main

TINY_COUNTS = {"train": 4, "val": 2, "test": 2, "replay": 2}
# FAST_OVERRIDES for strategy=finetune (no replay callback) on pre-generated data.
SWEEP_FAST = [
    *(o for o in FAST_OVERRIDES if not o.startswith("strategy.callbacks.replay")),
    "strategy=finetune",
    "evaluation.reference_init=false",
]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "LMD_ROOT": str(ROOT), "OMP_NUM_THREADS": "1", **extra}


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "run.py"), *args]
    return subprocess.run(command, cwd=ROOT, env=_env(**env), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The synthetic benchmark at 4/2/2/2 images per domain, generated once; overrides pointing at it."""
    from lifelong_monodepth.data.synthetic import generate_benchmark

    base = tmp_path_factory.mktemp("bench")
    generate_benchmark(base / "data", base / "index", counts=TINY_COUNTS, workers=1, verbose=False)
    return [f"paths.data_dir={base / 'data'}", f"paths.index_dir={base / 'index'}"]


# ------------------------------------------------------------------------------ sweeps
@pytest.mark.slow
def test_a_failed_job_is_recorded_the_sweep_goes_on_and_exits_non_zero(
    tmp_path: Path, tiny_benchmark: list[str]
) -> None:
    """`-m order=X,N`: X is rejected (recorded in its folder), N still runs; exit 1 lists X."""
    sweep = tmp_path / "multi"
    done = _run(["-m", "order=X,N", "seed=7", *SWEEP_FAST, *tiny_benchmark, f"hydra.sweep.dir={sweep}"])
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    bad, good = sweep / "0_X_finetune_s7", sweep / "1_N_finetune_s7"
    assert "Unknown domain letter(s) 'X'" in (bad / "error.txt").read_text()
    failed = json.loads((bad / "results" / "failed.json").read_text())
    assert failed["status"] == "failed" and failed["error"] == "ConfigError"
    assert failed["overrides"]["order"] == "X"
    summary = json.loads((good / "results" / "summary.json").read_text())
    assert summary["seed"] == 7
    assert summary["overrides"]["order"] == "N" and summary["overrides"]["trainer.max_epochs"] == "1"
    assert "1 of 2 job(s) did not finish" in done.stderr and "0_X_finetune_s7 [failed]" in done.stderr
    statuses = {s["job"]: s["status"] for s in json.loads((sweep / "sweep_status.json").read_text())}
    assert statuses == {"0_X_finetune_s7": "failed", "1_N_finetune_s7": "ok"}
    assert "0_X_finetune_s7" in (sweep / "report.md").read_text()  # listed as failed, not averaged


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_tiny_sweep(tmp_path: Path, tiny_benchmark: list[str]) -> None:
    sweep = tmp_path / "multi"
    done = _run(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "order=K",
            *SWEEP_FAST,
            *tiny_benchmark,
            f"hydra.sweep.dir={sweep}",
        ]
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (sweep / "0_K_finetune_s42" / "checkpoints" / "K.ckpt").is_file()
    assert [s.status for s in sweep_status(sweep)] == ["ok"]
    assert any((sweep / ".submitit").rglob("*_result.pkl"))  # it really went through submitit


def test_sweep_presets_combine_into_hydra_sweeper_params() -> None:
    from hydra import compose, initialize_config_dir

    from lifelong_monodepth.cli.main import config_dir, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        both = compose("config", overrides=["sweep=[all_orders,seeds]"], return_hydra_config=True)
        slurm = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    assert str(both.hydra.mode) == "RunMode.MULTIRUN"
    assert dict(both.hydra.sweeper.params) == {"order": "NKS,NSK,KNS,KSN,SNK,SKN", "seed": "0,1,2"}
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher") and slurm.hydra.launcher.gpus_per_node == 1


def test_wandb_sweep_files_drive_run_py_with_valid_hydra_overrides(tmp_path: Path) -> None:
    """Every parameter of the W&B sweep YAMLs is a key=value the config accepts (what the agent passes)."""
    files = sorted((ROOT / "sweeps" / "wandb").glob("*.yaml"))
    assert files
    for path in files:
        sweep = yaml.safe_load(path.read_text())
        assert sweep["program"] == "run.py" and "${args_no_hyphens}" in sweep["command"]
        choices = []
        for key, spec in sweep["parameters"].items():
            values = spec.get("values") or [spec.get("value", spec.get("min"))]
            choices.append([f"{key}={v}" for v in values])
        for args in list(product(*choices))[:3]:
            cfg = compose_config(tmp_path, [*FAST_OVERRIDES, *args])
            assert config_problems(cfg) == [], (path.name, args)


# -------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1: must be an integer ≥ 1"),
        ("trainer.max_epochs=null", "trainer.max_epochs=None: must be an integer ≥ 1"),
        ("data.batch_size=0", "data.batch_size=0: must be an integer ≥ 1"),
        ("data.eval_batch_size=-2", "data.eval_batch_size=-2: must be an integer ≥ 1"),
        ("strategy.callbacks.replay.weight=-1", "strategy.callbacks.replay.weight=-1: a loss weight"),
        ("strategy.callbacks.distillation.position_weights=[1,-3]", "distillation.position_weights[1]=-3"),
        (
            "selector.name=nearest",
            "selector.name='nearest': must be one of mahalanobis, prototype, classifier, uncertainty",
        ),
        ("evaluation.protocol=eigen", "evaluation.protocol='eigen': must be one of standard, paper"),
        ("strategy.callbacks.replay.source=disk", "strategy.callbacks.replay: replay source must be one of"),
        ("order=NKX", "Unknown domain letter(s) 'X'"),
        ("mode=test", "ckpt: mode=test needs ckpt="),
    ],
)
def test_validation_names_the_key_in_one_line(tmp_path: Path, override: str, expected: str) -> None:
    problems = config_problems(compose_config(tmp_path, [*FAST_OVERRIDES, override]))
    assert len(problems) == 1 and expected in problems[0], problems
    assert "\n" not in problems[0]


def test_every_option_of_every_config_group_passes_validation(tmp_path: Path) -> None:
    """No false alarms: the default config and each shipped option (strategy=ewc, experiment=…) pass."""
    assert config_problems(compose_config(tmp_path, [])) == []
    # An experiment pins a strategy's settings: it is checked alone, the other groups together.
    for experiment in sorted((ROOT / "configs" / "experiment").glob("*.yaml")):
        assert config_problems(compose_config(tmp_path, [f"experiment={experiment.stem}"])) == []
    skip = ("hydra", "paths", "experiment")
    groups = [p for p in (ROOT / "configs").iterdir() if p.is_dir() and p.name not in skip]
    options = {group.name: sorted(p.stem for p in group.glob("*.yaml")) for group in groups}
    for i in range(max(len(names) for names in options.values())):  # every option in a few composes
        overrides = [f"{group}={names[i % len(names)]}" for group, names in options.items()]
        assert config_problems(compose_config(tmp_path, overrides)) == [], overrides


def test_validate_callback_stops_before_the_run_dir_with_exit_2(tmp_path: Path, capsys) -> None:
    cfg = compose_config(tmp_path, [*FAST_OVERRIDES, "trainer.max_epochs=-1", "data.batch_size=0"])
    with pytest.raises(SystemExit) as stop:
        ValidateConfig().on_run_start(config=cfg)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["trainer.max_epochs=-1", "data.batch_size=0"]


@pytest.mark.slow
def test_a_rejected_run_leaves_no_folder_and_one_line_per_problem(tmp_path: Path) -> None:
    done = _run(["trainer.max_epochs=-1"], LMD_OUTPUT_DIR=str(tmp_path / "outputs"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Invalid config: trainer.max_epochs=-1: must be an integer ≥ 1 "
        "(epochs per domain; -1 or null would train forever)"
    ]
    assert not (tmp_path / "outputs").exists()


def test_remove_rejected_run_dir_keeps_anything_with_results(tmp_path: Path) -> None:
    log_dir = tmp_path / "outputs"
    rejected = log_dir / "runs" / "lifelong_NKX_lifelong" / "2026-01-01_00-00-00"
    (rejected / ".hydra").mkdir(parents=True)
    (rejected / "main.log").write_text("error\n")
    kept = log_dir / "runs" / "lifelong_NKS_lifelong" / "2026-01-01_00-00-00"
    (kept / ".hydra").mkdir(parents=True)
    (kept / "checkpoints").mkdir()
    assert (
        remove_rejected_run_dir(rejected, log_dir)
        and not (log_dir / "runs" / "lifelong_NKX_lifelong").exists()
    )
    assert not remove_rejected_run_dir(kept, log_dir) and kept.is_dir()


# -------------------------------------------------------------------------------- help
@pytest.mark.slow
def test_help_shows_usage_examples_groups_domains_and_orders_before_the_config() -> None:
    done = _run(["--help"])
    assert done.returncode == 0, done.stderr
    text = done.stdout
    sections = [
        "== Usage ==",
        "== Examples ==",
        "== Domains",
        "== Orders",
        "== Configuration groups",
        "== Config",
    ]
    positions = [text.index(s) for s in sections]
    assert positions == sorted(positions)
    assert "python run.py -m sweep=all_orders" in text
    assert "sweep: all_orders, paper, seeds, strategies" in text
    assert "  N  synthetic_n" in text
    assert "NKS, NSK, SKN, SNK" in text.split("== Orders")[1].split("== Configuration groups")[0]


# ------------------------------------------------------------------------------ report
# RMSE lifelong matrices [after stage][domain in learning order] of a 2-order × 2-seed sweep.
MATRICES = {
    ("NK", 0): [[1.0, None], [1.5, 4.0]],
    ("NK", 1): [[2.0, None], [2.2, 5.0]],
    ("KN", 0): [[3.0, None], [4.5, 1.0]],
    ("KN", 1): [[6.0, None], [6.0, 2.0]],
}


def _fabricate_run(folder: Path, order: str, seed: int, matrix: list, overrides: dict | None = None) -> None:
    """A finished run, written by the real ResultsTable from a known lifelong matrix."""
    rows = []
    stages = [order[: i + 1] for i in range(len(order))]
    for stage, values in zip(stages, matrix, strict=True):
        for domain, value in zip(order, values, strict=True):
            if value is not None:
                rows.append(
                    {"stage": stage, "domain": domain, "mode": "prior", "metric": "rmse", "value": value}
                )
                rows.append(
                    {"stage": stage, "domain": domain, "mode": "prior", "metric": "delta1", "value": 0.5}
                )
    table = ResultsTable(list(order), "lifelong", "standard", rows)
    table.meta = {"seed": seed, "overrides": {"order": order, "seed": str(seed), **(overrides or {})}}
    table.finalise(folder / "results")


def test_report_mean_and_std_over_seeds_equal_a_hand_computation(tmp_path: Path) -> None:
    for i, ((order, seed), matrix) in enumerate(MATRICES.items()):
        _fabricate_run(tmp_path / f"{i}_{order}_s{seed}", order, seed, matrix)
    # A weight sweep's run is its own setting; a failed job is listed, never averaged.
    _fabricate_run(
        tmp_path / "4_NK_w5", "NK", 0, MATRICES[("NK", 0)], {"strategy.callbacks.replay.weight": "5"}
    )
    record_failure(tmp_path / "5_NK_s2", RuntimeError("out of memory"))

    assert report_main([str(tmp_path)]) == 0
    groups = pd.read_csv(tmp_path / "report.csv")
    nk = groups[(groups.order == "NK") & (groups["strategy.callbacks.replay.weight"] == "default")].iloc[0]
    kn = groups[groups.order == "KN"].iloc[0]
    assert (nk.n, kn.n, len(groups)) == (2, 2, 3)
    # NK: final average RMSE (1.5+4)/2 = 2.75 and (2.2+5)/2 = 3.6; forgetting of N 0.5 and 0.2.
    assert nk.avg_rmse == pytest.approx(3.175) and nk.avg_rmse_std == pytest.approx(
        np.std([2.75, 3.6], ddof=1)
    )
    assert nk.forgetting_rmse == pytest.approx(0.35) and nk.forgetting_rmse_std == pytest.approx(
        0.3 / math.sqrt(2)
    )
    assert nk.rel_forgetting_rmse == pytest.approx((0.5 + 0.1) / 2)  # 0.5/1.0 and 0.2/2.0
    assert nk.bwt_rmse == pytest.approx(-0.35) and nk.N_rmse == pytest.approx(1.85)
    # KN: forgetting of K 1.5 and 0.0 (relative 0.5 and 0).
    assert kn.forgetting_rmse == pytest.approx(0.75) and kn.forgetting_rmse_std == pytest.approx(
        1.5 / math.sqrt(2)
    )
    assert kn.rel_forgetting_rmse == pytest.approx(0.25) and kn.K_rmse_std == pytest.approx(
        np.std([4.5, 6.0], ddof=1)
    )
    text = (tmp_path / "report.md").read_text()
    assert "| NK | lifelong | standard | default | 0,1 | 2 | 3.175 ± 0.601 |" in text
    assert "5_NK_s2" in text and "out of memory" in text
    assert r"$3.175 \pm 0.601$" in (tmp_path / "report.tex").read_text()
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 5
    for plot in ("forgetting.png", "lifelong_matrix.png"):
        assert (tmp_path / plot).stat().st_size > 5000

    pooled = build_report(tmp_path, across_orders=True).groups
    base = pooled[pooled["strategy.callbacks.replay.weight"] == "default"].iloc[0]
    assert base.n == 4 and base.orders == "KN,NK"
    assert base.forgetting_rmse == pytest.approx(np.mean([0.5, 0.2, 1.5, 0.0]))
    assert base.forgetting_rmse_std == pytest.approx(np.std([0.5, 0.2, 1.5, 0.0], ddof=1))
