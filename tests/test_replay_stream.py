"""Replay batches stream through one loader (worker processes optional): the same batches, positions
and resume points as one loader per pass without workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import compose_config, enter_second_stage, make_domain
from lifelong_monodepth.data.sampling import EpochSeededSampler, PassBatchSampler
from lifelong_monodepth.training.sequence import SequenceRunner


def test_pass_batch_sampler_streams_passes_and_drops_each_incomplete_batch() -> None:
    sampler = EpochSeededSampler(10, seed=3)
    stream = iter(PassBatchSampler(sampler, batch_size=4, first_pass=2))
    batches = [next(stream) for _ in range(5)]
    expected = []
    for epoch in (2, 3, 4):  # one loader per pass, drop_last: two batches of 4 out of 10
        sampler.set_epoch(epoch)
        order = list(sampler)
        expected += [order[0:4], order[4:8]]
    assert batches == expected[:5]
    # Resume after one batch of pass 3: the stream continues with pass 3's second batch.
    resumed = iter(PassBatchSampler(EpochSeededSampler(10, seed=3), 4, first_pass=3, skip_batches=1))
    assert next(resumed) == expected[3] and next(resumed) == expected[4]
    # Single pass: it stops after the pass's complete batches.
    assert list(PassBatchSampler(EpochSeededSampler(10, seed=3), 4, 2, passes=1)) == expected[:2]
    with pytest.raises(ValueError, match="holds no batch"):
        PassBatchSampler(EpochSeededSampler(3, seed=0), 4, 0)


def _replay(tmp_path: Path, workers: int):
    domains = {
        # Random colour jitter: the batches agree only if each sample's augmentation seed does.
        "N": make_domain(
            tmp_path / "data",
            "N",
            size=(32, 64),
            count=10,
            augment=[{"_target_": "albumentations.ColorJitter", "p": 1.0}],
        ),
        "K": make_domain(tmp_path / "data", "K", size=(32, 64), count=6, depth_scale=256.0, max_depth=80.0),
    }
    cfg = compose_config(
        tmp_path / f"run{workers}",
        [
            "order=NK",
            "strategy.callbacks.replay.batch_size=4",
            f"strategy.callbacks.replay.num_workers={workers}",
            "data.num_workers=2",
        ],
        domains,
    )
    runner = SequenceRunner(cfg)
    enter_second_stage(runner)
    return next(s for s in runner.strategies if type(s).__name__ == "ReplayCallback")


def test_replay_workers_draw_the_same_batches_and_positions(tmp_path: Path) -> None:
    """Decoding in worker processes changes nothing: images, depths and the checkpointed position
    (pass, batches drawn) agree batch by batch across pass boundaries, and a stream resumed from a
    saved position continues with the batches the uninterrupted one drew."""
    plain, workers = _replay(tmp_path, 0), _replay(tmp_path, 2)
    assert plain._loader_options["num_workers"] == 0 and workers._loader_options["num_workers"] == 2
    drawn = []
    for _ in range(7):  # replay memory of N: 10 rows → 2 batches of 4 a pass: 3.5 passes
        a, b = plain.next_batch("N"), workers.next_batch("N")
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["depth"], b["depth"])
        assert plain.state_dict()["positions"] == workers.state_dict()["positions"]
        drawn.append((a["image"], plain.state_dict()))
    assert drawn[-1][1]["positions"]["N"] == [3, 1]
    resumed = _replay(tmp_path, 2)
    resumed.load_state_dict(drawn[3][1])  # after batch 4: pass 1 complete
    for image, _ in drawn[4:]:
        assert torch.equal(resumed.next_batch("N")["image"], image)
