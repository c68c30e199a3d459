"""Fitting the domain selector from data when a checkpoint carries none (e.g. a converted original one).

The prototypes (and the classifier) are computed as at the end of a training stage: from the pooled
fused features of each domain's replay images (the paper's choice), or of its training images when
the domain has no replay index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lifelong_monodepth.models.selection import fit_selector_state, pooled_features


def fit_selector_from_data(
    module: Any, datamodule: Any, letters: Sequence[str], grid: int = 4, limit: int = 64, seed: int = 0
) -> dict[str, Any]:
    """Selector state for ``letters`` from up to ``limit`` replay (or train) images of each domain."""
    net = module.net
    was_training = net.training
    net.eval()
    features = {}
    with torch.no_grad():
        for letter in letters:
            split = "replay" if "replay" in datamodule.domain(letter).index else "train"
            chunks, seen = [], 0
            for batch in datamodule.eval_loader(letter, split):
                chunks.append(pooled_features(net.encode(batch["image"].to(module.device)), grid).cpu())
                seen += len(batch["image"])
                if seen >= limit:
                    break
            features[letter] = torch.cat(chunks)[:limit]
    net.train(was_training)
    return fit_selector_state(features, grid, seed=seed)
