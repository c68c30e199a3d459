"""Distillation: a frozen copy of the previous model keeps old heads (and features) stable."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.lifelong.base import LifelongStrategy, Stage
from lifelong_monodepth.lifelong.replay import ReplayCallback
from lifelong_monodepth.models.network import MultiDomainDepthNet
from lifelong_monodepth.training.losses import distillation_loss, feature_distillation_loss

if TYPE_CHECKING:
    from lifelong_monodepth.data.datamodule import LifelongDataModule
    from lifelong_monodepth.training.module import LifelongDepthModule


DISTILLATION_INPUTS = ("current", "replay", "both")


class DistillationCallback(LifelongStrategy):
    """At each stage after the first, snapshot the model; pull every old head towards it.

    On the current batch, each old head's depth and log-variance are pulled to the frozen
    teacher's (median-normalised L1, weighted per domain). ``feature_weight > 0`` also keeps
    the fused feature map close to the teacher's (mean squared error).

    ``inputs`` says on which images the old heads are distilled: ``current`` (the paper: every old
    head on the new domain's batch), ``replay`` (each old head on its own domain's replay batch of
    the step, drawn by the replay strategy, which must be on), or ``both``. Why ``replay``: pulling
    an old head's outputs on the *new* domain's images constrains the shared encoder on exactly the
    images the new domain must learn, and most when the domains are alike (N after S); on the old
    domain's own images it protects the head where it is used (docs/results.md, "Order KSN").

    With per-domain fusion BatchNorm (``model.net.fusion.domain_bn``) teacher and student run each
    old head on the map fused under that head's own set (the encoder pass is shared), and the
    feature term averages over the old domains' maps.
    """

    def __init__(
        self,
        weight: float = 10.0,
        domain_weights: Mapping[str, float] | None = None,
        position_weights: Sequence[float] | None = None,
        feature_weight: float = 0.0,
        inputs: str = "current",
    ) -> None:
        super().__init__(weight, domain_weights, position_weights)
        if inputs not in DISTILLATION_INPUTS:
            raise ValueError(
                f"strategy.callbacks.distillation.inputs={inputs!r}: must be one of {DISTILLATION_INPUTS}"
            )
        self.inputs = inputs
        self.feature_weight = float(feature_weight)
        self.teacher: MultiDomainDepthNet | None = None
        self.old_domains: list[str] = []

    def on_stage_start(
        self, stage: Stage, module: LifelongDepthModule, datamodule: LifelongDataModule
    ) -> None:
        super().on_stage_start(stage, module, datamodule)
        self.old_domains = [letter for letter in stage.previous if letter in module.net.heads]
        self.teacher = freeze(copy.deepcopy(module.net)) if self.old_domains else None

    def head_inputs(
        self,
        module: LifelongDepthModule,
        batch: Mapping[str, Any],
        fused: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> list[tuple[str, Tensor]]:
        """Every old head on the current batch's features (the student).

        With per-domain fusion statistics each old head reads its own map of the current batch
        (:meth:`LifelongDepthModule.heads_on_batch`), not ``fused``: nothing to share then.
        """
        if self.teacher is None or module.net.domain_bn or self.inputs == "replay":
            return []
        return [(letter, fused) for letter in self.distilled()]

    def distilled(self) -> list[str]:
        """The old domains whose outputs are distilled this stage. A domain weighted 0 (e.g.
        ``position_weights: [1, 0]``) is skipped — no teacher or student head on it — rather than
        computed and multiplied by 0; the feature term (``feature_weight > 0``) reads them all."""
        if self.feature_weight > 0:
            return list(self.old_domains)
        return [letter for letter in self.old_domains if self.weight_for(letter, self.old_domains) != 0]

    def _teacher_to(self, device: torch.device) -> None:
        """The teacher on the step's device, moved once: ``Module.to`` at every step walked every
        parameter and buffer of the copy (about 800 no-op ATen calls a step, host time that a
        launch-bound GPU step pays in full; ``benchmarks/loop_profile.py``)."""
        assert self.teacher is not None
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)

    def extra_loss(
        self,
        module: LifelongDepthModule,
        batch: Mapping[str, Any],
        fused: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        if self.teacher is None:
            return {}
        self._teacher_to(fused.device)
        terms: dict[str, Tensor] = {}
        if self.inputs in ("replay", "both"):
            terms.update(self._on_replay(module))
        letters = self.distilled()
        if self.inputs == "replay" or not letters:
            return terms
        with torch.no_grad():
            target = self.teacher(batch["image"], domains=letters)
        student = module.heads_on_batch(batch["image"], fused, letters)
        for letter in letters:
            terms[f"distill_{letter}"] = self.weight_for(letter, self.old_domains) * distillation_loss(
                student.depth[letter], student.log_var[letter], target.depth[letter], target.log_var[letter]
            )
        if self.feature_weight > 0 and student.fused_by_domain:
            terms["distill_features"] = (
                self.feature_weight
                * torch.stack(
                    [
                        feature_distillation_loss(
                            student.fused_by_domain[letter], target.fused_by_domain[letter]
                        )
                        for letter in self.old_domains
                    ]
                ).mean()
            )
        elif self.feature_weight > 0:
            terms["distill_features"] = self.feature_weight * feature_distillation_loss(fused, target.fused)
        return terms

    def _on_replay(self, module: LifelongDepthModule) -> dict[str, Tensor]:
        """Each old head on its replay batch of this step, pulled to the teacher on the same images.

        The student's output is the replay strategy's own head call on that batch (``run_heads``
        shares it within the step); the feature term, if any, stays on the current batch.
        """
        replay = next((s for s in module.strategies() if isinstance(s, ReplayCallback)), None)
        if replay is None:
            raise ConfigError(
                f"strategy.callbacks.distillation.inputs={self.inputs}: needs the replay strategy "
                "(strategy.callbacks.replay), which draws the old domains' images; use inputs=current."
            )
        suffix = "" if self.inputs == "replay" else "_replay"
        terms: dict[str, Tensor] = {}
        for letter in self.distilled():
            features = replay.step_features.get(letter)
            if features is None:  # no replay batch of this domain in this step
                continue
            with torch.no_grad():
                target = self.teacher(replay.step_images[letter], domains=[letter])
            student = module.run_heads(features, [letter])
            weight = self.weight_for(letter, self.old_domains)
            terms[f"distill_{letter}{suffix}"] = weight * distillation_loss(
                student.depth[letter], student.log_var[letter], target.depth[letter], target.log_var[letter]
            )
        return terms

    def state_dict(self) -> dict[str, Any]:
        return {
            "old_domains": list(self.old_domains),
            "teacher": None if self.teacher is None else self.teacher.state_dict(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores the saved teacher into the one built at stage start (mid-stage resume)."""
        self.old_domains = list(state_dict.get("old_domains", []))
        teacher = state_dict.get("teacher")
        if teacher is not None and self.teacher is not None:
            self.teacher.load_state_dict(teacher)


def freeze(net: MultiDomainDepthNet) -> MultiDomainDepthNet:
    """Eval mode (BN uses running statistics), no gradients, and its own (eager) forward.

    A deep copy of a module compiled in place (``model.compile``) would still call the original's
    compiled graph, i.e. the student: the copy drops it.
    """
    for module in net.modules():
        if getattr(module, "_compiled_call_impl", None) is not None:
            module._compiled_call_impl = None
    net.eval()
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return net
