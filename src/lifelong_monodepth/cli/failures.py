"""What a job leaves behind when it fails, and what a sweep says about its failed jobs.

A failed job of a multirun writes ``error.txt`` (the message; the traceback too for an unexpected
error) and ``results/failed.json`` (machine-readable) into its run directory and returns, so the
sweep goes on; at the end :func:`sweep_status` reads them back (``cli/callbacks.py`` lists them and
makes the multirun exit non-zero). A single run whose config is rejected leaves no folder at all.
"""

from __future__ import annotations

import json
import re
import shutil
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lifelong_monodepth.utils.io import write_json, write_text

ERROR_FILE = "error.txt"
FAILED_FILE = "failed.json"
# What Hydra writes into a run directory before the task starts (the job's log is <job name>.log).
HYDRA_ONLY = {".hydra"}


def record_failure(
    output_dir: str | Path, error: BaseException, status: str = "failed", expected: bool = True, **extra: Any
) -> Path:
    """Write ``error.txt`` and ``results/failed.json``; ``expected=False`` keeps the traceback."""
    output_dir = Path(output_dir)
    message = str(error).strip() or type(error).__name__
    text = f"{type(error).__name__}: {message}\n"
    if not expected:
        text += "\n" + "".join(traceback.format_exception(type(error), error, error.__traceback__))
    write_text(output_dir / ERROR_FILE, text)
    from lifelong_monodepth.utils.run_info import command_line_overrides

    record = {
        "status": status,
        "error": type(error).__name__,
        "message": message,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "overrides": command_line_overrides(),
        **extra,
    }
    write_json(output_dir / "results" / FAILED_FILE, record)
    return output_dir / ERROR_FILE


def clear_failure(output_dir: str | Path) -> None:
    """A run that finished (e.g. resumed after a failure) no longer counts as failed."""
    for path in (Path(output_dir) / ERROR_FILE, Path(output_dir) / "results" / FAILED_FILE):
        path.unlink(missing_ok=True)


def remove_rejected_run_dir(output_dir: str | Path, stop_at: str | Path) -> bool:
    """Delete a run directory that holds only what Hydra wrote before the task (``.hydra``, the log).

    Parents left empty are removed as well, up to (not including) ``stop_at``; a directory with
    anything else in it (a run to resume, results) is never touched. Returns whether it was removed.
    """
    output_dir, stop_at = Path(output_dir).resolve(), Path(stop_at).resolve()
    if not output_dir.is_dir() or stop_at not in output_dir.parents:
        return False
    if any(
        p.name not in HYDRA_ONLY and not (p.is_file() and p.suffix == ".log") for p in output_dir.iterdir()
    ):
        return False
    shutil.rmtree(output_dir)
    parent = output_dir.parent
    while parent != stop_at and stop_at in parent.parents and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    return True


@dataclass
class JobStatus:
    job: str
    path: str
    status: str  # ok | failed | preempted | unfinished
    message: str = ""

    def line(self) -> str:
        detail = f": {self.message}" if self.message else ""
        where = Path(self.path) / ERROR_FILE if self.status in ("failed", "preempted") else Path(self.path)
        return f"{self.job} [{self.status}]{detail} → {where}"


def _natural(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def sweep_status(sweep_dir: str | Path) -> list[JobStatus]:
    """Every job directory of a multirun (one holding ``.hydra``) with how it ended."""
    sweep_dir = Path(sweep_dir)
    jobs = sorted(
        (p.parent for p in sweep_dir.rglob(".hydra") if ".submitit" not in p.parts and p.parent != sweep_dir),
        key=_natural,
    )
    statuses = []
    for job in jobs:
        name = str(job.relative_to(sweep_dir))
        failed = job / "results" / FAILED_FILE
        if failed.is_file():
            record = json.loads(failed.read_text())
            first = str(record.get("message", "")).splitlines()[:1]
            statuses.append(
                JobStatus(name, str(job), record.get("status", "failed"), first[0] if first else "")
            )
        elif (job / "results" / "summary.json").is_file():
            statuses.append(JobStatus(name, str(job), "ok"))
        else:
            statuses.append(JobStatus(name, str(job), "unfinished", "no results (killed or out of memory?)"))
    return statuses


def write_sweep_status(sweep_dir: str | Path, statuses: list[JobStatus]) -> Path:
    return write_json(Path(sweep_dir) / "sweep_status.json", [asdict(s) for s in statuses])
