"""Sink base class and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from agent.events import Event
from sensing.params import NoParams, Params
from sensing.registry import Registry


class Sink(ABC):
    """Receives events in order. ``close`` must not return before every event is delivered
    (or durably queued).

    A sink that the agent config can name sets ``config_key`` (the ``[sinks.<key>]``
    table) and ``Params`` (that table's option model) and is built by :meth:`from_params`.
    """

    #: ``[sinks.<config_key>]`` table of the agent config; None: not configurable there.
    config_key: ClassVar[str | None] = None
    #: Option model of that table.
    Params: ClassVar[type[Params]] = NoParams
    #: One line for ``info`` and the docs.
    description: ClassVar[str] = ""

    @classmethod
    def from_params(cls, params: Params, *, device: str | None = None) -> Sink:
        """Build the sink from its validated options (``device``: the agent's name)."""
        return cls(**params.model_dump())  # type: ignore[call-arg]

    def summary(self) -> str:
        """Where events go, for the agent's start-up line (never a secret)."""
        return type(self).__name__

    @abstractmethod
    def emit(self, event: Event) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: Registered sinks: name → class (lazy; see :mod:`agent.sinks`).
SINKS: Registry[type[Sink]] = Registry("sink", package="agent.sinks", group="ambisense.sinks")
