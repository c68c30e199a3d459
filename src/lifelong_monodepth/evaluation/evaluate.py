"""Evaluate a model on domains: with the domain prior (oracle head) and with automatic selection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from lifelong_monodepth.evaluation.metrics import DepthMetrics
from lifelong_monodepth.evaluation.scoring import score_batch
from lifelong_monodepth.models.selection import DomainSelector

if TYPE_CHECKING:
    from lifelong_monodepth.data.datamodule import LifelongDataModule
    from lifelong_monodepth.training.module import LifelongDepthModule


@dataclass
class DomainEvaluation:
    """Metrics of one domain's test set; ``auto`` is absent when no selector was given."""

    domain: str
    prior: dict[str, float] | None
    auto: dict[str, float] | None
    true: list[str] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)
    unknown: list[bool] = field(default_factory=list)

    @property
    def selection_accuracy(self) -> float:
        if not self.chosen:
            return float("nan")
        return sum(t == c for t, c in zip(self.true, self.chosen, strict=True)) / len(self.chosen)

    @property
    def unknown_fraction(self) -> float:
        """Share of the images the selector flagged as belonging to none of the learned domains."""
        return sum(self.unknown) / len(self.unknown) if self.unknown else float("nan")


def _metrics(
    info: dict[str, Any], protocol: str, device: torch.device, median_scaling: bool = False
) -> DepthMetrics:
    return DepthMetrics(
        min_depth=info["min_depth"],
        max_depth=info["max_depth"],
        crop=info["eval_crop"],
        protocol=protocol,
        median_scaling=median_scaling,
        sync_on_compute=False,  # under DDP rank 0 evaluates alone: no collective with idle ranks
    ).to(device)


def evaluation_options(evaluation: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`evaluate_domains` taken from an ``evaluation`` config."""
    evaluation = evaluation or {}
    return {
        "protocol": str(evaluation.get("protocol", "standard")),
        "split": str(evaluation.get("split", "test")),
        "limit_batches": evaluation.get("limit_batches"),
        "median_scaling": bool(evaluation.get("median_scaling", False)),
    }


def protocol_label(evaluation: Any) -> str:
    """What a results file says produced it: ``standard``, ``paper``, plus ``+median_scaling`` if on."""
    options = evaluation_options(evaluation)
    suffix = "+median_scaling" if options["median_scaling"] else ""
    return options["protocol"] + suffix


@torch.no_grad()
def evaluate_domain(
    module: LifelongDepthModule,
    loader: Any,
    domain_info: dict[str, Any],
    selector: DomainSelector | None,
    protocol: str = "standard",
    limit_batches: int | None = None,
    median_scaling: bool = False,
) -> DomainEvaluation:
    """One pass over a test loader; the encoder runs once per batch for both modes.

    Metrics always use the *true* domain's cap and crop (the protocol belongs to the test set);
    in ``auto`` mode each image's depth comes from the head its selector chose. Ground truth is
    scored at its native size, whatever sizes a batch mixes (``scoring.score_batch``).
    ``prior`` is ``None`` for a domain the model has no head for yet (forward transfer).
    """
    letter = domain_info["letter"]
    paper_eval = domain_info.get("paper_eval")
    net = module.net
    was_training = net.training
    net.eval()
    has_head = letter in net.heads
    prior = _metrics(domain_info, protocol, module.device, median_scaling) if has_head else None
    auto = _metrics(domain_info, protocol, module.device, median_scaling) if selector is not None else None
    result = DomainEvaluation(domain=letter, prior=None, auto=None)
    for batch_index, batch in enumerate(loader):
        if limit_batches is not None and batch_index >= limit_batches:
            break
        images = batch["image"].to(module.device)
        features, size = net.features(images), (images.shape[-2] // 2, images.shape[-1] // 2)
        fused = net.fuse(features, size)  # the pre-domain map (with domain_bn: the shared BatchNorm set)
        # One encoder pass; the selector reads the levels only when its descriptor needs them.
        levels = list(features) if auto is not None and selector.needs_levels else None
        if prior is not None:
            own = net.fuse(features, size, letter) if net.domain_bn else fused
            score_batch(prior, net.run_heads(own, [letter]).depth[letter], batch, paper_eval)
        if auto is not None:
            routing = selector.route(net, fused, levels)
            chosen = routing.letters
            for head in dict.fromkeys(chosen):
                rows = [i for i, c in enumerate(chosen) if c == head]
                index = torch.tensor(rows, device=images.device)
                if net.domain_bn:  # the chosen head reads the map fused under its own set
                    part = net.fuse([f.index_select(0, index) for f in features], size, head)
                else:
                    part = fused.index_select(0, index)
                out = net.run_heads(part, [head])
                score_batch(auto, out.depth[head], batch, paper_eval, rows=rows)
            result.true += [letter] * len(chosen)
            result.chosen += chosen
            result.unknown += [bool(u) for u in routing.unknown.tolist()]
    net.train(was_training)
    result.prior = _to_floats(prior.compute()) if prior is not None else None
    result.auto = _to_floats(auto.compute()) if auto is not None else None
    return result


def evaluate_domains(
    module: LifelongDepthModule,
    datamodule: LifelongDataModule,
    letters: Sequence[str],
    selector: DomainSelector | None,
    protocol: str = "standard",
    split: str = "test",
    limit_batches: int | None = None,
    median_scaling: bool = False,
) -> dict[str, DomainEvaluation]:
    results = {}
    for letter in letters:
        # The checkpoint's cap and crop; the data's own geometry (paper_eval) from the domain config.
        info = {**_info_from_domain(datamodule, letter), **(module.domain_info.get(letter) or {})}
        results[letter] = evaluate_domain(
            module,
            datamodule.eval_loader(letter, split),
            info,
            selector,
            protocol,
            limit_batches,
            median_scaling,
        )
    return results


def _info_from_domain(datamodule: LifelongDataModule, letter: str) -> dict[str, Any]:
    domain = datamodule.domain(letter)
    return {
        "letter": letter,
        "min_depth": domain.min_depth,
        "max_depth": domain.max_depth,
        "eval_crop": domain.eval_crop,
        "paper_eval": domain.paper_eval,
    }


def _to_floats(values: dict[str, torch.Tensor]) -> dict[str, float]:
    return {name: float(value) for name, value in values.items()}
