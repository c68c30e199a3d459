"""End to end: a two-stage run on tiny images writes loadable stage checkpoints and results."""

from pathlib import Path

import pytest
import torch

from conftest import FAST_OVERRIDES, compose_config
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.evaluation.test_checkpoint import load_module
from lifelong_monodepth.training.sequence import SequenceRunner, run_sequence

pytestmark = pytest.mark.slow


def test_two_stage_run_writes_loadable_checkpoints(tmp_path: Path, tiny_domains) -> None:
    out = tmp_path / "run"
    cfg = compose_config(out, [*FAST_OVERRIDES, "order=NK"], tiny_domains)
    result = run_sequence(cfg)
    assert (out / "checkpoints" / "N.ckpt").is_file() and (out / "checkpoints" / "NK.ckpt").is_file()
    first = load_module(out / "checkpoints" / "N.ckpt")
    second = load_module(out / "checkpoints" / "NK.ckpt")
    assert first.net.domains == ["N"] and second.net.domains == ["N", "K"]
    assert second.domain_info["K"]["max_depth"] == 80.0
    assert set(second.selector_state["letters"]) == {"N", "K"}
    image = torch.rand(1, 3, 32, 64)
    depth = second.predict_depth(image, "K")
    assert depth.shape == (1, 1, 16, 32) and float(depth.min()) >= 0.5
    assert result.table.stages == ["init", "N", "NK"]
    assert (out / "results" / "lifelong_matrix.csv").is_file()


def test_unknown_letter_fails_before_training(tmp_path: Path, tiny_domains) -> None:
    cfg = compose_config(tmp_path / "run", [*FAST_OVERRIDES, "order=NQ"], tiny_domains)
    with pytest.raises(ConfigError, match="Unknown domain letter.*'Q'.*Known letters: N, K, S"):
        SequenceRunner(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
