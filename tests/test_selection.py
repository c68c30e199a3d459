"""The default selector (Mahalanobis on channel statistics): routing, unknown flag, checkpoint round trip."""

import math
from pathlib import Path

import pytest
import torch

from lifelong_monodepth.evaluation.evaluate import DomainEvaluation
from lifelong_monodepth.evaluation.results import ResultsTable
from lifelong_monodepth.evaluation.selection_metrics import unknown_detection
from lifelong_monodepth.models.selection import (
    DomainSelector,
    SelectorOptions,
    channel_statistics,
    fit_selector_state,
    mahalanobis,
)

# Three "domains" of fused maps that differ in texture (per-channel mean and spread), not layout.
STYLE = {"N": (0.0, 1.0), "K": (2.0, 1.0), "S": (0.0, 3.0)}


def fused_maps(letter: str, count: int, size: tuple[int, int], seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    offset, spread = STYLE[letter]
    channel_shift = torch.linspace(-0.2, 0.2, 8).view(1, 8, 1, 1)
    return offset + channel_shift + spread * torch.randn(count, 8, *size, generator=generator)


def fitted_state(letters: str = "NK") -> dict:
    features = {
        letter: channel_statistics(fused_maps(letter, 24, (12, 16), seed=i))
        for i, letter in enumerate(letters)
    }
    held_out = {
        letter: channel_statistics(fused_maps(letter, 24, (12, 16), seed=10 + i))
        for i, letter in enumerate(letters)
    }
    return fit_selector_state(features, descriptor="stats", calibration=held_out)


def test_mahalanobis_distance_matches_a_hand_computation() -> None:
    gaussian = {
        "mean": torch.tensor([1.0, 0.0]),
        "scale": torch.tensor([2.0, 1.0]),
        "centroids": torch.tensor([[0.0, 0.0], [1.0, 1.0]]),
        "precision": torch.tensor([[2.0, 0.0], [0.0, 0.5]]),
    }
    x = torch.tensor([[3.0, 2.0]])  # standardised: (1, 2)
    expected = [2 * 1**2 + 0.5 * 2**2, 2 * 0**2 + 0.5 * 1**2]
    assert torch.allclose(mahalanobis(x, gaussian), torch.tensor([expected]))


def test_two_separable_domains_route_perfectly_and_an_unseen_third_is_flagged() -> None:
    selector = DomainSelector("mahalanobis", fitted_state("NK"))
    for letter in "NK":
        for size in ((12, 16), (30, 40), (9, 50)):  # any map size: the descriptor is per channel
            routing = selector.route(None, fused_maps(letter, 20, size, seed=100))
            assert routing.letters == [letter] * 20, (letter, size)
            assert float(routing.unknown.float().mean()) <= 0.1
            assert bool((routing.confidence > 0.99).all())
    unseen = selector.route(None, fused_maps("S", 20, (12, 16), seed=200))
    assert bool(unseen.unknown.all())


def test_every_fitted_selector_flags_unknown_from_the_same_gaussian() -> None:
    state = fitted_state("NK")
    unseen = fused_maps("S", 10, (12, 16), seed=300)
    for name in ("mahalanobis", "prototype", "classifier"):
        assert bool(DomainSelector(name, state).route(None, unseen).unknown.all()), name


def test_selector_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    """Saved like a stage checkpoint and loaded with weights_only=True: same choices, same flags."""
    state = fitted_state("NK")
    path = tmp_path / "stage.ckpt"
    torch.save({"state_dict": {}, "lifelong": {"selector": state}}, path)
    loaded = torch.load(path, weights_only=True)["lifelong"]["selector"]
    batch = torch.cat([fused_maps(letter, 6, (12, 16), seed=7) for letter in "NKS"])
    for name in ("mahalanobis", "prototype", "classifier"):
        before, after = (
            DomainSelector(name, state).route(None, batch),
            DomainSelector(name, loaded).route(None, batch),
        )
        assert before.letters == after.letters
        assert torch.equal(before.unknown, after.unknown)
        assert torch.allclose(before.confidence, after.confidence)
    size = sum(v.numel() * v.element_size() for v in state["gaussian"].values())
    assert size < 64 * 1024  # kilobytes, not images


def test_without_calibration_nothing_is_unknown() -> None:
    features = {letter: channel_statistics(fused_maps(letter, 16, (8, 8), seed=1)) for letter in "NK"}
    state = fit_selector_state(features, descriptor="stats")
    assert math.isinf(float(state["gaussian"]["threshold"].min()))
    routing = DomainSelector("mahalanobis", state).route(None, fused_maps("S", 5, (8, 8), seed=2))
    assert not bool(routing.unknown.any())


def test_selector_options_reject_a_misspelt_key() -> None:
    with pytest.raises(ValueError, match=r"Unknown selector option\(s\) \['quantil'\]"):
        SelectorOptions.from_config({"name": "mahalanobis", "quantil": 0.9})


def test_old_checkpoint_without_gaussian_says_which_selectors_still_work() -> None:
    with pytest.raises(ValueError, match="selector=prototype"):
        DomainSelector("mahalanobis", {"letters": ["N"], "prototypes": torch.zeros(1, 4)})


def test_unknown_detection_separates_learned_and_unlearned_domains() -> None:
    fractions = {"N": {"N": 0.0, "K": 1.0, "S": 0.8}, "NK": {"N": 0.1, "K": 0.0, "S": 0.9}, "NKS": {"N": 0.0}}
    result = unknown_detection(fractions)
    assert result["unlearned"] == pytest.approx((1.0 + 0.8 + 0.9) / 3)
    assert result["learned"] == pytest.approx((0.0 + 0.1 + 0.0 + 0.0) / 4)
    assert result["per_stage"]["N"]["unlearned"] == {"K": 1.0, "S": 0.8}


def test_summary_json_reports_the_unknown_fraction_per_stage(tmp_path: Path) -> None:
    metrics = {"abs_rel": 0.1, "rmse": 1.0, "delta1": 0.9}

    def evaluation(domain: str, learned: bool, unknown: list[bool]) -> DomainEvaluation:
        chosen = ["N"] * len(unknown)
        return DomainEvaluation(
            domain, metrics if learned else None, metrics, [domain] * len(unknown), chosen, unknown
        )

    table = ResultsTable(order=["N", "K"], strategy="lifelong", protocol="standard")
    table.add_stage(
        "N", {"N": evaluation("N", True, [False] * 4), "K": evaluation("K", False, [True, True, True, False])}
    )
    table.add_stage(
        "NK",
        {"N": evaluation("N", True, [False, False, False, True]), "K": evaluation("K", True, [False] * 4)},
    )
    summary = table.finalise(tmp_path)
    saved = (tmp_path / "summary.json").read_text()
    assert '"unknown_fraction"' in saved
    assert summary["unknown_fraction"]["N"] == {"N": 0.0, "K": 0.75}
    assert summary["unknown_detection"]["unlearned"] == pytest.approx(0.75)
    assert summary["unknown_detection"]["learned"] == pytest.approx(0.25 / 3)
    assert "flagged unknown" in (tmp_path / "summary.md").read_text()


def test_margin_applies_when_routing_without_refitting() -> None:
    """``selector.margin`` scales the calibrated thresholds at routing time (config or fitted default)."""
    state = fitted_state("NK")
    unseen = fused_maps("S", 10, (12, 16), seed=400)
    assert bool(DomainSelector("mahalanobis", state).route(None, unseen).unknown.all())
    assert not bool(DomainSelector("mahalanobis", state, margin=1e6).route(None, unseen).unknown.any())
    state["margin"] = 1e6
    assert not bool(DomainSelector("mahalanobis", state).route(None, unseen).unknown.any())


def test_fitted_tensors_are_placed_once_per_device_and_dtype() -> None:
    """Routing copies the fitted state to the descriptors' device and dtype at the first batch only
    (a copy per batch cost a third of a batch-1 forward pass on a GPU); later batches route alike."""
    state = fitted_state("NK")
    batch = torch.cat([fused_maps(letter, 6, (12, 16), seed=7) for letter in "NKS"])
    for name in ("mahalanobis", "prototype", "classifier"):
        selector = DomainSelector(name, state)
        first = selector.route(None, batch)
        placed = {slot: dict(tensors) for slot, tensors in selector._placed.items()}
        second = selector.route(None, batch)
        assert set(selector._placed) == set(placed) and placed, name
        for slot, tensors in selector._placed.items():  # the same tensor objects: no new copies
            assert all(tensors[key] is placed[slot][key] for key in tensors), (name, slot)
        assert first.letters == second.letters and torch.equal(first.unknown, second.unknown)
        assert bool(first.unknown[-6:].all()) and not bool(first.unknown[:12].any())
        # Keyed by the descriptors' device and dtype (channel statistics are float32).
        assert all(slot[1:] == (torch.device("cpu"), torch.float32) for slot in placed), name
