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


def _double(batch: dict) -> dict:
    return {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in batch.items()}


def _step(runner, batch, fused: bool):
    """Loss, gradients and BatchNorm statistics after one training step from the same state (float64:
    float32 summation-order noise, amplified by BatchNorm's backward on tiny maps, would hide a real
    difference or fake one)."""
    module = copy.deepcopy(runner.module).double()
    module.trainer = runner.module.trainer
    module.hparams.fused_step = fused
    from lifelong_monodepth.lifelong.distillation import DistillationCallback
    from lifelong_monodepth.lifelong.replay import ReplayCallback

    for strategy in runner.strategies:  # restart the replay streams: both steps draw the same batches
        if isinstance(strategy, ReplayCallback):
            strategy.on_stage_start(runner.stages[1], module, runner.datamodule)
            draw = type(strategy).next_batch
            strategy.next_batch = lambda letter, s=strategy, draw=draw: _double(draw(s, letter))
        if isinstance(strategy, DistillationCallback):
            strategy.teacher.double()
    batch = _double(batch)
    calls, head_calls = [], []
    handle = module.net.encoder.register_forward_hook(lambda *args: calls.append(args[1][0].shape[0]))
    head = module.net.heads["N"].register_forward_hook(lambda *args: head_calls.append(args[1][0].shape[0]))
    module.train()
    loss = module.training_step(batch, 0)
    loss.backward()
    handle.remove()
    head.remove()
    calls = (calls, head_calls)
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    buffers = {n: b.clone() for n, b in module.named_buffers() if "running" in n}
    return loss.detach(), dict(module._step_terms), grads, buffers, calls, module.step_samples


@pytest.mark.parametrize(("freeze", "domain_bn"), [("none", "false"), ("shared", "false"), ("none", "stats")])
def test_fused_step_equals_separate_passes(tmp_path: Path, tiny_domains, freeze: str, domain_bn: str) -> None:
    overrides = [
        f"model.freeze_shared_bn={freeze}",
        "model.freeze_shared_bn_from_stage=1",
        f"model.net.fusion.domain_bn={domain_bn}",
    ]
    runner, batch = _stage_two(tmp_path, tiny_domains, overrides)
    loss_f, terms_f, grads_f, stats_f, calls_f, samples_f = _step(runner, batch, fused=True)
    loss_u, terms_u, grads_u, stats_u, calls_u, samples_u = _step(runner, batch, fused=False)
    assert calls_f[0] == [4] and calls_u[0] == [2, 2]  # one encoder pass over current (2) + replay (2)
    # the old head N (frozen BatchNorm) runs once on its replay (2) + current (2, distillation) maps
    # (with per-domain fusion statistics the distillation student reads N's own map of the current
    # batch, not the shared one: two calls then, and no wasted call on the shared map)
    assert calls_f[1] == ([4] if domain_bn == "false" else [2, 2]) and calls_u[1] == [2, 2]
    assert samples_f == samples_u == 4
    assert set(terms_f) == {"depth", "replay_N", "distill_N", "loss"}
    for name in terms_f:
        torch.testing.assert_close(terms_f[name], terms_u[name], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss_f, loss_u, rtol=1e-10, atol=1e-12)
    assert grads_f.keys() == grads_u.keys() and any("encoder" in n for n in grads_f)
    for name in grads_f:  # relative to the tensor's norm; a BatchNorm bias followed by a training-mode
        # BatchNorm has a gradient of exactly 0 in exact arithmetic (~1e-15 of noise): absolute there
        error = (grads_f[name] - grads_u[name]).norm()
        assert error < 1e-8 * grads_u[name].norm() + 1e-12, (name, float(error))
    for name in stats_f:  # running statistics updated per batch, as by separate passes
        torch.testing.assert_close(stats_f[name], stats_u[name], rtol=1e-10, atol=1e-12, msg=name)


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


def test_channels_last_step_equals_contiguous_step(tmp_path: Path, tiny_domains) -> None:
    """The default memory layout (``model.channels_last``, faster on CPU and GPU) changes the summation
    order only: the same loss, gradients and running statistics as the contiguous layout (float64)."""
    runner, batch = _stage_two(tmp_path, tiny_domains)
    assert runner.cfg.model.channels_last  # the default
    # Converted when the module is built and each head added, before any fit: the new head K too,
    # and the teacher (a copy made at stage start).
    teachers = [s.teacher for s in runner.strategies if getattr(s, "teacher", None) is not None]
    assert teachers
    convolutions = [
        p
        for net in [runner.module.net, *teachers]
        for p in [*net.fusion.parameters(), *net.heads.parameters()]
        if p.dim() == 4 and p.shape[-1] > 1
    ]
    assert convolutions and all(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convolutions
    )
    last = _step(runner, batch, fused=True)
    runner.module.net.to(memory_format=torch.contiguous_format)
    runner.module.hparams.channels_last = False
    for strategy in runner.strategies:
        if getattr(strategy, "teacher", None) is not None:
            strategy.teacher.to(memory_format=torch.contiguous_format)
    assert runner.module.net.fusion.fuse[0].weight.is_contiguous()
    plain = _step(runner, batch, fused=True)
    torch.testing.assert_close(last[0], plain[0], rtol=1e-10, atol=1e-12)
    assert last[2].keys() == plain[2].keys()
    for name in last[2]:
        error = (last[2][name] - plain[2][name]).norm()
        assert error < 1e-8 * plain[2][name].norm() + 1e-12, (name, float(error))
    for name in last[3]:
        torch.testing.assert_close(last[3][name], plain[3][name], rtol=1e-10, atol=1e-12, msg=name)
