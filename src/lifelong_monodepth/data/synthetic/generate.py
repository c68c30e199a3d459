"""Generate the synthetic N/K/S benchmark on disk in the real datasets' native formats, plus index CSVs.

Every image is a pure function of ``(seed, domain, split, index)``, so the output is
byte-identical whatever the number of worker processes, and a manifest of the parameters
lets a second call skip the work.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lifelong_monodepth.data.depth_io import encode_depth, write_depth_png, write_rgb
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.data.index import write_index
from lifelong_monodepth.data.synthetic.contact_sheet import write_contact_sheet
from lifelong_monodepth.data.synthetic.render import render
from lifelong_monodepth.data.synthetic.scenes import HOME, SCAN, build_room, build_street
from lifelong_monodepth.data.synthetic.sensors import (
    dense_depth,
    finish_rgb,
    lidar_depth,
    structured_light_depth,
)
from lifelong_monodepth.data.synthetic.specs import DEFAULT_COUNTS, DOMAIN_ORDER, DOMAINS, SPLITS

GENERATOR_VERSION = 1  # bump when the images change, so existing data is regenerated
SUBDIR = "synthetic"
SHEET_SAMPLES = 8  # the contact sheet shows up to two rows of them


def render_sample(
    letter: str, size: tuple[int, int], seed: int, split: str, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """One ``(rgb uint8 H×W×3, depth metres H×W with 0 = invalid)`` pair, fully determined by its key."""
    spec = DOMAINS[letter]
    rng = np.random.default_rng([seed, DOMAIN_ORDER.index(letter), SPLITS.index(split), index])
    if letter == "K":
        scene, camera = build_street(rng, spec, size)
    else:
        scene, camera = build_room(rng, spec, size, HOME if letter == "N" else SCAN)
    result = render(scene, camera)
    if letter == "N":
        depth = dense_depth(result, spec)
    elif letter == "K":
        depth = lidar_depth(result, camera, rng, spec)
    else:
        emissive = np.array([m.emissive for m in scene.materials] + [False])[result.material]
        depth = structured_light_depth(result, emissive, rng, spec)
    return finish_rgb(result, rng, spec), depth


@dataclass(frozen=True)
class _Job:
    letter: str
    size: tuple[int, int]
    seed: int
    split: str
    index: int
    rgb_path: str
    depth_path: str


def _run_job(job: _Job) -> tuple[float, float, float]:
    """Render and write one pair; return (min, max, valid fraction) of the depth as stored on disk."""
    rgb, depth = render_sample(job.letter, job.size, job.seed, job.split, job.index)
    scale = DOMAINS[job.letter].depth_scale
    write_rgb(job.rgb_path, rgb)
    write_depth_png(job.depth_path, depth, scale)
    stored = encode_depth(depth, scale)
    valid = stored[stored > 0] / scale
    if valid.size == 0:
        return float("inf"), 0.0, 0.0
    return float(valid.min()), float(valid.max()), float(valid.size / stored.size)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core; OpenCV's own threads would only compete


def _run_all(jobs: list[_Job], workers: int) -> list[tuple[float, float, float]]:
    if workers <= 1 or len(jobs) < 8:
        return [_run_job(job) for job in jobs]
    # Not fork: the caller may already run torch/OpenMP or OpenCV threads (the training entrypoint
    # does), and a forked child can inherit one of their locks held and hang forever.
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(workers, initializer=_init_worker) as pool:
        return list(pool.imap(_run_job, jobs, chunksize=4))


def _resolve(
    domains: str | Iterable[str],
    counts: Mapping[str, int] | None,
    sizes: Mapping[str, Sequence[int]] | None,
    seed: int,
) -> tuple[str, dict[str, int], dict[str, tuple[int, int]]]:
    letters = "".join(domains).upper()
    unknown = sorted(set(letters) - set(DOMAIN_ORDER))
    if unknown or not letters or len(set(letters)) != len(letters):
        raise ConfigError(
            f"domains={letters!r}: use distinct letters from {DOMAIN_ORDER!r} (e.g. 'NKS' or 'K')."
        )
    letters = "".join(c for c in DOMAIN_ORDER if c in letters)
    merged = {**DEFAULT_COUNTS, **{str(k): int(v) for k, v in (counts or {}).items()}}
    if set(merged) != set(DEFAULT_COUNTS) or any(v < 0 for v in merged.values()) or merged["train"] < 1:
        raise ConfigError(
            f"counts={dict(counts or {})}: keys must be {sorted(DEFAULT_COUNTS)}, train ≥ 1, none negative."
        )
    if merged["replay"] > merged["train"]:
        raise ConfigError(
            f"counts: replay={merged['replay']} exceeds train={merged['train']} (replay is a subset)."
        )
    resolved = {c: DOMAINS[c].size for c in letters}
    for letter, size in (sizes or {}).items():
        letter = str(letter).upper()
        height, width = (int(v) for v in size)
        if letter not in DOMAINS or height < 8 or width < 8:
            raise ConfigError(
                f"sizes[{letter!r}]={list(size)}: need a domain letter and (H, W) of at least 8×8."
            )
        if letter in resolved:
            resolved[letter] = (height, width)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r}: must be a non-negative integer.")
    return letters, merged, resolved


def generate_benchmark(
    data_dir: str | Path,
    index_dir: str | Path,
    seed: int = 0,
    domains: str | Sequence[str] = ("N", "K", "S"),
    counts: Mapping[str, int] | None = None,
    sizes: Mapping[str, Sequence[int]] | None = None,
    force: bool = False,
    workers: int | None = None,
    verbose: bool = True,
) -> dict:
    """Write ``<data_dir>/synthetic/<name>/<split>/*`` and ``<index_dir>/<name>/{split}.csv``.

    Returns a summary dict (what was written or found).

    ``counts`` maps split → images per domain (``replay`` rows are a fixed subset of ``train``),
    ``sizes`` maps a domain letter → ``(H, W)``. Generation is skipped when the manifest records
    the same parameters and every index CSV exists, unless ``force``.
    """
    letters, counts_, sizes_ = _resolve(domains, counts, sizes, seed)
    root, index_root = Path(data_dir) / SUBDIR, Path(index_dir)
    manifest_path = root / "manifest.json"
    params = {
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "domains": letters,
        "counts": counts_,
        "sizes": {c: list(sizes_[c]) for c in letters},
    }
    index_files = [
        index_root / DOMAINS[c].name / f"{split}.csv" for c in letters for split in (*SPLITS, "replay")
    ]
    if not force and manifest_path.is_file() and all(p.is_file() for p in index_files):
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        if manifest.get("params") == params:
            if verbose:
                print(
                    f"Synthetic benchmark already present in {root} (same parameters): skipped. "
                    "Use --force to rebuild."
                )
            return {**manifest["summary"], "skipped": True}

    start = time.perf_counter()
    workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    if manifest_path.exists():
        manifest_path.unlink()  # an interrupted run must not look complete
    jobs: list[_Job] = []
    for letter in letters:
        spec = DOMAINS[letter]
        shutil.rmtree(root / spec.name, ignore_errors=True)
        for split in SPLITS:
            for i in range(counts_[split]):
                stem = root / spec.name / split / f"{i:05d}"
                jobs.append(
                    _Job(
                        letter,
                        sizes_[letter],
                        int(seed),
                        split,
                        i,
                        f"{stem}_rgb{spec.rgb_ext}",
                        f"{stem}_depth.png",
                    )
                )
    stats = _run_all(jobs, workers)

    summary_domains: dict[str, dict] = {}
    sheet_blocks = []
    for letter in letters:
        spec = DOMAINS[letter]
        mine = [(job, st) for job, st in zip(jobs, stats, strict=True) if job.letter == letter]
        pairs = {split: [] for split in SPLITS}
        for job, _ in mine:
            pairs[job.split].append(
                (str(Path(job.rgb_path).relative_to(root)), str(Path(job.depth_path).relative_to(root)))
            )
        replay_rng = np.random.default_rng([int(seed), DOMAIN_ORDER.index(letter), 99])
        chosen = sorted(replay_rng.choice(counts_["train"], counts_["replay"], replace=False).tolist())
        for split in SPLITS:
            write_index(index_root / spec.name / f"{split}.csv", pairs[split])
        write_index(index_root / spec.name / "replay.csv", [pairs["train"][i] for i in chosen])
        summary_domains[spec.name] = {
            "letter": letter,
            "mimics": spec.mimics,
            "counts": dict(counts_),
            "size": list(sizes_[letter]),
            "depth_scale": spec.depth_scale,
            "rgb_ext": spec.rgb_ext,
            "depth_min": round(min(st[0] for _, st in mine), 4),
            "depth_max": round(max(st[1] for _, st in mine), 4),
            "valid_fraction": round(float(np.mean([st[2] for _, st in mine])), 5),
        }
        shown = pairs["test"] or pairs["train"]
        sheet_blocks.append(
            (
                f"{letter}  {spec.name}  -  {spec.mimics}",
                spec.depth_scale,
                spec.depth_range,
                [(root / rgb, root / depth) for rgb, depth in shown[:SHEET_SAMPLES]],
            )
        )
    sheet = write_contact_sheet(root / "contact_sheet.png", sheet_blocks)
    summary = {
        "root": str(root),
        "index_dir": str(index_root),
        "manifest": str(manifest_path),
        "contact_sheet": str(sheet),
        "seed": int(seed),
        "seconds": round(time.perf_counter() - start, 2),
        "workers": workers,
        "domains": summary_domains,
    }
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"params": params, "summary": summary}, indent=2) + "\n")
    os.replace(tmp, manifest_path)
    return {**summary, "skipped": False}


def format_summary(summary: Mapping) -> str:
    """A readable table of what is (now) on disk."""
    state = "skipped (already present)" if summary["skipped"] else f"generated in {summary['seconds']:.1f} s"
    lines = [
        f"Synthetic benchmark, seed {summary['seed']}: {state}",
        f"  data:  {summary['root']}",
        f"  index: {summary['index_dir']}",
        "",
        f"  {'domain':<12} {'':1} {'train':>5} {'val':>4} {'test':>4} {'replay':>6}  "
        f"{'H×W':>7}  {'scale':>5}  "
        f"{'depth range (m)':>15}  {'valid':>6}  mimics",
    ]
    for name, d in summary["domains"].items():
        c = d["counts"]
        lines.append(
            f"  {name:<12} {d['letter']:1} {c['train']:>5} {c['val']:>4} {c['test']:>4} {c['replay']:>6}  "
            f"{d['size'][0]:>3}×{d['size'][1]:<3}  {d['depth_scale']:>5g}  "
            f"{d['depth_min']:>6.2f} – {d['depth_max']:<6.2f}  "
            f"{100 * d['valid_fraction']:>5.1f}%  {d['mimics']}"
        )
    lines += ["", f"  contact sheet: {summary['contact_sheet']}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m lifelong_monodepth.data.synthetic [--data-dir data] [--domains NKS] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m lifelong_monodepth.data.synthetic",
        description="Generate the embedded synthetic N/K/S depth benchmark (skipped when already present).",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("LMD_DATA_DIR", "data"),
        help="images go to DATA_DIR/synthetic (default: $LMD_DATA_DIR or ./data)",
    )
    parser.add_argument(
        "--index-dir",
        default=os.environ.get("LMD_INDEX_DIR", "data_index"),
        help="index CSVs go to INDEX_DIR/<name>/ (default: $LMD_INDEX_DIR or ./data_index)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--domains", default=DOMAIN_ORDER, help="letters to generate (default NKS)")
    for split in (*SPLITS, "replay"):
        parser.add_argument(
            f"--{split}",
            type=int,
            default=DEFAULT_COUNTS[split],
            help=f"images per domain in {split} (default {DEFAULT_COUNTS[split]})",
        )
    parser.add_argument("--workers", type=int, default=None, help="processes (default: min(2, CPUs))")
    parser.add_argument("--force", action="store_true", help="regenerate even if the manifest matches")
    args = parser.parse_args(argv)
    counts = {split: getattr(args, split) for split in (*SPLITS, "replay")}
    try:
        summary = generate_benchmark(
            args.data_dir,
            args.index_dir,
            seed=args.seed,
            domains=args.domains,
            counts=counts,
            force=args.force,
            workers=args.workers,
        )
    except ConfigError as err:
        parser.error(str(err))
    print(format_summary(summary))
    sys.stdout.flush()
    return 0
