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
