"""The fused training step computes what separate encoder passes computed, with fewer passes."""

import copy
from pathlib import Path

import pytest
import torch

from conftest import FAST_OVERRIDES, compose_config, enter_second_stage


def _stage_two(tmp_path: Path, tiny_domains, extra: list[str] | None = None):
    """A runner positioned at the start of stage NK (replay memory of N, distillation teacher)."""
    import pytorch_lightning as pl

    from lifelong_monodepth.training.sequence import SequenceRunner

    overrides = [*FAST_OVERRIDES, "order=NK", *(extra or [])]
    runner = SequenceRunner(compose_config(tmp_path / "run", overrides, tiny_domains))
    enter_second_stage(runner)
    # Move the student off its teacher: at the very start they agree exactly, and the L1 distillation
    # gradient would be the sign of floating-point noise.
    with torch.no_grad():
        for parameter in runner.module.net.heads["N"].parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    trainer = pl.Trainer(
        accelerator="cpu",
        callbacks=list(runner.strategies),
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    runner.module.trainer = trainer
    batch = next(iter(runner.datamodule.train_dataloader()))
    return runner, batch


def _step(runner, batch, fused: bool):
    """Loss, gradients and BatchNorm statistics after one training step from the same state."""
    module = copy.deepcopy(runner.module)
    module.trainer = runner.module.trainer
    module.hparams.fused_step = fused
    from lifelong_monodepth.lifelong.replay import ReplayCallback

    for strategy in runner.strategies:  # restart the replay streams: both steps draw the same batches
        if isinstance(strategy, ReplayCallback):
            strategy.on_stage_start(runner.stages[1], module, runner.datamodule)
    calls = []
    handle = module.net.encoder.register_forward_hook(lambda *args: calls.append(args[1][0].shape[0]))
    module.train()
    loss = module.training_step(batch, 0)
    loss.backward()
    handle.remove()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    buffers = {n: b.clone() for n, b in module.named_buffers() if "running" in n}
    return loss.detach(), dict(module._step_terms), grads, buffers, calls, module.step_samples


@pytest.mark.parametrize("freeze", ["none", "shared"])
def test_fused_step_equals_separate_passes(tmp_path: Path, tiny_domains, freeze: str) -> None:
    runner, batch = _stage_two(tmp_path, tiny_domains, [f"model.freeze_shared_bn={freeze}"])
    loss_f, terms_f, grads_f, stats_f, calls_f, samples_f = _step(runner, batch, fused=True)
    loss_u, terms_u, grads_u, stats_u, calls_u, samples_u = _step(runner, batch, fused=False)
    assert calls_f == [4] and calls_u == [2, 2]  # one encoder pass over current (2) + replay (2)
    assert samples_f == samples_u == 4
    assert set(terms_f) == {"depth", "replay_N", "distill_N", "loss"}
    for name in terms_f:
        torch.testing.assert_close(terms_f[name], terms_u[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss_f, loss_u, rtol=1e-5, atol=1e-6)
    assert grads_f.keys() == grads_u.keys() and any("encoder" in n for n in grads_f)
    # Relative to the tensor's norm: BatchNorm backward cancels large terms (in float64 the two steps
    # agree to 1e-14; float32 leaves ~1e-5 of summation-order noise). A tensor whose gradient is
    # zero up to that noise (e.g. a BatchNorm shift followed by conv + BatchNorm: ~1e-5 against a
    # median norm of ~5) has no meaningful relative error, so the floor is 1 % of the median norm;
    # the whole gradient vector must agree as well.
    norms = torch.stack([g.norm() for g in grads_u.values()])
    floor = 1e-2 * norms.median()
    for name in grads_f:
        error = (grads_f[name] - grads_u[name]).norm() / torch.maximum(grads_u[name].norm(), floor)
        assert error < 1e-3, (name, float(error))
    total = torch.cat([(grads_f[n] - grads_u[n]).flatten() for n in grads_u]).norm() / norms.norm()
    assert total < 1e-5, float(total)
    for name in stats_f:  # running statistics updated per batch, as by separate passes
        torch.testing.assert_close(stats_f[name], stats_u[name], rtol=1e-5, atol=1e-6, msg=name)


def test_batches_of_different_sizes_are_grouped(tmp_path: Path) -> None:
    from lifelong_monodepth.models.encoder import Encoder
    from lifelong_monodepth.models.network import MultiDomainDepthNet
    from lifelong_monodepth.training.fused import encode_batches

    torch.manual_seed(0)
    net = MultiDomainDepthNet(Encoder("tf_efficientnet_lite0", pretrained=False), {"out_channels": 8}).train()
    # (batches of one image at 32×64 would leave 2 values per channel at stride 32: BatchNorm's
    # variance of 2 values amplifies float noise, so the sizes here keep the comparison meaningful)
    batches = [torch.rand(2, 3, 64, 96), torch.rand(3, 3, 96, 64), torch.rand(2, 3, 64, 96)]
    reference = copy.deepcopy(net)
    calls = []
    net.encoder.register_forward_hook(lambda *args: calls.append(tuple(args[1][0].shape)))
    fused = encode_batches(net, batches)
    separate = encode_batches(reference, batches, fuse=False)
    assert [c[0] for c in calls] == [4, 3]  # 64×96 (2 + 2 images) in one pass, 96×64 alone
    for a, b in zip(fused, separate, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
