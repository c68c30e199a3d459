"""From a download to results: ``prepare`` on a replica, then ``benchmark=real`` training and testing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import replicas
from conftest import FAST_OVERRIDES, compose_config
from lifelong_monodepth.cli.main import execute
from lifelong_monodepth.data.prepare.cli import main as prepare


@pytest.mark.slow
def test_prepare_then_train_and_test_on_the_real_benchmark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NYU labeled ``.mat`` replica through the importer, then ``run.py benchmark=real order=N``."""
    data, index = tmp_path / "data", tmp_path / "index"
    replicas.nyu_labeled(data / "nyu", size=(48, 64))
    monkeypatch.setenv("LMD_DATA_DIR", str(data))
    monkeypatch.setenv("LMD_INDEX_DIR", str(index))
    assert prepare(["nyu", "--source", str(data / "nyu"), "--val-fraction", "0.2", "--replay", "2"]) == 0
    small = ["benchmark=real", "order=N", "domains.N.input_size=[32,64]", "selector.max_images=2"]
    summary = execute(compose_config(tmp_path / "run", [*FAST_OVERRIDES, *small]))
    assert math.isfinite(summary["final"]["N"]["prior"]["rmse"])
    ckpt = next((tmp_path / "run").rglob("checkpoints/N.ckpt"))
    tested = execute(
        compose_config(
            tmp_path / "test", [*FAST_OVERRIDES, *small, "mode=test", f"ckpt={ckpt}", "evaluation=paper"]
        )
    )
    assert tested["protocol"] == "paper" and math.isfinite(tested["final"]["N"]["prior"]["rmse"])


@pytest.mark.slow
def test_three_prepares_then_nks_training_and_paper_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's "done when": three ``prepare`` commands on replicas of each download, then
    ``run.py benchmark=real order=NKS debug=fast`` and ``mode=test ckpt=NKS.ckpt evaluation=paper``.

    NYU from the original release (8-bit train depth, 16-bit test depth: per-row ``depth_scale``),
    KITTI raw + annotated depth + val_selection_cropped with two frame sizes (``bottom_crop``),
    ScanNet with colour larger than depth (``align: resize_rgb_to_depth``).
    """
    data, index = tmp_path / "data", tmp_path / "index"
    replicas.nyu_release(data / "nyu", size=(48, 64))
    replicas.kitti(data / "kitti")
    replicas.scannet(data / "scannet", scenes=("scene0000_00", "scene0707_00"), frames=25)
    monkeypatch.setenv("LMD_DATA_DIR", str(data))
    monkeypatch.setenv("LMD_INDEX_DIR", str(index))
    small = ["--val-fraction", "0.34", "--replay", "2"]
    assert prepare(["nyu", "--source", str(data / "nyu"), *small]) == 0
    assert prepare(["kitti", "--source", str(data / "kitti"), *small]) == 0
    assert prepare(["scannet", "--source", str(data / "scannet"), "--train-stride", "6", *small]) == 0
    for name in ("nyu", "kitti", "scannet"):
        assert all((index / name / f"{split}.csv").is_file() for split in ("train", "val", "test", "replay"))
    # The release's 8-bit training maps are read through the per-row scale (255 = 10 m).
    assert (index / "nyu" / "train.csv").read_text().splitlines()[0] == "rgb,depth,depth_scale"

    tiny = [
        "benchmark=real",
        "domains.N.input_size=[32,64]",
        "domains.K.input_size=[32,64]",
        "domains.S.input_size=[32,32]",
        "selector.max_images=2",
        "trainer.limit_train_batches=1",
    ]
    summary = execute(compose_config(tmp_path / "run", [*FAST_OVERRIDES, *tiny, "order=NKS", "debug=fast"]))
    for letter in "NKS":
        assert math.isfinite(summary["final"][letter]["prior"]["rmse"])
    run_dir = tmp_path / "run"
    assert {p.name for p in run_dir.rglob("checkpoints/*.ckpt")} >= {"N.ckpt", "NK.ckpt", "NKS.ckpt"}
    ckpt = next(run_dir.rglob("checkpoints/NKS.ckpt"))

    tested = execute(
        compose_config(
            tmp_path / "test", [*FAST_OVERRIDES, *tiny, "mode=test", f"ckpt={ckpt}", "evaluation=paper"]
        )
    )
    assert tested["protocol"] == "paper"
    for letter in "NKS":
        assert math.isfinite(tested["final"][letter]["prior"]["rmse"])
    assert list((tmp_path / "test").rglob("summary.json"))
