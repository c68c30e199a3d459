"""Evaluation end to end: summary.json keys, mode=test, replay batches, routing across sizes, reports."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FAST_OVERRIDES, ROOT, compose_config, tiny_domains_at
from lifelong_monodepth import report
from lifelong_monodepth.cli.main import execute
from lifelong_monodepth.data.synthetic import render_sample
from lifelong_monodepth.lifelong.replay import ReplayCallback
from lifelong_monodepth.models.encoder import Encoder
from lifelong_monodepth.models.network import MultiDomainDepthNet
from lifelong_monodepth.models.selection import DomainSelector, fit_selector_state, pooled_features
from lifelong_monodepth.training.sequence import SequenceRunner

pytestmark = pytest.mark.slow

METRICS = {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "mae", "delta1", "delta2", "delta3"}
# The keys docs/evaluation.md documents for results/summary.json.
SUMMARY_KEYS = {
    "protocol",
    "strategy",
    "order",
    "stages",
    "final_stage",
    "final",
    "reference_init",
    "forgetting",
    "selection_accuracy",
    "confusion_matrix",
    "routing_gap",
    "unknown_fraction",
    "unknown_detection",
    "backward_transfer",
    "forward_transfer",
    "average",
}


def _without_replay(overrides: list[str]) -> list[str]:
    """Strategies without a replay callback have no `strategy.callbacks.replay` to override."""
    return [o for o in overrides if not o.startswith("strategy.callbacks.replay")]


@pytest.fixture(scope="module")
def two_stage_runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny NK run per strategy (lifelong and finetune) in one sweep-like folder."""
    base = tmp_path_factory.mktemp("sweep")
    data = base / "data"
    runners = {}
    for strategy in ("lifelong", "finetune"):
        fast = FAST_OVERRIDES if strategy == "lifelong" else _without_replay(FAST_OVERRIDES)
        cfg = compose_config(
            base / "sweep" / f"0_NK_{strategy}",
            [*fast, "order=NK", f"strategy={strategy}"],
            tiny_domains_at(data),
        )
        runner = SequenceRunner(cfg)
        runner.run()
        runners[strategy] = runner
    return {"base": base, "data": data, "runners": runners}


def test_summary_json_has_the_documented_keys(two_stage_runs: dict) -> None:
    run = two_stage_runs["runners"]["lifelong"].output_dir
    summary = json.loads((run / "results" / "summary.json").read_text())
    assert summary.keys() >= SUMMARY_KEYS
    assert summary["protocol"] == "standard" and summary["order"] == "NK"
    assert summary["stages"] == ["N", "NK"] and summary["final_stage"] == "NK"
    # After stage N, K is not learned: its share flagged unknown is measured (a number in [0, 1]).
    assert set(summary["unknown_fraction"]) == {"N", "NK"}
    assert 0.0 <= summary["unknown_fraction"]["N"]["K"] <= 1.0
    for domain in "NK":
        assert set(summary["final"][domain]) == {"prior", "auto"}
        assert summary["final"][domain]["prior"].keys() >= METRICS
        assert math.isfinite(summary["final"][domain]["prior"]["rmse"])
        assert set(summary["confusion_matrix"][domain]) == {"N", "K"}
        assert sum(summary["confusion_matrix"][domain].values()) > 0
        assert 0.0 <= summary["selection_accuracy"][domain] <= 1.0
        gap = summary["routing_gap"][domain]["rmse"]
        final = summary["final"][domain]
        assert gap == pytest.approx(final["auto"]["rmse"] - final["prior"]["rmse"])
    # forgetting of the first domain is its RMSE after the last stage minus right after learning it
    matrix = pd.read_csv(run / "results" / "lifelong_matrix.csv")
    rmse = matrix[(matrix.domain == "N") & (matrix["mode"] == "prior") & (matrix.metric == "rmse")]
    by_stage = dict(zip(rmse.stage, rmse.value, strict=True))
    assert summary["forgetting"]["per_domain"]["N"]["rmse"] == pytest.approx(by_stage["NK"] - by_stage["N"])
    assert {"rmse", "delta1", "abs_rel"} <= summary["backward_transfer"].keys()
    assert {"prior", "auto", "forgetting", "routing_gap"} <= summary["average"].keys()
    assert set(matrix.columns) == {"stage", "domain", "mode", "metric", "value"}
    markdown = (run / "results" / "summary.md").read_text()
    assert "protocol `standard`" in markdown and "| NK |" in markdown


