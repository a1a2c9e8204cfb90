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


@pytest.fixture
def shared():
    """Fixture form of :func:`shared_path`."""
    return shared_path


# Real mosquitto broker fixtures (``mosquitto``, ``mosquitto_factory``): see tests/mosquitto.py.
from mosquitto import mosquitto, mosquitto_factory  # noqa: E402,F401
