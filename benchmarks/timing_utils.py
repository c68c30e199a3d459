"""Timing that means something on CPU and GPU: warm-up, synchronised clocks, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Budget:
    """How long to warm up and how many timed repeats: more on CUDA (kernel selection, caches)."""

    warmup: int
    repeats: int

    @classmethod
    def for_device(cls, device: torch.device, quick: bool) -> Budget:
        if device.type == "cuda":
            return cls(warmup=10 if quick else 25, repeats=20 if quick else 50)
        return cls(warmup=1 if quick else 3, repeats=3 if quick else 7)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, budget: Budget) -> float:
    """Median wall time of ``fn`` after ``budget.warmup`` untimed calls; CUDA work is waited for."""
    for _ in range(budget.warmup):
        fn()
    synchronize(device)
    samples = []
    for _ in range(budget.repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def interleaved_seconds(
    fns: dict[str, Callable[[], object]],
    device: torch.device,
    budget: Budget,
    cpu_times: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Wall times of each of ``fns``, called in turn (one round = each once) after warm-up rounds.

    Alternating keeps a change of load on a shared machine from landing on one side of a ratio only:
    the i-th times of every function were measured next to each other. ``cpu_times``, if given,
    receives the process CPU time of each call too: on a shared CPU it counts the work done, not
    the time spent waiting for a core.
    """
    for _ in range(budget.warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(budget.repeats):
        for name, fn in fns.items():
            start, cpu = time.perf_counter(), time.process_time()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
            if cpu_times is not None:
                cpu_times.setdefault(name, []).append(time.process_time() - cpu)
    return times


def median_interval(stamps: list[float], skip: int) -> float:
    """Median gap between consecutive time stamps, ignoring the first ``skip`` (warm-up) gaps."""
    from lifelong_monodepth.training.timing import median_gap

    median = median_gap(stamps, skip)
    if median is None:
        raise ValueError("not enough timed steps: raise --steps")
    return median
