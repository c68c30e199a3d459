"""Issue 11 item 3, remedies for a weak later domain: head warm-up, per-domain fusion BatchNorm,
per-stage epochs and learning rates, distillation weights per position."""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from conftest import FAST_OVERRIDES, compose_config, enter_second_stage
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.models.domain_norm import DomainBatchNorm2d
from lifelong_monodepth.training.checkpointing import load_checkpoint_file
from lifelong_monodepth.training.sequence import SequenceRunner, run_sequence
from lifelong_monodepth.training.stage_schedule import StageSchedule


def _runner(tmp_path: Path, tiny_domains, extra: list[str]) -> SequenceRunner:
    """A runner at the start of stage NK (heads N and K; replay memory and teacher if configured)."""
    runner = SequenceRunner(
        compose_config(tmp_path / "run", [*FAST_OVERRIDES, "order=NK", *extra], tiny_domains)
    )
    enter_second_stage(runner)
    return runner


class Snapshots(pl.Callback):
    """Parameters and BatchNorm buffers of the encoder, fusion and head K before every step and at the end,
    and the loss terms of every step."""

    def __init__(self) -> None:
        self.states: list[dict[str, dict[str, torch.Tensor]]] = []
        self.terms: list[set[str]] = []

    def _take(self, module) -> None:
        net = module.net
        self.states.append(
            {
                part: {k: v.detach().clone() for k, v in getattr(net, part).state_dict().items()}
                for part in ("encoder", "fusion")
            }
            | {"head": {k: v.detach().clone() for k, v in net.heads["K"].state_dict().items()}}
        )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._take(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.terms.append(set(pl_module._step_terms))

    def on_train_end(self, trainer, pl_module) -> None:
        self._take(pl_module)


def _fit(runner: SequenceRunner, steps: int, *callbacks: pl.Callback) -> None:
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[*runner.strategies, *callbacks],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(runner.module, datamodule=runner.datamodule)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------ head warm-up
@pytest.mark.parametrize("with_fusion", [False, True])
def test_head_warmup_freezes_the_shared_layers_then_releases_them(
    tmp_path: Path, tiny_domains, with_fusion: bool
) -> None:
    runner = _runner(
        tmp_path,
        tiny_domains,
        ["model.head_warmup_steps=2", f"model.head_warmup_fusion={str(with_fusion).lower()}"],
    )
    record = Snapshots()
    _fit(runner, 3, record)
    before, after_1, after_2, end = record.states
    # Two warm-up steps: the encoder (weights and BatchNorm statistics) does not move, the new head does.
    assert _same(before["encoder"], after_1["encoder"]) and _same(after_1["encoder"], after_2["encoder"])
    assert not _same(before["head"], after_1["head"]) and not _same(after_1["head"], after_2["head"])
    assert _same(before["fusion"], after_2["fusion"]) is not with_fusion  # the fusion trains only on request
    # Third step: everything trains, with replay and distillation back.
    assert not _same(after_2["encoder"], end["encoder"])
    assert record.terms[:2] == [{"depth", "loss"}] * 2
    assert record.terms[2] == {"depth", "replay_N", "distill_N", "loss"}


def test_head_warmup_never_applies_to_the_first_stage(tmp_path: Path, tiny_domains) -> None:
    from lifelong_monodepth.training.warmup import warmup_active

    cfg = compose_config(
        tmp_path / "run", [*FAST_OVERRIDES, "order=NK", "model.head_warmup_steps=5"], tiny_domains
    )
    runner = SequenceRunner(cfg)
    runner.prepare_stage(runner.stages[0])
    runner.module.trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    assert not warmup_active(runner.module)  # nothing learned before: no shared layers to protect
    runner.module.mark_learned(["N"])
    runner.prepare_stage(runner.stages[1])
    assert warmup_active(runner.module)


# ------------------------------------------------------------------------ per-domain fusion BN
def _norms(net) -> list[DomainBatchNorm2d]:
    return [m for m in net.fusion.modules() if isinstance(m, DomainBatchNorm2d)]


def _domain_set(net, letter: str) -> dict[str, torch.Tensor]:
    return {
        f"{i}.{k}": v.clone()
        for i, n in enumerate(_norms(net))
        for k, v in n.sets[letter].state_dict().items()
    }


@pytest.mark.parametrize("domain_bn", ["affine", "false"])
def test_domain_bn_keeps_an_old_domain_unchanged_while_a_new_one_trains(
    tmp_path: Path, tiny_domains, domain_bn: str
) -> None:
    """Encoder frozen (weights and statistics), fusion convolutions frozen, no replay or distillation:
    only BatchNorm can carry the new domain into the old one's output. With domain BN it does not."""
    runner = _runner(
        tmp_path,
        tiny_domains,
        [
            "strategy.callbacks.replay=null",
            "strategy.callbacks.distillation=null",
            "model.freeze_shared_bn=encoder",
            "model.freeze_shared_bn_from_stage=1",
            f"model.net.fusion.domain_bn={domain_bn}",
        ],
    )
    net = runner.module.net
    for name, parameter in net.named_parameters():
        if name.startswith(("encoder.", "fusion.")) and ".sets.K." not in name:
            parameter.requires_grad_(False)
    images = torch.rand(2, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    net.eval()
    with torch.no_grad():
        before = net(images, ["N"]).depth["N"]
    old_set = _domain_set(net, "N") if domain_bn != "false" else {}
    new_set = _domain_set(net, "K") if domain_bn != "false" else {}
    _fit(runner, 2)
    net.eval()
    with torch.no_grad():
        after = net(images, ["N"]).depth["N"]
    if domain_bn == "false":  # the shared fusion statistics followed K: N's output moved
        assert not torch.equal(before, after)
        return
    assert _same(old_set, _domain_set(net, "N"))  # statistics and affine, bit for bit
    assert not _same(new_set, _domain_set(net, "K"))  # K's own set learned
    assert torch.equal(before, after)


def test_domain_bn_training_step_with_replay_and_distillation(tmp_path: Path, tiny_domains) -> None:
    runner = _runner(tmp_path, tiny_domains, ["model.net.fusion.domain_bn=stats"])
    module, net = runner.module, runner.module.net
    assert all(n.domains == ["N", "K"] for n in _norms(net))
    calls: list[int] = []
    handle = net.encoder.register_forward_hook(lambda *args: calls.append(args[1][0].shape[0]))
    module.trainer = pl.Trainer(accelerator="cpu", callbacks=list(runner.strategies), logger=False)
    module.train()
    old, shared = _domain_set(net, "N"), {k: v.clone() for k, v in _norms(net)[0].shared.state_dict().items()}
    batch = next(iter(runner.datamodule.train_dataloader()))
    loss = module.training_step(batch, 0)
    loss.backward()
    handle.remove()
    assert calls == [4]  # one encoder pass over the current batch and N's replay batch
    assert set(module._step_terms) == {"depth", "replay_N", "distill_N", "loss"}
    assert _same(old, _domain_set(net, "N"))  # old domain's statistics fixed (freeze_old_head_bn)
    assert not torch.equal(
        shared["running_mean"], _norms(net)[0].shared.running_mean
    )  # pre-domain set follows
    # Selection reads the shared (pre-domain) map; each head reads its own.
    net.eval()
    images = batch["image"]
    with torch.no_grad():
        assert not torch.equal(net.encode(images), net.encode(images, "K"))
        out = net(images, ["N", "K"])
        torch.testing.assert_close(out.fused_by_domain["N"], net.encode(images, "N"))
        torch.testing.assert_close(out.depth["K"], net.heads["K"](net.encode(images, "K"))[0])


@pytest.mark.slow
def test_options_survive_checkpoints_and_a_mid_stage_resume(tmp_path: Path, tiny_domains) -> None:
    """The options (and a per-stage schedule) through a crash in the warm-up of stage NK and a resume."""
    from lifelong_monodepth.training.loading import load_module

    overrides = [
        *FAST_OVERRIDES,
        "order=NK",
        "model.net.fusion.domain_bn=affine",
        "model.head_warmup_steps=2",
        "model.freeze_shared_bn=encoder",
        "model.freeze_shared_bn_from_stage=2",
        "model.net.head.init=newest",
        "stage_schedule.epochs=[1,2]",
        "stage_schedule.lr_factors=[1,0.5]",
        "checkpoint.every_n_steps=1",
        "+callbacks.record._target_=test_weak_domain_options.RecordSchedule",
    ]
    RecordSchedule.records = []
    expected = tmp_path / "expected"
    run_sequence(compose_config(expected, overrides, tiny_domains))
    assert RecordSchedule.records == [(1, pytest.approx(1e-3)), (2, pytest.approx(5e-4))]

    out = tmp_path / "crashed"
    _crash_in_stage_nk(out, overrides, tiny_domains)
    assert (out / "checkpoints" / "resume" / "NK" / "last.ckpt").is_file()
    run_sequence(compose_config(out, overrides, tiny_domains))
    for name in ("N", "NK"):
        a = load_checkpoint_file(out / "checkpoints" / f"{name}.ckpt")["state_dict"]
        b = load_checkpoint_file(expected / "checkpoints" / f"{name}.ckpt")["state_dict"]
        assert a.keys() == b.keys() and any(".sets.K." in k for k in a) == (name == "NK")
        for key in a:
            assert torch.equal(a[key], b[key]), key
    with pytest.raises(ConfigError, match="its model.net.fusion.domain_bn is affine, this run uses off"):
        run_sequence(compose_config(out, [*overrides, "model.net.fusion.domain_bn=false"], tiny_domains))
    module = load_module(out / "checkpoints" / "NK.ckpt")
    assert module.hparams.head_warmup_steps == 2 and module.net.domain_bn
    images = torch.rand(1, 3, 32, 64)
    with torch.no_grad():
        own = module.net.heads["N"](module.net.encode(images, "N"))[0]
        torch.testing.assert_close(module.predict_depth(images, "N"), own)
    # Inference: a forced head reads its own set; automatic routing reads the shared map, then the head's own.
    import numpy as np

    from lifelong_monodepth.inference.loading import load_model
    from lifelong_monodepth.inference.predictor import DepthPredictor

    model = load_model(out / "checkpoints" / "NK.ckpt")
    image = images[0].permute(1, 2, 0).numpy().astype(np.float32)
    auto = DepthPredictor(model, device="cpu", compile=False)([image])[0]
    forced = DepthPredictor(model, domain=auto.domain, device="cpu", compile=False)([image])[0]
    assert forced.depth.shape == auto.depth.shape == (32, 64)
    np.testing.assert_allclose(auto.depth, forced.depth, rtol=1e-5, atol=1e-6)


def test_epochs_from_stage_reaches_the_stage_trainers(tmp_path: Path, tiny_domains) -> None:
    """The Hydra override (int keys) passes validation and sets the second stage's Trainer."""
    overrides = [
        *FAST_OVERRIDES,
        "order=NK",
        "stage_schedule.epochs_from_stage={2: 2}",
        "+callbacks.record._target_=test_weak_domain_options.RecordSchedule",
    ]
    RecordSchedule.records = []
    run_sequence(compose_config(tmp_path, overrides, tiny_domains))
    assert [epochs for epochs, _ in RecordSchedule.records] == [1, 2]


class RecordSchedule(pl.Callback):
    records: list = []

    def on_train_start(self, trainer, pl_module) -> None:
        RecordSchedule.records.append((trainer.max_epochs, trainer.optimizers[0].param_groups[0]["lr"]))


def _crash_in_stage_nk(out: Path, overrides: list[str], tiny_domains) -> None:
    """Runs ``overrides`` into ``out`` until :class:`Crash` stops it in stage NK."""
    with pytest.raises(RuntimeError, match="crash for the test"):
        run_sequence(
            compose_config(
                out, [*overrides, "+callbacks.crash._target_=test_weak_domain_options.Crash"], tiny_domains
            )
        )


class Crash(pl.Callback):
    """Fails after stage NK's second step: the resumable checkpoint holds step 1, inside the warm-up."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.current == ["K"] and trainer.global_step >= 2:
            raise RuntimeError("crash for the test")


# --------------------------------------------------------------------- per-stage schedule, weights
def test_stage_schedule_is_validated_with_clear_errors() -> None:
    schedule = StageSchedule.from_config({"epochs": [6, 6, 10], "lr_factors": [1, 1, 0.5]}, 3)
    assert schedule.trainer_overrides(2) == {"max_epochs": 10} and schedule.lr_factor(2) == 0.5
    assert StageSchedule.from_config(None, 3).trainer_overrides(0) == {}
    with pytest.raises(ConfigError, match=r"stage_schedule.epochs=\[6, 6\]: has 2 entries but the run has 3"):
        StageSchedule.from_config({"epochs": [6, 6]}, 3)
    with pytest.raises(ConfigError, match=r"stage_schedule.epochs\[1\]=0: epochs must be an integer ≥ 1"):
        StageSchedule.from_config({"epochs": [6, 0, 1]}, 3)
    with pytest.raises(ConfigError, match=r"stage_schedule.lr_factors\[0\]=-1: .* must be > 0"):
        StageSchedule.from_config({"lr_factors": [-1, 1, 1]}, 3)
    with pytest.raises(ConfigError, match="unknown key"):
        StageSchedule.from_config({"epoch": [1, 1, 1]}, 3)


def test_epochs_from_stage_applies_from_a_stage_number_on_whatever_the_order_length() -> None:
    """{3: 10}: stages 3, 4, … get 10 epochs; a two-stage order and a joint run keep max_epochs."""
    from_three = {"epochs_from_stage": {3: 10}}
    assert [StageSchedule.from_config(from_three, 4).epochs_for(i) for i in range(4)] == [None, None, 10, 10]
    assert StageSchedule.from_config(from_three, 2).trainer_overrides(1) == {}
    assert StageSchedule.from_config(from_three, 1).trainer_overrides(0) == {}
    steps = StageSchedule.from_config({"epochs_from_stage": {"2": 8, 4: 12}}, 5)
    assert [steps.epochs_for(i) for i in range(5)] == [None, 8, 8, 12, 12]
    both = StageSchedule.from_config({"epochs": [1, 2, 3], **from_three}, 3)
    assert both.trainer_overrides(2) == {"max_epochs": 3}  # an explicit list wins
    with pytest.raises(ConfigError, match=r"epochs_from_stage: key 0 must be a stage number ≥ 1"):
        StageSchedule.from_config({"epochs_from_stage": {0: 10}}, 3)
    with pytest.raises(ConfigError, match=r"epochs_from_stage\[3\]=0.5: epochs must be an integer"):
        StageSchedule.from_config({"epochs_from_stage": {3: 0.5}}, 3)
    with pytest.raises(ConfigError, match=r"epochs_from_stage=\[3, 10\]: must map a stage number"):
        StageSchedule.from_config({"epochs_from_stage": [3, 10]}, 3)


def test_defaults_chosen_for_the_third_stage(tmp_path: Path) -> None:
    """Ten epochs from stage 3 on and no distillation of the second-learned domain (docs/results.md,
    "Order KSN: what holds N back"); distill_only keeps every old domain, paper_real the paper's."""
    from omegaconf import OmegaConf

    cfg = compose_config(tmp_path, [])
    assert OmegaConf.to_container(cfg.stage_schedule.epochs_from_stage) == {3: 10}
    assert list(cfg.strategy.callbacks.distillation.position_weights) == [1, 0]
    schedule = StageSchedule.from_config(OmegaConf.to_container(cfg.stage_schedule), 3)
    assert [schedule.epochs_for(i) for i in range(3)] == [None, None, 10]
    distill_only = compose_config(tmp_path, ["strategy=distill_only"]).strategy.callbacks.distillation
    assert distill_only.position_weights is None
    paper = compose_config(tmp_path, ["experiment=paper_real"])
    assert paper.stage_schedule.epochs_from_stage is None
    assert list(paper.strategy.callbacks.distillation.position_weights) == [10, 100]
    assert compose_config(tmp_path, ["debug=fast"]).stage_schedule.epochs_from_stage is None


def test_config_validation_names_the_new_keys(tmp_path: Path, tiny_domains) -> None:
    from lifelong_monodepth.cli.validate import config_problems

    cfg = compose_config(
        tmp_path / "run",
        [
            *FAST_OVERRIDES,
            "order=NKS",
            "model.head_warmup_steps=-1",
            "model.net.fusion.domain_bn=per_domain",
            "model.net.head.init=oldest",
            "model.freeze_shared_bn_from_stage=0",
            "stage_schedule.epochs=[1,2]",
        ],
        tiny_domains,
    )
    problems = "\n".join(config_problems(cfg))
    assert "model.head_warmup_steps=-1: must be an integer ≥ 0" in problems
    assert "model.net.fusion.domain_bn='per_domain': must be one of off, stats, affine" in problems
    assert "stage_schedule.epochs=[1, 2]: has 2 entries but the run has 3 stage(s)" in problems
    assert "model.net.head.init='oldest': must be one of fresh, newest" in problems
    assert "model.freeze_shared_bn_from_stage=0: must be an integer ≥ 1" in problems


def test_position_weights_reach_the_newest_old_domain(tmp_path: Path, tiny_domains) -> None:
    """position_weights in stage S of NKS: N weighs [0], K (the newest old domain) [1]."""
    from lifelong_monodepth.lifelong.distillation import DistillationCallback

    both = DistillationCallback(weight=1.0, position_weights=[10, 100])
    assert [both.weight_for(letter, ["N", "K"]) for letter in "NK"] == [10, 100]
    short = DistillationCallback(weight=3.0, position_weights=[10])
    assert [short.weight_for(letter, ["N", "K"]) for letter in "NK"] == [10, 3.0]
    # And the term itself is scaled: stage NK, N at position 0.
    runner = _runner(tmp_path, tiny_domains, ["strategy.callbacks.distillation.position_weights=[7]"])
    distill = next(s for s in runner.strategies if isinstance(s, DistillationCallback))
    batch = next(iter(runner.datamodule.train_dataloader()))
    with torch.no_grad():
        for parameter in runner.module.net.heads["N"].parameters():
            parameter.add_(0.05)
    runner.module.eval()
    with torch.no_grad():
        fused = runner.module.net.encode(batch["image"])
        weighted = distill.extra_loss(runner.module, batch, fused)["distill_N"]
        distill.position_weights = None
        plain = distill.extra_loss(runner.module, batch, fused)["distill_N"]
    assert float(plain) > 0
    torch.testing.assert_close(weighted, 7 * plain)


# ------------------------------------------------------------------- cosine schedule per stage
COSINE = ["scheduler=cosine", "model.scheduler.min_factor=0.1"]


class RecordStepLR(pl.Callback):
    records: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        RecordStepLR.records.append(("".join(pl_module.learned) + "".join(pl_module.current), lr))


def test_cosine_per_stage_decays_over_each_stage_and_resumes(tmp_path: Path, tiny_domains) -> None:
    """Every stage anneals from its own learning rate (× its lr factor) to min_factor × it over the
    stage's steps, whatever the stage's length; a resume continues the schedule where it stopped."""
    from lifelong_monodepth.training.lr_schedules import cosine_per_stage

    overrides = [
        *FAST_OVERRIDES,
        *COSINE,
        "order=NK",
        "stage_schedule.epochs=[1,2]",
        "stage_schedule.lr_factors=[1,0.5]",
        "checkpoint.every_n_steps=1",
        "+callbacks.record._target_=test_weak_domain_options.RecordStepLR",
    ]
    RecordStepLR.records = []
    expected = tmp_path / "expected"
    run_sequence(compose_config(expected, overrides, tiny_domains))
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    four = cosine_per_stage(opt, total_steps=4, min_factor=0.1).lr_lambdas[0]
    want = [("N", 1e-3), ("N", 1e-4)] + [("NK", 5e-4 * four(i)) for i in range(4)]
    assert [s for s, _ in RecordStepLR.records] == [s for s, _ in want]
    assert [lr for _, lr in RecordStepLR.records] == pytest.approx([lr for _, lr in want])
    assert RecordStepLR.records[-1][1] == pytest.approx(5e-5)  # the stage ends at min_factor × its lr

    RecordStepLR.records = []
    out = tmp_path / "crashed"
    _crash_in_stage_nk(out, overrides, tiny_domains)
    RecordStepLR.records = []
    run_sequence(compose_config(out, overrides, tiny_domains))
    # the crash came after step 2 of NK; the resumable checkpoint holds step 1: steps 1, 2, 3 remain
    assert [lr for _, lr in RecordStepLR.records] == pytest.approx([5e-4 * four(i) for i in (1, 2, 3)])
    a = load_checkpoint_file(out / "checkpoints" / "NK.ckpt")["state_dict"]
    b = load_checkpoint_file(expected / "checkpoints" / "NK.ckpt")["state_dict"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cosine_per_stage_shape_and_errors() -> None:
    from lifelong_monodepth.training.lr_schedules import cosine_per_stage

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    f = cosine_per_stage(opt, total_steps=5, min_factor=0.0, warmup_steps=1).lr_lambdas[0]
    # warm-up from min_factor, then a half cosine over the remaining 4 steps: 1, cos² shape, 0 at the end
    assert [f(i) for i in range(5)] == pytest.approx([0.0, 1.0, 0.75, 0.25, 0.0])
    assert f(7) == pytest.approx(0.0)  # past the end it stays at the floor
    with pytest.raises(ValueError, match="total_steps=0"):
        cosine_per_stage(opt, total_steps=0)
    lazy = cosine_per_stage(opt, total_steps=lambda: float("inf")).lr_lambdas[0]  # read when needed
    assert lazy(0) == 1.0
    with pytest.raises(ValueError, match="total_steps=inf .* trainer.max_epochs"):
        lazy(1)
    with pytest.raises(ValueError, match="min_factor=2"):
        cosine_per_stage(opt, total_steps=3, min_factor=2)
    with pytest.raises(ValueError, match="warmup_steps=3"):
        cosine_per_stage(opt, total_steps=3, warmup_steps=3)
