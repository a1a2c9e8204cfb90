"""Seeded, physically grounded simulators that write real capture formats plus ground truth.

Each simulator is a function registered in :data:`SIMULATORS` with :func:`simulator`,
called as ``fn(out, params=None, **options) -> dict`` (the ground truth, also written to
``<out>.truth.json``). Its options are declared once, as a :class:`~sensing.params.Params`
model in ``fn.Params`` (with ``seed``): it validates the keyword options, and its fields
(type, unit, default, range, doc) become the options of ``ambisense simulate NAME``
(``rate_bpm`` → ``--rate-bpm``).

The impairments of commodity radios (CFO, timing offset, AGC, quantisation, packet jitter
and loss, clock drift …) are in :mod:`sensing.simulate.radio`, shared by the simulators.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
from collections.abc import Callable
from typing import Any, TypeVar

from sensing.params import NoParams, Params
from sensing.registry import Registry


def _load_all() -> None:
    """Import every simulator module (on first registry lookup)."""
    for mod in pkgutil.iter_modules(__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


SIMULATORS: Registry[Callable[..., dict[str, Any]]] = Registry(
    "simulator", loader=_load_all, group="ambisense.simulators", folder="simulators")

F = TypeVar("F", bound=Callable[..., dict[str, Any]])


def simulator(name: str, params: type[Params]) -> Callable[[F], F]:
    """Register a simulator ``fn(out, params=None, **options)`` under ``name``, with its
    option model ``params`` (set as ``fn.Params``)."""
    def deco(fn: F) -> F:
        fn.Params = params  # type: ignore[attr-defined]
        return SIMULATORS.register(name)(fn)
    return deco


def params_of(fn: Callable[..., Any]) -> type[Params]:
    """The option model of a registered simulator (:class:`~sensing.params.NoParams` for a
    plug-in that declares none)."""
    model = getattr(fn, "Params", None)
    return model if isinstance(model, type) and issubclass(model, Params) else NoParams


def parse_intervals(text: str, what: str = "") -> list[tuple[float, float]]:
    """``"10-20,35.5-40"`` → ``[(10.0, 20.0), (35.5, 40.0)]`` (seconds, sorted): a simulator
    option naming time spans. ``what`` (the option's name) prefixes the errors.

    Raises
    ------
    ValueError
        A part is not ``START-END`` with ``END > START``.
    """
    pre = f"{what}: " if what else ""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        a, sep, b = part.partition("-")
        try:
            lo, hi = float(a), float(b)
        except ValueError:
            raise ValueError(f"{pre}expected START-END seconds, got {part!r}") from None
        if not sep or hi <= lo:
            raise ValueError(f"{pre}expected START-END with END > START, got {part!r}")
        out.append((lo, hi))
    return sorted(out)


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

