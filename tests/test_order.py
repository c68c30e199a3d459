"""Learning orders: files, free strings, and errors before any training."""

from pathlib import Path

import pytest

from lifelong_monodepth.data.errors import ConfigError
from lifelong_monodepth.training.order import resolve_order, stage_names

CONF = Path(__file__).resolve().parents[1] / "conf" / "orders"


def test_every_order_file_resolves_to_a_permutation() -> None:
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} >= {"NKS", "NSK", "KNS", "KSN", "SNK", "SKN"}
    for f in files:
        assert sorted(resolve_order(f.stem, "NKS", CONF)) == ["K", "N", "S"]


def test_free_string_and_stage_names() -> None:
    assert resolve_order("KN", "NKS", CONF) == ["K", "N"]
    assert stage_names(["N", "K", "S"]) == ["N", "NK", "NKS"]


def test_unknown_letter_lists_known_letters() -> None:
    with pytest.raises(
        ConfigError, match=r"Unknown domain letter\(s\) 'X' in order='NXK'. Known letters: N, K, S"
    ):
        resolve_order("NXK", ["N", "K", "S"], CONF)


def test_repeated_letter_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"repeats domain\(s\) \['N'\]"):
        resolve_order("NKN", "NKS", CONF)
