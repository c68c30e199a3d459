"""The embedded synthetic benchmark: native formats, sparsity, ranges, determinism, indexes, CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from lifelong_monodepth.data.depth_io import read_depth, write_depth_png
from lifelong_monodepth.data.index import read_index
from lifelong_monodepth.data.synthetic import DOMAINS, generate_benchmark, main, render_sample
from lifelong_monodepth.data.synthetic.raycast import Camera, occluded, rotation
from lifelong_monodepth.data.synthetic.render import (
    Light,
    Scene,
    _group_boxes,
    _shadowed_point,
    _shadowed_sun,
    render,
)
from lifelong_monodepth.data.synthetic.scenes import HOME, SCAN, build_room, build_street
from lifelong_monodepth.data.synthetic.sensors import lidar_depth
from lifelong_monodepth.data.synthetic.textures import Material

TINY_COUNTS = {"train": 4, "val": 2, "test": 3, "replay": 2}
TINY_SIZES = {"N": (24, 32), "K": (16, 64), "S": (24, 32)}
SPLITS = ("train", "val", "test", "replay")


def _generate(root: Path, seed: int = 0, **kwargs) -> dict:
    return generate_benchmark(
        root / "data",
        root / "index",
        seed=seed,
        counts=TINY_COUNTS,
        sizes=TINY_SIZES,
        verbose=False,
        **kwargs,
    )


def _hashes(root: Path) -> dict[str, str]:
    """Digest of every generated file except the manifest (it records timings and paths)."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("bench")
    return root, _generate(root, workers=1)


@pytest.mark.parametrize("letter", list(DOMAINS))
def test_native_depth_format_round_trips(tmp_path: Path, letter: str) -> None:
    spec = DOMAINS[letter]
    lo, hi = spec.depth_range
    metres = np.random.default_rng(1).uniform(lo, hi, (16, 20))
    metres[0, :3] = 0.0  # invalid stays invalid
    path = tmp_path / f"{letter}.png"
    write_depth_png(path, metres, spec.depth_scale)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.ndim == 2
    back = read_depth(path, spec.depth_scale)
    assert np.all(back[0, :3] == 0)
    # quantisation: 1/256 m for KITTI-style files, 1 mm for NYU/ScanNet-style files
    assert np.max(np.abs(back - metres)) <= 0.5 / spec.depth_scale + 1e-6
    assert spec.depth_scale == {"N": 1000.0, "K": 256.0, "S": 1000.0}[letter]


def test_kitti_like_depth_is_sparse_and_nyu_like_is_dense() -> None:
    for i in range(3):
        _, k_depth = render_sample("K", (96, 320), 0, "train", i)
        assert 0.01 <= (k_depth > 0).mean() <= 0.15, "K mimics projected LiDAR: a few % of pixels valid"
        rgb, n_depth = render_sample("N", (24, 32), 0, "train", i)
        assert rgb.shape == (24, 32, 3) and rgb.dtype == np.uint8
        assert (n_depth > 0).mean() > 0.99


def test_sky_has_no_depth_but_has_colour() -> None:
    spec = DOMAINS["K"]
    rng = np.random.default_rng(3)
    scene, camera = build_street(rng, spec, (48, 160))
    result = render(scene, camera)
    depth = lidar_depth(result, camera, rng, spec)
    sky = ~np.isfinite(result.depth)
    assert sky[:8].mean() > 0.2, "the top of a street image should show sky"
    assert np.all(depth[sky] == 0)
    assert np.all(result.rgb[sky].sum(axis=1) > 0.1)  # sky is a bright gradient, not black


def test_depth_is_z_depth_not_ray_length() -> None:
    """A camera facing a wall squarely must see the same depth on the whole wall, edges included."""
    scene = Scene(light=Light("point", np.array([0.0, 2.0, 2.0])))
    scene.material(Material("flat", (0.5, 0.5, 0.5)))
    scene.room = (np.array([-20.0, -20.0, 0.0]), np.array([20.0, 20.0, 5.0]), [0] * 6)
    camera = Camera(50.0, 50.0, 40.0, 30.0, 60, 80, np.array([0.0, 0.0, 1.5]), rotation(0.0, 0.0, 0.0))
    depth = render(scene, camera).depth
    assert np.allclose(depth, 3.5)


def test_shadow_culling_matches_brute_force() -> None:
    """The per-object culling of shadow rays must not change which points are shadowed."""
    for i in range(3):
        rng = np.random.default_rng(i)
        for letter in "NSK":
            if letter == "K":
                scene, _ = build_street(rng, DOMAINS["K"], (16, 64))
                points = rng.uniform([-15, 0, 0], [15, 10, 80], (3000, 3))
            else:
                scene, _ = build_room(rng, DOMAINS[letter], (24, 32), HOME if letter == "N" else SCAN)
                points = rng.uniform([-3, 0, 0], [3, 2.4, 6], (3000, 3))
            groups = _group_boxes(scene)
            bmin, bmax = np.concatenate([g[0] for g in groups]), np.concatenate([g[1] for g in groups])
            if letter == "K":
                sun = scene.light.vector / np.linalg.norm(scene.light.vector)
                fast = _shadowed_sun(scene, points, sun)
                slow = occluded(points, np.broadcast_to(sun, points.shape), 1e4, bmin, bmax)
            else:
                to_light = scene.light.vector - points
                fast = _shadowed_point(scene, points, to_light)
                slow = occluded(points, to_light, 1.0, bmin, bmax)
            assert np.array_equal(fast, slow)


