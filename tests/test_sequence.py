"""End to end: a two-stage run on tiny images writes loadable stage checkpoints and results."""

from pathlib import Path

import pytest
import torch

from conftest import FAST_OVERRIDES, compose_config
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.training.loading import load_module
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
    # Slim: weights and what inference needs, loadable with weights_only=True, no training state.
    raw = torch.load(out / "checkpoints" / "NK.ckpt", map_location="cpu", weights_only=True)
    assert not {"optimizer_states", "lr_schedulers", "loops", "callbacks"} & set(raw)
    assert raw["lifelong"]["domains"][1]["depth_scale"] == 256.0
    assert raw["stage"]["name"] == "NK" and raw["stage"]["order"] == "NK"
    rmse = result.table.value("NK", "K", "prior", "rmse")
    assert raw["results"]["K"]["prior"]["rmse"] == pytest.approx(rmse)
    # The resumable training state is removed once the run finished cleanly.
    assert not (out / "checkpoints" / "resume").exists()
    from lifelong_monodepth.inference.loading import load_model as load_for_inference

    model = load_for_inference(out / "checkpoints" / "NK.ckpt")
    assert list(model.domains) == ["N", "K"] and model.results["K"]["prior"]["rmse"] == pytest.approx(rmse)


def test_training_state_is_kept_on_request_and_holds_the_strategies(tmp_path: Path, tiny_domains) -> None:
    from lifelong_monodepth.checkpoint import load_training_state

    out = tmp_path / "run"
    cfg = compose_config(
        out, [*FAST_OVERRIDES, "order=N", "checkpoint.keep_training_state=true"], tiny_domains
    )
    runner = SequenceRunner(cfg)
    runner.run()
    state = load_training_state(out / "checkpoints" / "resume" / "N" / "training_state.ckpt")
    replay = next(s for s in runner.strategies if type(s).__name__ == "ReplayCallback")
    assert state[replay.state_key]["buffer"] == replay.state_dict()["buffer"]
    assert len(state[replay.state_key]["buffer"]["N"]) > 0


def test_unknown_letter_fails_before_training(tmp_path: Path, tiny_domains) -> None:
    cfg = compose_config(tmp_path / "run", [*FAST_OVERRIDES, "order=NQ"], tiny_domains)
    with pytest.raises(ConfigError, match="Unknown domain letter.*'Q'.*Known letters: N, K, S"):
        SequenceRunner(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_frozen_batchnorm_holds_during_training(tmp_path: Path, tiny_domains) -> None:
    """Old heads' (and with freeze_shared_bn the encoder's) BatchNorm stay in eval mode at every step."""
    from conftest import RecordBatchNormModes

    RecordBatchNormModes.records = []
    overrides = [
        *FAST_OVERRIDES,
        "order=NK",
        "model.freeze_shared_bn=encoder",
        "model.freeze_shared_bn_from_stage=1",
        "+callbacks.record._target_=conftest.RecordBatchNormModes",
    ]
    run_sequence(compose_config(tmp_path / "run", overrides, tiny_domains))
    records = RecordBatchNormModes.records
    assert [r["current"] for r in records] == [["N"], ["N"], ["K"], ["K"]]
    assert not any(r["encoder"] for r in records) and all(r["fusion"] for r in records)
    assert all(r["heads"]["N"] for r in records[:2])  # N's head learns its statistics in stage 1
    assert not any(r["heads"]["N"] for r in records[2:]) and all(r["heads"]["K"] for r in records[2:])


def test_shared_batchnorm_frozen_from_the_second_stage(tmp_path: Path, tiny_domains) -> None:
    """``freeze_shared_bn_from_stage=2``: the first stage updates the encoder's statistics, the second
    keeps them exactly (same running means after stage NK as after stage N)."""
    from conftest import RecordBatchNormModes

    RecordBatchNormModes.records = []
    overrides = [
        *FAST_OVERRIDES,
        "order=NK",
        "model.freeze_shared_bn=encoder",
        "model.freeze_shared_bn_from_stage=2",
        "+callbacks.record._target_=conftest.RecordBatchNormModes",
    ]
    runner = SequenceRunner(compose_config(tmp_path / "run", overrides, tiny_domains))

    def encoder_means(net: torch.nn.Module) -> list[torch.Tensor]:
        return [m.running_mean.clone() for m in net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    init = encoder_means(runner.module.net)
    runner.run()
    records = RecordBatchNormModes.records
    assert [r["current"] for r in records] == [["N"], ["N"], ["K"], ["K"]]
    assert [r["encoder"] for r in records] == [True, True, False, False]
    checkpoints = tmp_path / "run" / "checkpoints"
    after_n, after_nk = (encoder_means(load_module(checkpoints / f"{name}.ckpt").net) for name in ("N", "NK"))
    assert any(not torch.equal(a, b) for a, b in zip(init, after_n, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(after_n, after_nk, strict=True))


def test_paper_experiment_composes_the_papers_setting(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path / "run", ["experiment=paper_real"])
    assert cfg.model.net.encoder.backbone == "resnet34"
    assert cfg.model.net.head.hidden_channels == 64 and cfg.model.net.head.kernel_size == 5
    assert cfg.model.net.fusion.kernel_size == 5 and cfg.model.optimizer.lr == 1e-4
    assert cfg.model.freeze_shared_bn == "none" and cfg.model.net.head.init == "fresh"  # as the original
    assert cfg.trainer.max_epochs == 20 and cfg.strategy.callbacks.replay.memory_per_domain == 500
    assert [cfg.domains[x].name for x in "NKS"] == ["nyu", "kitti", "scannet"]
