"""``table`` sink: a readable table of events for people watching a terminal."""

from __future__ import annotations

import sys
from typing import IO

from agent.events import Event
from agent.sinks.base import SINKS, Sink


@SINKS.register("table")
class TableSink(Sink):
    """A readable one-line-per-event table for people watching a terminal."""

    HEADER = f"{'offset_s':>10}  {'type':<16} {'value':>10} {'unit':<5} {'conf':>5}  source"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._fh = stream or sys.stdout
        self._header_done = False

    def emit(self, event: Event) -> None:
        if not self._header_done:
            self._fh.write(self.HEADER + "\n")
            self._header_done = True
        value = event.value
        text = f"{value:.2f}" if isinstance(value, float) else str(value)
        self._fh.write(
            f"{event.offset_s:>10.2f}  {event.type:<16} {text:>10} {event.unit:<5} "
            f"{event.confidence:>5.2f}  {event.source}\n"
        )
        self._fh.flush()

    def close(self) -> None:
        """A table that got no row says so (instead of printing nothing at all)."""
        if not self._header_done:
            self._fh.write("no events\n")
        self._fh.flush()