def test_replay_batches_carry_the_old_domain(two_stage_runs: dict) -> None:
    runner = two_stage_runs["runners"]["lifelong"]
    replay = next(s for s in runner.strategies if isinstance(s, ReplayCallback))
    assert list(replay.last_batches) == ["N"]  # during stage NK only N is old
    batch = replay.last_batches["N"]
    assert list(batch["domain"]) == ["N"] * len(batch["domain"])
    replay_rows = {str(r.rgb) for r in replay.buffer.rows["N"]}
    assert replay_rows and len(replay_rows) <= 6


def test_mode_test_evaluates_every_domain_with_and_without_prior(
    two_stage_runs: dict, tmp_path: Path
) -> None:
    run = two_stage_runs["runners"]["lifelong"].output_dir
    ckpt = run / "checkpoints" / "NK.ckpt"
    cfg = compose_config(
        tmp_path / "eval",
        [*FAST_OVERRIDES, "mode=test", f"ckpt={ckpt}", "selector=classifier"],
        tiny_domains_at(two_stage_runs["data"]),
    )
    summary = execute(cfg)
    assert summary["checkpoint"] == str(ckpt) and summary["selector"] == "classifier"
    assert set(summary["selector_comparison"]) == {"mahalanobis", "prototype", "classifier", "uncertainty"}
    for domain in "NK":
        assert math.isfinite(summary["final"][domain]["prior"]["rmse"])
        assert math.isfinite(summary["final"][domain]["auto"]["rmse"])
    saved = json.loads((tmp_path / "eval" / "results" / "summary.json").read_text())
    assert saved["protocol"] == "standard" and saved["selector"] == "classifier"
    # with the prior, the checkpoint gives exactly what the training run measured at its last stage
    trained = json.loads((run / "results" / "summary.json").read_text())
    for domain in "NK":
        assert saved["final"][domain]["prior"]["rmse"] == pytest.approx(
            trained["final"][domain]["prior"]["rmse"], rel=1e-5
        )


def test_median_scaling_option_is_applied_and_named_in_the_results(
    two_stage_runs: dict, tmp_path: Path
) -> None:
    ckpt = two_stage_runs["runners"]["lifelong"].output_dir / "checkpoints" / "NK.ckpt"
    data = two_stage_runs["data"]
    summaries = {}
    for flag in ("false", "true"):
        cfg = compose_config(
            tmp_path / flag,
            [*FAST_OVERRIDES, "mode=test", f"ckpt={ckpt}", f"evaluation.median_scaling={flag}"],
            tiny_domains_at(data),
        )
        execute(cfg)
        summaries[flag] = json.loads((tmp_path / flag / "results" / "summary.json").read_text())
    assert summaries["false"]["protocol"] == "standard"
    assert summaries["true"]["protocol"] == "standard+median_scaling"
    assert "standard+median_scaling" in (tmp_path / "true" / "results" / "summary.md").read_text()
    scaled, plain = summaries["true"]["final"]["K"]["prior"], summaries["false"]["final"]["K"]["prior"]
    assert scaled["rmse"] != pytest.approx(plain["rmse"])


def test_report_merges_strategies_into_table_and_chart(two_stage_runs: dict, capsys) -> None:
    sweep = two_stage_runs["base"] / "sweep"
    assert report.main([str(sweep)]) == 0
    frame = pd.read_csv(sweep / "report.csv")
    assert sorted(frame.strategy) == ["finetune", "lifelong"]
    assert set(frame.order) == {"NK"}
    assert {"forgetting_rmse", "selection_acc", "N_rmse", "K_rmse"} <= set(frame.columns)
    assert (sweep / "forgetting.png").stat().st_size > 1000
    assert "| NK | finetune |" in (sweep / "report.md").read_text()
    assert "finetune" in capsys.readouterr().out


def test_report_on_a_folder_without_results_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No results/summary.json below"):
        report.main([str(tmp_path)])


