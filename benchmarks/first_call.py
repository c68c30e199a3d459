"""What the first training step at a new input shape costs, per precision and memory layout.

On an H200 every stage of ``run.py trainer=gpu`` left the GPU idle for 13–16 s at its start
(docs/benchmarks.md, "GPU figures after the fixes"), with cuDNN autotuning already off. Every stage
brings new input shapes (each domain's crop, a smaller last batch, evaluation batches), so a slow
first call per shape — cuDNN picking or runtime-compiling an engine for a bf16 / channels_last
convolution — would explain it. This script times a training step (forward, backward) of the
default network at the synthetic benchmark's shapes: the first call, then the median of the next.

    python benchmarks/first_call.py                 # on the GPU if there is one
    python benchmarks/first_call.py --device cpu --shapes 2x3x32x64
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from lifelong_monodepth.models.encoder import Encoder
from lifelong_monodepth.models.network import MultiDomainDepthNet

# The shipped network's fusion block and heads, read from the config so the figures follow it.
DEFAULT_NET = OmegaConf.load(Path(__file__).resolve().parents[1] / "configs" / "model" / "default.yaml").net


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_seconds(net: MultiDomainDepthNet, images: torch.Tensor, bf16: bool) -> float:
    """One forward + backward of the one head, synchronised: seconds."""
    device = images.device
    _sync(device)
    start = time.perf_counter()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = net(images, domains=["A"])
        loss = out.depth["A"].float().mean() + out.log_var["A"].float().mean()
    loss.backward()
    _sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument(
        "--shapes",
        nargs="+",
        default=["8x3x120x160", "8x3x96x320", "4x3x120x160", "4x3x96x320"],
        help="BxCxHxW, in the order a run meets them",
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = False  # the GPU preset's setting
    torch.ones(1, device=device).sum().item()  # context start-up is not a first call
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {where}")
    print("| precision | layout | shape | first step ms | median step ms | first / median |")
    print("|---|---|---|---|---|---|")
    for precision in ("fp32", "bf16"):
        for layout in ("contiguous", "channels_last"):
            memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            fusion, head = (OmegaConf.to_container(DEFAULT_NET[part]) for part in ("fusion", "head"))
            net = MultiDomainDepthNet(Encoder(args.backbone, pretrained=False), fusion, head)
            net.add_domain("A", 0.1, 10.0)
            net = net.to(device=device, memory_format=memory_format).train()
            for shape in args.shapes:
                size = [int(x) for x in shape.split("x")]
                images = torch.rand(*size, device=device).contiguous(memory_format=memory_format)
                first = step_seconds(net, images, precision == "bf16")
                rest = [step_seconds(net, images, precision == "bf16") for _ in range(args.repeats)]
                median = statistics.median(rest)
                print(
                    f"| {precision} | {layout} | {shape} | {1000 * first:.1f} | {1000 * median:.1f} "
                    f"| {first / median:.1f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
