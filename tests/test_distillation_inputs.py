"""Distillation on the replay memory's images (``strategy.callbacks.distillation.inputs``)."""

from pathlib import Path

import pytest
import pytorch_lightning as pl

from conftest import FAST_OVERRIDES, compose_config, enter_second_stage
from lifelong_monodepth.cli.validate import config_problems
from lifelong_monodepth.lifelong.distillation import DistillationCallback
from lifelong_monodepth.lifelong.replay import ReplayCallback
from lifelong_monodepth.training.sequence import SequenceRunner


class TeacherInputs(pl.Callback):
    """Records, per step, which images the teacher saw and the distillation terms of the step."""

    def __init__(self, distillation: DistillationCallback, replay: ReplayCallback) -> None:
        self.distillation, self.replay = distillation, replay
        self.seen: list[tuple[str, bool, bool]] = []
        self.terms: list[dict[str, float]] = []
        self.head_calls: list[int] = []
        self.teacher_moves: list[int] = []  # Module.to / _apply calls on the teacher in each step
        self._calls = 0
        self._moves = 0

    def on_train_start(self, trainer, pl_module) -> None:
        def count(*_):
            self._calls += 1

        pl_module.net.heads["N"].register_forward_hook(count)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._calls = 0
        teacher = self.distillation.teacher
        original = teacher.forward

        def spy(images, domains=None, **kwargs):
            replay_images = self.replay.step_images.get("N")
            self.seen.append(
                (
                    "".join(domains or []),
                    images is batch["image"],
                    replay_images is not None and images is replay_images,
                )
            )
            return original(images, domains=domains, **kwargs)

        teacher.forward = spy
        self._moves = 0
        original_apply = teacher._apply

        def apply_spy(*args, **kwargs):
            self._moves += 1
            return original_apply(*args, **kwargs)

        teacher._apply = apply_spy

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.distillation.teacher.forward = type(self.distillation.teacher).forward.__get__(
            self.distillation.teacher
        )
        del self.distillation.teacher._apply
        self.teacher_moves.append(self._moves)
        self.head_calls.append(self._calls)
        self.terms.append({k: float(v) for k, v in pl_module._step_terms.items() if k.startswith("distill")})


def _fit_nk(tmp_path: Path, tiny_domains, inputs: str, *extra: str) -> TeacherInputs:
    runner = SequenceRunner(
        compose_config(
            tmp_path / inputs,
            [*FAST_OVERRIDES, "order=NK", f"strategy.callbacks.distillation.inputs={inputs}", *extra],
            tiny_domains,
        )
    )
    enter_second_stage(runner)
    distillation = next(s for s in runner.strategies if isinstance(s, DistillationCallback))
    replay = next(s for s in runner.strategies if isinstance(s, ReplayCallback))
    record = TeacherInputs(distillation, replay)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[*runner.strategies, record],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(runner.module, datamodule=runner.datamodule)
    return record


@pytest.mark.parametrize(
    ("inputs", "seen", "names", "calls"),
    [
        ("current", ("N", True, False), {"distill_N"}, 2),
        ("replay", ("N", False, True), {"distill_N"}, 1),
    ],
)
def test_distillation_reads_the_images_it_is_told(
    tmp_path: Path, tiny_domains, inputs, seen, names, calls
) -> None:
    """current: the teacher's old head N sees the stage's K batch; replay: N's own replay batch.
    At the first step teacher and student are the same network (statistics frozen), so the term is 0.
    On replay the student's head N is the replay term's own call (one call a step, not two)."""
    record = _fit_nk(tmp_path, tiny_domains, inputs)
    assert record.seen == [seen, seen]
    assert record.teacher_moves == [0, 0]  # already on the step's device: not walked again every step
    assert record.head_calls == [calls, calls]
    assert [set(t) for t in record.terms] == [names, names]
    assert record.terms[0]["distill_N"] == pytest.approx(0.0, abs=1e-6)
    assert record.terms[1]["distill_N"] > 0  # the student moved after one step


@pytest.mark.parametrize("inputs", ["current", "both"])
def test_a_domain_weighted_zero_is_skipped_not_multiplied(tmp_path: Path, tiny_domains, inputs) -> None:
    """position_weights [0]: the first-learned domain is not distilled in stage NK — the teacher is
    never run and the student's head N runs once a step (its replay batch), not twice."""
    record = _fit_nk(tmp_path, tiny_domains, inputs, "strategy.callbacks.distillation.position_weights=[0]")
    assert record.seen == []
    assert record.head_calls == [1, 1]
    assert record.terms == [{}, {}]


def test_distillation_on_both(tmp_path: Path, tiny_domains) -> None:
    record = _fit_nk(tmp_path, tiny_domains, "both")
    assert record.seen[0] == ("N", False, True) and record.seen[1] == ("N", True, False)
    assert set(record.terms[0]) == {"distill_N", "distill_N_replay"}


def test_distillation_inputs_are_validated(tmp_path: Path, tiny_domains) -> None:
    problems = config_problems(
        compose_config(
            tmp_path,
            [
                *FAST_OVERRIDES,
                "strategy.callbacks.replay=null",
                "strategy.callbacks.distillation.inputs=replay",
            ],
        )
    )
    assert any(
        "strategy.callbacks.distillation.inputs=replay" in p and "has no replay" in p for p in problems
    ), problems
    problems = config_problems(
        compose_config(tmp_path, [*FAST_OVERRIDES, "strategy.callbacks.distillation.inputs=images"])
    )
    assert any("strategy.callbacks.distillation" in p and "'images'" in p for p in problems), problems
    with pytest.raises(ValueError, match="distillation.inputs='images': must be one of"):
        DistillationCallback(inputs="images")
