"""Index parsing, dataset samples, joint augmentation and the DataModule's domain switch."""

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch

from conftest import make_domain
from lifelong_monodepth.data.datamodule import LifelongDataModule
from lifelong_monodepth.data.dataset import DepthDataset
from lifelong_monodepth.data.depth_io import write_depth_png
from lifelong_monodepth.data.domain import DomainConfig, domains_from_config
from lifelong_monodepth.data.errors import ConfigError, DataError
from lifelong_monodepth.data.index import read_index, write_index
from lifelong_monodepth.data.transforms import build_transform


def test_index_resolves_relative_and_keeps_absolute_paths(tmp_path: Path) -> None:
    index = tmp_path / "idx.csv"
    index.write_text(f"rgb,depth\na/1.png,a/1_d.png\n{tmp_path}/abs.png, b/2_d.png \n")
    rows = read_index(index, tmp_path / "root")
    assert rows[0].rgb == tmp_path / "root" / "a" / "1.png"
    assert rows[1].rgb == tmp_path / "abs.png"
    assert rows[1].depth == tmp_path / "root" / "b" / "2_d.png"  # whitespace stripped


def test_index_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Index file not found: .*missing\.csv\. Point"):
        read_index(tmp_path / "missing.csv", tmp_path)
    empty = tmp_path / "empty.csv"
    write_index(empty, [])
    with pytest.raises(DataError, match=r"empty\.csv has no rows"):
        read_index(empty, tmp_path)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("image,gt\na,b\n")
    with pytest.raises(DataError, match=r"wrong\.csv lacks column\(s\) \['rgb', 'depth'\]"):
        read_index(wrong, tmp_path)


def test_sample_has_metric_depth_mask_and_domain(tiny_domain: DomainConfig) -> None:
    sample = DepthDataset(tiny_domain, "test")[0]
    assert sample["image"].shape == (3, 32, 48) and sample["image"].dtype == torch.float32
    assert float(sample["image"].min()) >= 0.0 and float(sample["image"].max()) <= 1.0
    assert sample["depth"].shape == (1, 32, 48)
    assert sample["domain"] == "N"
    assert bool(sample["mask"].all())  # dense ramp, all within max_depth
    assert 0.5 < float(sample["depth"].min()) < float(sample["depth"].max()) < 10.0


def test_eval_keeps_native_depth_while_image_is_resized(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, size=(40, 56))
    domain = DomainConfig(**{**domain.__dict__, "input_size": (32, 32)})
    sample = DepthDataset(domain, "test", train=False)[0]
    assert sample["image"].shape == (3, 32, 32)
    assert sample["depth"].shape == (1, 40, 56)
    train_sample = DepthDataset(domain, "train", train=True)[0]
    assert train_sample["depth"].shape == (1, 32, 32)


def test_joint_augmentation_keeps_image_and_depth_aligned() -> None:
    """A marker drawn in both image and depth lands on the same pixel after flips/crops/rotations."""
    image = np.zeros((48, 64, 3), np.uint8)
    depth = np.full((48, 64), 2.0, np.float32)
    image[10:13, 40:43] = 255
    depth[10:13, 40:43] = 7.0
    augment = [
        A.HorizontalFlip(p=1.0),
        A.Affine(translate_px={"x": 5, "y": -3}, p=1.0),
        A.RandomCrop(40, 56, p=1.0),
        A.ColorJitter(p=1.0),
    ]
    transform = build_transform((48, 64), augment, train=True)  # no rescale: alignment must be exact
    for seed in range(5):
        transform.set_random_seed(seed)
        out = transform(image=image, depth=depth)
        marker_depth = np.argwhere(out["depth"] == 7.0)
        marker_image = np.argwhere(out["image"].max(-1) > 60)  # background stays near 0
        assert len(marker_depth) > 0
        assert set(map(tuple, marker_depth)) == set(map(tuple, marker_image))
        assert set(np.unique(out["depth"])) <= {0.0, 2.0, 7.0}  # nearest: values kept exactly
    # With a rescale the marker is resampled differently (bilinear vs nearest) but stays in place.
    out = build_transform((24, 32), augment[:1], train=True)(image=image, depth=depth)
    centre_depth = np.argwhere(out["depth"] == 7.0).mean(0)
    centre_image = np.argwhere(out["image"].max(-1) > 100).mean(0)
    assert np.abs(centre_depth - centre_image).max() <= 0.75


def test_augmentation_is_seeded_per_sample_and_epoch(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, augment=[{"_target_": "albumentations.ColorJitter", "p": 1.0}])
    a, b = (
        DepthDataset(domain, "train", train=True, seed=3),
        DepthDataset(domain, "train", train=True, seed=3),
    )
    assert torch.equal(a[1]["image"], b[1]["image"])
    b.epoch = 1
    assert not torch.equal(a[1]["image"], b[1]["image"])


