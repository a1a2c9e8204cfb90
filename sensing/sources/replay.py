"""``replay``: a recorded capture replayed as a stream, once or looped, paced or not."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sensing.errors import RejectLog, SourceUnavailableError
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.sources import SOURCES


class ReplayParams(Params):
    """Options of a ``replay`` source."""

    path: str = param(..., min_length=1, path=True,
                      doc="capture file, a directory (every capture in it, one stream "
                          "each) or a glob")
    format: str | None = param(None, doc="registered format name; default: detected from "
                                         "the content")
    loop: bool = param(False, doc="start again at the end (the stream clock continues)")
    realtime: bool = param(False, doc="pace the replay to the capture's own clock")
    chunk_size: int | None = param(None, ge=1, le=100_000,
                                   doc="rows per chunk; default: the format reader's own "
                                       "(e.g. 256 CSI packets)")


@SOURCES.register("replay")
class ReplaySource:
    """A recorded capture as a stream: once or looped, as fast as possible or paced.

    Looping continues the stream clock (each pass is shifted by the length of the
    previous ones), so pipelines see one continuous stream and event ids stay unique.
    Real-time pacing waits on the stop event, so a shutdown is never delayed by it.

    Parameters
    ----------
    path : str
        Capture file.
    name : str
        Stream (event ``source``) name.
    loop, realtime : bool
        See ``docs/agent.md``.
    format : str, optional
        Registered format name (detected from the content when omitted).
    chunk_size : int, optional
        Rows per chunk (default: the reader's own).
    """

    Params = ReplayParams
    modality = None
    live = False
    description = "a recorded capture (any registered format), once or looped"

    @classmethod
    def from_params(cls, params: ReplayParams, name: str) -> ReplaySource:
        """A replay of ``params.path`` (one file: the agent expands directories and globs
        into one stream per capture first)."""
        return cls(params.path, name, loop=params.loop, realtime=params.realtime,
                   format=params.format, chunk_size=params.chunk_size)

    def __init__(self, path: str, name: str, *, loop: bool = False, realtime: bool = False,
                 format: str | None = None, chunk_size: int | None = None) -> None:
        self.path, self.name = path, name
        self.loop, self.realtime = loop, realtime
        self.format, self.chunk_size = format, chunk_size
        self.rejects = RejectLog()
        self.passes = 0
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()

    def chunks(self, stop: Callable[[], bool]) -> Iterator[Frames]:
        import time

        from sensing.formats import open_capture

        shift = 0.0
        wall0: float | None = None
        first_s: float | None = None
        while True:
            try:
                opts: dict[str, Any] = {"source": self.name}
                if self.chunk_size is not None:
                    opts["chunk_size"] = self.chunk_size
                reader = open_capture(self.path, format=self.format, **opts)
            except FileNotFoundError as exc:
                raise SourceUnavailableError(f"{self.path}: capture went away: {exc}") from exc
            last_end: float | None = None
            step = 0.0
            for fr in reader.chunks():
                if stop() or self._closed.is_set():
                    self.rejects.merge(reader.rejects)
                    return
                if not len(fr):
                    continue
                if shift:
                    fr = dataclasses.replace(fr, times_s=fr.times_s + shift)
                if first_s is None:
                    first_s, wall0 = fr.start_s, time.monotonic()
                if self.realtime:
                    ahead = (fr.end_s - first_s) - (time.monotonic() - wall0)
                    if ahead > 0 and self._wait(ahead, stop):
                        self.rejects.merge(reader.rejects)
                        return
                if last_end is not None and len(fr) > 1:
                    step = float(fr.times_s[-1] - fr.times_s[-2])
                last_end = fr.end_s
                yield fr
            self.rejects.merge(reader.rejects)
            self.passes += 1
            if not self.loop or last_end is None:
                return
            shift = last_end + (step or 0.01)

    def _wait(self, seconds: float, stop: Callable[[], bool]) -> bool:
        """Sleep up to ``seconds``; True when asked to stop meanwhile."""
        end = seconds
        while end > 0:
            if self._closed.wait(min(end, 0.1)) or stop():
                return True
            end -= 0.1
        return False
