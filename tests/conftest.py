"""Test setup: the torchvision workaround must run before timm/torchmetrics/Lightning are imported."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

import lifelong_monodepth  # noqa: F401  (applies the torchvision workaround)
