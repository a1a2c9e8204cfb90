"""Source types the agent config can name (``[[sources]] type = …``) and how to open them.

Each :class:`SourceType` maps a config model (:mod:`agent.config`) to a live source in
``sensing/sources/`` or to file replay. A type whose module is not part of this build is
reported by :meth:`SourceType.unavailable` (config check) instead of breaking the import.

Every opened source has the same small interface the supervisor uses:

* ``chunks(stop)`` — iterator of :class:`~sensing.frames.Frames`; raises
  :class:`~sensing.errors.SourceUnavailableError` (or ``OSError``) when the device fails;
* ``close()`` — ask it to stop (callable from another thread);
* ``rejects`` — a :class:`~sensing.errors.RejectLog`;
* ``live`` — True for devices (drop chunks when the pipelines fall behind), False for
  replays (back-pressure instead).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sensing.errors import RejectLog, SourceUnavailableError
from sensing.frames import Frames
from sensing.registry import Registry


@dataclass(frozen=True)
class SourceType:
    """A ``type`` value of ``[[sources]]``.

    Attributes
    ----------
    name : str
        The config value.
    modality : str or None
        What the source yields (None: decided by the replayed file).
    module, attr : str
        Where the live source class lives (imported on first use).
    open : callable
        ``open(config, name) -> source``.
    """

    name: str
    modality: str | None
    module: str
    attr: str
    open: Callable[[Any, str], Any]

    def load(self) -> Any:
        """Import and return the source class (raises ImportError/AttributeError)."""
        return getattr(importlib.import_module(self.module), self.attr)

    def unavailable(self) -> str | None:
        """Why this type cannot run in this build, or None when it can."""
        try:
            self.load()
        except ImportError as exc:
            return f"module {self.module} cannot be imported ({exc})"
        except AttributeError:
            return f"module {self.module} has no {self.attr}"
        return None


#: Registered source types: config ``type`` → :class:`SourceType`.
SOURCE_TYPES: Registry[SourceType] = Registry("source type")


def _kwargs_for(cls: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """Keep the keyword arguments ``cls`` accepts (sources differ in optional knobs)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return wanted
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return wanted
    return {k: v for k, v in wanted.items() if k in params}


class LiveSource:
    """Adapter giving a ``sensing.sources`` object the supervisor's interface."""

    live = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def rejects(self) -> RejectLog:
        return getattr(self.inner, "rejects", None) or RejectLog()

    def chunks(self, stop: Callable[[], bool]) -> Iterator[Frames]:
        try:
            it = self.inner.chunks(stop=stop)
        except TypeError:
            it = self.inner.chunks()
        yield from it

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def _open_serial(cfg: Any, name: str) -> LiveSource:
    cls = SOURCE_TYPES.get("esp32_serial").load()
    kw = _kwargs_for(cls, {
        "baudrate": cfg.baudrate, "chunk_size": cfg.chunk_size,
        "max_latency_s": cfg.max_latency_s, "source": name, "ltf": cfg.ltf,
    })
    src = cls(cfg.url, **kw)
    src.open()  # "running" then means the device is open; a missing port fails here
    return LiveSource(src)


def _open_udp(cfg: Any, name: str) -> LiveSource:
    cls = SOURCE_TYPES.get("nexmon_udp").load()
    kw = _kwargs_for(cls, {
        "host": cfg.host, "port": cfg.port, "chunk_size": cfg.chunk_size, "source": name,
        "max_latency_s": cfg.max_latency_s, "chip": cfg.chip,
    })
    return LiveSource(cls(**kw))


class FollowedFile(LiveSource):
    """A followed EDF file that stays open across recordings.

    When the recorder closes the file (the inner source ends), this waits — polling, and
    returning promptly on stop — until a *new* recording appears at the same path (another
    inode, size or modification time), then follows that one, the stream clock continuing.
    Re-reading the finished recording would only repeat its events.

    Parameters
    ----------
    make : callable
        Returns a fresh inner source for the path.
    path : str
        The followed file.
    poll_s : float
        Seconds between checks for a new recording.
    """

    def __init__(self, make: Callable[[], Any], path: str, poll_s: float) -> None:
        super().__init__(make())
        self.make, self.path, self.poll_s = make, path, poll_s
        self._closed = threading.Event()
        self._rejects = RejectLog()

    @property
    def rejects(self) -> RejectLog:
        return self._rejects

    def _identity(self) -> tuple[int, int, int] | None:
        import os

        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def close(self) -> None:
        self._closed.set()
        super().close()

    def chunks(self, stop: Callable[[], bool]) -> Iterator[Frames]:
        import time

        shift = 0.0
        while True:
            last_end: float | None = None
            try:
                for fr in super().chunks(stop):
                    if shift:
                        fr = dataclasses.replace(fr, times_s=fr.times_s + shift)
                    last_end = fr.end_s
                    yield fr
            finally:
                for reason, n in self.inner.rejects.counts.items():
                    self._rejects.counts[reason] += n
            if stop() or self._closed.is_set():
                return
            done = self._identity()
            t_done = time.monotonic()
            while self._identity() == done:
                if self._closed.wait(self.poll_s) or stop():
                    return
            if last_end is not None:
                shift = last_end + (time.monotonic() - t_done)
            self.inner = self.make()


def _open_edf_follow(cfg: Any, name: str) -> FollowedFile:
    cls = SOURCE_TYPES.get("edf_follow").load()
    kw = _kwargs_for(cls, {"poll_s": cfg.poll_s, "source": name})
    return FollowedFile(lambda: cls(cfg.path, **kw), cfg.path, cfg.poll_s)


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

    live = False

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
                    self._add_rejects(reader.rejects)
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
                        self._add_rejects(reader.rejects)
                        return
                if last_end is not None and len(fr) > 1:
                    step = float(fr.times_s[-1] - fr.times_s[-2])
                last_end = fr.end_s
                yield fr
            self._add_rejects(reader.rejects)
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

    def _add_rejects(self, log: RejectLog) -> None:
        for reason, n in log.counts.items():
            self.rejects.counts[reason] += n
        for r in log.first:
            if len(self.rejects.first) < self.rejects.keep:
                self.rejects.first.append(r)


def open_replay(cfg: Any, name: str, path: str | None = None) -> ReplaySource:
    """A :class:`ReplaySource` for a replay config (``path``: one file of its expansion)."""
    return ReplaySource(path or cfg.path, name, loop=cfg.loop, realtime=cfg.realtime,
                        format=cfg.format, chunk_size=cfg.chunk_size)


for _t in (
    SourceType("esp32_serial", "wifi_csi", "sensing.sources.serial", "Esp32SerialSource",
               _open_serial),
    SourceType("nexmon_udp", "wifi_csi", "sensing.sources.udp", "NexmonUdpSource", _open_udp),
    SourceType("edf_follow", "eeg", "sensing.sources.edf_follow", "EdfFollowSource",
               _open_edf_follow),
    SourceType("replay", None, "sensing.formats", "open_capture", open_replay),
):
    SOURCE_TYPES.register(_t.name)(_t)
