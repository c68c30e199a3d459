"""Make ``import torchvision`` (hence timm, torchmetrics, Lightning) work on CPU-only torch.

Why this exists: the registry's torchvision 0.28.0 wheel is a CUDA build. Against the CPU
torch 2.13.0 wheel its compiled extension cannot load, and ``import torchvision`` then dies
while registering fake kernels for ``torchvision::nms`` / ``torchvision::qnms`` with
``RuntimeError: operator torchvision::nms does not exist``.

The fix: if, and only if, the extension cannot be loaded, declare the two operator schemas
(no kernels) before torchvision is imported. torchvision then imports; everything except its
compiled detection ops works (we use none of them; images are decoded with OpenCV).
Where torchvision's extension loads (GPU machines, any normal install) this is a no-op.

It must run before the first import of torchvision, timm, torchmetrics or Lightning; the
package ``__init__``, ``run.py`` and ``tests/conftest.py`` call :func:`ensure_torchvision_importable`.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keeps the torch.library.Library alive (dropping it unregisters the schemas)
applied = False  # True when the schemas had to be declared


def _extension_loads() -> bool:
    """Try to load torchvision's compiled extension the way torchvision itself would."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # torchvision absent: nothing to fix
    candidates = []
    for location in spec.submodule_search_locations:
        candidates += glob.glob(os.path.join(location, "_C*.so")) + glob.glob(
            os.path.join(location, "_C*.pyd")
        )
    if not candidates:
        return False
    try:
        torch.ops.load_library(candidates[0])
    except (OSError, RuntimeError):
        return False
    return True


def ensure_torchvision_importable() -> bool:
    """Declare torchvision's nms/qnms schemas when its extension cannot load.

    Returns True when the workaround was applied, False when it was not needed.
    """
    global _library, applied
    if applied or "torchvision" in sys.modules:
        return applied
    if _extension_loads():
        return False
    import torch

    library = torch.library.Library("torchvision", "FRAGMENT")
    for name, schema in _SCHEMAS.items():
        try:
            getattr(torch.ops.torchvision, name)
        except (AttributeError, RuntimeError):
            library.define(schema)
    _library = library
    applied = True
    return True
