"""Training figures: the Lightning loop against a hand-written loop, and stage-3 / stage-1 step cost."""

from __future__ import annotations

import contextlib
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from timing_utils import Budget, interleaved_seconds, median_interval

ROOT = Path(__file__).resolve().parents[1]


class StepStamps:
    """Lightning callback: a clock read at the end of every training batch (CUDA work waited for)."""

    def __new__(cls, device: torch.device, stamps: list[float]):
        import pytorch_lightning as pl

        class _Stamps(pl.Callback):
            def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                stamps.append(time.perf_counter())

        return _Stamps()


def _runner(workdir: Path, args: Any, device: torch.device, steps: int):
    """A SequenceRunner at the start of stage NK (replay memory of N, distillation teacher), run.py's path."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import compose_config, enter_second_stage, make_domain

    size = tuple(args.train_size)
    count = max(args.batch * steps, 2 * args.replay_batch)
    domains = {
        "N": make_domain(workdir, "N", size=size, count=count),
        "K": make_domain(workdir, "K", size=size, count=count, depth_scale=256.0, max_depth=80.0),
    }
    gpu = device.type == "cuda"
    overrides = [
        "order=NK",
        f"trainer={'gpu' if gpu else 'cpu'}",
        "trainer.max_epochs=1",
        f"trainer.limit_train_batches={steps}",
        "trainer.limit_val_batches=0",
        "trainer.log_every_n_steps=10",
        "logger=csv",
        "callbacks=none",
        "checkpoint.every_n_steps=0",
        f"data.batch_size={args.batch}",
        "data.val_fraction=0.1",
        f"strategy.callbacks.replay.batch_size={args.replay_batch}",
        f"model.net.encoder.backbone={args.backbone}",
        "model.net.encoder.pretrained=false",
        "benchmark.generate=false",
        "evaluation.reference_init=false",
        *getattr(args, "override", []),
    ]
    runner_cfg = compose_config(workdir / "run", overrides, domains)
    from lifelong_monodepth.training.sequence import SequenceRunner

    runner = SequenceRunner(runner_cfg)
    return runner, enter_second_stage(runner)


def lightning_vs_hand(
    workdir: Path,
    args: Any,
    device: torch.device,
    budget: Budget,
    section: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
) -> dict[str, float]:
    """Samples/s of one stage with replay and distillation: Lightning (run.py's Trainer) vs a bare loop.

    Both use the same model, batches (the DataModule's loader, the replay memory), losses, fused
    encoder pass, gradient clipping and precision; each is timed as the median gap between
    consecutive step ends after warm-up, so data loading and everything the loop does count.
    ``section(name)`` wraps each loop ("lightning", "hand"): the profiler's ranges
    (``benchmarks/loop_profile.py``).
    """
    section = section or (lambda name: contextlib.nullcontext())
    from hydra.utils import instantiate

    from lifelong_monodepth.lifelong.distillation import DistillationCallback
    from lifelong_monodepth.lifelong.replay import ReplayCallback
    from lifelong_monodepth.training.fused import StepHeads, encode_batches, encode_split, half_size
    from lifelong_monodepth.training.losses import distillation_loss, uncertainty_depth_loss

    steps = budget.warmup + budget.repeats + 1
    runner, stage = _runner(workdir, args, device, steps)
    start_state = copy.deepcopy(runner.module.state_dict())
    stamps: list[float] = []
    loggers = runner.tracker.loggers(stage)  # the run's own loggers and callbacks, as run.py sets them up
    callbacks = runner.tracker.fit_callbacks(runner._callbacks(stage), loggers)
    trainer = instantiate(
        runner.cfg.trainer,
        callbacks=[*callbacks, StepStamps(device, stamps)],
        logger=loggers or False,
        default_root_dir=str(runner.output_dir),
        enable_progress_bar=False,
    )
    with section("lightning"):
        trainer.fit(runner.module, datamodule=runner.datamodule)
    lightning = median_interval(stamps, budget.warmup)
    samples = args.batch + args.replay_batch

    # The hand-written loop: same state, same strategies' data, no framework.
    module = runner.module
    module.load_state_dict(start_state)
    module.to(device).train()
    replay = next(s for s in runner.strategies if isinstance(s, ReplayCallback))
    distill = next(s for s in runner.strategies if isinstance(s, DistillationCallback))
    replay.on_stage_start(stage, module, runner.datamodule)
    teacher = distill.teacher.to(device)
    net = module.net
    # The run's optimiser (Adam with its weight decay), as the module's configure_optimizers builds it.
    optimizer = instantiate(runner.cfg.model.optimizer)([p for p in net.parameters() if p.requires_grad])
    precision = str(runner.cfg.trainer.precision)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision.startswith("bf16"))
    clip = runner.cfg.trainer.get("gradient_clip_val")
    channels_last = bool(runner.cfg.model.get("channels_last", False))  # the weights are already converted
    hand: list[float] = []
    loader = runner.datamodule.train_dataloader()
    with section("hand"):
        for i, batch in enumerate(loader):
            if i >= steps:
                break
            images = batch["image"].to(device, non_blocking=True)
            depth, mask = batch["depth"].to(device), batch["mask"].to(device)
            old = replay.next_batch("N")
            replayed = old["image"].to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
                replayed = replayed.contiguous(memory_format=torch.channels_last)
            with autocast:
                if net.domain_bn:
                    # Per-domain fusion statistics: one encoder pass, each batch fused under its domain's
                    # set, the old head on the current batch fused under its own set (as the module does).
                    fused, levels = encode_split(net, [images, replayed], [list(batch["domain"]), "N"])
                    out = net.run_heads(fused[0], ["K"])
                    student = net.run_domains(levels[0], half_size(images), ["N"])
                    out.depth["N"], out.log_var["N"] = student.depth["N"], student.log_var["N"]
                    rep = net.run_heads(fused[1], ["N"])
                else:
                    encoded = encode_batches(net, [images, replayed])
                    heads = StepHeads(net)  # the old head once on replay + current maps, as the module does
                    heads.request("N", encoded[1])
                    heads.request("N", encoded[0])
                    heads.run()
                    out = heads(encoded[0], ["K", "N"])
                    rep = heads(encoded[1], ["N"])
                with torch.no_grad():
                    target = teacher(images, domains=["N"])
            loss = uncertainty_depth_loss(out.depth["K"], out.log_var["K"], depth, mask)
            loss = loss + replay.weight * uncertainty_depth_loss(
                rep.depth["N"], rep.log_var["N"], old["depth"].to(device), old["mask"].to(device)
            )
            loss = loss + distill.weight * distillation_loss(
                out.depth["N"], out.log_var["N"], target.depth["N"], target.log_var["N"]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(net.parameters(), float(clip))
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            hand.append(time.perf_counter())
    hand_seconds = median_interval(hand, budget.warmup)
    return {
        "lightning_step_s": lightning,
        "hand_step_s": hand_seconds,
        "lightning_samples_per_s": samples / lightning,
        "hand_samples_per_s": samples / hand_seconds,
        "lightning_over_hand": hand_seconds / lightning,
    }


def stage_steps(args: Any, device: torch.device) -> tuple[dict[str, Callable[[], None]], Any, Any]:
    """One training step of stage 1 and of stage 3, as callables (the module's own ``training_step``).

    Stage 3 learns S after N and K: a replay batch of each old domain and distillation of both
    old heads (frozen teacher), with the real replay and distillation strategies; the replay
    batches come from memory so only the step is timed. Also returns the module and the
    distillation strategy (its teacher), for the profiler (``profile_step.py``).
    """
    import pytorch_lightning as pl

    from lifelong_monodepth.lifelong.distillation import DistillationCallback, freeze
    from lifelong_monodepth.lifelong.replay import ReplayCallback
    from lifelong_monodepth.models.encoder import Encoder
    from lifelong_monodepth.models.network import MultiDomainDepthNet
    from lifelong_monodepth.training.module import LifelongDepthModule

    size = tuple(args.train_size)
    net = MultiDomainDepthNet(Encoder(args.backbone, pretrained=False))
    for letter, top in (("N", 10.0), ("K", 80.0), ("S", 6.0)):
        net.add_domain(letter, 0.1, top)
    module = LifelongDepthModule(net).to(device)
    batch_size, replay_size = args.batch, args.replay_batch
    batch = {
        "image": torch.rand(batch_size, 3, *size, device=device),
        "depth": torch.rand(batch_size, 1, *size, device=device) * 5 + 0.5,
        "domain": ["S"] * batch_size,
    }
    batch["mask"] = batch["depth"] > 0
    memory = {
        letter: {
            "image": torch.rand(replay_size, 3, *size),
            "depth": torch.rand(replay_size, 1, *size) * 5 + 0.5,
        }
        for letter in "NK"
    }
    for item in memory.values():
        item["mask"] = item["depth"] > 0

    class MemoryReplay(ReplayCallback):
        def next_batch(self, letter: str) -> dict[str, Any]:
            return memory[letter]

    replay = MemoryReplay(batch_size=replay_size, weight=1.0)
    replay._datasets = {"N": None, "K": None}  # type: ignore[dict-item]
    distill = DistillationCallback(weight=1.0)
    distill.old_domains = ["N", "K"]
    distill.teacher = freeze(copy.deepcopy(module.net))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4)
    trainers = {
        stage: pl.Trainer(
            accelerator=device.type,
            devices=1,
            callbacks=list(strategies),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        for stage, strategies in (("stage1", []), ("stage3", [replay, distill]))
    }
    module.set_current(["S"])
    module.train()  # the same BatchNorm modes in both stages (S current, N and K old heads)

    def make_step(trainer: Any) -> Callable[[], None]:
        def step() -> None:
            module.trainer = trainer
            optimizer.zero_grad(set_to_none=True)
            module.training_step(batch, 0).backward()
            with torch.profiler.record_function("part:optimizer"):
                optimizer.step()

        return step

    return {stage: make_step(trainer) for stage, trainer in trainers.items()}, module, distill


def stage_ratio(args: Any, device: torch.device, budget: Budget) -> dict[str, float]:
    """Stage-3 over stage-1 step cost, the two steps interleaved so that load hits both alike.

    On a shared machine a burst of load during one side's repeats would bias the ratio; with the
    steps alternating, each pair sees about the same load, and the ratio is the median of the
    per-pair ratios.
    """
    steps, _, _ = stage_steps(args, device)
    times = interleaved_seconds(steps, device, budget)
    figures = {f"{stage}_step_s": statistics.median(values) for stage, values in times.items()}
    pairs = [b / a for a, b in zip(times["stage1"], times["stage3"], strict=True)]
    figures["stage3_over_stage1"] = statistics.median(pairs)
    if device.type == "cpu":
        # Process CPU time on one thread: the work done, whatever else the cores ran (with several
        # threads it would also count the threads' spin-waits, which load changes).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            cpu: dict[str, list[float]] = {}
            interleaved_seconds(steps, device, Budget(warmup=1, repeats=budget.repeats), cpu)
        finally:
            torch.set_num_threads(threads)
        figures["stage3_over_stage1_cpu_time"] = statistics.median(cpu["stage3"]) / statistics.median(
            cpu["stage1"]
        )
    # Images through the encoder with gradients (current + 2 replay batches) over stage 1's; the
    # frozen teacher's forward pass over the current batch comes on top.
    figures["stage3_images_ratio"] = (args.batch + 2 * args.replay_batch) / args.batch
    return figures
