"""``LifelongDepthModule``: the Lightning wrapper around the multi-domain network."""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from lifelong_monodepth.data.domain import DomainConfig
from lifelong_monodepth.lifelong.base import LifelongStrategy
from lifelong_monodepth.models.domain_norm import freeze_other_domains
from lifelong_monodepth.models.network import MultiDomainDepthNet, NetOutput
from lifelong_monodepth.training.fused import (
    StepHeads,
    encode_batches,
    encode_split,
    half_size,
    stack_is_exact,
)
from lifelong_monodepth.training.losses import uncertainty_depth_loss, upsample_to
from lifelong_monodepth.training.warmup import frozen_mode, frozen_parts, validate_warmup

log = logging.getLogger(__name__)

DEFAULT_OPTIMIZER = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-4, "weight_decay": 1e-4}
DEFAULT_SCHEDULER = {
    "_target_": "torch.optim.lr_scheduler.StepLR",
    "_partial_": True,
    "step_size": 5,
    "gamma": 0.5,
}


class NonFiniteLossError(RuntimeError):
    """Too many consecutive steps had a non-finite loss or gradient."""


FREEZE_SHARED_BN = ("none", "encoder", "shared")


class LifelongDepthModule(pl.LightningModule):
    """Trains the current domain's head with the uncertainty loss plus each strategy's terms.

    A checkpoint of this module is enough for inference: besides the weights it carries the
    network config (``hparams``), and in ``checkpoint["lifelong"]`` the learned domains with
    their depth ranges, input sizes and crops, and the domain selector's state.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        optimizer: Mapping[str, Any] | None = None,
        scheduler: Mapping[str, Any] | None = None,
        freeze_old_head_bn: bool = True,
        max_bad_steps: int = 10,
        freeze_shared_bn: str = "none",
        freeze_shared_bn_from_stage: int = 1,
        fused_step: bool = True,
        channels_last: bool = False,
        compile: bool | Mapping[str, Any] = False,
        matmul_precision: str | None = None,
        head_warmup_steps: int = 0,
        head_warmup_fusion: bool = False,
    ) -> None:
        super().__init__()
        validate_warmup(head_warmup_steps)
        if freeze_shared_bn not in FREEZE_SHARED_BN:
            raise ValueError(
                f"model.freeze_shared_bn must be one of {FREEZE_SHARED_BN}, got {freeze_shared_bn!r}"
            )
        if int(freeze_shared_bn_from_stage) < 1:
            raise ValueError(
                "model.freeze_shared_bn_from_stage must be 1 (from the first stage) or more, "
                f"got {freeze_shared_bn_from_stage!r}"
            )
        self.save_hyperparameters()
        self.net: MultiDomainDepthNet = _instantiate(net)
        self._apply_memory_format()
        self.domain_info: dict[str, dict[str, Any]] = {}
        self.learned: list[str] = []
        self.current: list[str] = []
        self.selector_state: dict[str, Any] = {}
        self.bad_steps = 0
        self.bad_steps_total = 0
        self.overflow_steps = 0  # fp16 loss-scaler overflows: skipped by the scaler, not bad steps
        self.step_samples = 0  # images through the encoder in the last step (current + replay)
        self._step_terms: dict[str, Tensor] = {}
        self._step_batch_size = 0
        self._step_heads: StepHeads | None = None
        self.compiled = False
        self._val_metrics: dict[str, Any] = {}
        self.lr_factor = 1.0  # this stage's learning-rate factor (stage_schedule.lr_factors)
        self.stage_index = 0  # the stage being trained, from 0 (set by the sequence)
        self._step_features: tuple[Tensor, list[Tensor], tuple[int, int]] | None = None
        self._frozen = "none"  # what the head warm-up freezes now (training/warmup.py)

    # ---------------------------------------------------------------------------- domains
    def add_domain(self, domain: DomainConfig, reinit: bool = False) -> None:
        """Grow (or with ``reinit``, rebuild) the head of a domain and remember its metadata."""
        self.net.add_domain(domain.letter, domain.min_depth, domain.max_depth, reinit=reinit)
        self._apply_memory_format()  # the new head too: a resumed run must compute what one run did
        self.domain_info[domain.letter] = {
            "letter": domain.letter,
            "name": domain.name,
            "min_depth": domain.min_depth,
            "max_depth": domain.max_depth,
            "input_size": list(domain.input_size),
            "eval_crop": domain.eval_crop,
            "depth_scale": domain.depth_scale,  # predict writes 16-bit PNGs in the domain's native scale
        }

    def set_current(self, letters: Sequence[str]) -> None:
        self.current = list(letters)

    def mark_learned(self, letters: Sequence[str]) -> None:
        for letter in letters:
            if letter not in self.learned:
                self.learned.append(letter)

    def forward(self, images: Tensor, domains: Sequence[str] | None = None) -> NetOutput:
        return self.net(images, domains)

    def predict_depth(self, images: Tensor, letter: str, size: tuple[int, int] | None = None) -> Tensor:
        """Metric depth from one head, upsampled to ``size`` (e.g. the ground truth's)."""
        out = self.net(images, domains=[letter])
        depth = out.depth[letter]
        return upsample_to(depth, size) if size is not None else depth

    # --------------------------------------------------------------------------- training
    def strategies(self) -> list[LifelongStrategy]:
        if self._trainer is None:
            return []
        return [cb for cb in self.trainer.callbacks if isinstance(cb, LifelongStrategy)]

    def train(self, mode: bool = True) -> LifelongDepthModule:
        """Training mode, except BatchNorm layers whose statistics must not follow the current batch.

        Old heads (``freeze_old_head_bn``) only see the current domain through distillation:
        letting their statistics follow it would shift them away from their own data. The shared
        encoder (and fusion) with ``freeze_shared_bn``: replay batches of old domains pass through
        them too, so their statistics would become a mix of domains that matches none of them at
        test time; ``freeze_shared_bn_from_stage`` > 1 lets the first stage(s) set them (the first
        domain's statistics) and fixes them from then on. Lightning does not call ``train()``
        itself, so the train-start and epoch-start hooks below do; after validation Lightning
        restores the modes set here.
        """
        super().train(mode)
        if not mode:
            return self
        frozen: list[torch.nn.Module] = []
        if self.hparams.freeze_old_head_bn:
            frozen += [head for letter, head in self.net.heads.items() if letter not in self.current]
        shared = self.frozen_shared_bn()
        if shared in ("encoder", "shared"):
            frozen.append(self.net.encoder)
        if shared == "shared":
            frozen.append(self.net.fusion)
        if self._trainer is not None:
            frozen += frozen_parts(self)
        for part in frozen:
            for module in part.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        if self.hparams.freeze_old_head_bn:
            # Old domains' fusion BatchNorm sets (model.net.fusion.domain_bn), like their heads.
            freeze_other_domains(self.net.fusion, keep=self.current)
        return self

    def frozen_shared_bn(self) -> str:
        """What ``freeze_shared_bn`` freezes in the stage being trained (``none`` before its first stage)."""
        if self.stage_index + 1 < int(self.hparams.get("freeze_shared_bn_from_stage", 1)):
            return "none"
        return str(self.hparams.get("freeze_shared_bn", "none"))

    def _apply_memory_format(self) -> None:
        """channels_last weights (``model.channels_last``) from construction on, not only from the first
        fit: a network rebuilt from checkpoints (a resumed run) and its distillation teacher (a copy
        made before the stage's fit) then have the layout of the uninterrupted run, so the same
        convolution kernels run and results stay bit-identical across a resume."""
        if self.hparams.get("channels_last", False):
            self.net.to(memory_format=torch.channels_last)

    def setup(self, stage: str) -> None:
        """Device tuning from the config: channels_last weights, TF32, ``torch.compile`` (model.compile)."""
        self._apply_memory_format()
        if self.hparams.get("matmul_precision") and torch.cuda.is_available():
            torch.set_float32_matmul_precision(self.hparams.matmul_precision)
        if self.hparams.get("compile", False):
            from lifelong_monodepth.models.compile import compile_network

            self.compiled = compile_network(self.net, self.hparams.compile)

    def on_train_start(self) -> None:
        # Evaluation between stages calls ``net.train()``, which bypasses this class's ``train()``.
        self.train()

    def on_train_epoch_start(self) -> None:
        self.train()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Enter and leave the head warm-up (training/warmup.py) at the step it starts or ends."""
        mode = frozen_mode(self)
        if mode != self._frozen:
            log.info("Head warm-up: shared layers frozen = %s from step %d", mode, self.global_step)
            self._frozen = mode
            self.train()

    def current_loss(self, batch: Mapping[str, Any], fused: Tensor) -> Tensor:
        """Depth loss of the current domain(s); a mixed (joint) batch is split by domain."""
        letters = list(batch["domain"])
        if len(set(letters)) == 1:  # one domain: the whole batch, no index copies
            letter = letters[0]
            out = self.net.run_heads(fused, [letter])
            return uncertainty_depth_loss(
                out.depth[letter], out.log_var[letter], batch["depth"], batch["mask"]
            )
        losses = []
        for letter in dict.fromkeys(letters):
            rows = torch.tensor(
                [i for i, value in enumerate(letters) if value == letter], device=fused.device
            )
            # With domain_bn, ``fused`` was fused row by row under each row's own domain set.
            out = self.net.run_heads(fused.index_select(0, rows), [letter])
            losses.append(
                uncertainty_depth_loss(
                    out.depth[letter],
                    out.log_var[letter],
                    batch["depth"].index_select(0, rows),
                    batch["mask"].index_select(0, rows),
                )
            )
        return torch.stack(losses).mean()

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Current loss plus every strategy's terms, with one fused encoder pass (``training/fused.py``).

        No host synchronisation here: whether the loss is finite is decided, together with the
        gradients, by one check in :meth:`on_before_optimizer_step`.
        """
        frozen = frozen_mode(self)  # head warm-up: replay and distillation are skipped (training/warmup.py)
        strategies = self.strategies() if frozen == "none" else []
        requests = [(strategy, strategy.step_inputs(self, batch)) for strategy in strategies]
        images = [batch["image"], *(x for _, inputs in requests for x in inputs.values())]
        # Each batch's domain(s), for the fusion's per-domain BatchNorm: replay inputs are keyed by letter.
        domains = [
            list(batch["domain"]),
            *(k if k in self.net.heads else None for _, i in requests for k in i),
        ]
        encoded = self.encode_step(images, domains, frozen, current=batch["image"])
        fused = encoded[0]
        features: list[dict[str, Tensor]] = []
        position = 1
        for _, inputs in requests:
            features.append(dict(zip(inputs, encoded[position : position + len(inputs)], strict=True)))
            position += len(inputs)
        # Each head once per step on every map asked of it (exact: see StepHeads).
        self._step_heads = StepHeads(self.net, fuse=bool(self.hparams.get("fused_step", True)))
        for (strategy, inputs), named in zip(requests, features, strict=True):
            for letter, features_map in strategy.head_inputs(self, batch, fused, named if inputs else None):
                self._step_heads.request(letter, features_map)
        self._step_heads.run()
        terms = {"depth": self.current_loss(batch, fused)}
        for (strategy, inputs), named in zip(requests, features, strict=True):
            if inputs:
                terms.update(strategy.extra_loss(self, batch, fused, named))
            else:
                terms.update(strategy.extra_loss(self, batch, fused))
        self._step_heads = None
        total = torch.stack(list(terms.values())).sum()
        self.step_samples = sum(int(x.shape[0]) for x in images)
        self._step_batch_size = int(batch["image"].shape[0])
        self._step_terms = {name: value.detach() for name, value in terms.items()}
        self._step_terms["loss"] = total.detach()
        return total

    def run_heads(self, features: Tensor, domains: Sequence[str]) -> NetOutput:
        """``net.run_heads``, reusing this step's shared head calls (:class:`StepHeads`) inside a step."""
        step_heads = getattr(self, "_step_heads", None)
        return (
            step_heads(features, domains) if step_heads is not None else self.net.run_heads(features, domains)
        )

    def encode_step(
        self,
        images: Sequence[Tensor],
        domains: Sequence[Any] | None = None,
        frozen: str = "none",
        current: Tensor | None = None,
    ) -> list[Tensor]:
        """Fused features of the step's batches: stacked per input size unless ``fused_step=false``.

        With per-domain fusion BatchNorm, or a warm-up that trains the fusion, the encoder pass is
        stacked and each batch is fused under its own domain(s); the current batch's encoder
        features are kept for :meth:`heads_on_batch`. ``frozen`` (head warm-up) drops gradients.
        """
        fuse = bool(self.hparams.get("fused_step", True))
        if self.hparams.get("channels_last", False):
            images = [x.contiguous(memory_format=torch.channels_last) for x in images]
        compiled = getattr(self, "compiled", False)  # a compiled graph cannot take the per-segment BatchNorm
        fuse = fuse and stack_is_exact(self.net) if compiled else fuse
        self._step_features = None
        if self.net.domain_bn or frozen == "encoder":
            fused, features = encode_split(
                self.net, images, domains or [None] * len(images), fuse, not compiled, frozen
            )
            if current is not None:
                self._step_features = (current, features[0], half_size(images[0]))
            return fused
        with torch.no_grad() if frozen == "all" else contextlib.nullcontext():
            return encode_batches(self.net, images, fuse=fuse, segment_bn=not compiled)

    def heads_on_batch(self, images: Tensor, fused: Tensor, letters: Sequence[str]) -> NetOutput:
        """Heads ``letters`` on a batch whose (current-domain) fused map is ``fused``.

        Without ``domain_bn`` every head reads ``fused``. With it each head reads the map fused
        under its own BatchNorm set: from the step's encoder features when ``images`` is the
        step's current batch, else from a fresh encoder pass.
        """
        if not self.net.domain_bn:
            return self.run_heads(fused, letters)
        if self._step_features is not None and self._step_features[0] is images:
            _, features, size = self._step_features
            return self.net.run_domains(features, size, list(letters))
        return self.net(images, list(letters))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip a step with a non-finite loss or gradient: one device-side check, one synchronisation.

        Under fp16 mixed precision the loss scaler produces infinite gradients while it calibrates;
        it skips those steps itself and lowers its scale, so they are counted apart
        (``overflow_steps``), never as bad steps. Only a non-finite loss, or a non-finite gradient
        without a scaler, is a bad step.
        """
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        terms = getattr(self, "_step_terms", None) or {}
        loss = terms.get("loss")
        flags = torch.stack(
            [
                torch.isfinite(loss)
                if loss is not None
                else torch.ones((), dtype=torch.bool, device=self.device),
                torch.isfinite(torch.nn.utils.get_total_norm(grads)).to(self.device)
                if grads
                else torch.ones((), dtype=torch.bool, device=self.device),
            ]
        ).tolist()  # the one host synchronisation of the step
        loss_finite, grads_finite = flags
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if loss_finite and not grads_finite and scaler is not None:
            self.overflow_steps += 1  # the scaler skips this step and halves its scale
        elif not (loss_finite and grads_finite):
            for p in self.parameters():
                p.grad = None  # Adam skips parameters without a gradient: the step becomes a no-op
            reason = (
                f"non-finite loss ({ {k: float(v) for k, v in terms.items() if k != 'loss'} })"
                if not loss_finite
                else "non-finite gradient"
            )
            self._bad_step(reason)
            return
        self.bad_steps = 0
        self._log_step_terms(terms)

    def _log_step_terms(self, terms: Mapping[str, Tensor]) -> None:
        batch_size = self._step_batch_size
        sync = self.trainer.world_size > 1  # DDP: every rank logs the mean over ranks
        for name, value in terms.items():
            self.log(f"train/{name}", value, prog_bar=name == "loss", batch_size=batch_size, sync_dist=sync)
        if self.overflow_steps:
            self.log("train/scaler_overflow_steps", float(self.overflow_steps))

    def _bad_step(self, reason: str) -> None:
        self.bad_steps += 1
        self.bad_steps_total += 1
        log.warning("Skipping step %d: %s (%d in a row)", self.global_step, reason, self.bad_steps)
        self.log("train/skipped_steps", float(self.bad_steps_total))
        if self.bad_steps >= self.hparams.max_bad_steps:
            raise NonFiniteLossError(
                f"{self.bad_steps} consecutive training steps had a {reason}. Lower the learning rate "
                "(optimizer.lr), check the data for corrupt depth, or raise max_bad_steps."
            )

    # ------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        """Metrics of the current domain(s) and of the earlier ones the datamodule validates too."""
        from lifelong_monodepth.evaluation.metrics import DepthMetrics

        datamodule = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        letters = getattr(datamodule, "val_letters", self.current)
        self._val_metrics = {
            letter: DepthMetrics(
                min_depth=self.domain_info[letter]["min_depth"],
                max_depth=self.domain_info[letter]["max_depth"],
                crop=self.domain_info[letter]["eval_crop"],
            ).to(self.device)
            for letter in letters
        }

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        from lifelong_monodepth.evaluation.scoring import score_batch  # ground truth of any sizes

        letter = batch["domain"][0]
        score_batch(self._val_metrics[letter], self.predict_depth(batch["image"], letter), batch)

    def on_validation_epoch_end(self) -> None:
        for letter, metric in self._val_metrics.items():
            values = metric.compute()
            for name in ("abs_rel", "rmse", "delta1"):
                self.log(f"val/{letter}/{name}", values[name], add_dataloader_idx=False)
        if self.current:  # the domain(s) being learned only: the same meaning in every stage
            current = [self._val_metrics[letter].compute()["rmse"] for letter in self.current]
            self.log("val/rmse", torch.stack(current).mean())

    # ---------------------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer or DEFAULT_OPTIMIZER)(params)
        for (
            group
        ) in optimizer.param_groups:  # per-stage factor (stage_schedule.lr_factors), before the scheduler
            group["lr"] *= float(self.lr_factor)
        if not self.hparams.scheduler:
            return optimizer
        factory = instantiate(self.hparams.scheduler)
        if "total_steps" in inspect.signature(factory).parameters:  # a schedule over the whole stage
            # read at the first step that needs it, not now (see lr_schedules: resumed loaders)
            scheduler = factory(optimizer, total_steps=lambda: self.trainer.estimated_stepping_batches)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        scheduler = factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    # ----------------------------------------------------------------------------- checkpoint
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lifelong"] = {
            "domains": [self.domain_info[letter] for letter in self.net.domains],
            "learned": list(self.learned),
            "current": list(self.current),
            "selector": self.selector_state,
            "bad_steps_total": self.bad_steps_total,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Re-grow the heads listed in the checkpoint so its state dict fits (no training config needed)."""
        info = checkpoint.get("lifelong", {})
        for domain in info.get("domains", []):
            if domain["letter"] not in self.net.heads:
                self.net.add_domain(domain["letter"], domain["min_depth"], domain["max_depth"])
            self.domain_info[domain["letter"]] = dict(domain)
        self.learned = list(info.get("learned", []))
        self.current = list(info.get("current", []))
        self.selector_state = dict(info.get("selector", {}))
        self.bad_steps_total = int(info.get("bad_steps_total", 0))


def _instantiate(cfg: Any) -> Any:
    if isinstance(cfg, torch.nn.Module):
        return cfg
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    return instantiate(dict(cfg), _recursive_=False, _convert_="all")
