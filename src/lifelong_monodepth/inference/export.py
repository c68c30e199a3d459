"""Export encoder + fusion + heads to ONNX or TorchScript, then verify the file against PyTorch.

``python -m lifelong_monodepth.export ckpt=NKS.ckpt format=onnx|torchscript [domain=<letter>|all]``

- ``domain=K``: one graph with K's head, ``images → depth, log_var``.
- ``domain=all`` (default): one graph with every head and a second input ``domain_index`` (int64,
  one per image, the position in ``model.json``'s ``domains``); it runs every head and keeps the
  chosen one (choose heads outside the graph with a selector, or export one graph per domain).

Inputs are RGB in [0, 1], ``(batch, 3, height, width)`` with height and width multiples of 32
(normalisation happens inside the graph); outputs are depth in metres and log-variance at the
input resolution. ONNX graphs have dynamic batch and spatial size when the exporter manages
(checked at another size); a traced TorchScript module follows the input size if its operations
allow (checked, and said). The export is verified on random and, with ``images=``, real inputs:
the maximum absolute and relative differences are printed and above ``rtol`` it is an error.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lifelong_monodepth.data.errors import ConfigError, DataError, LifelongDepthError
from lifelong_monodepth.inference.inputs import read_image, resolve_inputs
from lifelong_monodepth.inference.loading import LoadedModel, load_model
from lifelong_monodepth.inference.options import option, run_cli
from lifelong_monodepth.inference.predictor import nearest_aspect, resize_image

log = logging.getLogger(__name__)
PROG = "lifelong_monodepth.export"
FORMATS = ("onnx", "torchscript")
OUTPUTS = ("depth", "log_var")


@dataclass
class ExportOptions:
    ckpt: str | None = option(None, "stage checkpoint (e.g. outputs/runs/.../checkpoints/NKS.ckpt)", True)
    format: str = option("onnx", "onnx or torchscript")
    domain: str = option("all", "all (one graph, domain_index input) or a domain letter (that head only)")
    output: str | None = option(None, "output folder (default: <ckpt folder>/export)")
    images: str | None = option(None, "real images to verify on: an image, a folder or a glob")
    batch_size: int = option(2, "batch of the random verification inputs")
    rtol: float = option(1e-4, "largest accepted max|exported - torch| / max|torch|")
    opset: int = option(18, "ONNX opset")
    dynamic: bool = option(True, "dynamic batch and spatial size (falls back to fixed if the exporter fails)")


class ExportedDepthNet(nn.Module):
    """``images (B,3,H,W) in [0,1] [, domain_index (B,)] → depth, log_var`` at the input resolution."""

    def __init__(self, net: nn.Module, letters: list[str]) -> None:
        super().__init__()
        self.net = net
        self.letters = list(letters)

    def forward(self, images: Tensor, domain_index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if getattr(self.net, "domain_bn", False):  # each head reads the map fused under its own BatchNorm set
            out = self.net(images, self.letters)
            outputs = [(out.depth[letter], out.log_var[letter]) for letter in self.letters]
        else:
            fused = self.net.encode(images)
            outputs = [self.net.heads[letter](fused) for letter in self.letters]
        if len(outputs) == 1:
            depth, log_var = outputs[0]
        else:
            depth = _pick(torch.stack([d for d, _ in outputs], 1), domain_index)
            log_var = _pick(torch.stack([u for _, u in outputs], 1), domain_index)
        size = images.shape[-2:]
        depth = F.interpolate(depth, size=size, mode="bilinear", align_corners=False)
        log_var = F.interpolate(log_var, size=size, mode="bilinear", align_corners=False)
        return depth, log_var


def _pick(stacked: Tensor, index: Tensor) -> Tensor:
    """``(B, D, 1, h, w)`` and ``(B,)`` domain indices → ``(B, 1, h, w)``."""
    gather = index.view(-1, 1, 1, 1, 1).expand(-1, 1, *stacked.shape[2:])
    return torch.gather(stacked, 1, gather)[:, 0]


def verification_inputs(
    model: LoadedModel, letters: list[str], batch_size: int, images: str | None, seed: int = 0
) -> list[tuple[str, tuple[Tensor, ...]]]:
    """Named input tuples: random batches at each domain's size (and one other size), then real images."""
    generator = torch.Generator().manual_seed(seed)
    sizes = list(dict.fromkeys(tuple(model.domains[letter].input_size) for letter in letters))
    other = (sizes[0][0] + 32, sizes[0][1] + 64)
    cases = []
    for size in [*sizes, other]:
        x = torch.rand(batch_size, 3, *size, generator=generator)
        index = torch.randint(len(letters), (batch_size,), generator=generator)
        cases.append((f"random {batch_size}×3×{size[0]}×{size[1]}", (x, index)))
    if images:
        files = resolve_inputs(images).files
        for path in files:
            try:
                image = read_image(path)
            except DataError as err:
                log.warning("Verification image skipped: %s", err)
                continue
            letter = nearest_aspect(image, {k: model.domains[k].input_size for k in letters})
            size = model.domains[letter].input_size
            x = torch.from_numpy(resize_image(image, size).transpose(2, 0, 1).copy())[None]
            index = torch.tensor([letters.index(letter)])
            cases.append((f"image {path.name} ({letter})", (x, index)))
    return cases


