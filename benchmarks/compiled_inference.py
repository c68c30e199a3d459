"""Inference images/s of the paper network (one head) per precision, memory layout and compilation.

`make bench` reports fp32 / bf16 / compiled at the default layout; this adds what batch-1 latency
on a GPU depends on: channels_last memory and CUDA graphs (``reduce-overhead``), with bf16. Every
line is printed as soon as it is measured (compilation can take a minute), so a run stopped early
still reports what it had.

    python benchmarks/compiled_inference.py --device cuda          # 224x320, batches 1 and 32
"""

from __future__ import annotations

import argparse
import sys
import warnings

import torch
from run_benchmarks import _net
from timing_utils import Budget, median_seconds

from lifelong_monodepth.models.compile import compile_unavailable_reason, compiled_predictor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="resnet34")
    parser.add_argument("--size", type=int, nargs=2, default=[224, 320], help="H W")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    budget = Budget.for_device(device, args.quick)
    skip = "--no-compile given" if args.no_compile else compile_unavailable_reason(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    size = f"{args.size[0]}x{args.size[1]}"
    print(f"# {args.backbone} + fusion + one head, {size}, torch {torch.__version__}, {name}")
    print("| batch | variant | images/s | ms per batch |\n|---|---|---|---|", flush=True)
    for batch in args.batches:
        for channels_last in (False, True):
            net = _net(args.backbone, 1, device)
            images = torch.rand(batch, 3, *args.size, device=device)
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
                images = images.contiguous(memory_format=torch.channels_last)
            layout = "channels_last" if channels_last else "contiguous"
            variants = [("fp32", False, False), ("bf16", True, False)]
            if skip is None and channels_last:
                variants += [("fp32 compiled", False, True), ("bf16 compiled", True, True)]
            for label, bf16, compiled in variants:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    predictor = compiled_predictor(net, "A") if compiled else None

                def forward(bf16: bool = bf16, predictor=predictor) -> None:
                    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
                    with torch.no_grad(), autocast:
                        predictor(images) if predictor is not None else net(images, domains=["A"])  # noqa: B023

                seconds = median_seconds(forward, device, budget)
                mode = " (reduce-overhead)" if compiled and device.type == "cuda" else ""
                row = f"| {batch} | {label}, {layout}{mode} | {batch / seconds:.0f} | {1000 * seconds:.2f} |"
                print(row, flush=True)
    if skip is not None:
        print(f"compiled: skipped ({skip})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
