"""Speed and memory figures: `make bench` (prints figures and ratios; never asserted in tests).

1. Inference with one selected head vs. running every head, for 1–6 learned domains: the
   point of running only the needed head is that cost does not grow with the number of domains.
   Selection overhead: each selector's routing cost relative to encoder + one head.
2. One training step of stage 1 / 2 / 3 (current loss; + replay; + distillation).
3. Data loading throughput of the native-format loaders.
4. Peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LMD_ROOT", str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import lifelong_monodepth  # noqa: E402,F401  (torchvision workaround before torch-heavy imports)
from lifelong_monodepth.models.encoder import Encoder  # noqa: E402
from lifelong_monodepth.models.network import MultiDomainDepthNet  # noqa: E402
from lifelong_monodepth.training.losses import distillation_loss, uncertainty_depth_loss  # noqa: E402

DEVICE = torch.device("cpu")


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()  # CUDA kernels run asynchronously: wait for them before reading the clock
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def build(backbone: str, domains: int) -> MultiDomainDepthNet:
    net = MultiDomainDepthNet(Encoder(backbone, pretrained=False))
    for i in range(domains):
        net.add_domain("NKSABC"[i], 0.1, 10.0 * (i + 1))
    return net.to(DEVICE)


def bench_inference(backbone: str, size: tuple[int, int], batch: int, repeats: int) -> None:
    print(f"\n## Inference, {backbone}, batch {batch} at {size[0]}×{size[1]} (median of {repeats})")
    print("| domains | one head (s) | all heads (s) | all / one |")
    print("|---|---|---|---|")
    images = torch.rand(batch, 3, *size, device=DEVICE)
    base = None
    for n in (1, 2, 3, 6):
        net = build(backbone, n).eval()
        with torch.no_grad():
            one = timed(lambda net=net: net(images, domains=["N"]), repeats)
            every = timed(lambda net=net: net(images), repeats)
        base = base or one
        print(f"| {n} | {one:.3f} | {every:.3f} | {every / one:.2f} |")
    print(f"one-head cost with 6 domains / with 1 domain: {one / base:.2f} (≈1 means it does not grow)")


def bench_selection(backbone: str, size: tuple[int, int], batch: int, repeats: int) -> None:
    """What routing adds to inference: each selector's ``route`` against encoder + one head."""
    from lifelong_monodepth.models.selection import SELECTORS, DomainSelector, describe, fit_selector_state

    print(f"\n## Selection overhead, {backbone}, batch {batch} at {size[0]}×{size[1]}, 3 domains")
    print("| selector | route (ms) | route / (encoder + one head) |")
    print("|---|---|---|")
    net = build(backbone, 3).eval()
    images = torch.rand(batch, 3, *size, device=DEVICE)
    with torch.no_grad():
        fused = net.encode(images)
        forward = timed(lambda: net.run_heads(net.encode(images), ["N"]), repeats)
        for name in SELECTORS:
            descriptor = "grid" if name == "prototype" else "stats"
            state = fit_selector_state(
                {d: describe(fused, descriptor).cpu() + i for i, d in enumerate("NKS")},
                descriptor=descriptor,
                calibration={d: describe(fused, descriptor).cpu() for d in "NKS"},
            )
            selector = DomainSelector(name, state)
            cost = timed(lambda selector=selector: selector.route(net, fused), repeats)
            print(f"| {name} | {cost * 1000:.2f} | {cost / forward:.1%} |")


def bench_training(backbone: str, size: tuple[int, int], batch: int, repeats: int) -> None:
    print(f"\n## Training step, {backbone}, batch {batch} at {size[0]}×{size[1]} (median of {repeats})")
    print("| stage | terms | step (s) | ratio to stage 1 |")
    print("|---|---|---|---|")
    net = build(backbone, 3).train()
    teacher = build(backbone, 3).eval()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    images = torch.rand(batch, 3, *size, device=DEVICE)
    replay = torch.rand(max(batch // 2, 1), 3, *size, device=DEVICE)
    target = torch.rand(batch, 1, *size, device=DEVICE) * 9 + 0.5
    replay_target = target[: len(replay)]

    def step(old: list[str]) -> None:
        optimizer.zero_grad()
        out = net(images, domains=["S"])
        loss = uncertainty_depth_loss(out.depth["S"], out.log_var["S"], target, target > 0)
        if old:
            with torch.no_grad():
                t = teacher(images, domains=old)
            student = net.run_heads(out.fused, old)
            for letter in old:
                r = net(replay, domains=[letter])
                loss = loss + uncertainty_depth_loss(
                    r.depth[letter], r.log_var[letter], replay_target, replay_target > 0
                )
                loss = loss + distillation_loss(
                    student.depth[letter], student.log_var[letter], t.depth[letter], t.log_var[letter]
                )
        loss.backward()
        optimizer.step()

    first = None
    for stage, old, terms in (
        (1, [], "depth"),
        (2, ["N"], "+1 replay +1 distill"),
        (3, ["N", "K"], "+2 replay +2 distill"),
    ):
        seconds = timed(lambda old=old: step(old), repeats, warmup=1)
        first = first or seconds
        print(f"| {stage} | {terms} | {seconds:.3f} | {seconds / first:.2f} |")


def bench_loading(repeats: int) -> None:
    import tempfile

    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_domain
    from lifelong_monodepth.data.dataset import DepthDataset

    with tempfile.TemporaryDirectory() as tmp:
        domain = make_domain(Path(tmp), "K", size=(96, 320), count=32, depth_scale=256.0, max_depth=80.0)
        dataset = DepthDataset(domain, "train", train=True)
        seconds = timed(lambda: [dataset[i] for i in range(len(dataset))], repeats, warmup=1)
        print(
            f"\n## Data loading: {len(dataset) / seconds:.0f} samples/s (96×320 16-bit PNG + RGB, augmented)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    where = (
        torch.cuda.get_device_name(DEVICE)
        if DEVICE.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"# lifelong-monodepth benchmarks — torch {torch.__version__}, {where}")
    bench_inference(args.backbone, tuple(args.size), args.batch, args.repeats)
    bench_selection(args.backbone, tuple(args.size), args.batch, args.repeats)
    bench_training(args.backbone, tuple(args.size), args.batch, args.repeats)
    bench_loading(args.repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n## Peak resident memory: {peak:.0f} MiB")
    if DEVICE.type == "cuda":
        print(f"## Peak GPU memory: {torch.cuda.max_memory_allocated(DEVICE) / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