def export_onnx(
    module: ExportedDepthNet, example: tuple[Tensor, ...], path: Path, opset: int, dynamic: bool
) -> bool:
    """``torch.onnx.export`` (the dynamo exporter); returns whether the graph has dynamic shapes."""
    names = ["images"] + (["domain_index"] if len(example) > 1 else [])
    dims = None
    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=1024)
        height = 32 * torch.export.Dim("height_32", min=1, max=256)
        width = 32 * torch.export.Dim("width_32", min=1, max=256)
        dims = {"images": {0: batch, 2: height, 3: width}}
        if len(example) > 1:
            dims["domain_index"] = {0: batch}
    for attempt_dynamic in [True, False] if dynamic else [False]:
        try:
            torch.onnx.export(
                module,
                _at_least_two(example) if attempt_dynamic else example,
                str(path),
                input_names=names,
                output_names=list(OUTPUTS),
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=dims if attempt_dynamic else None,
                external_data=False,
                verbose=False,
            )
            return attempt_dynamic
        except Exception as err:
            if not attempt_dynamic:
                raise LifelongDepthError(f"ONNX export failed: {type(err).__name__}: {err}") from err
            log.warning(
                "Dynamic-shape ONNX export failed (%s); exporting at a fixed size.", type(err).__name__
            )
    return False


