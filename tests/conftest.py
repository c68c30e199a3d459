"""Test setup: the torchvision workaround must run before timm/torchmetrics/Lightning are imported."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import lifelong_monodepth  # noqa: F401  (applies the torchvision workaround)
from lifelong_monodepth.data.depth_io import write_depth_png, write_rgb  # noqa: E402
from lifelong_monodepth.data.domain import DomainConfig  # noqa: E402
from lifelong_monodepth.data.index import write_index  # noqa: E402


def make_domain(
    root: Path,
    letter: str = "N",
    size: tuple[int, int] = (32, 48),
    count: int = 6,
    depth_scale: float = 1000.0,
    max_depth: float = 10.0,
    splits: tuple[str, ...] = ("train", "val", "test", "replay"),
    augment: list | None = None,
) -> DomainConfig:
    """A tiny domain on disk in native format: a depth ramp and an image that encodes it."""
    name = f"tiny_{letter.lower()}"
    rng = np.random.default_rng(ord(letter))
    height, width = size
    pairs = []
    for i in range(count):
        ramp = np.linspace(1.0, max_depth * 0.8, height, dtype=np.float32)[:, None].repeat(width, 1)
        depth = ramp * (0.8 + 0.4 * rng.random())
        image = np.clip(255 * depth[..., None] / max_depth * np.array([1.0, 0.6, 0.3]), 0, 255).astype(
            np.uint8
        )
        rgb_rel, depth_rel = f"{name}/{i:03d}_rgb.png", f"{name}/{i:03d}_depth.png"
        write_rgb(root / rgb_rel, image)
        write_depth_png(root / depth_rel, depth, depth_scale)
        pairs.append((rgb_rel, depth_rel))
    index = {}
    for split in splits:
        index[split] = root / "index" / name / f"{split}.csv"
        write_index(index[split], pairs)
    return DomainConfig(
        letter=letter,
        name=name,
        root=root,
        index=index,
        depth_scale=depth_scale,
        min_depth=0.1,
        max_depth=max_depth,
        input_size=size,
        eval_crop="none",
        augment=augment or [],
    )


@pytest.fixture
def tiny_domain(tmp_path: Path) -> DomainConfig:
    return make_domain(tmp_path)


ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LMD_ROOT", str(ROOT))

FAST_OVERRIDES = [
    "logger=csv",
    "callbacks=none",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "data.batch_size=2",
    "data.eval_batch_size=4",
    "checkpoint.every_n_steps=0",
    "model.net.fusion.mid_channels=8",
    "model.net.fusion.out_channels=16",
    "model.net.head.hidden_channels=8",
    "strategy.callbacks.replay.batch_size=2",
    "selector.max_images=4",
    "benchmark.generate=false",
    "stage_schedule.epochs_from_stage=null",  # max_epochs=1 in every stage (the default gives stage 3 ten)
]


def compose_config(output_dir: Path, overrides: list[str], domains: dict[str, DomainConfig] | None = None):
    """The real config tree, composed like run.py does, with tiny domains swapped in."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf, open_dict

    from lifelong_monodepth.cli.main import config_dir, register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.output_dir={output_dir}", *overrides])
    if domains is not None:
        with open_dict(cfg):
            cfg.domains = OmegaConf.create({letter: domain_node(d) for letter, d in domains.items()})
    return cfg


def domain_node(d: DomainConfig) -> dict:
    """A domain as its YAML under conf/domains/ would give it (for composed configs and benchmark files)."""
    return {
        "letter": d.letter,
        "name": d.name,
        "root": str(d.root),
        "index": {k: str(v) for k, v in d.index.items()},
        "depth_scale": d.depth_scale,
        "min_depth": d.min_depth,
        "max_depth": d.max_depth,
        "input_size": list(d.input_size),
        "eval_crop": d.eval_crop,
        "augment": d.augment,
        **_real_data_options(d),
    }


def _real_data_options(d: DomainConfig) -> dict:
    """The optional real-data fields of a domain, as its YAML would give them."""
    import dataclasses

    options = {
        "depth_scale_uint8": d.depth_scale_uint8,
        "align": d.align,
        "input_fit": d.input_fit,
        "paper_eval": d.paper_eval,
        "prepare": d.prepare,
    }
    if d.precropped is not None:
        options["precropped"] = dataclasses.asdict(d.precropped)
    return options


@pytest.fixture
def tiny_domains(tmp_path: Path) -> dict[str, DomainConfig]:
    return tiny_domains_at(tmp_path / "data")


def tiny_domains_at(data: Path) -> dict[str, DomainConfig]:
    """The same three tiny domains, rebuilt identically by any process (used by subprocess runs)."""
    return {
        "N": make_domain(data, "N", size=(32, 64), count=6),
        "K": make_domain(data, "K", size=(32, 64), count=6, depth_scale=256.0, max_depth=80.0),
        "S": make_domain(data, "S", size=(32, 64), count=6, max_depth=6.0),
    }


class NaNInjector:
    """A strategy whose loss term is NaN at chosen global steps (to test bad-step handling)."""

    def __new__(cls, steps: list[int]):
        from lifelong_monodepth.lifelong.base import LifelongStrategy

        class _Injector(LifelongStrategy):
            def extra_loss(self, module, batch, fused):

                if module.global_step in set(steps):
                    return {"injected": fused.sum() * float("nan")}
                return {}

        return _Injector()


def _callback_base():
    import pytorch_lightning as pl

    return pl.Callback


class SlowSteps(_callback_base()):
    """Sleeps after every training step so a test can signal a subprocess in the middle of a stage."""

    def __init__(self, seconds: float = 0.2) -> None:
        self.seconds = float(seconds)

    def on_train_batch_end(self, *args, **kwargs) -> None:
        import time

        time.sleep(self.seconds)


class RecordPid(_callback_base()):
    """Writes ``<run>/pids/rank<R>`` with this process's id, so a test can signal one DDP rank."""

    def on_fit_start(self, trainer, pl_module) -> None:
        folder = Path(trainer.default_root_dir) / "pids"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"rank{trainer.global_rank}").write_text(str(os.getpid()))


class SigtermAtFitEnd(_callback_base()):
    """Sends SIGTERM to this process when the first stage's training ends (before its evaluation)."""

    def __init__(self) -> None:
        self.sent = False

    def on_fit_end(self, trainer, pl_module) -> None:
        import signal

        if not self.sent and trainer.global_step > 0:
            os.kill(os.getpid(), signal.SIGTERM)


class RecordBatchNormModes(_callback_base()):
    """Records, at every training step, which parts of the network have BatchNorm in training mode."""

    records: list = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        import torch

        def training(part) -> bool:
            return any(
                m.training for m in part.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            )

        net = pl_module.net
        RecordBatchNormModes.records.append(
            {
                "current": list(pl_module.current),
                "encoder": training(net.encoder),
                "fusion": training(net.fusion),
                "heads": {letter: training(head) for letter, head in net.heads.items()},
            }
        )


def enter_second_stage(runner):
    """Advance a ``SequenceRunner`` to its second stage without training the first (strategies and
    heads as after stage 1): the state a replay + distillation step is measured or tested in."""
    first, second = runner.stages
    runner.prepare_stage(first)
    for strategy in runner.strategies:
        strategy.on_stage_start(first, runner.module, runner.datamodule)
        strategy.on_stage_end(first, runner.module, runner.datamodule)
    runner.module.mark_learned(first.current)
    runner.prepare_stage(second)
    for strategy in runner.strategies:
        strategy.on_stage_start(second, runner.module, runner.datamodule)
    return second
