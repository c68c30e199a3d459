"""Checkpoint I/O shared by training and inference (arrows point down: neither imports the other).

- :mod:`.files`: safe loading (``weights_only=True``) and atomic writing of any checkpoint file.
- :mod:`.stage`: the **slim stage checkpoint** (``checkpoints/<stage>.ckpt``: weights and what
  inference needs) and the **resumable training state** kept beside it until the run finishes.
"""

from lifelong_monodepth.checkpoint.files import load_checkpoint_file, save_atomic
from lifelong_monodepth.checkpoint.stage import (
    STAGE_FORMAT,
    attach_results,
    load_training_state,
    results_from_rows,
    stage_checkpoint,
    training_state_path,
    write_stage_checkpoint,
    write_training_state,
)

__all__ = [
    "STAGE_FORMAT",
    "attach_results",
    "load_checkpoint_file",
    "load_training_state",
    "results_from_rows",
    "save_atomic",
    "stage_checkpoint",
    "training_state_path",
    "write_stage_checkpoint",
    "write_training_state",
]
