"""predict / export / inspect on a fabricated slim checkpoint (a tiny untrained net, no training)."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from lifelong_monodepth.checkpoint import load_checkpoint_file, stage_checkpoint, write_stage_checkpoint
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.inference.inputs import read_image
from lifelong_monodepth.inference.loading import build_net, load_model
from lifelong_monodepth.inference.pointcloud import parse_intrinsics
from lifelong_monodepth.inference.predict import PredictOptions, predict
from lifelong_monodepth.models.selection import fit_selector_state, pooled_features

# Non-overlapping depth ranges, so a forced domain is visible in every output value.
DOMAINS = [
    {
        "letter": "N",
        "name": "tiny_nyu",
        "min_depth": 0.1,
        "max_depth": 10.0,
        "input_size": [32, 64],
        "eval_crop": "none",
        "depth_scale": 1000.0,
    },
    {
        "letter": "K",
        "name": "tiny_kitti",
        "min_depth": 20.0,
        "max_depth": 80.0,
        "input_size": [32, 96],
        "eval_crop": "garg",
        "depth_scale": 256.0,
    },
]
NET = {
    "_target_": "lifelong_monodepth.models.network.MultiDomainDepthNet",
    "encoder": {"backbone": "mobilenetv3_small_050", "pretrained": False},
    "fusion": {"mid_channels": 4, "out_channels": 8, "kernel_size": 3},
    "head": {"hidden_channels": 4, "kernel_size": 3},
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A slim checkpoint written by the same writer as training, from a tiny net with a fitted selector."""
    torch.manual_seed(0)
    net = build_net(NET)
    for d in DOMAINS:
        net.add_domain(d["letter"], d["min_depth"], d["max_depth"])
    net.eval()
    with torch.no_grad():
        features = {
            d["letter"]: pooled_features(net.encode(torch.rand(4, 3, *d["input_size"]) * scale))
            for d, scale in zip(DOMAINS, (0.3, 1.0), strict=True)
        }
    path = tmp_path_factory.mktemp("ckpt") / "NK.ckpt"
    write_stage_checkpoint(
        path,
        stage_checkpoint(
            state_dict={f"net.{k}": v for k, v in net.state_dict().items()},
            hyper_parameters={"net": NET},
            lifelong={
                "domains": DOMAINS,
                "learned": ["N", "K"],
                "current": ["K"],
                "selector": fit_selector_state(features, grid=4, classifier_steps=20),
            },
            stage={
                "name": "NK",
                "order": "NK",
                "strategy": "lifelong",
                "seed": 1,
                "selector": {"name": "prototype", "grid": 4},
            },
            results={"N": {"prior": {"rmse": 0.25, "delta1": 0.9}}},
        ),
    )
    return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny images of different sizes and kinds, plus one corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)).save(folder / "a_rgb.jpg")
    Image.fromarray((rng.random((50, 30, 4)) * 255).astype(np.uint8), "RGBA").save(folder / "b_rgba.png")
    Image.fromarray((rng.random((33, 47)) * 255).astype(np.uint8), "L").save(folder / "c_gray.png")
    Image.fromarray((rng.random((20, 80)) * 65535).astype(np.uint16)).save(folder / "d_16bit.png")
    (folder / "e_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    return folder


def _options(checkpoint: Path, source: Path, output: Path, **kwargs) -> PredictOptions:
    return PredictOptions(ckpt=str(checkpoint), input=str(source), output=str(output), **kwargs)


def _rows(output: Path) -> list[dict[str, str]]:
    with (output / "predictions.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_predict_folder_writes_every_output_and_reports_the_broken_file(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "out"
    summary = predict(_options(checkpoint, photos, out, intrinsics="40,40,20,15"))
    assert summary.written == 4
    assert [Path(p).name for p, _ in summary.skipped] == ["e_corrupt.png"]
    printed = capsys.readouterr().out
    assert "Skipped 1 unreadable file(s)" in printed and "images/s" in printed
    sizes = {"a_rgb": (40, 60), "b_rgba": (50, 30), "c_gray": (33, 47), "d_16bit": (20, 80)}
    rows = {Path(row["file"]).stem: row for row in _rows(out)}
    assert set(rows) == set(sizes)
    for stem, size in sizes.items():
        for suffix in (
            "_depth.npy",
            "_depth.png",
            "_depth_color.png",
            "_uncertainty.npy",
            "_uncertainty.png",
            ".ply",
        ):
            assert (out / f"{stem}{suffix}").is_file(), f"{stem}{suffix}"
        depth = np.load(out / f"{stem}_depth.npy")
        assert depth.shape == size and depth.dtype == np.float32
        assert np.load(out / f"{stem}_uncertainty.npy").shape == size
        row = rows[stem]
        info = next(d for d in DOMAINS if d["letter"] == row["domain"])
        assert info["min_depth"] <= depth.min() and depth.max() <= info["max_depth"]
        assert float(row["median_depth_m"]) == pytest.approx(float(np.median(depth)), abs=1e-3)
        assert 0 < float(row["confidence"]) <= 1 and row["unknown"] in ("0", "1")
        # The 16-bit PNG is the same depth in the domain's native scale, within its quantisation.
        stored = cv2.imread(str(out / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16 and stored.shape == size
        np.testing.assert_allclose(stored / info["depth_scale"], depth, atol=0.5 / info["depth_scale"] + 1e-6)
    assert not (out / "e_corrupt_depth.npy").exists()


def test_forced_domain_uses_that_head_and_its_range(checkpoint, photos, tmp_path):
    for letter, (low, high) in (("K", (20.0, 80.0)), ("N", (0.1, 10.0))):
        out = tmp_path / letter
        predict(_options(checkpoint, photos / "a_rgb.jpg", out, domain=letter))
        depth = np.load(out / "a_rgb_depth.npy")
        assert low <= depth.min() and depth.max() <= high
        (row,) = _rows(out)
        assert row["domain"] == letter and float(row["confidence"]) == 1.0
    with pytest.raises(ConfigError, match=r"domain='X'.*knows N, K"):
        predict(_options(checkpoint, photos / "a_rgb.jpg", tmp_path / "x", domain="X"))


def test_exif_rotated_jpeg_gives_depth_in_displayed_orientation(checkpoint, tmp_path):
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = 255  # left half bright as stored; orientation 6 displays it rotated 90° clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    image = read_image(path)
    assert image.shape == (40, 20, 3)
    assert image[:20].mean() > 0.9 and image[20:].mean() < 0.1  # the bright half is now on top
    out = tmp_path / "out"
    predict(_options(checkpoint, path, out))
    assert np.load(out / "rotated_depth.npy").shape == (40, 20)


def test_ply_has_one_vertex_per_pixel_and_a_correct_header(checkpoint, photos, tmp_path):
    out = tmp_path / "out"
    fx, fy, cx, cy = 30.0, 32.0, 29.5, 19.5
    predict(_options(checkpoint, photos / "a_rgb.jpg", out, intrinsics=f"{fx},{fy},{cx},{cy}"))
    data = (out / "a_rgb.ply").read_bytes()
    header, _, body = data.partition(b"end_header\n")
    lines = header.decode().splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    assert "element vertex 2400" in lines  # 40 × 60 pixels
    assert [line.split()[-1] for line in lines if line.startswith("property")] == [
        "x",
        "y",
        "z",
        "red",
        "green",
        "blue",
    ]
    vertex = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1")])
    points = np.frombuffer(body, dtype=vertex)
    depth = np.load(out / "a_rgb_depth.npy")
    assert len(points) == 2400
    first = points[0]  # pixel (row 0, column 0)
    assert first["z"] == pytest.approx(depth[0, 0])
    assert first["x"] == pytest.approx((0 - cx) * depth[0, 0] / fx, rel=1e-5)
    assert first["y"] == pytest.approx((0 - cy) * depth[0, 0] / fy, rel=1e-5)


def test_intrinsics_from_kitti_and_scannet_files(tmp_path):
    kitti = tmp_path / "calib_cam_to_cam.txt"
    kitti.write_text(
        "calib_time: 09-Jan-2012 13:57:47\nS_rect_02: 1.242000e+03 3.750000e+02\n"
        "P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 "
        "1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03\n"
    )
    k = parse_intrinsics(str(kitti)).for_size(375 // 2, 1242 // 2)  # half-size input: intrinsics halve
    assert k.fx == pytest.approx(721.5377 / 2, rel=1e-3) and k.cx == pytest.approx(609.5593 / 2, rel=1e-3)
    scannet = tmp_path / "intrinsic_color.txt"
    scannet.write_text("1169.62 0 646.3 0\n0 1167.1 489.9 0\n0 0 1 0\n0 0 0 1\n")
    s = parse_intrinsics(str(scannet))
    assert (s.fx, s.fy, s.cx, s.cy) == (1169.62, 1167.1, 646.3, 489.9)
    with pytest.raises(ConfigError, match="fx,fy,cx,cy"):
        parse_intrinsics("1,2,3")


def test_video_gives_side_by_side_depth_video(checkpoint, tmp_path):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 32))
    for i in range(5):
        writer.write(np.full((32, 64, 3), 40 * i, dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    summary = predict(_options(checkpoint, video, out, batch_size=2))
    assert summary.written == 5 and len(_rows(out)) == 5
    capture = cv2.VideoCapture(str(out / "clip_depth.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) == 128  # RGB | depth
    capture.release()


def test_slim_checkpoint_loads_weights_only_without_training_state(checkpoint):
    raw = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert raw["format"] == "lifelong-monodepth/stage"
    assert not {"optimizer_states", "lr_schedulers", "loops", "callbacks"} & set(raw)
    model = load_model(checkpoint)
    assert list(model.domains) == ["N", "K"] and model.domains["K"].depth_scale == 256.0
    assert model.results["N"]["prior"]["rmse"] == 0.25
    assert load_checkpoint_file(checkpoint)["stage"]["name"] == "NK"


def test_inspect_prints_domains_order_backbone_and_results(checkpoint, capsys):
    from lifelong_monodepth.inference.inspect import main

    main([str(checkpoint)])
    printed = capsys.readouterr().out
    for text in ("tiny_nyu", "tiny_kitti", "learned order NK", "mobilenetv3_small_050", "prototype", "0.250"):
        assert text in printed, text


def test_bad_arguments_fail_with_one_line(checkpoint, capsys):
    from lifelong_monodepth.inference.predict import main

    with pytest.raises(SystemExit) as exit_info:
        main([f"ckpt={checkpoint}", "input=x.png", "batchsize=2"])
    assert exit_info.value.code == 2
    assert "batchsize" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([f"ckpt={checkpoint}"])
    assert "missing input=" in capsys.readouterr().err


@pytest.mark.parametrize(("fmt", "domain"), [("onnx", "all"), ("torchscript", "K")])
def test_export_matches_pytorch(checkpoint, photos, tmp_path, fmt, domain):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    from lifelong_monodepth.inference.export import ExportOptions, export

    report = export(
        ExportOptions(
            ckpt=str(checkpoint), format=fmt, domain=domain, output=str(tmp_path), images=str(photos)
        )
    )
    assert Path(report["file"]).is_file()
    assert report["dynamic_shapes"] is True
    assert any(name.startswith("image") for name in report["checks"])
    assert len(report["checks"]) >= 3
    for diffs in report["checks"].values():
        for _, relative in diffs.values():
            assert relative < 1e-4


def test_cpu_prediction_uses_channels_last_by_default_with_the_same_depth(checkpoint, photos):
    """``channels_last=auto`` means NHWC on CPU too (faster oneDNN convolutions): same depth as NCHW."""
    from lifelong_monodepth.inference.predictor import DepthPredictor

    image = read_image(photos / "a_rgb.jpg")
    results = {}
    for flag in ("auto", "false"):
        predictor = DepthPredictor(load_model(checkpoint), domain="N", device="cpu", channels_last=flag)
        assert predictor.channels_last == (flag == "auto")
        weight = next(p for p in predictor.net.parameters() if p.dim() == 4)
        assert weight.is_contiguous(memory_format=torch.channels_last) == (flag == "auto")
        results[flag] = predictor([image])[0].depth
    np.testing.assert_allclose(results["auto"], results["false"], rtol=1e-4, atol=1e-4)
