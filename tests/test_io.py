"""Results files are strict JSON and written atomically."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lifelong_monodepth.utils.io import write_json


def test_undefined_metrics_are_written_as_null(tmp_path: Path) -> None:
    data = {"a": math.nan, "b": [1.0, math.inf, np.float32("nan")], "c": {"d": np.float64(2.5)}, "e": (3,)}
    path = write_json(tmp_path / "summary.json", data)

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    loaded = json.loads(path.read_text(), parse_constant=refuse)
    assert loaded == {"a": None, "b": [1.0, None, None], "c": {"d": 2.5}, "e": [3]}


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "summary.json", {"ok": 1})
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
