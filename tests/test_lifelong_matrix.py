"""Forgetting, backward/forward transfer and the long-table round trip on hand-worked 3×3 matrices."""

import math

import numpy as np
import pandas as pd
import pytest

from lifelong_monodepth.evaluation.lifelong_matrix import (
    LifelongMatrix,
    average_final,
    backward_transfer,
    forgetting,
    forward_transfer,
)

NAN = float("nan")
# RMSE (lower is better); rows: after N, after NK, after NKS; columns: N, K, S.
# Above the diagonal: the metric before the domain was learned (forward transfer).
RMSE = np.array(
    [
        [1.0, 5.0, 6.0],
        [1.5, 2.0, 5.5],
        [1.8, 2.1, 3.0],
    ]
)
RMSE_INIT = np.array([7.0, 8.0, 9.0])
# δ1 (higher is better)
DELTA1 = np.array(
    [
        [0.90, 0.20, 0.10],
        [0.80, 0.85, 0.30],
        [0.70, 0.80, 0.95],
    ]
)
DELTA1_INIT = np.array([0.05, 0.10, 0.15])


def test_forgetting_rmse() -> None:
    # N: 1.8 - 1.0 = 0.8; K: 2.1 - 2.0 = 0.1; S learned last -> NaN
    values = forgetting(RMSE, higher_is_better=False)
    np.testing.assert_allclose(values[:2], [0.8, 0.1])
    assert math.isnan(values[2])


def test_forgetting_delta1_is_positive_when_worse() -> None:
    # N: 0.90 - 0.70 = 0.20; K: 0.85 - 0.80 = 0.05
    values = forgetting(DELTA1, higher_is_better=True)
    np.testing.assert_allclose(values[:2], [0.20, 0.05])
    assert math.isnan(values[2])


def test_relative_forgetting() -> None:
    np.testing.assert_allclose(forgetting(RMSE, False, relative=True)[:2], [0.8 / 1.0, 0.1 / 2.0])
    np.testing.assert_allclose(forgetting(DELTA1, True, relative=True)[:2], [0.20 / 0.90, 0.05 / 0.85])


def test_backward_transfer() -> None:
    # RMSE: mean(1.0 - 1.8, 2.0 - 2.1) = -0.45 (negative: the model got worse on old domains)
    assert backward_transfer(RMSE, higher_is_better=False) == pytest.approx(-0.45)
    # δ1: mean(0.70 - 0.90, 0.80 - 0.85) = -0.125
    assert backward_transfer(DELTA1, higher_is_better=True) == pytest.approx(-0.125)
    improved = np.array([[2.0, NAN], [1.0, 1.0]])
    assert backward_transfer(improved, higher_is_better=False) == pytest.approx(1.0)


def test_forward_transfer() -> None:
    # RMSE: K before learning 5.0 vs 8.0 -> +3.0; S before learning 5.5 vs 9.0 -> +3.5; mean 3.25
    assert forward_transfer(RMSE, RMSE_INIT, higher_is_better=False) == pytest.approx(3.25)
    # δ1: 0.20 - 0.10 = 0.10; 0.30 - 0.15 = 0.15; mean 0.125
    assert forward_transfer(DELTA1, DELTA1_INIT, higher_is_better=True) == pytest.approx(0.125)


def test_forward_transfer_skips_missing_and_is_nan_when_nothing() -> None:
    partial = RMSE.copy()
    partial[0, 1] = NAN
    assert forward_transfer(partial, RMSE_INIT, False) == pytest.approx(3.5)
    upper_nan = np.where(np.triu(np.ones((3, 3)), 1) > 0, NAN, RMSE)
    assert math.isnan(forward_transfer(upper_nan, RMSE_INIT, False))
    with pytest.raises(ValueError):
        forward_transfer(RMSE, RMSE_INIT[:2], False)


