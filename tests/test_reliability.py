"""Resume after SIGKILL/SIGTERM, bad data, non-finite steps, reproducibility, config errors."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FAST_OVERRIDES, ROOT, compose_config, make_domain, tiny_domains_at
from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.data.index import read_index
from lifelong_monodepth.training.checkpointing import PreemptedError, load_checkpoint_file
from lifelong_monodepth.training.module import NonFiniteLossError
from lifelong_monodepth.training.sequence import SequenceRunner, run_sequence

pytestmark = pytest.mark.slow

# Two epochs of three batches per stage, a resumable checkpoint after every step.
RESUME_OVERRIDES = [
    *[o for o in FAST_OVERRIDES if not o.startswith("trainer.limit_train_batches")],
    "trainer.max_epochs=2",
    "checkpoint.every_n_steps=1",
    "order=NK",
    "seed=7",
]
# Subprocess runs sleep after each step so that a signal sent after step k lands in the middle of the
# stage however fast the machine is (sleeping does not change what is computed).
SLOW = ["+callbacks.slow._target_=conftest.SlowSteps", "+callbacks.slow.seconds=0.3"]


def _state_dicts_equal(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint_file(a)["state_dict"], load_checkpoint_file(b)["state_dict"]
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def _matrix(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "results" / "lifelong_matrix.csv")


def _start(out: Path, data: Path, overrides: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "tiny_run.py"), str(out), str(data), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )


def _wait_for_step(
    out: Path, process: subprocess.Popen, stage: str, min_step: int, timeout: float = 240
) -> int:
    """Poll the stage's resumable checkpoint until it holds at least ``min_step`` steps."""
    path = out / "checkpoints" / "resume" / stage / "last.ckpt"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert process.poll() is None, process.stdout.read()
        if path.is_file():
            try:
                step = int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
            except Exception:  # being replaced right now
                step = -1
            if step >= min_step:
                return step
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {min_step} of stage {stage} within {timeout}s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An uninterrupted run, shared by the resume tests."""
    base = tmp_path_factory.mktemp("reference")
    data = base / "data"
    out = base / "run"
    run_sequence(compose_config(out, RESUME_OVERRIDES, tiny_domains_at(data)))
    return data, out


def test_same_seed_gives_identical_checkpoints_and_metrics(reference, tmp_path: Path) -> None:
    data, first = reference
    second = tmp_path / "again"
    run_sequence(compose_config(second, RESUME_OVERRIDES, tiny_domains_at(data)))
    for name in ("N", "NK"):
        _state_dicts_equal(first / "checkpoints" / f"{name}.ckpt", second / "checkpoints" / f"{name}.ckpt")
    pd.testing.assert_frame_equal(_matrix(first), _matrix(second))


def test_sigkill_in_stage_two_then_resume_equals_uninterrupted(reference, tmp_path: Path) -> None:
    data, expected = reference
    out = tmp_path / "killed"
    process = _start(out, data, [*RESUME_OVERRIDES, *SLOW])
    step = _wait_for_step(out, process, "NK", min_step=2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert (out / "checkpoints" / "N.ckpt").is_file() and not (out / "checkpoints" / "NK.ckpt").is_file()
    assert step < 6  # killed in the middle of stage 2
    run_sequence(compose_config(out, RESUME_OVERRIDES, tiny_domains_at(data)))  # same directory: resumes
    for name in ("N", "NK"):
        _state_dicts_equal(out / "checkpoints" / f"{name}.ckpt", expected / "checkpoints" / f"{name}.ckpt")
    pd.testing.assert_frame_equal(_matrix(out), _matrix(expected))
    assert not (out / "checkpoints" / "resume" / "NK" / "last.ckpt").exists()  # cleaned after the stage


def test_sigterm_saves_a_resumable_checkpoint(reference, tmp_path: Path) -> None:
    data, expected = reference
    out = tmp_path / "preempted"
    process = _start(out, data, [*RESUME_OVERRIDES, *SLOW])
    _wait_for_step(out, process, "NK", min_step=1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "Stopped by SIGTERM" in output
    checkpoint = load_checkpoint_file(out / "checkpoints" / "resume" / "NK" / "last.ckpt")
    assert checkpoint["global_step"] >= 1
    run_sequence(compose_config(out, RESUME_OVERRIDES, tiny_domains_at(data)))
    _state_dicts_equal(out / "checkpoints" / "NK.ckpt", expected / "checkpoints" / "NK.ckpt")


def test_sigterm_between_stages_stops_after_the_finished_stage(reference, tmp_path: Path) -> None:
    """A SIGTERM after a stage's last step (during its evaluation) stops before the next stage."""
    data, expected = reference
    out = tmp_path / "between"
    overrides = [*RESUME_OVERRIDES, "+callbacks.sigterm._target_=conftest.SigtermAtFitEnd"]
    with pytest.raises(PreemptedError, match=r"Stopped by SIGTERM after stage N .*resume="):
        run_sequence(compose_config(out, overrides, tiny_domains_at(data)))
    assert (out / "checkpoints" / "N.ckpt").is_file() and not (out / "checkpoints" / "NK.ckpt").exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the run's handler is gone
    run_sequence(compose_config(out, RESUME_OVERRIDES, tiny_domains_at(data)))
    _state_dicts_equal(out / "checkpoints" / "NK.ckpt", expected / "checkpoints" / "NK.ckpt")
    pd.testing.assert_frame_equal(_matrix(out), _matrix(expected))


