"""data.on_error=skip everywhere (each bad row dropped from evaluation and counted once), replay
without a replay CSV, and missing index files found before any training."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST_OVERRIDES, compose_config, make_domain
from lifelong_monodepth.cli.main import execute
from lifelong_monodepth.data.datamodule import LifelongDataModule
from lifelong_monodepth.data.depth_io import write_depth_png, write_rgb
from lifelong_monodepth.data.domain import DomainConfig
from lifelong_monodepth.data.errors import DataError
from lifelong_monodepth.data.index import read_index
from lifelong_monodepth.training.sequence import SequenceRunner, run_sequence


def test_skipped_eval_row_is_dropped_not_replaced(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, count=6)
    rows = read_index(domain.index["test"], domain.root)
    rows[2].rgb.write_bytes(b"garbage")
    module = LifelongDataModule({"N": domain}, eval_batch_size=4, on_error="skip")
    seen = [int(i) for batch in module.eval_loader("N", "test") for i in batch["index"]]
    assert seen == [0, 1, 3, 4, 5]  # row 2 left out; no image scored twice
    # The same row read through train, replay and the selector-fit rebuild: still one entry.
    for split in ("train", "replay"):
        list(module.eval_loader("N", split))
    assert list(module.skipped()) == [rows[2].key]
    assert "Cannot decode image" in module.skipped()[rows[2].key]
    # A batch whose rows were all skipped is left out, not handed on as an empty batch.
    for row in rows[:4]:
        row.rgb.write_bytes(b"garbage")
    fresh = LifelongDataModule({"N": domain}, eval_batch_size=4, on_error="skip")
    assert [[int(i) for i in b["index"]] for b in fresh.eval_loader("N", "test")] == [[4, 5]]


def test_replay_from_train_with_mixed_sizes_and_a_bad_row_runs_end_to_end(tmp_path: Path) -> None:
    data = tmp_path / "data"
    domains = {
        # NYU-like: the original test view under evaluation=paper (short side 24, centre 20×28)
        "N": DomainConfig(
            **{
                **make_domain(data, "N", size=(32, 64), count=6).__dict__,
                "paper_eval": {"resize_short": 24, "center_crop": (20, 28)},
            }
        ),
        "K": make_domain(data, "K", size=(32, 64), count=6, depth_scale=256.0, max_depth=80.0),
    }
    for domain in domains.values():
        domain.index["replay"].unlink()  # users of the real datasets often have none
    rng = np.random.default_rng(0)
    k_rows = read_index(domains["K"].index["test"], domains["K"].root)
    for row in k_rows[1::2]:  # raw KITTI: drives of different frame sizes in one split
        write_rgb(row.rgb, rng.integers(0, 255, (31, 62, 3), dtype=np.uint8))
        write_depth_png(row.depth, rng.uniform(2, 70, (31, 62)).astype(np.float32), 256.0)
    k_rows[4].rgb.write_bytes(k_rows[4].rgb.read_bytes()[:40])  # a truncated PNG
    out = tmp_path / "run"
    overrides = [
        *FAST_OVERRIDES,
        "order=NK",
        "data.on_error=skip",
        "data.eval_batch_size=6",
        "strategy.callbacks.replay.source=train",
        "strategy.callbacks.replay.memory_per_domain=3",
    ]
    run_sequence(compose_config(out, overrides, domains))
    assert (out / "checkpoints" / "NK.ckpt").is_file()
    skipped = json.loads((out / "results" / "skipped_files.json").read_text())
    assert list(skipped) == [k_rows[4].key] and "truncated" in skipped[k_rows[4].key]
    summary = json.loads((out / "results" / "summary.json").read_text())
    assert np.isfinite(summary["final"]["K"]["prior"]["rmse"])
    # mode=test on the checkpoint, the paper protocol, the default evaluation batch size
    ckpt = out / "checkpoints" / "NK.ckpt"
    test_overrides = [*FAST_OVERRIDES, "mode=test", f"ckpt={ckpt}", "evaluation=paper", "data.on_error=skip"]
    summary = execute(compose_config(tmp_path / "eval", test_overrides, domains))
    assert summary["protocol"] == "paper"
    assert all(np.isfinite(summary["final"][d]["prior"]["rmse"]) for d in "NK")


def test_missing_replay_index_is_found_before_training(tmp_path: Path) -> None:
    domains = {"N": make_domain(tmp_path / "data", "N", size=(32, 64), count=6)}
    domains["N"].index["replay"].unlink()
    cfg = compose_config(tmp_path / "run", [*FAST_OVERRIDES, "order=N"], domains)
    with pytest.raises(
        DataError, match=r"domain N \(tiny_n\): replay: .*replay\.csv(.|\n)*replay\.source=train"
    ):
        SequenceRunner(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_real_domain_without_index_points_to_its_importer(tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path / "run",
        [*FAST_OVERRIDES, "benchmark=real", "order=NK", f"paths.index_dir={tmp_path}/index"],
    )
    with pytest.raises(DataError) as err:
        SequenceRunner(cfg)
    message = str(err.value)
    assert "nyu/train.csv" in message and "kitti/test.csv" in message
    assert "python -m lifelong_monodepth.data.prepare nyu --source" in message
    assert "synthetic" not in message


def test_ewc_fisher_reads_mixed_sizes_without_a_replay_index(tmp_path: Path) -> None:
    from lifelong_monodepth.lifelong.base import Stage
    from lifelong_monodepth.lifelong.ewc import EWCCallback
    from lifelong_monodepth.training.sequence import build_module

    domain = make_domain(tmp_path / "data", "K", size=(32, 64), count=4, depth_scale=256.0, max_depth=80.0)
    domain.index["replay"].unlink()
    rng = np.random.default_rng(0)
    for row in read_index(domain.index["train"], domain.root)[1::2]:
        write_rgb(row.rgb, rng.integers(0, 255, (31, 62, 3), dtype=np.uint8))
        write_depth_png(row.depth, rng.uniform(2, 70, (31, 62)).astype(np.float32), 256.0)
    module = build_module(compose_config(tmp_path / "run", FAST_OVERRIDES, {"K": domain}))
    module.add_domain(domain)
    datamodule = LifelongDataModule({"K": domain}, eval_batch_size=4)
    ewc = EWCCallback(max_images=4)
    ewc.on_stage_end(Stage(index=0, name="K", current=["K"]), module, datamodule)
    assert ewc.fisher and all(bool(torch.isfinite(f).all()) for f in ewc.fisher.values())
    assert any(float(f.sum()) > 0 for f in ewc.fisher.values())
