"""``python -m lifelong_monodepth.predict ckpt=... input=... output=...`` (see ``inference/predict.py``)."""

import lifelong_monodepth  # noqa: F401  (the torchvision workaround, before timm is imported)
from lifelong_monodepth.inference.predict import main

if __name__ == "__main__":
    main()
