"""The GPU path on CPU: presets, the non-finite guard under a loss scaler, compiled ≡ eager."""

import warnings
from pathlib import Path

import pytest
import torch

from conftest import FAST_OVERRIDES, compose_config


def test_gpu_and_ddp_presets_compose(tmp_path: Path) -> None:
    from lifelong_monodepth.data.datamodule import resolve_num_workers

    gpu = compose_config(tmp_path, ["trainer=gpu"])
    assert gpu.trainer.accelerator == "gpu" and gpu.trainer.precision in ("bf16-mixed", "16-mixed")
    # cuDNN autotuning off: measured on an H200 to cost ≈ 60 s a stage for no faster steps; NCHW on
    # the GPU: channels_last cost 4–8 s at each new input shape there (the CPU default keeps NHWC).
    assert gpu.trainer.benchmark is False and gpu.model.channels_last is False
    assert compose_config(tmp_path, []).model.channels_last is True
    assert gpu.trainer._target_.endswith("Trainer")
    assert gpu.data.pin_memory and gpu.data.persistent_workers and gpu.data.num_workers == "auto"
    assert 0 <= resolve_num_workers("auto") <= 8
    ddp = compose_config(tmp_path, ["trainer=ddp"])
    assert ddp.trainer.strategy.startswith("ddp") and ddp.trainer.use_distributed_sampler is False
    assert ddp.trainer.precision == gpu.trainer.precision and ddp.model.channels_last is False


@pytest.mark.slow
def test_scaler_overflow_is_not_a_bad_step_but_nan_loss_is(tmp_path: Path, tiny_domains) -> None:
    """fp16 with a scaler whose scale overflows at every step, and one NaN loss: only the NaN counts."""
    from lifelong_monodepth.training.sequence import SequenceRunner

    scaler = {"_target_": "torch.amp.GradScaler", "device": "cpu", "init_scale": 1.0e38}
    plugin = {
        "_target_": "pytorch_lightning.plugins.precision.MixedPrecision",
        "precision": "16-mixed",
        "device": "cpu",
        "scaler": scaler,
    }
    overrides = [
        *FAST_OVERRIDES,
        "order=N",
        "trainer.limit_train_batches=3",
        "trainer.precision=null",
        f"+trainer.plugins=[{plugin}]".replace("'", ""),
        "model.max_bad_steps=2",
        "+strategy.callbacks.nan._target_=conftest.NaNInjector",
        "+strategy.callbacks.nan.steps=[1]",
    ]
    runner = SequenceRunner(compose_config(tmp_path / "run", overrides, tiny_domains))
    runner.run()  # three overflowing steps in a row would have stopped the run (max_bad_steps=2)
    assert runner.module.bad_steps_total == 1  # the NaN loss
    assert runner.module.overflow_steps == 2  # the other steps: the scaler's business


def test_compiled_forward_equals_eager() -> None:
    from lifelong_monodepth.models.compile import compile_network, compile_unavailable_reason
    from lifelong_monodepth.models.encoder import Encoder
    from lifelong_monodepth.models.network import MultiDomainDepthNet

    reason = compile_unavailable_reason("cpu")
    if reason is not None:
        pytest.skip(f"torch.compile unavailable on this machine: {reason}")
    torch.manual_seed(0)
    net = MultiDomainDepthNet(
        Encoder("resnet10t", pretrained=False), {"out_channels": 8}, {"hidden_channels": 8}
    )
    net.add_domain("N", 0.1, 10.0)
    net.eval()
    images = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        eager = net(images, ["N"])
        assert compile_network(net)
        assert net.encoder._compiled_call_impl is not None  # really compiled, not the eager fallback
        compiled = net(images, ["N"])
    torch.testing.assert_close(compiled.depth["N"], eager.depth["N"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(compiled.fused, eager.fused, rtol=1e-4, atol=1e-4)
    assert not any("_orig_mod" in key for key in net.state_dict())  # checkpoints keep their keys


def test_compile_falls_back_with_a_warning(monkeypatch) -> None:
    from lifelong_monodepth.models import compile as compile_module
    from lifelong_monodepth.models.encoder import Encoder
    from lifelong_monodepth.models.network import MultiDomainDepthNet

    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    net = MultiDomainDepthNet(
        Encoder("resnet10t", pretrained=False), {"out_channels": 8}, {"hidden_channels": 8}
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert compile_module.compile_network(net) is False
    assert any("no C++ compiler" in str(w.message) and "eagerly" in str(w.message) for w in caught)
    assert net.encoder._compiled_call_impl is None


def test_teacher_copy_of_a_compiled_network_runs_its_own_weights() -> None:
    """A deep copy keeps the original's compiled graph (bound to the student): the teacher drops it."""
    import copy

    from lifelong_monodepth.lifelong.distillation import freeze
    from lifelong_monodepth.models.encoder import Encoder
    from lifelong_monodepth.models.network import MultiDomainDepthNet

    net = MultiDomainDepthNet(
        Encoder("resnet10t", pretrained=False), {"out_channels": 8}, {"hidden_channels": 8}
    )
    net.add_domain("N", 0.1, 10.0)
    for part in (net.encoder, net.fusion, net.heads["N"]):
        part.compile()  # lazy: nothing is compiled until a call
    teacher = freeze(copy.deepcopy(net))
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in teacher.modules())
    assert net.encoder._compiled_call_impl is not None  # the student keeps its compilation
    images = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        before = teacher(images, ["N"]).depth["N"].clone()
        for parameter in net.parameters():
            parameter.add_(1.0)
        torch.testing.assert_close(teacher(images, ["N"]).depth["N"], before)
