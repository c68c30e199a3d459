"""``python -m lifelong_monodepth.data.synthetic``: generate the benchmark and print its summary."""

import sys

from lifelong_monodepth.data.synthetic.generate import main

if __name__ == "__main__":
    sys.exit(main())
