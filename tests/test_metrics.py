"""DepthMetrics against hand computations: masking, capping, pooling, median scaling, protocols."""

import math
import warnings

import numpy as np
import pytest
import torch

from lifelong_monodepth.evaluation.metrics import LOWER_IS_BETTER, METRIC_NAMES, DepthMetrics

# 2×3 example: 0 = no ground truth, 12 > max_depth, 0.05 < min_depth. Predictions 15 and 0.02 on
# valid pixels fall outside [min, max] and must be clamped to 10 and 0.1.
TARGET = [[0.0, 2.0, 12.0], [0.05, 4.0, 8.0]]
PRED = [[3.0, 2.5, 11.0], [1.0, 15.0, 0.02]]
MIN_DEPTH, MAX_DEPTH = 0.1, 10.0


def tensor(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[None, None]  # (1,1,H,W)


def expected(d: np.ndarray, g: np.ndarray) -> dict[str, float]:
    """The textbook formulas, pooled over the given pixels."""
    d, g = np.asarray(d, dtype=np.float64), np.asarray(g, dtype=np.float64)
    ratio = np.maximum(d / g, g / d)
    return {
        "abs_rel": np.mean(np.abs(d - g) / g),
        "sq_rel": np.mean((d - g) ** 2 / g),
        "rmse": np.sqrt(np.mean((d - g) ** 2)),
        "rmse_log": np.sqrt(np.mean((np.log(d) - np.log(g)) ** 2)),
        "log10": np.mean(np.abs(np.log10(d) - np.log10(g))),
        "mae": np.mean(np.abs(d - g)),
        "delta1": np.mean(ratio < 1.25),
        "delta2": np.mean(ratio < 1.25**2),
        "delta3": np.mean(ratio < 1.25**3),
    }


def assert_metrics(values: dict[str, torch.Tensor], reference: dict[str, float], rel: float = 1e-5) -> None:
    assert tuple(values) == METRIC_NAMES
    for name in METRIC_NAMES:
        assert float(values[name]) == pytest.approx(float(reference[name]), rel=rel, abs=1e-7), name


def test_standard_protocol_masks_and_caps_by_hand() -> None:
    metric = DepthMetrics(min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    metric.update(tensor(PRED), tensor(TARGET))
    assert int(metric.count) == 3  # only gt 2, 4, 8 are valid
    # valid pixels: gt 2, 4, 8 with predictions 2.5, 15 -> 10 (cap), 0.02 -> 0.1 (floor)
    assert_metrics(metric.compute(), expected([2.5, 10.0, 0.1], [2.0, 4.0, 8.0]))


def test_hand_values_spelled_out() -> None:
    """A second check of a few entries, with the arithmetic written out."""
    metric = DepthMetrics(min_depth=MIN_DEPTH, max_depth=MAX_DEPTH)
    metric.update(tensor(PRED), tensor(TARGET))
    values = metric.compute()
    abs_rel = (0.5 / 2 + 6.0 / 4 + 7.9 / 8) / 3
    rmse = math.sqrt((0.5**2 + 6.0**2 + 7.9**2) / 3)
    assert float(values["abs_rel"]) == pytest.approx(abs_rel, rel=1e-6)
    assert float(values["rmse"]) == pytest.approx(rmse, rel=1e-6)
    assert float(values["mae"]) == pytest.approx((0.5 + 6.0 + 7.9) / 3, rel=1e-6)
    # max(d/g, g/d): 2.5/2 = 1.25 (not < 1.25, but < 1.25²), 10/4 = 2.5 (not < 1.25³ = 1.953), 8/0.1 = 80
    assert float(values["delta1"]) == 0.0
    assert float(values["delta2"]) == pytest.approx(1 / 3)
    assert float(values["delta3"]) == pytest.approx(1 / 3)
    log_sq = [math.log(2.5 / 2) ** 2, math.log(10 / 4) ** 2, math.log(0.1 / 8) ** 2]
    assert float(values["rmse_log"]) == pytest.approx(math.sqrt(sum(log_sq) / 3), rel=1e-6)


def test_paper_protocol_uses_every_positive_pixel_without_cap() -> None:
    metric = DepthMetrics(min_depth=MIN_DEPTH, max_depth=MAX_DEPTH, crop="garg", protocol="paper")
    metric.update(tensor(PRED), tensor(TARGET))
    assert int(metric.count) == 5  # everything but the 0; no crop, no depth range
    # no cap on 15 or 11, 0.02 stays (only the 1e-3 floor applies)
    assert_metrics(metric.compute(), expected([2.5, 11.0, 1.0, 15.0, 0.02], [2.0, 12.0, 0.05, 4.0, 8.0]))


def test_paper_and_standard_differ() -> None:
    standard = DepthMetrics(MIN_DEPTH, MAX_DEPTH)
    paper = DepthMetrics(MIN_DEPTH, MAX_DEPTH, protocol="paper")
    for metric in (standard, paper):
        metric.update(tensor(PRED), tensor(TARGET))
    assert float(standard.compute()["rmse"]) != pytest.approx(float(paper.compute()["rmse"]))


def test_paper_floors_predictions_at_epsilon() -> None:
    metric = DepthMetrics(None, None, protocol="paper")
    metric.update(torch.tensor([[[0.0, -1.0]]]), torch.tensor([[[1.0, 1.0]]]))
    values = metric.compute()
    assert all(math.isfinite(float(v)) for v in values.values())
    assert float(values["rmse_log"]) == pytest.approx(abs(math.log(1e-3)), rel=1e-6)


def test_no_bounds_keeps_all_positive_ground_truth() -> None:
    metric = DepthMetrics(min_depth=None, max_depth=None)
    metric.update(tensor(PRED), tensor(TARGET))
    assert int(metric.count) == 5
    assert_metrics(metric.compute(), expected([2.5, 11.0, 1.0, 15.0, 0.02], [2.0, 12.0, 0.05, 4.0, 8.0]))


def test_crop_restricts_pixels() -> None:
    target = torch.full((1, 1, 480, 640), 5.0)
    pred = torch.full((1, 1, 480, 640), 5.0)
    pred[..., :45, :] = 50.0  # outside eigen_nyu: must not count
    pred[..., :, 601:] = 50.0
    metric = DepthMetrics(0.1, 10.0, crop="eigen_nyu")
    metric.update(pred, target)
    assert int(metric.count) == (471 - 45) * (601 - 41)
    assert float(metric.compute()["rmse"]) == 0.0
    assert float(metric.compute()["delta1"]) == 1.0


def test_non_finite_ground_truth_is_ignored_but_bad_predictions_show() -> None:
    target = torch.tensor([[[float("nan"), float("inf"), 2.0]]])
    metric = DepthMetrics(None, None)
    metric.update(torch.tensor([[[1.0, 1.0, 2.0]]]), target)
    assert int(metric.count) == 1
    assert float(metric.compute()["rmse"]) == 0.0
    diverged = DepthMetrics(None, None)
    diverged.update(torch.tensor([[[1.0, 1.0, float("nan")]]]), target)
    assert math.isnan(float(diverged.compute()["rmse"]))


def test_pooling_two_updates_equals_one_on_concatenation() -> None:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(5, 1, 6, 7, generator=gen) * 12
    target[target < 1] = 0
    pred = torch.rand(5, 1, 6, 7, generator=gen) * 12
    for reduction in ("pixel", "image"):
        split = DepthMetrics(0.5, 10.0, reduction=reduction)
        whole = DepthMetrics(0.5, 10.0, reduction=reduction)
        split.update(pred[:2], target[:2])
        split.update(pred[2:], target[2:])
        whole.update(pred, target)
        a, b = split.compute(), whole.compute()
        for name in METRIC_NAMES:
            assert float(a[name]) == pytest.approx(float(b[name]), rel=1e-6), (reduction, name)


def test_pixel_pooling_weights_pixels_not_images() -> None:
    # image 1: 1 valid pixel with error 3; image 2: 3 valid pixels with error 0
    target = torch.tensor([[[2.0, 0.0, 0.0, 0.0]], [[2.0, 2.0, 2.0, 0.0]]])
    pred = torch.tensor([[[5.0, 1.0, 1.0, 1.0]], [[2.0, 2.0, 2.0, 1.0]]])
    pixel = DepthMetrics(None, None)
    pixel.update(pred, target)
    assert float(pixel.compute()["rmse"]) == pytest.approx(math.sqrt(9 / 4))
    assert float(pixel.compute()["mae"]) == pytest.approx(3 / 4)
    image = DepthMetrics(None, None, reduction="image")
    image.update(pred, target)
    assert float(image.compute()["rmse"]) == pytest.approx((3 + 0) / 2)
    assert float(image.compute()["mae"]) == pytest.approx((3 + 0) / 2)


def test_image_reduction_by_hand() -> None:
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(3, 4, 5, generator=gen) * 9 + 0.5
    target[0, 0, :3] = 0
    pred = torch.rand(3, 4, 5, generator=gen) * 9 + 0.5
    metric = DepthMetrics(None, None, reduction="image")
    metric.update(pred, target)
    per_image = []
    for i in range(3):
        valid = target[i].numpy() > 0
        per_image.append(expected(pred[i].numpy()[valid], target[i].numpy()[valid]))
    reference = {name: np.mean([p[name] for p in per_image]) for name in METRIC_NAMES}
    assert_metrics(metric.compute(), reference)


def test_median_scaling_by_hand() -> None:
    metric = DepthMetrics(MIN_DEPTH, MAX_DEPTH, median_scaling=True)
    metric.update(tensor(PRED), tensor(TARGET))
    # valid gt 2, 4, 8 (median 4); raw predictions 2.5, 15, 0.02 (median 2.5): ratio 1.6,
    # scaled 4, 24, 0.032, then clamped to 4, 10, 0.1
    ratio = np.median([2.0, 4.0, 8.0]) / np.median([2.5, 15.0, 0.02])
    assert ratio == pytest.approx(1.6)
    d = np.clip(np.array([2.5, 15.0, 0.02]) * ratio, MIN_DEPTH, MAX_DEPTH)
    assert_metrics(metric.compute(), expected(d, [2.0, 4.0, 8.0]))


def test_median_scaling_is_per_image_and_uses_numpy_median() -> None:
    target = torch.tensor([[[1.0, 2.0, 3.0, 4.0]], [[1.0, 2.0, 3.0, 4.0]]])
    pred = torch.tensor([[[2.0, 4.0, 6.0, 8.0]], [[0.5, 1.0, 1.5, 2.0]]])  # ×2 and ×0.5 of the gt
    metric = DepthMetrics(None, None, median_scaling=True)
    metric.update(pred, target)
    assert float(metric.compute()["abs_rel"]) == pytest.approx(0.0, abs=1e-7)
    assert float(metric.compute()["delta1"]) == 1.0
    # even count: the median is the mean of the two middle values, as numpy.median
    target = torch.tensor([[[1.0, 2.0, 3.0, 10.0]]])
    pred = torch.tensor([[[1.0, 1.0, 1.0, 1.0]]])
    metric = DepthMetrics(None, None, median_scaling=True)
    metric.update(pred, target)
    d = np.ones(4) * np.median([1.0, 2.0, 3.0, 10.0])
    assert_metrics(metric.compute(), expected(d, [1.0, 2.0, 3.0, 10.0]))


def test_empty_gives_nan_not_an_error() -> None:
    metric = DepthMetrics(MIN_DEPTH, MAX_DEPTH)
    metric.update(torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3))
    values = metric.compute()
    assert tuple(values) == METRIC_NAMES
    assert all(math.isnan(float(v)) for v in values.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics warns about compute() before update()
        fresh = DepthMetrics(MIN_DEPTH, MAX_DEPTH, reduction="image").compute()
    assert all(math.isnan(float(v)) for v in fresh.values())


def test_empty_image_in_a_batch_contributes_nothing() -> None:
    for reduction in ("pixel", "image"):
        alone = DepthMetrics(MIN_DEPTH, MAX_DEPTH, reduction=reduction)
        padded = DepthMetrics(MIN_DEPTH, MAX_DEPTH, reduction=reduction)
        alone.update(tensor(PRED), tensor(TARGET))
        padded.update(
            torch.cat([tensor(PRED), torch.full_like(tensor(PRED), 7.0)]),
            torch.cat([tensor(TARGET), torch.zeros_like(tensor(TARGET))]),
        )
        for name in METRIC_NAMES:
            assert float(alone.compute()[name]) == pytest.approx(float(padded.compute()[name])), name


def test_shapes_and_errors() -> None:
    with_channel, without = DepthMetrics(MIN_DEPTH, MAX_DEPTH), DepthMetrics(MIN_DEPTH, MAX_DEPTH)
    with_channel.update(tensor(PRED), tensor(TARGET))
    without.update(tensor(PRED)[:, 0], tensor(TARGET)[:, 0])
    assert float(with_channel.compute()["rmse"]) == float(without.compute()["rmse"])
    with pytest.raises(ValueError, match="resize"):
        DepthMetrics().update(torch.ones(1, 1, 2, 3), torch.ones(1, 1, 4, 6))
    with pytest.raises(ValueError):
        DepthMetrics().update(torch.ones(1, 2, 2, 3), torch.ones(1, 2, 2, 3))
    with pytest.raises(ValueError, match="protocol"):
        DepthMetrics(protocol="eigen")
    with pytest.raises(ValueError, match="reduction"):
        DepthMetrics(reduction="mean")
    with pytest.raises(ValueError, match="garg"):
        DepthMetrics(crop="kitti")


def test_states_are_float64_sums_and_reset() -> None:
    metric = DepthMetrics(MIN_DEPTH, MAX_DEPTH)
    metric.update(tensor(PRED), tensor(TARGET))
    assert metric.count.dtype == torch.float64
    assert all(fx is not None and fx.__name__.endswith("sum") for fx in metric._reductions.values())
    assert metric.compute()["rmse"].dtype == torch.float32
    metric.reset()
    assert int(metric.count) == 0


def test_names_and_directions() -> None:
    assert METRIC_NAMES == (
        "abs_rel",
        "sq_rel",
        "rmse",
        "rmse_log",
        "log10",
        "mae",
        "delta1",
        "delta2",
        "delta3",
    )
    assert {"delta1", "delta2", "delta3"}.isdisjoint(LOWER_IS_BETTER)
    assert set(METRIC_NAMES) - LOWER_IS_BETTER == {"delta1", "delta2", "delta3"}