def _at_least_two(example: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """An example with batch ≥ 2 and height, width ≥ 64: the exporter specialises dimensions of size 1."""
    batch, _, height, width = example[0].shape
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(max(batch, 2), 3, max(height, 64), max(width, 64), generator=generator)
    if len(example) == 1:
        return (images,)
    return images, torch.arange(len(images)) % int(example[1].max().item() + 1)


def export_torchscript(module: ExportedDepthNet, example: tuple[Tensor, ...], path: Path) -> None:
    with torch.no_grad():
        traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(str(path))


class _Runner:
    """Runs the exported file the way a user would: onnxruntime on CPU, or ``torch.jit.load``."""

    def __init__(self, path: Path, fmt: str, names: list[str]) -> None:
        self.fmt, self.names = fmt, names
        if fmt == "onnx":
            try:
                import onnxruntime as ort
            except ImportError as err:
                raise ConfigError(
                    "Exporting to ONNX and verifying the graph need the optional extra: "
                    "pip install -e '.[export]' (onnx, onnxscript, onnxruntime)."
                ) from err
            options = ort.SessionOptions()
            options.log_severity_level = 3
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        else:
            self.module = torch.jit.load(str(path), map_location="cpu")

    def __call__(self, inputs: tuple[Tensor, ...]) -> list[np.ndarray]:
        if self.fmt == "onnx":
            feed = {name: value.numpy() for name, value in zip(self.names, inputs, strict=False)}
            return list(self.session.run(list(OUTPUTS), feed))
        with torch.no_grad():
            return [t.numpy() for t in self.module(*inputs)]


def compare(reference: list[np.ndarray], exported: list[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Per output: (max absolute difference, that divided by max |reference|)."""
    result = {}
    for name, ref, got in zip(OUTPUTS, reference, exported, strict=True):
        if ref.shape != got.shape:
            raise LifelongDepthError(f"Exported {name} has shape {got.shape}, PyTorch gives {ref.shape}.")
        diff = float(np.abs(ref - got).max())
        result[name] = (diff, diff / max(float(np.abs(ref).max()), 1e-12))
    return result


def export(options: ExportOptions) -> dict[str, Any]:
    if options.format not in FORMATS:
        raise ConfigError(f"format={options.format!r}: choose {' or '.join(FORMATS)}.")
    if options.format == "onnx":
        import importlib.util

        missing = [
            name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None
        ]
        if missing:
            raise ConfigError(
                f"format=onnx needs {', '.join(missing)}: install the optional extra with "
                "pip install -e '.[export]' (or use format=torchscript)."
            )
    model = load_model(str(options.ckpt))
    letters = list(model.domains) if options.domain == "all" else [model.domain(options.domain).letter]
    module = ExportedDepthNet(model.net, letters).eval()
    out_dir = Path(options.output) if options.output else model.path.parent / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = {"onnx": ".onnx", "torchscript": ".pt"}[options.format]
    path = out_dir / f"{model.path.stem}_{options.domain}{suffix}"
    cases = verification_inputs(model, letters, options.batch_size, options.images)
    example = cases[0][1] if len(letters) > 1 else cases[0][1][:1]
    names = ["images"] + (["domain_index"] if len(letters) > 1 else [])
    if options.format == "onnx":
        dynamic = export_onnx(module, example, path, options.opset, options.dynamic)
    else:
        export_torchscript(module, example, path)
        dynamic = True  # decided by the size check below
    print(f"Exported {path} ({path.stat().st_size / 2**20:.1f} MiB), domains {''.join(letters)}")
    runner = _Runner(path, options.format, names)
    report: dict[str, Any] = {"file": str(path), "checks": {}}
    failures = []
    example_size = tuple(example[0].shape[-2:])
    for name, inputs in cases:
        inputs = inputs if len(letters) > 1 else inputs[:1]
        if not dynamic and tuple(inputs[0].shape[-2:]) != example_size:
            continue
        with torch.no_grad():
            reference = [t.numpy() for t in module(*inputs)]
        try:
            exported = runner(inputs)
        except Exception as err:
            if tuple(inputs[0].shape[-2:]) != example_size:
                dynamic = False
                print(f"  {name}: the export does not accept other sizes ({type(err).__name__}); fixed size.")
                continue
            raise LifelongDepthError(f"Running the export on {name} failed: {err}") from err
        diffs = compare(reference, exported)
        report["checks"][name] = diffs
        line = ", ".join(f"{k} max abs diff {a:.2e} (rel {r:.2e})" for k, (a, r) in diffs.items())
        print(f"  {name}: {line}")
        if any(r > options.rtol for _, r in diffs.values()):
            if tuple(inputs[0].shape[-2:]) != example_size and options.format == "torchscript":
                dynamic = False  # a trace that baked the example's size in: say so, do not fail
                print(f"  the traced module is only valid at {example_size[0]}×{example_size[1]}")
                continue
            failures.append(name)
    if not options.images:
        print("  (random inputs only: add images=<image|folder|glob> to verify on real images too)")
    report["dynamic_shapes"] = dynamic
    _write_model_card(out_dir / f"{path.stem}.json", model, letters, path, dynamic, example_size)
    if failures:
        raise LifelongDepthError(
            f"Export {path} differs from PyTorch by more than rtol={options.rtol} on: {', '.join(failures)}."
        )
    print(
        f"Verified against PyTorch within rtol={options.rtol} ({'dynamic' if dynamic else 'fixed'} shapes)."
    )
    return report


def _write_model_card(
    path: Path, model: LoadedModel, letters: list[str], file: Path, dynamic: bool, size: tuple[int, int]
) -> None:
    """What a consumer of the graph needs: inputs, outputs, domains and their index, sizes, ranges."""
    card = {
        "file": file.name,
        "checkpoint": str(model.path),
        "backbone": model.backbone,
        "inputs": {
            "images": "float32 (batch, 3, height, width), RGB in [0, 1]; height, width multiples of 32",
            **({"domain_index": "int64 (batch,), position in `domains`"} if len(letters) > 1 else {}),
        },
        "outputs": {"depth": "metres (batch, 1, height, width)", "log_var": "log-variance, same shape"},
        "dynamic_shapes": dynamic,
        "exported_size": list(size),
        "domains": [
            {
                "index": i,
                "letter": letter,
                "name": model.domains[letter].name,
                "input_size": list(model.domains[letter].input_size),
                "min_depth": model.domains[letter].min_depth,
                "max_depth": model.domains[letter].max_depth,
                "depth_scale": model.domains[letter].depth_scale,
            }
            for i, letter in enumerate(letters)
        ],
    }
    path.write_text(json.dumps(card, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    run_cli(
        export, ExportOptions, PROG, "Export a stage checkpoint to ONNX or TorchScript and verify it.", argv
    )


if __name__ == "__main__":
    main()
