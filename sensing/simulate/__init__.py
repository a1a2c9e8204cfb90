"""Seeded, physically grounded simulators that write real capture formats plus ground truth.

Each simulator is a function registered in :data:`SIMULATORS`, called as
``fn(out, *, seed=0, **params) -> dict`` (the ground truth, also written to
``<out>.truth.json``). Its keyword parameters (with defaults and type hints) become the
options of ``ambisense simulate NAME`` (``rate_bpm`` → ``--rate-bpm``).
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
from collections.abc import Callable
from typing import Any

from sensing.registry import Registry


def _load_all() -> None:
    """Import every simulator module (on first registry lookup)."""
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


SIMULATORS: Registry[Callable[..., dict[str, Any]]] = Registry("simulator", loader=_load_all)


def truth_path(out: str | os.PathLike) -> str:
    """Sidecar path holding a simulated capture's ground truth."""
    return os.fspath(out) + ".truth.json"


def write_truth(out: str | os.PathLike, truth: dict[str, Any]) -> str:
    path = truth_path(out)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(truth, fh, indent=1)
    return path


def load_truth(out: str | os.PathLike) -> dict[str, Any]:
    with open(truth_path(out), encoding="utf-8") as fh:
        return json.load(fh)

