"""The multi-domain network: head growth, selective head execution, depth ranges, fusion shapes."""

import pytest
import torch

from lifelong_monodepth.models.encoder import Encoder
from lifelong_monodepth.models.heads import DomainPredictor
from lifelong_monodepth.models.network import MultiDomainDepthNet


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    torch.manual_seed(0)
    return Encoder("resnet18", pretrained=False)


def make_net(encoder: Encoder) -> MultiDomainDepthNet:
    import copy

    return MultiDomainDepthNet(
        copy.deepcopy(encoder), fusion={"mid_channels": 8, "out_channels": 16}, head={"hidden_channels": 8}
    )


def test_fused_features_at_half_resolution_and_heads_in_range(encoder: Encoder) -> None:
    net = make_net(encoder).eval()
    net.add_domain("N", 0.1, 10.0)
    net.add_domain("K", 0.5, 80.0)
    out = net(torch.rand(2, 3, 64, 96))
    assert out.fused.shape == (2, 16, 32, 48)
    assert out.depth["N"].shape == out.log_var["N"].shape == (2, 1, 32, 48)
    assert float(out.depth["N"].min()) >= 0.1 and float(out.depth["N"].max()) <= 10.0
    assert float(out.depth["K"].min()) >= 0.5 and float(out.depth["K"].max()) <= 80.0


