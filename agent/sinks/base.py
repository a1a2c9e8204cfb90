"""Sink base class and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod

from agent.events import Event
from sensing.registry import Registry


class Sink(ABC):
    """Receives events in order. ``close`` must not return before every event is delivered
    (or durably queued)."""

    @abstractmethod
    def emit(self, event: Event) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Registered sinks: name → class.
SINKS: Registry[type[Sink]] = Registry("sink")
