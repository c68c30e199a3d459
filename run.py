"""Entrypoint: `python run.py order=NKS` (see README). All logic lives in the package."""

import os
from pathlib import Path

os.environ.setdefault("LMD_ROOT", str(Path(__file__).resolve().parent))

from lifelong_monodepth.cli.main import main  # noqa: E402  (after LMD_ROOT is set)

if __name__ == "__main__":
    main()