def _replace(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def test_bad_inputs_give_clear_errors(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, count=5)
    rows = read_index(domain.index["test"], domain.root)
    _replace(rows[0].rgb, b"not a png at all")
    rows[1].depth.unlink()
    write_depth_png(rows[2].depth, np.ones((10, 10), np.float32), 1000.0)  # wrong size
    import cv2

    cv2.imwrite(str(rows[3].depth), np.full((32, 48), 9, np.uint8))  # 8-bit depth
    write_depth_png(rows[4].depth, np.zeros((32, 48), np.float32), 1000.0)  # all invalid
    dataset = DepthDataset(domain, "test")
    expectations = [
        (r"Cannot decode image .*000_rgb\.png.*corrupt", 0),
        (r"Depth file not found: .*001_depth\.png", 1),
        (r"Depth .*002_depth\.png is 10×10 but image .*002_rgb\.png is 48×32", 2),
        (r"Depth map .*003_depth\.png is uint8, expected a 16-bit PNG", 3),
        (r"Depth map .*004_depth\.png has no valid pixel", 4),
    ]
    for pattern, i in expectations:
        with pytest.raises(DataError, match=pattern):
            dataset[i]


def test_skip_mode_counts_bad_files(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, count=6)
    rows = read_index(domain.index["train"], domain.root)
    _replace(rows[2].rgb, b"garbage")
    dataset = DepthDataset(domain, "train", on_error="skip")
    samples = [dataset[i] for i in range(len(dataset))]
    assert len(samples) == 6 and len(dataset.skipped) == 1
    assert rows[2].key in dataset.skipped  # keyed by the row (both files)


def test_missing_listed_file_fails_before_training(tmp_path: Path) -> None:
    domain = make_domain(tmp_path)
    read_index(domain.index["train"], domain.root)[3].rgb.unlink()
    module = LifelongDataModule({"N": domain})
    with pytest.raises(DataError, match=r"1 file\(s\) listed in .*train\.csv do not exist .*003_rgb\.png"):
        module.dataset("N", "train")
    skipping = LifelongDataModule({"N": domain}, on_error="skip")
    skipping.dataset("N", "train")
    assert len(skipping.skipped()) == 1


def test_datamodule_switches_domain(tmp_path: Path) -> None:
    domains = {
        "N": make_domain(tmp_path, "N"),
        "K": make_domain(tmp_path, "K", size=(32, 64), depth_scale=256.0, max_depth=80.0),
    }
    module = LifelongDataModule(domains, batch_size=2, eval_batch_size=3)
    module.set_current(["N"])
    batch = next(iter(module.train_dataloader()))
    assert batch["domain"] == ["N", "N"] and batch["image"].shape == (2, 3, 32, 48)
    module.set_current(["K"])
    batch = next(iter(module.train_dataloader()))
    assert batch["domain"] == ["K", "K"] and batch["image"].shape == (2, 3, 32, 64)
    assert [b["domain"][0] for b in (next(iter(loader)) for loader in module.val_dataloader())] == ["K"]
    assert next(iter(module.eval_loader("N")))["domain"] == ["N"] * 3
    with pytest.raises(ConfigError, match="Unknown domain letter 'X'; known letters: KN"):
        module.set_current(["X"])


def test_train_order_depends_only_on_seed_and_epoch(tmp_path: Path) -> None:
    domain = make_domain(tmp_path, count=8)

    def order(epoch: int) -> list[int]:
        module = LifelongDataModule({"N": domain}, batch_size=2, seed=5)
        module.set_current(["N"])
        loader = module.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [int(i) for batch in loader for i in batch["index"]]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(1)) == list(range(8))


def test_joint_training_batches_one_domain_at_a_time(tmp_path: Path) -> None:
    """Joint training over domains of different image sizes: every batch is from one domain."""
    domains = {
        "N": make_domain(tmp_path, "N", size=(32, 48), count=7),
        "K": make_domain(tmp_path, "K", size=(32, 96), count=5, depth_scale=256.0, max_depth=80.0),
    }
    module = LifelongDataModule(domains, batch_size=2, seed=3)
    module.set_current(["N", "K"])
    loader = module.train_dataloader()
    seen = {0: [], 1: []}
    for epoch in (0, 1):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            assert len(set(batch["domain"])) == 1 and batch["image"].shape[0] == 2
            seen[epoch].append((batch["domain"][0], tuple(int(i) for i in batch["index"])))
    assert len(seen[0]) == 3 + 2  # 7 N images → 3 batches, 5 K images → 2 (incomplete batches left out)
    assert {d for d, _ in seen[0]} == {"N", "K"}
    assert seen[0] != seen[1]  # reshuffled per epoch, batches of both domains interleaved
    assert [d for d, _ in seen[0]] != sorted(d for d, _ in seen[0]) or [d for d, _ in seen[1]] != sorted(
        d for d, _ in seen[1]
    )


def test_domain_config_validation_names_the_key() -> None:
    base = {
        "letter": "N",
        "name": "n",
        "root": "/d",
        "index": {"train": "a", "test": "b"},
        "depth_scale": 1000,
        "min_depth": 0.1,
        "max_depth": 10,
        "input_size": [32, 32],
    }
    assert domains_from_config({"N": base})["N"].depth_scale == 1000
    with pytest.raises(ConfigError, match=r"`domains.N` is missing \['depth_scale'\]"):
        domains_from_config({"N": {**base, "depth_scale": None}})
    with pytest.raises(ConfigError, match="declares letter 'N'"):
        domains_from_config({"K": base})
