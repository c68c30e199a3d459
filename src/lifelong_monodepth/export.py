"""``python -m lifelong_monodepth.export ckpt=... format=onnx|torchscript`` (see ``inference/export.py``)."""

import lifelong_monodepth  # noqa: F401  (the torchvision workaround, before timm is imported)
from lifelong_monodepth.inference.export import main

if __name__ == "__main__":
    main()
