"""``python -m lifelong_monodepth.report <sweep dir>``."""

from lifelong_monodepth.report import main

raise SystemExit(main())
