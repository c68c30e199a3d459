"""Precise per-domain fusion statistics: the running values become the plain mean over the batches."""

import torch

from lifelong_monodepth.models.domain_norm import DomainBatchNorm2d
from lifelong_monodepth.models.encoder import Encoder
from lifelong_monodepth.models.network import MultiDomainDepthNet
from lifelong_monodepth.training.precise_bn import recalibrate_domain_statistics


def _net(domain_bn: str | bool = "stats") -> MultiDomainDepthNet:
    torch.manual_seed(0)
    net = MultiDomainDepthNet(Encoder("tf_efficientnet_lite0", pretrained=False), {"domain_bn": domain_bn})
    net.add_domain("N", 0.1, 10.0)
    net.add_domain("S", 0.1, 6.0)
    return net


def _state(net: MultiDomainDepthNet, part: str) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.fusion.state_dict().items() if part in k}


def test_recalibration_is_the_mean_over_batches_and_touches_only_the_stage_domain() -> None:
    net = _net()
    net.train()
    batches = [{"image": torch.rand(3, 3, 32, 48)} for _ in range(3)]
    layers = [m for m in net.fusion.modules() if isinstance(m, DomainBatchNorm2d)]
    inputs: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(layers))}
    handles = [
        layer.register_forward_hook(lambda _m, args, _out, i=i: inputs[i].append(args[0].detach()))
        for i, layer in enumerate(layers)
    ]
    old_n, shared = _state(net, "sets.N."), _state(net, "shared.")

    seen = recalibrate_domain_statistics(net, ["S"], lambda letter: iter(batches))

    for handle in handles:
        handle.remove()
    assert seen == {"S": 9}
    assert net.training  # the caller's mode is restored
    for i, layer in enumerate(layers):  # hand computation: mean of per-batch means / unbiased variances
        means = torch.stack([x.mean(dim=(0, 2, 3)) for x in inputs[i]])
        variances = torch.stack([x.transpose(0, 1).flatten(1).var(dim=1, unbiased=True) for x in inputs[i]])
        s = layer.sets["S"]
        torch.testing.assert_close(s.running_mean, means.mean(0), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(s.running_var, variances.mean(0), rtol=1e-4, atol=1e-5)
        assert s.momentum == 0.1 and s.training  # its momentum and the network's mode are back
    for key, value in {**_state(net, "sets.N."), **_state(net, "shared.")}.items():
        torch.testing.assert_close(value, {**old_n, **shared}[key], rtol=0, atol=0, msg=key)


def test_limits_batches_and_is_a_no_op_without_domain_statistics() -> None:
    net = _net()
    batches = [{"image": torch.rand(2, 3, 32, 48)} for _ in range(4)]
    assert recalibrate_domain_statistics(net, ["N"], lambda letter: iter(batches), max_batches=2) == {"N": 4}
    plain = _net(False)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    assert recalibrate_domain_statistics(plain, ["N"], lambda letter: iter(batches)) == {}
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)
