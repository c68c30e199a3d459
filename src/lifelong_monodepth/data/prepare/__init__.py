"""Importers: real datasets as downloaded → the index CSVs of ``data_index/<domain>/``.

``python -m lifelong_monodepth.data.prepare {nyu,kitti,scannet} --source DIR [--out data_index/<domain>]``;
one module per dataset (``nyu``, ``kitti``, ``scannet``), the shared bookkeeping in ``common``.
"""

from lifelong_monodepth.data.prepare.common import SPLITS, Pair, PrepareResult, SourceError

__all__ = ["SPLITS", "Pair", "PrepareResult", "SourceError"]
