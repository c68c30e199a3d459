"""Learning orders: a file in ``conf/orders/`` or any string of known domain letters."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml

from lifelong_monodepth.data.errors import ConfigError


def resolve_order(
    order: str, known_letters: Iterable[str], orders_dir: str | Path | None = None
) -> list[str]:
    """``"NKS"`` → ``["N", "K", "S"]``, checked against the configured domains before any training.

    ``conf/orders/<order>.yaml`` (key ``letters``) wins when it exists, so an order file may
    name a sequence by something other than its letters (e.g. ``indoor_first``).
    """
    known = list(known_letters)
    text = str(order).strip()
    if orders_dir is not None:
        path = Path(orders_dir) / f"{text}.yaml"
        if path.is_file():
            content = yaml.safe_load(path.read_text()) or {}
            if "letters" not in content:
                raise ConfigError(f"Order file {path} must define `letters`, e.g. `letters: NKS`.")
            text = str(content["letters"]).strip()
    if not text:
        raise ConfigError(f"Empty order. Give a string of domain letters, e.g. order={''.join(known)}.")
    unknown = [letter for letter in text if letter not in known]
    if unknown:
        raise ConfigError(
            f"Unknown domain letter(s) {', '.join(repr(u) for u in dict.fromkeys(unknown))} "
            f"in order={order!r}. "
            f"Known letters: {', '.join(known)} (from the `domains` config; add conf/domains/<name>.yaml "
            "and list it in the benchmark config to make a new letter known)."
        )
    repeated = sorted({letter for letter in text if text.count(letter) > 1})
    if repeated:
        raise ConfigError(f"Order {order!r} repeats domain(s) {repeated}; each domain is learned once.")
    return list(text)


def stage_names(order: list[str]) -> list[str]:
    """Checkpoint names in learning order, like the original work: N, NK, NKS."""
    return ["".join(order[: i + 1]) for i in range(len(order))]