def test_generated_depth_respects_each_domain_range(bench: tuple[Path, dict]) -> None:
    root, summary = bench
    limits = {"synthetic_n": (0.5, 10.0), "synthetic_k": (0.0, 80.0), "synthetic_s": (0.3, 6.0)}
    for name, (lo, hi) in limits.items():
        info = summary["domains"][name]
        assert lo - 1e-3 <= info["depth_min"] <= info["depth_max"] <= hi + 1e-3
        for row in read_index(root / "index" / name / "test.csv", root / "data" / "synthetic"):
            depth = read_depth(row.depth, info["depth_scale"])
            assert depth.shape == tuple(TINY_SIZES[info["letter"]])
            valid = depth[depth > 0]
            assert valid.size and valid.max() <= hi + 1e-3 and valid.min() >= lo - 1e-3
            if name == "synthetic_n":
                assert valid.size == depth.size
    assert summary["domains"]["synthetic_s"]["valid_fraction"] < 1.0  # holes


def test_index_files_parse_and_replay_is_a_subset_of_train(bench: tuple[Path, dict]) -> None:
    root, summary = bench
    data_root = root / "data" / "synthetic"
    for name, info in summary["domains"].items():
        rows = {}
        for split in SPLITS:
            csv_path = root / "index" / name / f"{split}.csv"
            lines = csv_path.read_text().splitlines()
            assert lines[0] == "rgb,depth"
            assert all(not line.startswith("/") and line.startswith(f"{name}/") for line in lines[1:])
            rows[split] = read_index(csv_path, data_root)
            assert len(rows[split]) == TINY_COUNTS[split]
            assert all(row.rgb.is_file() and row.depth.is_file() for row in rows[split])
            assert all(row.rgb.suffix == DOMAINS[info["letter"]].rgb_ext for row in rows[split])
        assert set(rows["replay"]) <= set(rows["train"])
    assert (data_root / "contact_sheet.png").is_file()
    assert cv2.imread(str(data_root / "contact_sheet.png")) is not None


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, bench: tuple[Path, dict]) -> None:
    reference, _ = bench
    again = tmp_path / "again"
    _generate(again, workers=2)  # a different number of processes must not change a byte
    assert _hashes(again) == _hashes(reference)
    other = tmp_path / "other"
    _generate(other, seed=1, workers=1)
    ref, oth = _hashes(reference), _hashes(other)
    assert ref.keys() == oth.keys()
    images = [key for key in ref if key.endswith((".png", ".jpg")) and "contact_sheet" not in key]
    assert all(ref[key] != oth[key] for key in images)


def test_second_call_is_skipped_and_force_regenerates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    counts = {"train": 3, "val": 1, "test": 1, "replay": 1}
    kwargs = {"domains": "K", "counts": counts, "sizes": {"K": (16, 64)}}
    first = generate_benchmark(tmp_path / "d", tmp_path / "i", **kwargs)
    assert not first["skipped"] and list(first["domains"]) == ["synthetic_k"]
    manifest = json.loads((tmp_path / "d" / "synthetic" / "manifest.json").read_text())
    assert manifest["params"]["domains"] == "K" and manifest["params"]["counts"] == counts
    stamp = (tmp_path / "d" / "synthetic" / "synthetic_k" / "train" / "00000_rgb.png").stat().st_mtime_ns
    capsys.readouterr()
    second = generate_benchmark(tmp_path / "d", tmp_path / "i", **kwargs)
    assert second["skipped"] and "skipped" in capsys.readouterr().out
    assert second["domains"] == first["domains"]
    assert (
        tmp_path / "d" / "synthetic" / "synthetic_k" / "train" / "00000_rgb.png"
    ).stat().st_mtime_ns == stamp
    assert not generate_benchmark(tmp_path / "d", tmp_path / "i", force=True, **kwargs)["skipped"]
    assert not generate_benchmark(tmp_path / "d", tmp_path / "i", seed=5, **kwargs)[
        "skipped"
    ]  # new parameters
    (tmp_path / "i" / "synthetic_k" / "val.csv").unlink()
    assert not generate_benchmark(tmp_path / "d", tmp_path / "i", seed=5, **kwargs)[
        "skipped"
    ]  # index missing


def test_main_prints_summary_and_honours_env_dirs(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LMD_DATA_DIR", str(tmp_path / "envdata"))
    monkeypatch.setenv("LMD_INDEX_DIR", str(tmp_path / "envindex"))
    argv = ["--domains", "NS", "--train", "3", "--val", "1", "--test", "2", "--replay", "2", "--seed", "7"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for text in ("synthetic_n", "synthetic_s", "contact sheet", "depth range", "valid", "generated"):
        assert text in out
    assert "synthetic_k" not in out
    assert (tmp_path / "envindex" / "synthetic_s" / "replay.csv").is_file()
    assert (tmp_path / "envdata" / "synthetic" / "synthetic_n" / "test" / "00001_rgb.jpg").is_file()
    assert main(argv) == 0
    assert "skipped" in capsys.readouterr().out
    assert main([*argv, "--force"]) == 0
    assert "generated" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--domains", "X"])
    with pytest.raises(SystemExit):
        main(["--train", "2", "--replay", "3"])