def test_average_final() -> None:
    assert average_final(RMSE) == pytest.approx((1.8 + 2.1 + 3.0) / 3)
    assert average_final(DELTA1) == pytest.approx((0.70 + 0.80 + 0.95) / 3)


def test_single_stage_has_no_forgetting() -> None:
    one = RMSE[:1]
    assert np.isnan(forgetting(one, False)).all()
    assert math.isnan(backward_transfer(one, False))


def test_partial_run_only_counts_stages_seen() -> None:
    two = RMSE[:2]  # after N and NK; S not learned yet
    values = forgetting(two, False)
    assert values[0] == pytest.approx(0.5) and np.isnan(values[1:]).all()
    # FWT uses R[0, 1] and R[1, 2]: both exist
    assert forward_transfer(two, RMSE_INIT, False) == pytest.approx(3.25)


def long_frame() -> pd.DataFrame:
    rows = []
    for j, domain in enumerate("NKS"):
        rows.append(("init", domain, "prior", "rmse", RMSE_INIT[j]))
        for i, stage in enumerate(["N", "NK", "NKS"]):
            rows.append((stage, domain, "prior", "rmse", RMSE[i, j]))
            rows.append((stage, domain, "prior", "delta1", DELTA1[i, j]))
            rows.append((stage, domain, "auto", "rmse", RMSE[i, j] + 1))
    return pd.DataFrame(rows, columns=["stage", "domain", "mode", "metric", "value"])


def test_from_long_filters_mode_and_keeps_order() -> None:
    matrix = LifelongMatrix.from_long(long_frame(), mode="prior")
    assert matrix.domains == ["N", "K", "S"]
    assert matrix.stages == ["N", "NK", "NKS"]
    assert set(matrix.metrics) == {"rmse", "delta1"}
    np.testing.assert_allclose(matrix["rmse"], RMSE)
    np.testing.assert_allclose(matrix["delta1"], DELTA1)
    np.testing.assert_allclose(matrix.reference["rmse"], RMSE_INIT)
    auto = LifelongMatrix.from_long(long_frame(), mode="auto")
    np.testing.assert_allclose(auto["rmse"], RMSE + 1)
    assert auto.mode == "auto" and auto.reference == {}


def test_from_long_missing_cells_are_nan_and_last_row_wins() -> None:
    frame = long_frame()
    frame = frame[~((frame["stage"] == "N") & (frame["domain"] == "S"))]
    frame = pd.concat([frame, pd.DataFrame([("NK", "N", "prior", "rmse", 42.0)], columns=frame.columns)])
    matrix = LifelongMatrix.from_long(frame)
    assert math.isnan(matrix["rmse"][0, 2])
    assert matrix["rmse"][1, 0] == 42.0


def test_long_round_trip() -> None:
    matrix = LifelongMatrix.from_long(long_frame(), mode="prior")
    long = matrix.to_long()
    assert list(long.columns) == ["stage", "domain", "mode", "metric", "value"]
    assert set(long["mode"]) == {"prior"}
    assert len(long) == 3 + 9 + 9
    again = LifelongMatrix.from_long(long)
    assert again.domains == matrix.domains and again.stages == matrix.stages
    for name in matrix.metrics:
        np.testing.assert_allclose(again[name], matrix[name])
    np.testing.assert_allclose(again.reference["rmse"], RMSE_INIT)


def test_to_long_leaves_out_nan() -> None:
    matrix = LifelongMatrix(["N", "K"], ["N", "NK"], {"rmse": np.array([[1.0, NAN], [1.2, 2.0]])})
    long = matrix.to_long()
    assert len(long) == 3
    assert not ((long["stage"] == "N") & (long["domain"] == "K")).any()


def test_shape_validation() -> None:
    with pytest.raises(ValueError, match="shape"):
        LifelongMatrix(["N", "K"], ["N"], {"rmse": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="columns"):
        LifelongMatrix.from_long(pd.DataFrame({"stage": ["N"], "value": [1.0]}))
