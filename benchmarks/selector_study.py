"""Which selector descriptor and unknown threshold to ship: measured on a finished run's checkpoints.

For every stage checkpoint of a run (e.g. ``N.ckpt NK.ckpt NKS.ckpt`` of ``make run``) this encodes,
once, the images the production fitting reads (``evaluation/selector_fit.selector_loaders``: old
domains' replay memory, the current domain's training images, the calibration split) and every
domain's validation and test images, keeping the channel statistics of each encoder level and of the
fused map. Each variant (levels, covariance rank, calibration) is then fitted with the production
fitting step (``fit_state_from_descriptors``) and scored per domain: routing accuracy of learned
domains, share flagged unknown for learned (false alarms) and not-yet-learned domains (detections).
Choose on the ``val`` rows; ``test`` is reported only.

    LMD_DATA_DIR=... python benchmarks/selector_study.py outputs/<run> --json study.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LMD_ROOT", str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import lifelong_monodepth  # noqa: E402,F401  (torchvision workaround before torch-heavy imports)

LEVEL_SETS = {
    "fused": ["fused"],
    "enc4+fused": ["enc4", "fused"],
    "enc3+enc4+fused": ["enc3", "enc4", "fused"],
    "enc1..enc4+fused": ["enc1", "enc2", "enc3", "enc4", "fused"],
}


def _variants(
    levels: list[str], ranks: list[int | None], folds: list[int], splits: list[str | None], unknown: list[str]
) -> list[dict[str, Any]]:
    """Every (levels, rank, calibration) combination; margins are applied at scoring time (no refit)."""
    return [
        {
            "levels": name,
            "rank": rank,
            "calibration_folds": fold,
            "calibration_split": split,
            "unknown": other,
        }
        for name in levels
        for other in unknown
        for rank in ranks
        for fold in folds
        for split in splits
        if fold > 1 or split is not None  # without either nothing is ever flagged
    ]


def _rank(text: str) -> int | None:
    return None if text in ("full", "none", "null") else int(text)


def _split(text: str) -> str | None:
    return None if text in ("none", "null") else text


@torch.no_grad()
def encode_all(net: Any, loader: Any, limit: int | None) -> dict[str, torch.Tensor]:
    """Channel statistics of every level (``enc1`` …, ``fused``) of up to ``limit`` images."""
    from lifelong_monodepth.models.selection import channel_statistics

    parts: dict[str, list[torch.Tensor]] = {}
    seen = 0
    for batch in loader:
        fused, levels = net.encode_levels(batch["image"])
        named = {f"enc{i + 1}": level for i, level in enumerate(levels)} | {"fused": fused}
        for name, feature in named.items():
            parts.setdefault(name, []).append(channel_statistics(feature))
        seen += len(batch["image"])
        if limit is not None and seen >= limit:
            break
    return {name: torch.cat(chunks)[:limit] for name, chunks in parts.items()}


def _pick(cache: dict[str, torch.Tensor], levels: list[str]) -> torch.Tensor:
    return torch.cat([cache[name] for name in levels], dim=1)


def stage_cache(run: Path, stage: str, cfg: Any, cache_dir: Path | None = None) -> dict[str, Any]:
    """Descriptors of every image the study reads, for one stage checkpoint (reused from ``cache_dir``)."""
    from hydra.utils import instantiate

    from lifelong_monodepth.data.domain import domains_from_config
    from lifelong_monodepth.evaluation.selector_fit import selector_loaders
    from lifelong_monodepth.models.selection import SelectorOptions
    from lifelong_monodepth.training.loading import load_module

    saved = cache_dir / f"{stage}.pt" if cache_dir else None
    module = load_module(run / "checkpoints" / f"{stage}.ckpt")
    if saved is not None and saved.is_file():
        cache = torch.load(saved, weights_only=True)
        cache["net"] = module.net.eval()
        return cache
    net = module.net.eval()
    configured = domains_from_config(cfg.domains)
    datamodule = instantiate(cfg.data, domains=configured, _convert_="all")
    options = SelectorOptions.from_config({"calibration_split": "val"})
    learned = net.domains
    fit_loaders, calibration_loaders = selector_loaders(datamodule, learned, options, current=learned[-1:])
    cache: dict[str, Any] = {"learned": learned, "fit": {}, "val": {}, "test": {}}
    for letter in learned:
        cache["fit"][letter] = encode_all(net, fit_loaders[letter], options.max_images)
    for letter in configured:
        for split in ("val", "test"):
            cache[split][letter] = encode_all(net, datamodule.eval_loader(letter, split), None)
    # Forward time of encoder + one head against the descriptor + routing (the added cost).
    images = next(iter(datamodule.eval_loader(learned[0], "val")))["image"][:8]
    cache["images"] = images
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        torch.save(cache, saved)
    cache["net"] = net
    return cache


def score(cache: dict[str, Any], variant: dict[str, Any], margins: list[float]) -> dict[str, Any]:
    from lifelong_monodepth.models.selection import (
        DomainSelector,
        SelectorOptions,
        fit_state_from_descriptors,
        mahalanobis,
    )

    levels = LEVEL_SETS[variant["levels"]]
    options = SelectorOptions.from_config(
        {
            "levels": levels,
            "rank": variant["rank"],
            "calibration_folds": variant["calibration_folds"],
            "calibration_split": variant["calibration_split"],
            "unknown_levels": LEVEL_SETS[variant["unknown"]] if variant.get("unknown") else None,
        }
    )
    learned = cache["learned"]
    features = {letter: cache["fit"][letter] for letter in learned}
    calibration = {letter: cache["val"][letter] for letter in learned} if options.calibration_split else {}
    state = fit_state_from_descriptors(features, calibration, options)
    gaussians = [state["gaussian"]] + ([state["unknown"]["gaussian"]] if "unknown" in state else [])
    state_bytes = sum(v.numel() * v.element_size() for g in gaussians for v in g.values())
    unknown_levels = options.unknown_levels if options.separate_unknown else None
    out: dict[str, Any] = {"state_bytes_gaussian": state_bytes}
    for split in ("val", "test"):
        for margin in margins:
            selector = DomainSelector("mahalanobis", state, margin=margin)
            row: dict[str, Any] = {}
            margins_p05: dict[str, float] = {}
            for letter, cached in cache[split].items():
                routing = selector.route_descriptors(
                    _pick(cached, levels),
                    unknown_features=_pick(cached, unknown_levels) if unknown_levels else None,
                )
                flagged = float(routing.unknown.float().mean())
                if letter in learned:
                    correct = sum(chosen == letter for chosen in routing.letters)
                    # Routing margin: log(distance to the nearest other domain / to its own), 5th percentile
                    # over the images (scale-free; > 0 routes right). Tells apart variants that all route
                    # every validation image right.
                    distances = mahalanobis(_pick(cached, levels), state["gaussian"])
                    own = learned.index(letter)
                    others = torch.cat([distances[:, :own], distances[:, own + 1 :]], dim=1)
                    if others.shape[1]:
                        ratio = (others.min(1).values / distances[:, own].clamp_min(1e-12)).log()
                        margins_p05[letter] = float(torch.quantile(ratio, 0.05))
                    row[letter] = {
                        "routed": correct / len(routing.letters),
                        "n": len(routing.letters),
                        "unknown": flagged,
                    }
                else:
                    row[letter] = {"unknown": flagged, "n": len(routing.letters)}
            out[f"{split}@{margin}"] = row
        out[f"{split}_routing_margin_p05"] = margins_p05
    return out


def timing(cache: dict[str, Any], levels: list[str], rank: int | None, repeats: int = 5) -> dict[str, float]:
    """Median ms of encoder + one head against descriptor + routing, on a batch of 8 val images."""
    from lifelong_monodepth.models.selection import DomainSelector, fit_selector_state

    net, images = cache["net"], cache["images"]
    learned = cache["learned"]
    features = {letter: _pick(cache["fit"][letter], levels) for letter in learned}
    selector = DomainSelector(
        "mahalanobis",
        fit_selector_state(features, classifier_steps=0, descriptor="stats", levels=levels, rank=rank),
    )

    def median(fn: Any) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2] * 1000

    with torch.no_grad():
        fused, enc = net.encode_levels(images)
        forward = median(lambda: net.run_heads(net.encode(images), learned[:1]))
        route = median(lambda: selector.route(net, fused, enc))
    return {"forward_ms": forward, "route_ms": route, "fraction": route / forward}


def main(argv: list[str] | None = None) -> int:
    from omegaconf import OmegaConf

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a finished run's output folder (checkpoints/<stage>.ckpt)")
    parser.add_argument("--stages", nargs="+", default=None, help="stage names (default: the run's order)")
    parser.add_argument("--margins", nargs="+", type=float, default=[1.0, 1.1, 1.25, 1.5])
    parser.add_argument("--levels", nargs="+", default=list(LEVEL_SETS), choices=list(LEVEL_SETS))
    parser.add_argument("--ranks", nargs="+", type=_rank, default=[None, 32], help="full or a number")
    parser.add_argument("--folds", nargs="+", type=int, default=[0, 10], help="calibration_folds values")
    parser.add_argument("--calibration", nargs="+", type=_split, default=["val", None], help="val or none")
    parser.add_argument(
        "--unknown", nargs="+", default=[""], help="unknown_levels sets to try ('' = the routing levels)"
    )
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--cache", type=Path, default=None, help="folder to keep/reuse encoded descriptors")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg = OmegaConf.load(args.run / "resolved_config.yaml")
    order = "".join(str(x) for x in cfg.get("order", "NKS")) if cfg.get("order") else "NKS"
    stages = args.stages or [order[: i + 1] for i in range(len(order))]
    results: dict[str, Any] = {}
    for stage in stages:
        cache = stage_cache(args.run, stage, cfg, args.cache)
        results[stage] = {
            "timing": {name: timing(cache, LEVEL_SETS[name], args.ranks[0]) for name in args.levels}
        }
        for variant in _variants(args.levels, args.ranks, args.folds, args.calibration, args.unknown):
            key = "|".join(
                [
                    variant["levels"],
                    f"rank={variant['rank']}",
                    f"folds={variant['calibration_folds']}",
                    f"cal={variant['calibration_split']}",
                    f"unknown={variant['unknown'] or 'same'}",
                ]
            )
            results[stage][key] = score(cache, variant, args.margins)
        print(f"{stage}: done", file=sys.stderr, flush=True)
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
