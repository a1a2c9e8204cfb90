"""Live sources: serial ports, UDP sockets, sound cards, growing files, replayed captures.

A source yields the same :class:`~sensing.frames.Frames` chunks as a file reader, so
everything downstream runs unchanged on live data and on replays. Every source type is a
class registered in :data:`SOURCES` under the name the agent config uses
(``[[sources]] type = NAME``), with:

* ``Params`` — its option model (:class:`sensing.params.Params`); the agent config's
  ``[[sources]]`` table of that type is these options plus the agent's common keys;
* ``modality`` — what it yields (None: decided by the replayed file);
* ``live`` — True for devices (the agent drops chunks when the pipelines fall behind),
  False for replays (back-pressure instead);
* ``description`` — one line;
* ``from_params(params, name)`` — an opened source with ``chunks(stop)``, ``close()``
  (callable from another thread) and ``rejects`` (:class:`~sensing.errors.RejectLog`),
  raising :class:`~sensing.errors.SourceUnavailableError` or ``OSError`` when the device
  cannot be opened or fails.

Adding a source type is one module in this package (or an ``ambisense.sources`` entry
point of a plug-in); see ``docs/extending.md``. Device libraries (pyserial, sounddevice)
are imported when a source is opened, never when this registry is listed.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from sensing.params import Params
from sensing.registry import Registry

__all__ = ["SOURCES", "SourceType"]


class SourceType(Protocol):
    """What a registered source class provides (see the module docstring)."""

    Params: ClassVar[type[Params]]
    modality: ClassVar[str | None]
    live: ClassVar[bool]
    description: ClassVar[str]

    @classmethod
    def from_params(cls, params: Any, name: str) -> Any: ...


#: Registered source types: config ``type`` → source class.
SOURCES: Registry[Any] = Registry("source type", package="sensing.sources",
                                  group="ambisense.sources", folder="sources")
