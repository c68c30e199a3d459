"""`make bench` writes every figure (tiny sizes: a smoke run of the whole benchmark, no timings checked)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

KEYS = {
    "device",
    "torch",
    "date",
    "mode",
    "training",
    "lightning_over_hand",
    "stage3_over_stage1",
    "inference",
    "selection_overhead_fraction",
    "compile_skipped",
    "peak_memory_mib",
    "peak_gpu_memory_mib",
}
TRAINING = {
    "lightning_samples_per_s",
    "hand_samples_per_s",
    "lightning_over_hand",
    "stage1_step_s",
    "stage3_step_s",
    "stage3_over_stage1",
    "stage3_images_ratio",
    "stage3_over_stage1_cpu_time",
}
PER_CASE = {"fp32_one_head", "fp32_all_heads", "bf16_one_head", "bf16_all_heads", "compiled_one_head"}


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    """``benchmarks/<name> args…`` in a fresh one-thread process on this checkout's package."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_quick_bench_writes_every_key(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = run_script("run_benchmarks.py", "--quick", "--tiny", "--device", "cpu", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures) >= KEYS and set(figures["training"]) >= TRAINING
    assert figures["lightning_over_hand"] > 0 and figures["stage3_over_stage1"] > 0
    assert figures["training"]["stage3_images_ratio"] == 2.0  # batch 2 + two replay batches of 1
    assert set(figures["inference"]) == {f"domains_{d}_batch_{b}" for d in (1, 10) for b in (1, 4)}
    for case in figures["inference"].values():
        assert set(case) == PER_CASE and all(case[k] > 0 for k in PER_CASE - {"compiled_one_head"})
    assert (
        figures["compile_skipped"] == "--no-compile given" and 0 < figures["selection_overhead_fraction"] < 10
    )
    assert "lightning_over_hand" in proc.stdout and "stage3_over_stage1" in proc.stdout


def test_first_call_script_prints_a_row_per_precision_layout_and_shape() -> None:
    """benchmarks/first_call.py (the GPU check's first-step-per-shape table) runs on CPU too."""
    shapes = ["2x3x32x32", "2x3x32x64"]
    proc = run_script("first_call.py", "--device", "cpu", "--shapes", *shapes, "--repeats", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith(("| fp32", "| bf16"))]
    assert len(rows) == 2 * 2 * 2
    assert {row.split("|")[2].strip() for row in rows} == {"contiguous", "channels_last"}
