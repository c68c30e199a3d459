"""The W&B run of one job: opened with the whole config, resumed by id, finished before the next job.

A Hydra multirun calls the task once per job in the same process; without ``finish()`` every job
would write into the first job's run. The run id lives in ``<run dir>/tracking.json`` so that
``resume=<run dir>`` continues the same run, and W&B's own step continues after the last one logged.
"""

from __future__ import annotations

import logging
import netrc
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from lifelong_monodepth.data.errors import LifelongDepthError

log = logging.getLogger(__name__)
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


class TrackingError(LifelongDepthError):
    """W&B could not start (no network, no API key): the message says what to use instead."""


def wandb_mode(requested: str = "auto") -> str:
    """``auto`` → ``WANDB_MODE`` if set, ``online`` with an API key or ``wandb login``, else ``offline``."""
    if requested != "auto":
        return requested
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        netrc_path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
        if netrc_path.is_file() and netrc.netrc(str(netrc_path)).authenticators("api.wandb.ai"):
            return "online"
    except (netrc.NetrcParseError, OSError):
        pass
    return "offline"


def flat_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config with dotted keys (``strategy.callbacks.replay.weight``): what users filter on
    in the W&B table is then exactly what they type as a Hydra override."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping) and node:
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix] = node

    walk("", container)
    return flat


def sweep_group() -> str | None:
    """The multirun directory's name when this job is part of a Hydra sweep (``None`` otherwise)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
    except (ImportError, ValueError):
        return None
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    return Path(hydra_cfg.sweep.dir).name


def check_reachable(mode: str = "auto", timeout: float = 10.0) -> None:
    """Before any data or model work: an online run whose server cannot be reached fails in seconds.

    A TCP connection to W&B's server (``WANDB_BASE_URL`` or the default) is tried; behind an HTTP(S)
    proxy the check is left to ``wandb.init``'s own ``init_timeout``.
    """
    if wandb_mode(mode) != "online" or any(os.environ.get(k) for k in PROXY_VARIABLES):
        return
    import wandb

    url = urlsplit(os.environ.get("WANDB_BASE_URL") or str(wandb.Settings().base_url))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=float(timeout)).close()
    except OSError as err:
        raise TrackingError(
            f"W&B (online) cannot reach {url.scheme}://{url.hostname}:{port} ({err}). Without network use "
            "logger.wandb.mode=offline (then `wandb sync <run dir>/wandb/offline-run-*`) or logger=csv."
        ) from None


def open_run(
    project: str,
    name: str,
    save_dir: str | Path,
    run_config: Mapping[str, Any],
    run_id: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    tags: Sequence[str] = (),
    mode: str = "auto",
    init_timeout: float = 10.0,
    entity: str | None = None,
) -> Any:
    """``wandb.init`` for one job; ``run_id`` resumes that run. Fails within ``init_timeout`` seconds.

    Returns ``None`` in ``disabled`` mode (the tracker then logs nothing to W&B).
    """
    import wandb

    mode = wandb_mode(mode)
    if mode == "disabled":  # WANDB_MODE=disabled: no run at all, like logger=csv
        return None
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    try:
        return wandb.init(
            project=project,
            entity=entity,
            name=name,
            dir=str(save_dir),
            id=run_id,
            resume="allow" if run_id else None,
            group=group,
            job_type=job_type,
            tags=[str(tag) for tag in tags if tag not in (None, "")],
            config=dict(run_config),
            mode=mode,
            settings=wandb.Settings(init_timeout=float(init_timeout), reinit="finish_previous"),
        )
    except (wandb.errors.CommError, wandb.errors.UsageError, wandb.errors.AuthenticationError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TrackingError(
            f"W&B ({mode}) could not start: {first}. Without network use logger.wandb.mode=offline "
            "(then `wandb sync <run dir>/wandb/offline-run-*`) or logger=csv."
        ) from None


def finish_run(run: Any, exit_code: int, preempted: bool = False) -> None:
    """Close the run (a non-zero code marks it failed on the dashboard) so the next job gets its own."""
    if preempted:
        run.mark_preempting()
    run.finish(exit_code=exit_code)
