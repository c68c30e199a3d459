"""``python -m lifelong_monodepth.data.prepare``: see :mod:`lifelong_monodepth.data.prepare.cli`."""

from lifelong_monodepth.data.prepare.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
