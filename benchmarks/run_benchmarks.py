"""Speed and memory figures: `make bench` (prints figures and ratios; never asserted in tests).

(a) Training samples/s of the Lightning loop (run.py's Trainer, one stage with replay and
    distillation) against a minimal hand-written loop of the same model, losses and batches:
    ``lightning_over_hand`` is the framework's overhead (1.0 = none).
(b) Stage-3 / stage-1 training step cost (``stage3_over_stage1``) against the ratio of images.
(c) Inference images/s at batch 1 and 32 at the paper's input size (224×320, ResNet-34 + fusion +
    heads at the paper's width), for 1 and 10 learned domains, running the selected head or all
    heads, in fp32 / bf16 autocast / compiled.
(d) Domain selection overhead as a fraction of the forward pass.
(e) Peak memory (process RSS; CUDA allocator peak on a GPU).

Warm-up and repeats grow on CUDA; every figure is a median. ``--json PATH`` writes all figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LMD_ROOT", str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402
from timing_utils import Budget, median_seconds  # noqa: E402

import lifelong_monodepth  # noqa: E402,F401  (torchvision workaround before torch-heavy imports)

PAPER_NET = {
    "fusion": {"kernel_size": 5, "out_channels": 64},
    "head": {"hidden_channels": 64, "kernel_size": 5},
}


def _net(backbone: str, domains: int, device: torch.device):
    from lifelong_monodepth.models.encoder import Encoder
    from lifelong_monodepth.models.network import MultiDomainDepthNet

    net = MultiDomainDepthNet(Encoder(backbone, pretrained=False), PAPER_NET["fusion"], PAPER_NET["head"])
    for i in range(domains):
        net.add_domain(chr(ord("A") + i), 0.1, 10.0 * (i + 1))
    return net.to(device).eval()


def inference(args: Any, device: torch.device, budget: Budget) -> tuple[dict[str, Any], float, str | None]:
    """Images/s per (domains, batch, heads, precision); the selection overhead; why compile was skipped."""
    from lifelong_monodepth.models.compile import compile_unavailable_reason, compiled_predictor
    from lifelong_monodepth.models.selection import (
        DomainSelector,
        SelectorOptions,
        describe,
        fit_state_from_descriptors,
    )

    size = tuple(args.infer_size)
    skip_compile = "--no-compile given" if args.no_compile else compile_unavailable_reason(device)
    figures: dict[str, Any] = {}
    overhead = float("nan")
    for domains in (1, 10):
        net = _net(args.infer_backbone, domains, device)
        for batch in args.infer_batches:
            images = torch.rand(batch, 3, *size, device=device)
            entry: dict[str, float | None] = {}
            with torch.no_grad():
                for precision in ("fp32", "bf16"):
                    bf16 = precision == "bf16"
                    for heads in ("one_head", "all_heads"):
                        letters = ["A"] if heads == "one_head" else None

                        def forward(letters: list[str] | None = letters, bf16: bool = bf16) -> None:
                            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                                net(images, domains=letters)  # noqa: B023 (called at once)

                        entry[f"{precision}_{heads}"] = batch / median_seconds(forward, device, budget)
                if skip_compile is None and domains == 1:  # one head: the same graph at 10 domains
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        predictor = compiled_predictor(net, "A")
                    entry["compiled_one_head"] = batch / median_seconds(
                        lambda p=predictor, x=images: p(x), device, budget
                    )
                else:
                    entry["compiled_one_head"] = None
            figures[f"domains_{domains}_batch_{batch}"] = entry
        if domains == 10:  # the default selector (configs/selector/mahalanobis.yaml, 10 domains) vs forward
            from omegaconf import OmegaConf

            default = OmegaConf.to_container(
                OmegaConf.load(ROOT / "configs" / "selector" / "mahalanobis.yaml")
            )
            options = SelectorOptions.from_config(default)
            names = list(dict.fromkeys([*options.levels, *(options.unknown_levels or [])]))
            with torch.no_grad():
                images = torch.rand(args.infer_batches[0], 3, *size, device=device)
                fused, encoded = net.encode_levels(images)  # the forward pass computes the levels anyway
                per_level = {
                    name: describe(fused, "stats", levels=[name], encoder_levels=encoded).cpu()
                    for name in names
                }
                noisy = {
                    letter: {name: x + 0.1 * torch.randn_like(x) for name, x in per_level.items()}
                    for letter in net.domains
                }
                state = fit_state_from_descriptors(noisy, noisy, options)
                selector = DomainSelector("mahalanobis", state)
                select = median_seconds(lambda: selector.route(net, fused, encoded), device, budget)  # noqa: B023 (called at once)
                forward = median_seconds(lambda: net(images, domains=["A"]), device, budget)  # noqa: B023 (called at once)
            overhead = select / forward
    return figures, overhead, skip_compile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats and smaller inputs (< 3 min, 2 cores)"
    )
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, no compilation: a smoke run (tests)")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="tf_efficientnet_lite0", help="training benchmarks")
    parser.add_argument("--train-size", type=int, nargs=2, default=None, help="H W (default 96 128)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--replay-batch", type=int, default=4)
    parser.add_argument("--infer-backbone", default="resnet34", help="the paper's encoder")
    parser.add_argument("--infer-size", type=int, nargs=2, default=None, help="H W (default 224 320)")
    parser.add_argument("--infer-batches", type=int, nargs=2, default=None, help="default 1 32")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="extra run.py override for the Lightning loop (repeatable), e.g. trainer.benchmark=false",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.tiny:
        args.quick, args.no_compile = True, True
        args.batch, args.replay_batch = min(args.batch, 2), min(args.replay_batch, 1)
        args.train_size = args.train_size or [32, 64]
        args.infer_size = args.infer_size or [32, 64]
        args.infer_batches = args.infer_batches or [1, 4]
    elif args.quick and device.type == "cpu":
        args.infer_size = args.infer_size or [96, 128]
        args.infer_batches = args.infer_batches or [1, 8]
        args.infer_backbone = (
            "tf_efficientnet_lite0" if args.infer_backbone == "resnet34" else args.infer_backbone
        )
    args.train_size = args.train_size or [96, 128]
    args.infer_size = args.infer_size or [224, 320]
    args.infer_batches = args.infer_batches or [1, 32]
    budget = Budget.for_device(device, args.quick)
    if device.type == "cpu":
        torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"# lifelong-monodepth benchmarks — torch {torch.__version__}, {where}")
    print(f"warm-up {budget.warmup}, median of {budget.repeats}")

    from training_bench import lightning_vs_hand, stage_ratio

    results: dict[str, Any] = {
        "device": where,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": "tiny" if args.tiny else "quick" if args.quick else "full",
        "settings": {k: v for k, v in vars(args).items() if k != "json" and not isinstance(v, Path)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["training"] = lightning_vs_hand(Path(tmp), args, device, budget)
    results["training"].update(stage_ratio(args, device, budget))
    results["lightning_over_hand"] = results["training"]["lightning_over_hand"]
    results["stage3_over_stage1"] = results["training"]["stage3_over_stage1"]
    results["inference"], overhead, skipped = inference(args, device, budget)
    results["selection_overhead_fraction"] = overhead
    results["compile_skipped"] = skipped
    results["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results["peak_gpu_memory_mib"] = (
        torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    )
    report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def report(r: dict[str, Any]) -> None:
    t = r["training"]
    print("\n## (a) Training loop, one stage with replay + distillation")
    print(
        f"Lightning {t['lightning_samples_per_s']:.1f} samples/s, hand loop {t['hand_samples_per_s']:.1f}: "
        f"lightning_over_hand = {r['lightning_over_hand']:.3f} (target ≥ 0.9)"
    )
    print("\n## (b) Step cost, stage 3 / stage 1")
    print(
        f"stage 1 {t['stage1_step_s']:.3f} s, stage 3 {t['stage3_step_s']:.3f} s: stage3_over_stage1 = "
        f"{r['stage3_over_stage1']:.2f} (images with gradients ×{t['stage3_images_ratio']:.1f}, "
        "plus the teacher)"
    )
    if "stage3_over_stage1_cpu_time" in t:
        print(
            f"in process CPU time (insensitive to other jobs' load): {t['stage3_over_stage1_cpu_time']:.2f}"
        )
    print("\n## (c) Inference images/s")
    print(
        "| domains, batch | fp32 one head | fp32 all heads | bf16 one head | bf16 all heads "
        "| compiled one head |"
    )
    print("|---|---|---|---|---|---|")
    for key, e in r["inference"].items():
        cells = [
            e[k]
            for k in (
                "fp32_one_head",
                "fp32_all_heads",
                "bf16_one_head",
                "bf16_all_heads",
                "compiled_one_head",
            )
        ]
        print(f"| {key} | " + " | ".join("—" if c is None else f"{c:.1f}" for c in cells) + " |")
    if r["compile_skipped"]:
        print(f"compiled: skipped ({r['compile_skipped']})")
    print(
        f"\n## (d) Selection overhead: {100 * r['selection_overhead_fraction']:.1f} % "
        "of a one-head forward pass"
    )
    gpu = r["peak_gpu_memory_mib"]
    print(
        f"## (e) Peak memory: {r['peak_memory_mib']:.0f} MiB resident"
        + (f", {gpu:.0f} MiB GPU" if gpu else "")
    )


if __name__ == "__main__":
    sys.exit(main())