def test_truncated_checkpoint_is_rejected_clearly(reference, tmp_path: Path) -> None:
    _, run = reference
    broken = tmp_path / "NK.ckpt"
    data = (run / "checkpoints" / "NK.ckpt").read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match=r"Cannot load checkpoint .*NK\.ckpt.*truncated, corrupt"):
        load_checkpoint_file(broken)


def test_incompatible_run_directory_is_refused_before_training(reference, tmp_path: Path) -> None:
    data, run = reference
    cfg = compose_config(run, [*RESUME_OVERRIDES, "order=KN"], tiny_domains_at(data))
    with pytest.raises(
        ConfigError,
        match=r"Cannot resume in .*: it holds a different run \(order: directory has .NK., this run .KN.\)",
    ):
        SequenceRunner(cfg).run()


def test_ten_percent_corrupt_files_train_and_are_counted(tmp_path: Path) -> None:
    domain = make_domain(tmp_path / "data", "N", size=(32, 64), count=10)
    rows = read_index(domain.index["train"], domain.root)
    rows[4].rgb.write_bytes(b"\x89PNG truncated")
    out = tmp_path / "run"
    cfg = compose_config(
        out,
        [*FAST_OVERRIDES, "order=N", "data.on_error=skip", "trainer.limit_train_batches=5"],
        {"N": domain},
    )
    run_sequence(cfg)
    assert (out / "checkpoints" / "N.ckpt").is_file()
    skipped = (out / "results" / "skipped_files.json").read_text()
    assert "004_rgb.png" in skipped


def test_nan_steps_are_skipped_and_counted(tmp_path: Path, tiny_domains) -> None:
    out = tmp_path / "run"
    overrides = [
        *FAST_OVERRIDES,
        "order=N",
        "trainer.limit_train_batches=3",
        "+strategy.callbacks.nan._target_=conftest.NaNInjector",
        "+strategy.callbacks.nan.steps=[1]",
    ]
    runner = SequenceRunner(compose_config(out, overrides, tiny_domains))
    before = {k: v.clone() for k, v in runner.module.state_dict().items()}
    runner.run()
    assert runner.module.bad_steps_total == 1
    assert runner.module.global_step == 3  # the bad step still counts as a step
    changed = [
        k for k, v in runner.module.state_dict().items() if k in before and not torch.equal(v, before[k])
    ]
    assert changed  # the good steps trained
    metrics = pd.read_csv(next((out / "csv").rglob("metrics.csv")))
    assert metrics["train/skipped_steps"].max() == 1
    assert np.isfinite(metrics["train/loss"].dropna()).all()


def test_consecutive_nan_steps_stop_with_message_and_checkpoint(tmp_path: Path, tiny_domains) -> None:
    out = tmp_path / "run"
    overrides = [
        *FAST_OVERRIDES,
        "order=N",
        "trainer.limit_train_batches=3",
        "model.max_bad_steps=2",
        "+strategy.callbacks.nan._target_=conftest.NaNInjector",
        "+strategy.callbacks.nan.steps=[0,1,2]",
    ]
    with pytest.raises(NonFiniteLossError, match="2 consecutive training steps had a non-finite loss"):
        run_sequence(compose_config(out, overrides, tiny_domains))
    assert (out / "checkpoints" / "resume" / "N" / "diverged.ckpt").is_file()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("domains.N.depth_scale=null", r"`domains.N` is missing \['depth_scale'\]"),
        ("domains.N.input_size=[30,64]", r"input_size=\[30, 64\] is not divisible by the encoder stride 32"),
        ("order=NZ", r"Unknown domain letter\(s\) 'Z'"),
    ],
)
def test_configuration_errors_before_training(
    tmp_path: Path, tiny_domains, override: str, message: str
) -> None:
    from omegaconf import OmegaConf

    cfg = compose_config(tmp_path / "run", [*FAST_OVERRIDES, "order=NK"], tiny_domains)
    key, value = override.split("=", 1)
    if key == "order":
        cfg.order = value
    else:
        OmegaConf.update(cfg, key, OmegaConf.create({"v": __import__("yaml").safe_load(value)}).v)
    with pytest.raises(ConfigError, match=message):
        SequenceRunner(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_domain_file_names_it() -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="domains/does_not_exist"):
        compose_config(Path("/tmp/unused"), ["domains@domains.N=does_not_exist"])


def test_a_finished_stage_without_training_state_rebuilds_the_replay_memory(
    reference, tmp_path: Path
) -> None:
    """A finished run keeps only its stage checkpoints. Re-running its last stage from them (its
    checkpoint deleted) must rebuild the replay memory of the earlier stage, not train without
    replay: the stage then computes what the uninterrupted run computed."""
    import shutil

    data, expected = reference
    out = tmp_path / "extended"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copy(expected / "checkpoints" / "N.ckpt", out / "checkpoints" / "N.ckpt")
    shutil.copy(expected / "run_manifest.json", out / "run_manifest.json")
    assert not (expected / "checkpoints" / "resume").exists()  # the finished run dropped its state
    runner = SequenceRunner(compose_config(out, RESUME_OVERRIDES, tiny_domains_at(data)))
    runner.run()
    replay = next(s for s in runner.strategies if type(s).__name__ == "ReplayCallback")
    assert replay.learned == ["N", "K"] and len(replay.buffer.rows["N"]) > 0
    _state_dicts_equal(out / "checkpoints" / "NK.ckpt", expected / "checkpoints" / "NK.ckpt")
    final = _matrix(out)
    reference_rows = _matrix(expected)
    pd.testing.assert_frame_equal(
        final[final["stage"] == "NK"].reset_index(drop=True),
        reference_rows[reference_rows["stage"] == "NK"].reset_index(drop=True),
    )
