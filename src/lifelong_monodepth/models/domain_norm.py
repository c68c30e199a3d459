"""Per-domain BatchNorm for the fusion block (``model.net.fusion.domain_bn``).

The shared fusion block normalises every domain with one set of BatchNorm statistics: a running
mixture that matches none of the domains at test time. :class:`DomainBatchNorm2d` keeps one
set per domain (statistics, and with ``affine`` also the scale and shift), created when the
domain is added and initialised from the previous domain's set, so a forward for domain X
normalises with X's own set. The convolutions stay shared.

Only the fusion block has it: the domain selector must read features *before* the domain is
known, so the encoder stays domain-free and a forward without a domain (``domain=None``, what
the selector reads) uses the ``shared`` set, which every training batch of every domain keeps
updating (the default network's running mixture).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ``model.net.fusion.domain_bn``: off (one shared BatchNorm), per-domain statistics, or statistics + affine.
DOMAIN_BN_MODES = ("off", "stats", "affine")


def domain_bn_mode(value: bool | str | None) -> str:
    """Normalise the config value (YAML ``false`` reads as a bool) to one of :data:`DOMAIN_BN_MODES`."""
    if value in (None, False, "false", "off", "none"):
        return "off"
    if value in DOMAIN_BN_MODES:
        return str(value)
    raise ValueError(
        f"model.net.fusion.domain_bn must be one of false, stats, affine (got {value!r}): "
        "stats keeps BatchNorm statistics per domain, affine also the scale and shift."
    )


class DomainBatchNorm2d(nn.Module):
    """BatchNorm2d with one set per domain plus the ``shared`` (pre-domain) set.

    ``mode="stats"``: each domain has its own running mean/variance; the scale and shift are the
    shared set's (trained by every domain). ``mode="affine"``: each domain also has its own scale
    and shift. A domain's set is a plain ``nn.BatchNorm2d`` under ``sets[letter]``, so putting it in
    eval mode (``freeze_old_head_bn``) freezes its statistics like any BatchNorm.
    """

    def __init__(self, num_features: int, mode: str = "stats") -> None:
        super().__init__()
        if mode not in ("stats", "affine"):
            raise ValueError(f"DomainBatchNorm2d mode must be 'stats' or 'affine', got {mode!r}")
        self.mode = mode
        self.shared = nn.BatchNorm2d(num_features)
        self.sets = nn.ModuleDict()

    @property
    def domains(self) -> list[str]:
        return list(self.sets.keys())

    def add_domain(self, letter: str) -> None:
        """A set for ``letter``, copied from the newest domain's set (the shared one for the first)."""
        if letter in self.sets:
            return
        source = self.sets[self.domains[-1]] if self.sets else self.shared
        new = nn.BatchNorm2d(
            self.shared.num_features,
            eps=self.shared.eps,
            momentum=self.shared.momentum,
            affine=self.mode == "affine",
        ).to(device=self.shared.running_mean.device, dtype=self.shared.running_mean.dtype)
        with torch.no_grad():
            new.running_mean.copy_(source.running_mean)
            new.running_var.copy_(source.running_var)
            new.num_batches_tracked.copy_(source.num_batches_tracked)
            if self.mode == "affine":
                new.weight.copy_(source.weight)
                new.bias.copy_(source.bias)
        new.train(self.shared.training)
        self.sets[letter] = new

    def forward(self, x: Tensor, domain: str | None = None) -> Tensor:
        if domain is None:
            return self.shared(x)
        if domain not in self.sets:
            raise KeyError(f"No fusion BatchNorm set for domain {domain!r}; domains: {self.domains}.")
        norm = self.sets[domain]
        affine = norm if self.mode == "affine" else self.shared
        if (
            self.shared.training
        ):  # the pre-domain statistics follow every training batch, as without domain BN
            with torch.no_grad():
                F.batch_norm(
                    x.detach(),
                    self.shared.running_mean,
                    self.shared.running_var,
                    None,
                    None,
                    True,
                    self.shared.momentum or 0.0,
                    self.shared.eps,
                )
        return F.batch_norm(
            x,
            norm.running_mean,
            norm.running_var,
            affine.weight,
            affine.bias,
            norm.training,
            norm.momentum or 0.0,
            norm.eps,
        )


def domain_norms(module: nn.Module) -> Iterable[DomainBatchNorm2d]:
    return (m for m in module.modules() if isinstance(m, DomainBatchNorm2d))


def freeze_other_domains(module: nn.Module, keep: Iterable[str]) -> None:
    """Eval mode (fixed statistics) for every domain set not in ``keep``: old domains' statistics."""
    keep = set(keep)
    for norm in domain_norms(module):
        for letter, bn in norm.sets.items():
            if letter not in keep:
                bn.eval()
