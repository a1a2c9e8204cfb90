"""Shared fixtures: location of the third-party data in ../shared/data (skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("AMBISENSE_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data; skips the calling test when that data is not present."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"third-party data not present: {p} (it lives in ../shared/data beside the "
                    f"repository; set AMBISENSE_SHARED_DATA to point elsewhere)")
    return p


def assert_same_chunks(a, b) -> None:
    """Two streams of Frames are equal: data, times, subcarriers, t0, meta and every field
    (values and dtypes), chunk by chunk."""
    import numpy as np

    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.data.dtype == y.data.dtype and x.data.shape == y.data.shape
        np.testing.assert_array_equal(x.data, y.data)
        np.testing.assert_array_equal(x.times_s, y.times_s)
        np.testing.assert_array_equal(x.subcarriers, y.subcarriers)
        assert x.t0 == y.t0 and x.meta == y.meta and list(x.fields) == list(y.fields)
        for k in x.fields:
            assert x.fields[k].dtype == y.fields[k].dtype, k
            np.testing.assert_array_equal(x.fields[k], y.fields[k], err_msg=k)


@pytest.fixture
def shared():
    """Fixture form of :func:`shared_path`."""
    return shared_path


# Real mosquitto broker fixtures (``mosquitto``, ``mosquitto_factory``): see tests/mosquitto.py.
from mosquitto import mosquitto, mosquitto_factory  # noqa: E402,F401
