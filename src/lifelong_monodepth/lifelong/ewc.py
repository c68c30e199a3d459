"""Elastic weight consolidation on the shared encoder and fusion (a classic baseline).

After each stage, the diagonal Fisher information of the shared parameters is estimated on
that domain's replay images (squared gradients of its depth loss through its own head) and
the parameters are anchored; later stages pay ``weight/2 · Σ F (θ − θ*)²``. With several
earlier domains the Fisher terms are summed (``gamma < 1`` decays older ones: online EWC).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from lifelong_monodepth.data.collate import size_groups
from lifelong_monodepth.lifelong.base import LifelongStrategy, Stage
from lifelong_monodepth.training.losses import uncertainty_depth_loss

if TYPE_CHECKING:
    from lifelong_monodepth.data.datamodule import LifelongDataModule
    from lifelong_monodepth.training.module import LifelongDepthModule

SHARED_PREFIXES = ("net.encoder.", "net.fusion.")


class EWCCallback(LifelongStrategy):
    def __init__(self, weight: float = 1000.0, max_images: int = 64, gamma: float = 1.0) -> None:
        super().__init__(weight)
        self.max_images = int(max_images)
        self.gamma = float(gamma)
        self.fisher: dict[str, Tensor] = {}
        self.anchor: dict[str, Tensor] = {}

    @staticmethod
    def shared_parameters(module: LifelongDepthModule) -> dict[str, torch.nn.Parameter]:
        return {
            n: p for n, p in module.named_parameters() if n.startswith(SHARED_PREFIXES) and p.requires_grad
        }

    def on_stage_end(self, stage: Stage, module: LifelongDepthModule, datamodule: LifelongDataModule) -> None:
        params = self.shared_parameters(module)
        fisher = {name: torch.zeros_like(p) for name, p in params.items()}
        was_training = module.training
        module.eval()  # BN in inference mode: Fisher of the model as it will be used
        batches = 0
        with torch.enable_grad():
            for letter in stage.current:
                seen = 0
                for batch in datamodule.eval_loader(letter, datamodule.fit_split(letter)):
                    if seen >= self.max_images:
                        break
                    module.zero_grad(set_to_none=True)
                    images = batch["image"].to(module.device)
                    out = module.net(images, domains=[letter])
                    for rows, target, mask, _ in size_groups(batch):  # native sizes may differ
                        rows = rows.to(module.device)
                        uncertainty_depth_loss(
                            out.depth[letter].index_select(0, rows),
                            out.log_var[letter].index_select(0, rows),
                            target.to(module.device),
                            mask.to(module.device),
                        ).backward(retain_graph=True)
                    for name, p in params.items():
                        if p.grad is not None:
                            fisher[name] += p.grad.detach() ** 2
                    batches += 1
                    seen += len(images)
        module.zero_grad(set_to_none=True)
        module.train(was_training)
        for name in fisher:
            fisher[name] /= max(batches, 1)
            self.fisher[name] = (
                self.gamma * self.fisher.get(name, torch.zeros_like(fisher[name])) + fisher[name]
            )
            self.anchor[name] = params[name].detach().clone()

    def extra_loss(
        self,
        module: LifelongDepthModule,
        batch: Mapping[str, Any],
        fused: Tensor,
        features: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        if not self.fisher:
            return {}
        penalty = fused.new_zeros(())
        for name, p in self.shared_parameters(module).items():
            if name in self.fisher:
                penalty = penalty + (self.fisher[name].to(p) * (p - self.anchor[name].to(p)) ** 2).sum()
        return {"ewc": 0.5 * self.weight * penalty}

    def state_dict(self) -> dict[str, Any]:
        return {"fisher": self.fisher, "anchor": self.anchor}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.fisher = dict(state_dict.get("fisher", {}))
        self.anchor = dict(state_dict.get("anchor", {}))
