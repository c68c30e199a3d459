"""``python -m lifelong_monodepth.inspect NKS.ckpt``: what a stage checkpoint holds, without running it.

Prints the learned domains (ranges, input sizes, depth scales), the learning order, the backbone,
parameter counts, the selector and the results stored with the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lifelong_monodepth.inference.loading import LoadedModel, load_model
from lifelong_monodepth.inference.options import option, run_cli

PROG = "lifelong_monodepth.inspect"
RESULT_METRICS = ("abs_rel", "rmse", "delta1")


@dataclass
class InspectOptions:
    ckpt: str | None = option(None, "stage checkpoint (also accepted as the first bare argument)", True)


def describe(model: LoadedModel) -> dict[str, Any]:
    """Everything ``inspect`` prints, as a dict (tests and scripts read it)."""
    return {
        "file": str(model.path),
        "size_mib": model.path.stat().st_size / 2**20,
        "format": "slim stage checkpoint" if model.slim else "full Lightning checkpoint (older run)",
        "stage": model.stage.get("name", model.path.stem),
        "order": "".join(model.learned),
        "run_order": model.stage.get("order"),
        "strategy": model.stage.get("strategy"),
        "seed": model.stage.get("seed"),
        "backbone": model.backbone,
        "parameters": model.parameter_counts(),
        "selector": model.selector_name,
        "selector_fitted": list(model.selector_state.get("letters", [])),
        "domains": model.domains,
        "results": model.results,
    }


def render(info: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{info['file']}[/bold]  ({info['size_mib']:.1f} MiB, {info['format']})")
    console.print(
        f"stage {info['stage']}: learned order {info['order']}"
        + (
            f" (run order {info['run_order']}, strategy {info['strategy']}, seed {info['seed']})"
            if info["strategy"]
            else ""
        )
    )
    console.print(f"backbone {info['backbone']}")
    fitted = ", ".join(info["selector_fitted"]) or "not fitted"
    console.print(f"selector {info['selector']} (fitted on {fitted})")
    domains = Table(title="domains")
    for column in ("letter", "name", "depth range [m]", "input size (H×W)", "depth PNG scale", "eval crop"):
        domains.add_column(column)
    for d in info["domains"].values():
        domains.add_row(
            d.letter,
            d.name,
            f"{d.min_depth:g} – {d.max_depth:g}",
            f"{d.input_size[0]}×{d.input_size[1]}",
            f"{d.depth_scale:g} per metre",
            d.eval_crop,
        )
    console.print(domains)
    params = Table(title="parameters")
    params.add_column("part")
    params.add_column("count", justify="right")
    for part, count in info["parameters"].items():
        params.add_row(part, f"{count:,}")
    console.print(params)
    if info["results"]:
        results = Table(
            title="results stored with the checkpoint (prior = domain's own head, auto = selector)"
        )
        results.add_column("domain")
        for metric in RESULT_METRICS:
            results.add_column(f"{metric} prior / auto")
        results.add_column("selection acc.")
        for letter, modes in info["results"].items():
            prior, auto = modes.get("prior", {}), modes.get("auto", {})
            cells = [f"{_fmt(prior.get(m))} / {_fmt(auto.get(m))}" for m in RESULT_METRICS]
            results.add_row(letter, *cells, _fmt(auto.get("selection_acc")))
        console.print(results)
    else:
        console.print("no results stored with this checkpoint")


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def inspect_checkpoint(options: InspectOptions) -> dict[str, Any]:
    info = describe(load_model(Path(str(options.ckpt))))
    render(info)
    return info


def main(argv: list[str] | None = None) -> None:
    run_cli(
        inspect_checkpoint, InspectOptions, PROG, __doc__.strip().splitlines()[0], argv, positional="ckpt"
    )


if __name__ == "__main__":
    main()
