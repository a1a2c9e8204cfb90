"""Console and JSON Lines file sinks."""

from __future__ import annotations

import os
import sys
from typing import IO

from agent.events import Event
from agent.sinks.base import SINKS, Sink


@SINKS.register("jsonl")
class JsonlSink(Sink):
    """One JSON event per line, to a stream (default stdout) or appended to a file.

    Parameters
    ----------
    path : str, optional
        File to append to (created with its directory); stdout when omitted.
    stream : file object, optional
        Text stream to write to instead of a file.
    """

    def __init__(self, path: str | None = None, stream: IO[str] | None = None) -> None:
        self._own = False
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115
            self._own = True
        else:
            self._fh = stream or sys.stdout

    def emit(self, event: Event) -> None:
        self._fh.write(event.to_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._own:
            self._fh.close()
        else:
            self._fh.flush()


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
