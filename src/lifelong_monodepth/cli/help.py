"""Parts of ``python run.py --help`` that depend on the config: the known domains and orders.

``configs/hydra/default.yaml`` sets ``hydra.help.template``; it calls these as OmegaConf resolvers
(``${lmd_help_domains:${domains}}``), registered by ``cli.main.register_resolvers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig


def domains_help(domains: Any) -> str:
    """``  N  synthetic_n  0.1–10 m, 96×128: indoor rooms …`` per configured domain."""
    if not isinstance(domains, (DictConfig, dict)) or not domains:
        return "  (none configured: choose benchmark=synthetic or benchmark=real)"
    lines = []
    for letter, domain in domains.items():
        size = "×".join(str(s) for s in domain.get("input_size") or [])
        depth = f"{domain.get('min_depth')}–{domain.get('max_depth')} m"
        text = f"  {letter}  {domain.get('name', '?'):<13} {depth}, {size}: {domain.get('description') or ''}"
        lines.append(text.rstrip(": "))
    return "\n".join(lines)


def orders_help(conf_dir: str) -> str:
    """The order files of ``conf/orders`` (``name = letters`` when they differ)."""
    names = []
    for path in sorted(Path(conf_dir, "orders").glob("*.yaml")):
        letters = str((yaml.safe_load(path.read_text()) or {}).get("letters", "?"))
        names.append(path.stem if path.stem == letters else f"{path.stem} = {letters}")
    return "  " + ", ".join(names) if names else "  (no files in conf/orders)"
