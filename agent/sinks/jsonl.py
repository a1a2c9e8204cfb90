"""``jsonl`` sink: one JSON event per line, on stdout or appended to a file."""

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
