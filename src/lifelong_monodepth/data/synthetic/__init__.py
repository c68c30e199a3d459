"""Embedded synthetic multi-domain RGB-D benchmark: ray-cast NYU-, KITTI- and ScanNet-like domains.

Depth is geometrically true (ray casting procedural 3-D scenes through per-domain pinhole
cameras) and written in each real dataset's native format, so the real loaders read it
unchanged. Only numpy and OpenCV are needed: ``python -m lifelong_monodepth.data.synthetic``.
"""

from lifelong_monodepth.data.synthetic.generate import format_summary, generate_benchmark, main, render_sample
from lifelong_monodepth.data.synthetic.specs import DEFAULT_COUNTS, DOMAINS, DomainSpec

__all__ = [
    "DEFAULT_COUNTS",
    "DOMAINS",
    "DomainSpec",
    "format_summary",
    "generate_benchmark",
    "main",
    "render_sample",
]
