"""``python -m lifelong_monodepth.inspect <ckpt>`` (see ``inference/inspect.py``)."""

import lifelong_monodepth  # noqa: F401  (the torchvision workaround, before timm is imported)
from lifelong_monodepth.inference.inspect import main

if __name__ == "__main__":
    main()