def test_adding_a_head_keeps_old_heads_bit_identical(encoder: Encoder) -> None:
    net = make_net(encoder)
    net.add_domain("N", 0.1, 10.0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.add_domain("K", 0.5, 80.0)
    after = net.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert any(k.startswith("heads.K.") for k in after)
    head = net.heads["N"]
    assert net.add_domain("N", 0.1, 10.0) is head  # re-adding keeps the trained head


def test_only_requested_heads_run(encoder: Encoder) -> None:
    net = make_net(encoder).eval()
    for letter in "NKS":
        net.add_domain(letter, 0.1, 10.0)
    calls: dict[str, int] = {letter: 0 for letter in "NKS"}
    for letter in "NKS":
        net.heads[letter].register_forward_hook(
            lambda *_, letter=letter: calls.__setitem__(letter, calls[letter] + 1)
        )
    out = net(torch.rand(1, 3, 64, 64), domains=["K"])
    assert calls == {"N": 0, "K": 1, "S": 0}
    assert list(out.depth) == ["K"]
    net(torch.rand(1, 3, 64, 64))
    assert calls == {"N": 1, "K": 2, "S": 1}
    with pytest.raises(KeyError, match="No head for domain 'X'"):
        net(torch.rand(1, 3, 64, 64), domains=["X"])


def test_head_parameter_count_matches_the_paper() -> None:
    """The paper's head (64 channels in, 5×5 convs) has 208,258 parameters."""
    head = DomainPredictor(in_channels=64, hidden_channels=64, kernel_size=5)
    assert sum(p.numel() for p in head.parameters()) == 208_258


@pytest.mark.parametrize(
    "mode, encoder_moves, fusion_moves",
    [
        ("none", True, True),
        ("encoder", False, True),
        ("shared", False, False),
    ],
)
def test_freeze_shared_bn_keeps_shared_statistics(mode: str, encoder_moves: bool, fusion_moves: bool) -> None:
    from lifelong_monodepth.training.module import LifelongDepthModule

    net = {
        "_target_": "lifelong_monodepth.models.network.MultiDomainDepthNet",
        "encoder": {"backbone": "resnet18", "pretrained": False},
        "fusion": {"mid_channels": 8, "out_channels": 16},
        "head": {"hidden_channels": 8},
    }
    module = LifelongDepthModule(net=net, freeze_shared_bn=mode)
    module.net.add_domain("N", 0.1, 10.0)
    module.set_current(["N"])

    def stats(part: torch.nn.Module) -> list[torch.Tensor]:
        return [m.running_mean.clone() for m in part.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    before = stats(module.net.encoder), stats(module.net.fusion), stats(module.net.heads["N"])
    module.train()
    module(torch.rand(2, 3, 64, 64) * 5, domains=["N"])
    after = stats(module.net.encoder), stats(module.net.fusion), stats(module.net.heads["N"])
    moved = [
        any(not torch.equal(a, b) for a, b in zip(x, y, strict=True))
        for x, y in zip(before, after, strict=True)
    ]
    assert moved == [encoder_moves, fusion_moves, True]  # the current head always learns its statistics


def test_freeze_shared_bn_rejects_unknown_values() -> None:
    from lifelong_monodepth.training.module import LifelongDepthModule

    with pytest.raises(ValueError, match="freeze_shared_bn must be one of"):
        LifelongDepthModule(net={"_target_": "torch.nn.Identity"}, freeze_shared_bn="all")


@pytest.mark.parametrize(("stage_index", "encoder_moves"), [(0, True), (1, False), (2, False)])
def test_freeze_shared_bn_from_stage_lets_the_first_stage_set_the_statistics(
    stage_index: int, encoder_moves: bool
) -> None:
    """``freeze_shared_bn_from_stage=2``: the first stage updates the encoder's statistics, later ones not."""
    from lifelong_monodepth.training.module import LifelongDepthModule

    net = {
        "_target_": "lifelong_monodepth.models.network.MultiDomainDepthNet",
        "encoder": {"backbone": "resnet18", "pretrained": False},
        "fusion": {"mid_channels": 8, "out_channels": 16},
        "head": {"hidden_channels": 8},
    }
    module = LifelongDepthModule(net=net, freeze_shared_bn="encoder", freeze_shared_bn_from_stage=2)
    module.net.add_domain("N", 0.1, 10.0)
    module.set_current(["N"])
    module.stage_index = stage_index
    norms = [m for m in module.net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    module.train()
    module(torch.rand(2, 3, 64, 64) * 5, domains=["N"])
    moved = any(not torch.equal(m.running_mean, b) for m, b in zip(norms, before, strict=True))
    assert moved is encoder_moves
    assert all(m.training is encoder_moves for m in norms)


def test_freeze_shared_bn_from_stage_rejects_zero() -> None:
    from lifelong_monodepth.training.module import LifelongDepthModule

    with pytest.raises(ValueError, match="freeze_shared_bn_from_stage must be 1"):
        LifelongDepthModule(net={"_target_": "torch.nn.Identity"}, freeze_shared_bn_from_stage=0)


def test_head_init_newest_copies_the_newest_heads_weights_but_not_its_range() -> None:
    from lifelong_monodepth.models.network import MultiDomainDepthNet

    def build(init: str) -> MultiDomainDepthNet:
        torch.manual_seed(0)
        return MultiDomainDepthNet(
            {"backbone": "resnet18", "pretrained": False},
            {"mid_channels": 8, "out_channels": 16},
            {"hidden_channels": 8, "init": init},
        )

    warm, fresh = build("newest"), build("fresh")
    for net in (warm, fresh):
        net.add_domain("K", 0.5, 80.0)
        with torch.no_grad():  # a trained K head: anything but the initial weights
            for p in net.heads["K"].parameters():
                p.add_(1.0)
        net.add_domain("S", 0.1, 6.0)
    k, s = warm.heads["K"].state_dict(), warm.heads["S"].state_dict()
    assert all(torch.equal(k[name], s[name]) for name in k if name != "depth_range")
    assert s["depth_range"].tolist() == pytest.approx([0.1, 6.0])
    k_fresh, s_fresh = fresh.heads["K"].state_dict(), fresh.heads["S"].state_dict()
    assert not all(torch.equal(k_fresh[name], s_fresh[name]) for name in k_fresh if name != "depth_range")
    images = torch.rand(1, 3, 64, 64)
    warm.eval()
    out = warm(images, domains=["K", "S"])
    assert not torch.equal(out.depth["K"], out.depth["S"])  # same weights, other range


def test_head_init_rejects_unknown_values() -> None:
    from lifelong_monodepth.models.network import MultiDomainDepthNet

    with pytest.raises(ValueError, match="model.net.head.init must be one of"):
        MultiDomainDepthNet({"backbone": "resnet18", "pretrained": False}, None, {"init": "oldest"})
