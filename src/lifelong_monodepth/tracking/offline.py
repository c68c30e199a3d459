"""Read an offline W&B run (``wandb/offline-run-*/run-<id>.wandb``) back, record by record.

The file is a LevelDB-style log (32 KiB blocks; each chunk has a 7-byte header: CRC32, length,
type FULL/FIRST/MIDDLE/LAST) after a 7-byte ``:W&B`` header; each logical record is a
``wandb_internal_pb2.Record`` (CRCs are not checked: a torn tail is simply not yielded). This is
what ``wandb sync`` uploads, so tests check what a user
will see on the dashboard without a network. ``python -m lifelong_monodepth.tracking.offline DIR``
prints a run's config keys, history keys and summary.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK_SIZE = 32 * 1024
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> Iterator[Any]:
    """Every ``Record`` protobuf of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    ident, _magic, _version = HEADER.unpack_from(data, 0)
    if ident != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (header {ident!r})")
    position, pending = HEADER.size, b""
    while position + CHUNK.size <= len(data):
        left = BLOCK_SIZE - position % BLOCK_SIZE
        if left < CHUNK.size:  # block trailer: padding
            position += left
            continue
        _crc, length, kind = CHUNK.unpack_from(data, position)
        if kind == 0 and length == 0:
            position += left
            continue
        chunk = data[position + CHUNK.size : position + CHUNK.size + length]
        position += CHUNK.size + length
        if kind == FULL:
            pending, payload = b"", chunk
        elif kind == FIRST:
            pending, payload = chunk, None
        elif kind == MIDDLE:
            pending, payload = pending + chunk, None
        else:
            pending, payload = b"", pending + chunk
        if payload is not None:
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            yield record


def _items(items: Any) -> dict[str, Any]:
    """Protobuf items → a dict; ``nested_key`` paths (an image's ``_type``, ``path``) become nested dicts."""
    out: dict[str, Any] = {}
    for item in items:
        path = list(item.nested_key) or [item.key]
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = json.loads(item.value_json)
    return out


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


@dataclass
class OfflineRun:
    """What one offline run file holds, decoded: enough to assert what the dashboard will show."""

    path: Path
    id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # glob or name → step metric
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    exit_code: int | None = None

    def column(self, key: str) -> list[Any]:
        return [row[key] for row in self.history if key in row]


def read_offline_run(path: str | Path) -> OfflineRun:
    """Decode a ``run-<id>.wandb`` file or an ``offline-run-*`` directory."""
    path = Path(path)
    if path.is_dir():
        path = next(path.glob("run-*.wandb"))
    run = OfflineRun(path)
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.id, run.name, run.group, run.job_type = r.run_id, r.display_name, r.run_group, r.job_type
            run.tags = list(r.tags)
            run.config.update(_items(r.config.update))
        elif kind == "config":
            run.config.update(_items(record.config.update))
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            _merge(run.summary, _items(record.summary.update))
        elif kind == "metric":
            m = record.metric
            run.metrics[m.glob_name or m.name] = m.step_metric
        elif kind == "artifact":
            a = record.artifact
            run.artifacts.append({"name": a.name, "type": a.type, "aliases": list(a.aliases)})
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def offline_runs(directory: str | Path) -> list[OfflineRun]:
    """Every offline run file under ``directory`` (a run dir, a sweep dir, …), oldest first."""
    return [read_offline_run(p) for p in sorted(Path(directory).rglob("offline-run-*/run-*.wandb"))]


def main(argv: list[str] | None = None) -> None:
    for run in offline_runs((argv or sys.argv[1:] or ["."])[0]):
        keys = sorted({key for row in run.history for key in row if not key.startswith("_")})
        print(f"{run.path.parent.name}: {run.name} (group {run.group or '-'}, exit {run.exit_code})")
        print(f"  config: {len(run.config)} keys; history: {len(run.history)} rows, keys {keys[:8]}…")
        print(f"  summary: {len(run.summary)} keys; artifacts: {[a['aliases'] for a in run.artifacts]}")


if __name__ == "__main__":
    main()
