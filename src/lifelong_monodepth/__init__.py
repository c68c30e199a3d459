"""lifelong-monodepth: lifelong, multi-domain monocular metric depth estimation.

The torchvision workaround runs first: timm, torchmetrics and Lightning all import
torchvision, which fails on the CPU-only torch wheel without it (see ``_torchvision_compat``).
"""

from lifelong_monodepth._torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()

__version__ = "0.1.0"
