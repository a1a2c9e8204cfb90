"""The bench-section registry and the shape of a section."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sensing.registry import Registry


@dataclass
class Result:
    """What a section measured: one dict per table row, plus free-text notes.

    Attributes
    ----------
    rows : list of dict
        Table rows; the columns are the union of the keys, in order of first appearance.
    notes : list of str
        Caveats printed under the table (what was shortened, what is missing and why).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Skip(Exception):  # noqa: N818 - a control-flow signal, like unittest.SkipTest
    """Raised by a section that cannot run here (a missing peer library, no data); the
    message says why and is reported instead of a table."""


@dataclass(frozen=True)
class Bench:
    """One section of ``ambisense bench``.

    Attributes
    ----------
    name : str
        Key for ``--only`` and in the JSON document.
    title : str
        Heading of its table.
    description : str
        What each figure means (printed under the heading in ``--markdown``).
    run : callable
        ``run(quick) -> Result | list[dict]``.
    order : int
        Sections run and print in increasing ``order`` (then by name).
    """

    name: str
    title: str
    description: str
    run: Callable[[bool], Result | list[dict[str, Any]]]
    order: int = 50


BENCHES: Registry[Bench] = Registry("bench section", package="agent.bench.sections",
                                    group="ambisense.benches", folder="benches")


def section(name: str, title: str, description: str, *, order: int = 50
            ) -> Callable[[Callable[[bool], Any]], Callable[[bool], Any]]:
    """Register ``fn(quick)`` as the bench section ``name``."""

    def deco(fn: Callable[[bool], Any]) -> Callable[[bool], Any]:
        BENCHES.register(name)(Bench(name, title, description, fn, order))
        return fn

    return deco
