"""benchmarks/loop_profile.py: per-step counts from the profiler's events (fabricated events)."""

import sys
from dataclasses import dataclass, field

import pytest
import torch

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
loop_profile = pytest.importorskip("loop_profile")


@dataclass
class Span:
    start: float
    end: float


@dataclass
class Event:
    name: str
    start: float
    end: float
    self_cpu_time_total: float = 0.0
    device_type: torch.autograd.DeviceType = torch.autograd.DeviceType.CPU
    time_range: Span = field(init=False)

    def __post_init__(self) -> None:
        self.time_range = Span(self.start, self.end)


def loop(name: str, start: float, steps: int, launches: int, ops: int, nested: bool) -> list[Event]:
    """A loop of ``steps`` steps of 10 µs each: its range, optimiser ranges, kernels and ATen ops."""
    events = [Event(name, start, start + 10 * steps + 1)]
    for i in range(steps):
        t = start + 10 * i
        events.append(Event("Optimizer.step#Adam.step", t, t + 9))
        if nested:  # the same step recorded a second time inside the first
            events.append(Event("Optimizer.step#Adam.step", t + 1, t + 8))
        events += [Event("cudaLaunchKernel", t + 2, t + 3, 1.0) for _ in range(launches)]
        events += [Event("aten::add", t + 3, t + 4, 2.0) for _ in range(ops)]
    return events


def test_each_step_is_counted_once_and_warm_up_left_out() -> None:
    events = loop("lightning", 0, steps=6, launches=5, ops=3, nested=True)
    events += loop("hand", 1000, steps=6, launches=4, ops=2, nested=False)
    sections = loop_profile.per_section(events, warmup=2)
    # Steady part: from the end of the 2nd step to the end of the 6th — four steps in each loop.
    assert sections["lightning"]["wall"] == (4, 10.0) and sections["hand"]["wall"] == (4, 10.0)
    assert sections["lightning"]["cudaLaunchKernel"] == (5.0, 5.0)
    assert sections["lightning"]["aten::add"] == (3.0, 6.0)
    assert sections["hand"]["aten::add"] == (2.0, 4.0)
