"""Selection accuracy, confusion matrix and routing gap from known routings."""

import math

import pytest
import torch

from lifelong_monodepth.evaluation.selection_metrics import confusion_matrix, routing_gap, selection_accuracy

TRUE = ["N", "N", "N", "K", "K", "S"]
CHOSEN = ["N", "K", "N", "K", "K", "N"]


def test_selection_accuracy() -> None:
    result = selection_accuracy(TRUE, CHOSEN)
    assert result["overall"] == pytest.approx(4 / 6)
    assert result["per_domain"] == pytest.approx({"N": 2 / 3, "K": 1.0, "S": 0.0})
    assert list(result["per_domain"]) == ["N", "K", "S"]
    assert result["count"] == 6


def test_selection_accuracy_empty_and_mismatch() -> None:
    empty = selection_accuracy([], [])
    assert math.isnan(empty["overall"]) and empty["per_domain"] == {} and empty["count"] == 0
    with pytest.raises(ValueError):
        selection_accuracy(["N"], ["N", "K"])


def test_confusion_matrix() -> None:
    frame = confusion_matrix(TRUE, CHOSEN, labels=["N", "K", "S"])
    assert list(frame.index) == ["N", "K", "S"] and list(frame.columns) == ["N", "K", "S"]
    assert frame.index.name == "true" and frame.columns.name == "chosen"
    expected = [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert frame.to_numpy().tolist() == expected
    assert int(frame.to_numpy().sum()) == len(TRUE)
    # diagonal / row sums are the per-domain accuracies
    per_domain = selection_accuracy(TRUE, CHOSEN)["per_domain"]
    for label in ["N", "K", "S"]:
        assert frame.loc[label, label] / frame.loc[label].sum() == pytest.approx(per_domain[label])


def test_confusion_matrix_default_and_extra_labels() -> None:
    frame = confusion_matrix(["N", "K"], ["K", "S"])
    assert list(frame.index) == ["N", "K", "S"]
    assert frame.loc["N", "K"] == 1 and frame.loc["K", "S"] == 1 and int(frame.to_numpy().sum()) == 2
    unused = confusion_matrix(["N"], ["N"], labels=["N", "K"])
    assert unused.to_numpy().tolist() == [[1, 0], [0, 0]]
    with pytest.raises(ValueError, match="S"):
        confusion_matrix(["N"], ["S"], labels=["N", "K"])


def test_routing_gap() -> None:
    auto = {"rmse": 2.5, "delta1": torch.tensor(0.80), "abs_rel": 0.12, "only_auto": 1.0}
    prior = {"rmse": 2.0, "delta1": 0.85, "abs_rel": 0.10}
    gap = routing_gap(auto, prior)
    assert set(gap) == {"rmse", "delta1", "abs_rel"}
    assert gap["rmse"] == pytest.approx(0.5)  # positive: selection costs accuracy
    assert gap["delta1"] == pytest.approx(-0.05)
    assert gap["abs_rel"] == pytest.approx(0.02)
