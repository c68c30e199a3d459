"""Depth for your own images from a stage checkpoint: predict, export, inspect.

Nothing here imports ``training/`` or Lightning: a slim stage checkpoint (see
:mod:`lifelong_monodepth.checkpoint`) is all these tools need.
"""
