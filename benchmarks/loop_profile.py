"""Where the Lightning loop's extra time goes, against the hand-written loop (``make bench`` (a)).

``python benchmarks/loop_profile.py [--device cuda] [--steps 30] [--top 25]``

Runs the very loops of ``make bench`` (a) (one stage with replay and distillation, run.py's
Trainer against a bare PyTorch loop of the same model, batches and losses) under
``torch.profiler`` and prints, per training step of each loop: kernel launches, operator calls
and host (CPU) time, then the operators whose calls or host time per step differ most between
the loops. On a GPU, where the step is launch-bound, the difference in launches and host time
per step *is* the framework's overhead; this says which calls make it up.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

import lifelong_monodepth  # noqa: E402,F401  (torchvision workaround before torch-heavy imports)

LAUNCHES = ("cudaLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernel", "cuLaunchKernelEx")
SECTIONS = ("lightning", "hand")


def steady_windows(events: Any, warmup: int) -> dict[str, tuple[Any, int]]:
    """Each loop's steady part: from the end of its ``warmup``-th optimiser step to the end of its last.

    Both loops call the optimiser once a step (the profiler's ``Optimizer.step#…`` range), which
    marks step ends without touching either loop. Returns (window, steps in it) per loop.
    """
    ranges = {e.name: e.time_range for e in events if e.name in SECTIONS}
    windows = {}
    for name, span in ranges.items():
        steps = [
            e.time_range
            for e in events
            if e.name.startswith("Optimizer.step#") and span.start <= e.time_range.start <= span.end
        ]
        # The optimiser's step may be recorded twice, one range inside the other: outermost only.
        ends = sorted(
            r.end
            for r in steps
            if not any(o is not r and o.start <= r.start and r.end <= o.end for o in steps)
        )
        if len(ends) > warmup:
            windows[name] = ((ends[warmup - 1], ends[-1]), len(ends) - warmup)
    return windows


def per_section(events: Any, warmup: int) -> dict[str, dict[str, tuple[float, float]]]:
    """For each loop: operator name → (calls per step, self host µs per step) in its steady part.

    The entry ``"wall"`` holds (steps, wall µs per step) of that part.
    """
    windows = steady_windows(events, warmup)
    table: dict[str, dict[str, list[float]]] = {name: defaultdict(lambda: [0.0, 0.0]) for name in windows}
    for event in events:
        if event.device_type != torch.autograd.DeviceType.CPU:
            continue
        for name, ((start, end), _) in windows.items():
            if start <= event.time_range.start and event.time_range.end <= end:
                row = table[name][event.name]
                row[0] += 1
                row[1] += event.self_cpu_time_total
    result = {
        name: {
            op: (calls / windows[name][1], micros / windows[name][1]) for op, (calls, micros) in rows.items()
        }
        for name, rows in table.items()
    }
    for name, ((start, end), steps) in windows.items():
        result[name]["wall"] = (steps, (end - start) / steps)
    return result


def report(sections: dict[str, dict[str, tuple[float, float]]], top: int) -> None:
    print(
        "| loop | steps | wall ms / step | kernel launches / step | aten calls / step | aten host ms / step |"
    )
    print("|---|---|---|---|---|---|")
    for name in SECTIONS:
        rows = sections.get(name, {})
        steps, wall = rows.get("wall", (0, 0.0))
        launches = sum(calls for op, (calls, _) in rows.items() if op in LAUNCHES)
        aten = [value for op, value in rows.items() if op.startswith("aten::")]
        calls, host = sum(c for c, _ in aten), sum(us for _, us in aten) / 1000
        print(f"| {name} | {steps:.0f} | {wall / 1000:.1f} | {launches:.0f} | {calls:.0f} | {host:.1f} |")
    light, hand = sections.get("lightning", {}), sections.get("hand", {})
    diff = {
        op: (
            light.get(op, (0, 0))[0] - hand.get(op, (0, 0))[0],
            light.get(op, (0, 0))[1] - hand.get(op, (0, 0))[1],
        )
        for op in set(light) | set(hand)
        if op != "wall"
        and not op.startswith("Optimizer.")  # the optimiser range wraps Lightning's whole step
    }
    print(f"\nOperators with the most extra host time per step in the Lightning loop (top {top}):")
    print("| operator | extra calls / step | extra host µs / step | Lightning calls / step |")
    print("|---|---|---|---|")
    for op, (calls, micros) in sorted(diff.items(), key=lambda item: -item[1][1])[:top]:
        print(f"| {op} | {calls:+.1f} | {micros:+.0f} | {light.get(op, (0, 0))[0]:.1f} |")


def main(argv: list[str] | None = None) -> int:
    from timing_utils import Budget
    from training_bench import lightning_vs_hand

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--train-size", type=int, nargs=2, default=[96, 128])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--replay-batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30, help="steps of each loop (the first 5 warm up)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--override", action="append", default=[], help="extra run.py override")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    budget = Budget(warmup=5, repeats=max(args.steps - 6, 1))
    steps = budget.warmup + budget.repeats + 1
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])

    @contextlib.contextmanager
    def section(name: str) -> Iterator[None]:
        with record_function(name):
            yield

    with tempfile.TemporaryDirectory() as tmp, profile(activities=activities) as prof:
        figures = lightning_vs_hand(Path(tmp), args, device, budget, section)
    print(f"# {torch.__version__}, {device}; {steps} steps a loop (profiled: slower than make bench)")
    light, hand = 1000 * figures["lightning_step_s"], 1000 * figures["hand_step_s"]
    print(
        f"Lightning {light:.1f} ms / step, hand {hand:.1f} ms: "
        f"lightning_over_hand = {figures['lightning_over_hand']:.3f}"
    )
    print("(the table: the steady steps, under the profiler)\n")
    report(per_section(prof.events(), budget.warmup), args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
