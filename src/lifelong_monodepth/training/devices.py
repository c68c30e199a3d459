"""Device choices the GPU presets resolve at composition time (``${lmd_precision:}``)."""

from __future__ import annotations


def best_gpu_precision() -> str:
    """``bf16-mixed`` where the GPU supports bfloat16 (Ampere and later), else ``16-mixed``.

    bf16 has fp32's exponent range, so it needs no loss scaler: no overflow steps while a scaler
    calibrates, no skipped steps. fp16 (with Lightning's scaler) is the fallback for older GPUs.
    Without a visible GPU the answer is ``bf16-mixed`` (the config still composes; the Trainer
    then reports the missing GPU).
    """
    import torch

    if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        return "16-mixed"
    return "bf16-mixed"
