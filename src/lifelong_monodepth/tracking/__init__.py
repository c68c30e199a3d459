"""Experiment tracking: the W&B run of a job, live lifelong metrics, depth panels, checkpoint artifacts.

The sequence runner only calls :class:`Tracker` hooks; everything about where numbers and images go
(W&B, CSV curves, ``results/panels/``) lives here.
"""

from lifelong_monodepth.tracking.tracker import Tracker

__all__ = ["Tracker"]
