"""The selector reading the encoder levels (``selector.levels``), its low-rank covariance, and its
unknown threshold from cross-fitted distances."""

from pathlib import Path

import pytest
import torch

from lifelong_monodepth.models.network import MultiDomainDepthNet
from lifelong_monodepth.models.selection import (
    DomainSelector,
    SelectorOptions,
    cross_fitted_distances,
    describe,
    fit_gaussian,
    fit_selector_state,
    fit_state_from_descriptors,
    mahalanobis,
)

LEVELS = ["enc1", "enc2", "fused"]
# Three "domains" whose fused maps are alike; only the finest encoder level differs (texture).
STYLE = {"N": (0.0, 1.0), "K": (2.0, 1.0), "S": (0.0, 3.0)}


def maps(
    letter: str, count: int, size: tuple[int, int], seed: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(fused, [enc1, enc2]) at an input-dependent ``size``; enc1 carries the domain's style."""
    generator = torch.Generator().manual_seed(seed)
    offset, spread = STYLE[letter]
    h, w = size
    fused = torch.randn(count, 8, h, w, generator=generator)
    shift = torch.linspace(-0.2, 0.2, 6).view(1, 6, 1, 1)
    enc1 = offset + shift + spread * torch.randn(count, 6, h, w, generator=generator)
    enc2 = torch.randn(count, 4, max(h // 2, 1), max(w // 2, 1), generator=generator)
    return fused, [enc1, enc2]


def descriptors(letter: str, count: int, seed: int, size: tuple[int, int] = (12, 16)) -> torch.Tensor:
    fused, levels = maps(letter, count, size, seed)
    return describe(fused, "stats", levels=LEVELS, encoder_levels=levels)


def fitted(letters: str = "NK", **kwargs) -> dict:
    features = {letter: descriptors(letter, 32, seed=i) for i, letter in enumerate(letters)}
    held_out = {letter: descriptors(letter, 24, seed=10 + i) for i, letter in enumerate(letters)}
    return fit_selector_state(features, descriptor="stats", calibration=held_out, levels=LEVELS, **kwargs)


@pytest.mark.parametrize("rank", [None, 4])
def test_separable_only_in_an_encoder_level_routes_perfectly_and_flags_an_unseen_domain(rank) -> None:
    selector = DomainSelector("mahalanobis", fitted("NK", rank=rank))
    assert selector.needs_levels
    for letter in "NK":
        for size in ((12, 16), (30, 40)):  # any input size: the descriptor is per channel
            fused, levels = maps(letter, 20, size, seed=100)
            routing = selector.route(None, fused, levels)
            assert routing.letters == [letter] * 20, (letter, size, rank)
            assert float(routing.unknown.float().mean()) <= 0.15  # a 0.99 quantile of 24 images
    fused, levels = maps("S", 20, (12, 16), seed=200)
    assert bool(selector.route(None, fused, levels).unknown.all())


def test_the_fused_map_alone_cannot_tell_these_domains_apart() -> None:
    """The property the level descriptor adds: with levels=[fused] the same images route by chance."""
    features = {letter: maps(letter, 32, (12, 16), seed=i)[0] for i, letter in enumerate("NK")}
    state = fit_selector_state({k: describe(v, "stats") for k, v in features.items()}, descriptor="stats")
    fused, _ = maps("N", 40, (12, 16), seed=100)
    accuracy = sum(c == "N" for c in DomainSelector("mahalanobis", state).route(None, fused).letters) / 40
    assert accuracy < 0.9


def test_a_level_state_without_levels_says_how_to_encode() -> None:
    selector = DomainSelector("mahalanobis", fitted("NK"))
    fused, _ = maps("N", 2, (12, 16), seed=1)
    with pytest.raises(ValueError, match=r"net\.encode_levels"):
        selector.route(None, fused)


def test_misspelt_level_is_refused_with_the_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'enc9'.*fused, enc1"):
        SelectorOptions.from_config({"levels": ["enc9", "fused"]}).levels  # noqa: B018
    with pytest.raises(ValueError, match="'encoder'"):
        SelectorOptions.from_config({"levels": ["encoder"]})


def test_level_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    state = fitted("NK", rank=4, calibration_folds=4)
    path = tmp_path / "stage.ckpt"
    torch.save({"state_dict": {}, "lifelong": {"selector": state}}, path)
    loaded = torch.load(path, weights_only=True)["lifelong"]["selector"]
    parts = [maps(letter, 6, (12, 16), seed=7) for letter in "NKS"]
    fused = torch.cat([p[0] for p in parts])
    levels = [torch.cat([p[1][i] for p in parts]) for i in range(2)]
    for name in ("mahalanobis", "prototype", "classifier"):
        before = DomainSelector(name, state).route(None, fused, levels)
        after = DomainSelector(name, loaded).route(None, fused, levels)
        assert before.letters == after.letters
        assert torch.equal(before.unknown, after.unknown)
        assert torch.allclose(before.confidence, after.confidence)
    assert loaded["levels"] == LEVELS


def test_low_rank_distance_equals_the_full_inverse_of_its_covariance() -> None:
    """components/variances/residual describe Σ = U diag(v) Uᵀ + r (I − U Uᵀ); the distance is zᵀ Σ⁻¹ z."""
    generator = torch.Generator().manual_seed(0)
    features = {k: torch.randn(40, 10, generator=generator) * torch.linspace(0.5, 3, 10) for k in "AB"}
    g = fit_gaussian(features, shrinkage=0.2, rank=3)
    u, v, r = g["components"].double(), g["variances"].double(), g["residual"].double()
    covariance = u.T @ torch.diag(v) @ u + r * (torch.eye(10, dtype=torch.float64) - u.T @ u)
    full = dict(g, precision=torch.linalg.inv(covariance).float())
    x = torch.randn(5, 10, generator=generator)
    assert torch.allclose(mahalanobis(x, g), mahalanobis(x, full), rtol=1e-4)
    # rank ≥ D is the full shrunk precision (the fused-map default).
    assert "precision" in fit_gaussian(features, shrinkage=0.2, rank=10)


def test_cross_fitted_distances_are_out_of_sample() -> None:
    """Every fitting image gets one distance, from a Gaussian that did not see it: larger than in-sample."""
    features = {letter: descriptors(letter, 30, seed=i) for i, letter in enumerate("NK")}
    out = cross_fitted_distances(features, folds=5, shrinkage=0.1, rank=None)
    assert {k: len(v) for k, v in out.items()} == {"N": 30, "K": 30}
    in_sample = mahalanobis(features["N"], fit_gaussian(features, 0.1))[:, 0]
    assert float(out["N"].mean()) > float(in_sample.mean())
    # Thresholds with cross-fitting but no calibration split: every learned domain gets one.
    state = fit_selector_state(features, descriptor="stats", levels=LEVELS, calibration_folds=5)
    assert bool(torch.isfinite(state["gaussian"]["threshold"]).all())


def test_encode_levels_is_one_pass_and_the_descriptor_has_one_length_at_two_input_sizes() -> None:
    torch.manual_seed(0)
    net = MultiDomainDepthNet(
        {"backbone": "mobilenetv3_small_050", "pretrained": False},
        {"mid_channels": 4, "out_channels": 8, "kernel_size": 3},
        {"hidden_channels": 4, "kernel_size": 3},
    ).eval()
    names = ["enc1", "enc2", "enc3", "enc4", "fused"]
    lengths = set()
    with torch.no_grad():
        for size in ((64, 96), (96, 64)):
            images = torch.rand(2, 3, *size)
            fused, levels = net.encode_levels(images)
            assert torch.equal(fused, net.encode(images))
            assert len(levels) == 4
            lengths.add(describe(fused, "stats", levels=names, encoder_levels=levels).shape[1])
    assert lengths == {2 * (sum(net.encoder.channels) + 8)}


def enc1_and_fused_nk() -> dict[str, dict[str, torch.Tensor]]:
    """Per domain N, K: the enc1 and fused descriptors of 32 images (fit_state_from_descriptors' input)."""
    per_level = {}
    for i, letter in enumerate("NK"):
        fused, levels = maps(letter, 32, (12, 16), seed=i)
        per_level[letter] = {
            "enc1": describe(fused, "stats", levels=["enc1"], encoder_levels=levels),
            "fused": describe(fused, "stats"),
        }
    return per_level


def test_unknown_flag_can_read_other_maps_than_routing() -> None:
    """selector.unknown_levels: routing on enc1 (where N and K differ), unknown on a second Gaussian."""
    options = SelectorOptions.from_config({"levels": ["enc1"], "unknown_levels": ["enc1", "fused"]})
    per_level = enc1_and_fused_nk()
    state = fit_state_from_descriptors(per_level, per_level, options)
    assert state["unknown"]["levels"] == ["enc1", "fused"]
    assert state["unknown"]["gaussian"]["centroids"].shape[1] == 2 * (6 + 8)
    selector = DomainSelector("mahalanobis", state)
    fused, levels = maps("S", 10, (12, 16), seed=9)
    assert bool(selector.route(None, fused, levels).unknown.all())
    fused, levels = maps("K", 10, (12, 16), seed=10)
    assert selector.route(None, fused, levels).letters == ["K"] * 10


def test_a_state_written_before_levels_existed_routes_on_the_fused_map() -> None:
    """Checkpoints of the previous version hold no ``levels``/``unknown``: fused map only, no levels."""
    features = {
        letter: describe(maps(letter, 24, (12, 16), seed=i)[0], "stats") for i, letter in enumerate("NK")
    }
    state = fit_selector_state(features, descriptor="stats", calibration=features)
    del state["levels"]
    selector = DomainSelector("mahalanobis", state)
    assert selector.levels == ["fused"] and not selector.needs_levels
    fused, _ = maps("N", 4, (12, 16), seed=3)
    assert len(selector.route(None, fused).letters) == 4


def test_the_shipped_default_reads_every_encoder_level_and_flags_on_the_fused_map() -> None:
    from omegaconf import OmegaConf

    root = Path(__file__).resolve().parents[1]
    node = OmegaConf.to_container(OmegaConf.load(root / "configs" / "selector" / "mahalanobis.yaml"))
    options = SelectorOptions.from_config(node)
    assert options.levels == ["enc1", "enc2", "enc3", "enc4", "fused"] and options.rank == 16
    assert options.separate_unknown and options.unknown_levels == ["fused"]
    assert options.unknown_own_covariance == 0.8 and options.margin == 1.25


def _spread_domains(count: int, seed: int) -> dict[str, torch.Tensor]:
    """Two 4-d domains of different shapes: A wide along axis 0 and narrow elsewhere, B the reverse."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(count, 4, generator=generator) * torch.tensor([6.0, 0.3, 0.3, 0.3])
    b = torch.randn(count, 4, generator=generator) * torch.tensor([0.3, 3.0, 3.0, 3.0])
    return {"A": a, "B": b + torch.tensor([0.0, 0.0, 0.0, 20.0])}


def test_own_covariance_distance_matches_a_hand_computation() -> None:
    """own_covariance = w: domain l's covariance is w·Σ_l + (1 − w)·Σ_shared (standardised, shrunk)."""
    features = _spread_domains(200, seed=0)
    w, shrinkage = 0.8, 0.1
    g = fit_gaussian(features, shrinkage, own_covariance=w)
    x = torch.cat([features["A"], features["B"]]).double()
    mean, scale = x.mean(0), x.std(0)
    z = {k: (v.double() - mean) / scale for k, v in features.items()}
    residuals = torch.cat([v - v.mean(0) for v in z.values()])
    shared = residuals.T @ residuals / (len(residuals) - 2)
    probe = torch.tensor([[9.0, 1.0, 0.0, 3.0]])
    for i, letter in enumerate("AB"):
        own = torch.cov(z[letter].T)
        blend = w * own + (1 - w) * shared
        covariance = (1 - shrinkage) * blend + shrinkage * blend.diagonal().mean() * torch.eye(4)
        diff = (probe.double() - mean) / scale - z[letter].mean(0)
        expected = diff @ torch.linalg.inv(covariance) @ diff.T
        assert torch.allclose(mahalanobis(probe, g)[0, i].double(), expected[0, 0], rtol=1e-4)
    # w = 0 is the shared covariance (the routing Gaussian's form).
    assert torch.allclose(
        mahalanobis(probe, fit_gaussian(features, shrinkage, own_covariance=0.0)),
        mahalanobis(probe, fit_gaussian(features, shrinkage)),
    )


def test_own_covariance_flags_what_is_unusual_for_the_chosen_domain() -> None:
    """An image near A but off A's narrow axes is unusual for A, not for the pooled shape (B varies
    along those axes): only A's own covariance flags it; A's own images stay known."""
    fit, calibration, test = _spread_domains(200, 0), _spread_domains(48, 1), _spread_domains(400, 2)
    generator = torch.Generator().manual_seed(3)
    off = torch.randn(200, 4, generator=generator) * torch.tensor([6.0, 0.3, 0.3, 0.3])
    off[:, 1] += 6.0  # twenty of A's standard deviations along axis 1, two of B's
    flagged, false_alarms = {}, {}
    for own in (0.0, 0.8):
        options = SelectorOptions.from_config({"levels": ["fused"], "unknown_own_covariance": own})
        fitting = {k: {"fused": v} for k, v in fit.items()}
        held_out = {k: {"fused": v} for k, v in calibration.items()}
        state = fit_state_from_descriptors(fitting, held_out, options)
        assert ("unknown" in state) == (own > 0)  # its own Gaussian; routing keeps the shared one
        selector = DomainSelector("mahalanobis", state)
        routed = selector.route_descriptors(off, unknown_features=off)
        assert set(routed.letters) == {"A"}
        flagged[own] = float(routed.unknown.float().mean())
        own_images = selector.route_descriptors(test["A"], unknown_features=test["A"])
        false_alarms[own] = float(own_images.unknown.float().mean())
    assert flagged[0.8] > 0.9 and flagged[0.0] < 0.5, flagged
    assert false_alarms[0.8] < 0.03, false_alarms


def test_own_covariance_refuses_a_low_rank_covariance() -> None:
    with pytest.raises(ValueError, match="unknown_rank: null"):
        fit_gaussian(_spread_domains(20, 0), 0.1, rank=2, own_covariance=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_gaussian(_spread_domains(20, 0), 0.1, own_covariance=1.5)


def test_one_pass_statistics_equal_the_two_reduction_ones() -> None:
    """The GPU path (one var_mean reduction) gives the CPU path's descriptor, any layout."""
    from lifelong_monodepth.models.selection.features import channel_statistics

    fused = 3.0 + 2.0 * torch.randn(4, 8, 12, 16)
    two = channel_statistics(fused, one_pass=False)
    one = channel_statistics(fused.to(memory_format=torch.channels_last), one_pass=True)
    assert two.shape == (4, 16)
    torch.testing.assert_close(one, two, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(two[:, 8:], fused.std(dim=(2, 3), unbiased=False), rtol=1e-5, atol=1e-5)


def test_routing_describes_a_map_read_by_routing_and_the_flag_once(monkeypatch) -> None:
    """routing reads enc1 + fused, the flag reads fused: three maps described per batch would be a
    repeated reduction (GPU launches); the result equals describing each set on its own."""
    from lifelong_monodepth.models.selection import features as features_module

    options = SelectorOptions.from_config({"levels": ["enc1", "fused"], "unknown_levels": ["fused"]})
    per_level = enc1_and_fused_nk()
    selector = DomainSelector("mahalanobis", fit_state_from_descriptors(per_level, per_level, options))
    fused, levels = maps("K", 6, (12, 16), seed=11)
    expected = selector.route_descriptors(
        describe(fused, "stats", levels=["enc1", "fused"], encoder_levels=levels),
        unknown_features=describe(fused, "stats"),
    )
    described = []
    original = features_module._describe_map
    monkeypatch.setattr(
        features_module,
        "_describe_map",
        lambda feature, *args: described.append(feature.shape) or original(feature, *args),
    )
    routing = selector.route(None, fused, levels)
    assert len(described) == 2  # enc1 and fused, fused not twice
    assert routing.letters == expected.letters == ["K"] * 6
    torch.testing.assert_close(routing.confidence, expected.confidence)
    assert torch.equal(routing.unknown, expected.unknown)
