"""Where a training step's time goes: stage 1 against stage 3, by part of the network (torch.profiler).

``python benchmarks/profile_step.py [--backbone ...] [--train-size H W] [--batch 8] [--replay-batch 4]``

Each operator's CPU self time is charged to the part whose forward ran it: encoder, fusion, the
current head, the old heads (replay + distillation student), the frozen teacher, the losses, the
optimiser; backward operators are charged to the part whose forward created them (the profiler's
autograd sequence numbers). Shares of one step are independent of the machine's load, unlike
wall times.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

import lifelong_monodepth  # noqa: E402,F401  (torchvision workaround before torch-heavy imports)

PARTS = ("encoder", "fusion", "current head", "old heads", "teacher", "losses", "optimizer", "other")


@contextmanager
def labelled(net: Any, teacher: Any, current: str) -> Iterator[None]:
    """Forward hooks that open a ``part:<name>`` profiler range around each part of the network."""
    import lifelong_monodepth.lifelong.distillation as distillation
    import lifelong_monodepth.lifelong.replay as replay
    import lifelong_monodepth.training.module as module

    handles, patched = [], []

    def label(mod: torch.nn.Module, name: str) -> None:
        ranges: list[Any] = []

        def enter(*_: Any) -> None:
            ranges.append(record_function(f"part:{name}"))
            ranges[-1].__enter__()

        def leave(*_: Any) -> None:
            ranges.pop().__exit__(None, None, None)

        handles.extend([mod.register_forward_pre_hook(enter), mod.register_forward_hook(leave)])

    if teacher is not None:
        label(teacher, "teacher")
    label(net.encoder, "encoder")
    label(net.fusion, "fusion")
    for letter, head in net.heads.items():
        label(head, "current head" if letter == current else "old heads")
    for owner, name in (
        (module, "uncertainty_depth_loss"),
        (replay, "uncertainty_depth_loss"),
        (distillation, "distillation_loss"),
    ):
        original = getattr(owner, name)

        def wrapped(*args: Any, _f: Callable[..., Any] = original) -> Any:
            with record_function("part:losses"):
                return _f(*args)

        setattr(owner, name, wrapped)
        patched.append((owner, name, original))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        for owner, name, original in patched:
            setattr(owner, name, original)


def shares(prof: Any) -> dict[str, float]:
    """Self CPU time (ms) per part: forward ops by their enclosing range, backward ops by sequence number."""
    events = prof.events()
    forward_part: dict[int, str] = {}

    def part_of(event: Any) -> str | None:
        found = None
        while event is not None:
            if event.name.startswith("part:"):
                found = event.name[5:]  # the outermost range wins (teacher > its heads)
            event = event.cpu_parent
        return found

    for event in events:
        if event.sequence_nr >= 0 and not event.name.startswith("autograd::engine"):
            part = part_of(event)
            if part is not None:
                forward_part.setdefault(event.sequence_nr, part)
    totals: dict[str, float] = defaultdict(float)
    for event in events:
        if event.name.startswith("part:") or event.name.startswith("ProfilerStep"):
            continue
        part = part_of(event)
        if part is None:  # a backward op: find its autograd node
            node = event
            while node is not None and not node.name.startswith("autograd::engine::evaluate_function"):
                node = node.cpu_parent
            if node is not None:
                part = forward_part.get(node.sequence_nr, "other")
            else:
                part = "optimizer" if _under(event, "part:optimizer") else "other"
        totals[part] += event.self_cpu_time_total / 1000
    return dict(totals)


def _under(event: Any, name: str) -> bool:
    while event is not None:
        if event.name == name:
            return True
        event = event.cpu_parent
    return False


def main(argv: list[str] | None = None) -> int:
    from training_bench import stage_steps

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--train-size", type=int, nargs=2, default=[96, 128])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--replay-batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    steps, module, distill = stage_steps(args, torch.device("cpu"))
    results = {}
    for stage in ("stage1", "stage3"):
        step = steps[stage]
        step()  # warm-up
        with labelled(module.net, distill.teacher, "S"), profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.repeats):
                step()
        results[stage] = {k: v / args.repeats for k, v in shares(prof).items()}
    total1 = sum(results["stage1"].values())
    print(f"# CPU self time per step (ms), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| part | stage 1 | share | stage 3 | share |")
    print("|---|---|---|---|---|")
    total3 = sum(results["stage3"].values())
    for part in PARTS:
        a, b = results["stage1"].get(part, 0.0), results["stage3"].get(part, 0.0)
        print(f"| {part} | {a:.0f} | {100 * a / total1:.0f} % | {b:.0f} | {100 * b / total3:.0f} % |")
    print(f"| total | {total1:.0f} | | {total3:.0f} | ratio {total3 / total1:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