def test_prototypes_built_at_one_size_route_fused_maps_of_any_size() -> None:
    """The paper's selector hard-coded map sizes; ours pools to a fixed grid, so size does not matter."""
    generator = torch.Generator().manual_seed(0)
    patterns = {letter: torch.rand(16, 4, 4, generator=generator) for letter in "NKS"}

    def fused(letter: str, size: tuple[int, int], count: int) -> torch.Tensor:
        base = torch.nn.functional.interpolate(patterns[letter][None].expand(count, -1, -1, -1), size=size)
        return base + 0.05 * torch.randn(base.shape, generator=generator)

    features = {letter: pooled_features(fused(letter, (8, 12), 6), grid=4) for letter in "NKS"}
    state = fit_selector_state(features, grid=4)
    for name in ("prototype", "classifier"):
        selector = DomainSelector(name, state)
        for size in ((8, 12), (16, 40), (48, 64), (12, 100)):
            for letter in "NKS":
                assert selector.select(None, fused(letter, size, 5)) == [letter] * 5, (name, letter, size)


def test_prototypes_from_real_features_route_rendered_images_of_other_sizes() -> None:
    """End to end: packaged ImageNet encoder + fusion, prototypes at one size, images at others."""
    torch.manual_seed(0)
    net = MultiDomainDepthNet(
        Encoder("tf_efficientnet_lite0", pretrained="package"),
        fusion={"mid_channels": 16, "out_channels": 64},  # the default widths
        head={"hidden_channels": 8},
    ).eval()
    for letter, (lo, hi) in {"N": (0.1, 10.0), "K": (0.5, 80.0)}.items():
        net.add_domain(letter, lo, hi)

    def images(letter: str, size: tuple[int, int], first: int, count: int) -> torch.Tensor:
        rgb = [render_sample(letter, size, 0, "train", first + i)[0] for i in range(count)]
        return torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float() / 255.0

    with torch.no_grad():
        features = {
            "N": pooled_features(net.encode(images("N", (64, 96), 0, 8))),
            "K": pooled_features(net.encode(images("K", (64, 192), 0, 8))),
        }
        selector = DomainSelector("prototype", fit_selector_state(features, grid=4))
        for size in ((96, 128), (32, 64), (128, 320)):
            routed = {
                letter: selector.select(net, net.encode(images(letter, size, 100, 8))) for letter in "NK"
            }
            correct = sum(r == letter for letter, rs in routed.items() for r in rs)
            assert correct / 16 >= 0.9, (size, routed)  # an untrained fusion block: allow one miss in ten


def test_multirun_sweeps_orders_and_writes_one_run_each(tmp_path: Path) -> None:
    """`python run.py -m order=NK,KN` on a tiny generated synthetic benchmark: one run directory each."""
    sweep = tmp_path / "multi"
    counts = "{train:4,val:2,test:2,replay:2}"
    overrides = [o for o in _without_replay(FAST_OVERRIDES) if not o.startswith("benchmark.generate")]
    command = [
        sys.executable,
        str(ROOT / "run.py"),
        "-m",
        "order=NK,KN",
        "strategy=finetune",
        *overrides,
        "evaluation.reference_init=false",
        f"benchmark.counts={counts}",
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.index_dir={tmp_path / 'index'}",
        f"hydra.sweep.dir={sweep}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "LMD_ROOT": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert runs == ["0_NK_finetune_s42", "1_KN_finetune_s42"]
    assert (sweep / "0_NK_finetune_s42" / "checkpoints" / "NK.ckpt").is_file()
    assert (sweep / "1_KN_finetune_s42" / "checkpoints" / "KN.ckpt").is_file()
    orders = [json.loads((sweep / r / "results" / "summary.json").read_text())["order"] for r in runs]
    assert orders == ["NK", "KN"]


def test_route_gives_one_confidence_per_image_and_no_unknown_without_calibration() -> None:
    """``route`` is what predict/evaluation read: the same choice as ``select``, a softmax confidence."""
    generator = torch.Generator().manual_seed(1)
    patterns = {letter: torch.rand(8, 4, 4, generator=generator) for letter in "NK"}
    batch = {letter: patterns[letter][None].expand(3, -1, -1, -1).clone() for letter in "NK"}
    state = fit_selector_state({k: pooled_features(v, grid=4) for k, v in batch.items()}, grid=4)
    for name in ("prototype", "classifier"):
        selector = DomainSelector(name, state)
        routing = selector.route(None, torch.cat([batch["N"], batch["K"]]))
        assert (
            routing.letters == ["N"] * 3 + ["K"] * 3 == selector.select(None, torch.cat(list(batch.values())))
        )
        assert routing.confidence.shape == (6,)
        assert bool(((routing.confidence > 0.5) & (routing.confidence <= 1.0)).all())
        assert not bool(routing.unknown.any())
