"""What edflow 0.4.0 returned for the shared fixture, decoded, and a strict comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "edflow-small"


def decode(value: Any) -> Any:
    """Arrays and numpy scalars back from the fixture's JSON encoding."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        if "__scalar__" in value:
            return np.dtype(value["dtype"]).type(value["__scalar__"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def expected() -> dict[str, Any]:
    return decode(json.loads((FIXTURE / "expected.json").read_text()))


def assert_same(got: Any, want: Any, path: str = "example") -> None:
    """Equal structure, keys, types, dtypes and values (floats to 1e-6)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{path}: {type(got).__name__}, want dict"
        assert sorted(got) == sorted(want), f"{path}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{path}/{key}")
    elif isinstance(want, list):
        assert isinstance(got, list), f"{path}: {type(got).__name__}, want list"
        assert len(got) == len(want), f"{path}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=False)):
            assert_same(g, w, f"{path}/{i}")
    elif isinstance(want, (np.ndarray, np.generic)):
        assert type(got) is type(want), f"{path}: {type(got).__name__}, want {type(want).__name__}"
        assert got.dtype == want.dtype, f"{path}: dtype {got.dtype} != {want.dtype}"
        assert np.shape(got) == np.shape(want), f"{path}: shape {np.shape(got)} != {np.shape(want)}"
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=path)
        else:
            np.testing.assert_array_equal(got, want, err_msg=path)
    else:
        assert type(got) is type(want), f"{path}: {type(got).__name__}, want {type(want).__name__}"
        assert got == want, f"{path}: {got!r} != {want!r}"
