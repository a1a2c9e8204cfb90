"""Runs every configured stream concurrently, restarts what fails, reports status.

One :class:`StreamWorker` per stream (a source and its pipelines) has two threads:

* a **reader** pulls chunks from the source into a bounded queue. A live source whose
  pipelines fall behind has chunks *dropped* (counted); a replay waits instead. When the
  source fails (unplugged serial port, socket error, broken file) it is reopened after an
  exponential backoff (:class:`~agent.config.RestartPolicy`), the stream clock continuing
  where it stopped, and the failure is logged and counted;
* a **processor** runs :func:`agent.runner.run_stream` — the same path as ``ambisense
  replay`` — over the queue. Each pipeline is wrapped in a :class:`GuardedPipeline`: an
  exception in one pipeline is logged and counted, that pipeline is re-created after a
  backoff (chunks meanwhile are counted as its drops), and the others go on.

Events of every stream go through one :class:`SinkFanout` (a lock keeps lines whole).
:meth:`Supervisor.status` gives per-stream and per-pipeline counters, rates and the
process's CPU and memory; :func:`format_status` turns it into one log line.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import queue
import resource
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.config import RestartPolicy, expand_replay, source_params
from agent.events import Event
from agent.pipelines import PIPELINES, Pipeline
from agent.pipelines.shared import SharedStages
from agent.runner import run_stream
from agent.sinks import Sink
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.sources import SOURCES

log = logging.getLogger("ambisense.agent")

_END = object()


@dataclass
class StreamSpec:
    """What to run for one stream.

    Attributes
    ----------
    name : str
        Stream name (event ``source``).
    kind : str
        Source type (``esp32_serial``, ``replay`` …).
    open : callable
        Returns a fresh opened source (see :mod:`sensing.sources`); called again on restart.
    pipelines : list of (Pipeline class, options)
        Pipelines to run and their options.
    restart : RestartPolicy
        Backoff for the source and its pipelines.
    queue_chunks : int
        Reader → processor queue length.
    """

    name: str
    kind: str
    open: Callable[[], Any]
    pipelines: list[tuple[type[Pipeline], dict[str, Any]]]
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    queue_chunks: int = 16


def _stream_name(src: Any, index: int, path: str | None = None, many: bool = False) -> str:
    if src.name and not many:
        return src.name
    if path is not None:
        stem = os.path.basename(path)
        return f"{src.name}.{stem}" if src.name else stem
    return src.name or f"{src.type}{index}"


def build_streams(cfg: Any) -> list[StreamSpec]:
    """One :class:`StreamSpec` per source (a replay of a directory or glob gives one per
    capture file). Pipelines default to every default pipeline of the source's modality."""
    from agent.config import pipeline_options, replay_modalities

    specs: list[StreamSpec] = []
    for i, src in enumerate(cfg.sources):
        stype = SOURCES.get(src.type)
        replay = src.type == "replay"
        if replay:
            found, _ = replay_modalities(src)
            targets = [(path, mod) for path, mod in found]
        else:
            targets = [(None, stype.modality)]
        for path, modality in targets:
            name = _stream_name(src, i, path,
                                many=replay and len(expand_replay(src.path)) > 1)
            if src.pipelines is not None:
                names = [n for n in src.pipelines if modality in PIPELINES.get(n).modalities]
            else:
                names = [n for n, c in PIPELINES.items() if c.default and modality in c.modalities]
            pipes = [(PIPELINES.get(n), pipeline_options(cfg, src, n)) for n in names]
            params = source_params(src, **({"path": path} if path is not None else {}))
            opener = functools.partial(stype.from_params, params, name)
            if not pipes:
                log.warning("%s: no pipeline accepts %s data; its frames are only counted",
                            name, modality)
            specs.append(StreamSpec(name, src.type, opener, pipes, src.restart, src.queue_chunks))
    return specs


class SinkFanout(Sink):
    """Delivers each event to every sink under one lock; after :meth:`close`, events are
    counted as dropped. A failing sink is logged and counted, never fatal."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self._lock = threading.Lock()
        self.closed = False
        self.events = 0
        self.dropped = 0
        self.errors = 0
        self.close_errors = 0

    def emit(self, event: Event) -> None:
        with self._lock:
            if self.closed:
                self.dropped += 1
                return
            self.events += 1
            for sink in self.sinks:
                try:
                    sink.emit(event)
                except Exception as exc:  # noqa: BLE001 - one sink must not stop the others
                    self.errors += 1
                    if self.errors <= 3 or self.errors % 1000 == 0:
                        log.error("sink %s failed (%d errors so far): %s",
                                  type(sink).__name__, self.errors, exc)

    def close(self) -> None:
        """Close every sink (each is tried); failures are logged and counted in
        :attr:`close_errors` (e.g. an MQTT sink with undelivered events and no outbox)."""
        with self._lock:
            self.closed = True
            for sink in self.sinks:
                try:
                    sink.close()
                except Exception as exc:  # noqa: BLE001
                    self.close_errors += 1
                    log.error("closing sink %s failed: %s", type(sink).__name__, exc)


@dataclass
class PipelineStats:
    """Counters of one pipeline of one stream."""

    frames: int = 0
    chunks: int = 0
    events: int = 0
    errors: int = 0
    restarts: int = 0
    drops: int = 0
    busy_s: float = 0.0
    state: str = "running"
    last_error: str | None = None


class GuardedPipeline(Pipeline):
    """A pipeline instance that survives its own exceptions.

    Parameters
    ----------
    cls : type of Pipeline
        The pipeline class.
    options : dict
        Constructor options.
    policy : RestartPolicy
        Backoff before re-creating it after a failure.
    stream : str
        For log messages.
    """

    def __init__(self, cls: type[Pipeline], options: dict[str, Any], policy: RestartPolicy,
                 stream: str) -> None:
        super().__init__()
        self.name = cls.name  # type: ignore[misc] - instance name shadows the class attribute
        self.cls = cls
        self.options = dict(options)
        self.policy = policy
        self.stream = stream
        self.stats = PipelineStats()
        self._attempt = 0
        self._retry_at = 0.0
        self.inner: Pipeline | None = None
        self._create()

    def bind(self, shared: SharedStages, run_context: dict[str, Any] | None = None) -> None:
        super().bind(shared, run_context)
        if self.inner is not None:
            self.inner.bind(shared, self.run_context)

    def _create(self) -> None:
        try:
            self.inner = self.cls(**self.options)
            if self.shared is not None:
                self.inner.bind(self.shared, self.run_context)
            self.stats.state = "running"
        except Exception as exc:  # noqa: BLE001
            self._failed("could not be created", exc)

    def _failed(self, what: str, exc: BaseException) -> None:
        self.inner = None
        self.stats.errors += 1
        self._attempt += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        pol = self.policy
        if pol.max_restarts and self._attempt > pol.max_restarts:
            self.stats.state = "failed"
            log.error("%s/%s %s: %s; giving up after %d restarts", self.stream, self.name,
                      what, self.stats.last_error, pol.max_restarts)
            self._retry_at = float("inf")
            return
        delay = pol.delay(self._attempt)
        self._retry_at = time.monotonic() + delay
        self.stats.state = "backoff"
        log.warning("%s/%s %s: %s; restarting it in %.1f s (restart %d)", self.stream,
                    self.name, what, self.stats.last_error, delay, self._attempt,
                    exc_info=log.isEnabledFor(logging.DEBUG))

    def push(self, frames: Frames) -> list[Detection]:
        if self.inner is None:
            if time.monotonic() < self._retry_at:
                self.stats.drops += len(frames)
                return []
            self.stats.restarts += 1
            self._create()
            if self.inner is None:
                self.stats.drops += len(frames)
                return []
        t = time.perf_counter()
        try:
            dets = self.inner.push(frames)
        except Exception as exc:  # noqa: BLE001 - isolate the failure, keep the stream
            self.stats.busy_s += time.perf_counter() - t
            self._failed("failed", exc)
            return []
        self.stats.busy_s += time.perf_counter() - t
        self.stats.frames += len(frames)
        self.stats.chunks += 1
        self.stats.events += len(dets)
        if self._attempt and self.stats.chunks > 0:
            self._attempt = 0
        return dets

    def flush(self) -> list[Detection]:
        if self.inner is None:
            return []
        try:
            dets = self.inner.flush()
        except Exception as exc:  # noqa: BLE001
            self._failed("failed at end of stream", exc)
            return []
        self.stats.events += len(dets)
        return dets


@dataclass
class SourceStats:
    """Counters of one stream's source."""

    frames: int = 0
    chunks: int = 0
    drops: int = 0
    restarts: int = 0
    rejects: int = 0
    state: str = "starting"
    last_error: str | None = None


class StreamWorker:
    """The reader and processor threads of one stream (see module docstring)."""

    def __init__(self, spec: StreamSpec, sink: Sink, stop: threading.Event) -> None:
        self.spec = spec
        self.sink = sink
        self.stop = stop
        self.stats = SourceStats()
        self.pipes = [GuardedPipeline(c, o, spec.restart, spec.name) for c, o in spec.pipelines]
        #: State shared by the pipelines of every stream of the agent (the supervisor
        #: gives all its workers one dict: :attr:`agent.pipelines.Pipeline.run_context`).
        self.run_context: dict[str, Any] = {}
        self.queue: queue.Queue = queue.Queue(maxsize=spec.queue_chunks)
        self._source: Any = None
        self._rejects_done = 0
        self._reader = threading.Thread(target=self._read, name=f"read:{spec.name}", daemon=True)
        self._processor = threading.Thread(target=self._process, name=f"proc:{spec.name}",
                                           daemon=True)

    # -- lifecycle
    def start(self) -> None:
        self._processor.start()
        self._reader.start()

    @property
    def done(self) -> bool:
        return not self._processor.is_alive()

    def interrupt(self) -> None:
        """Ask the current source to stop reading (safe from any thread)."""
        src = self._source
        if src is not None:
            try:
                src.close()
            except Exception as exc:  # noqa: BLE001
                log.debug("%s: close failed: %s", self.spec.name, exc)

    def join(self, timeout: float) -> bool:
        self._processor.join(timeout)
        return not self._processor.is_alive()

    @property
    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped for the current source's socket (UDP sources with
        ``kernel_drops()``), None otherwise."""
        fn = getattr(self._source, "kernel_drops", None)
        try:
            return fn() if callable(fn) else None
        except Exception:  # noqa: BLE001 - a status figure must never break the status
            return None

    @property
    def rejects(self) -> int:
        src = self._source
        now = src.rejects.total if src is not None else 0
        return self._rejects_done + now

    # -- reader thread
    def _read(self) -> None:
        attempt = 0
        last_end: float | None = None
        last_wall = 0.0
        spec = self.spec
        try:
            while not self.stop.is_set():
                error: BaseException | None = None
                session_shift: float | None = None
                src = None
                try:
                    src = spec.open()
                    self._source = src
                    self.stats.state = "running"
                    for fr in src.chunks(self.stop.is_set):
                        if not len(fr):
                            continue
                        if session_shift is None:
                            # continue the stream clock across restarts
                            session_shift = 0.0 if last_end is None else (
                                last_end + (time.monotonic() - last_wall) - fr.start_s)
                        if session_shift:
                            fr = dataclasses.replace(fr, times_s=fr.times_s + session_shift)
                        last_end, last_wall = fr.end_s, time.monotonic()
                        self._put(fr, live=getattr(src, "live", True))
                        if attempt:
                            attempt = 0
                            self.stats.last_error = None
                except Exception as exc:  # noqa: BLE001 - every source failure is retried
                    error = exc
                finally:
                    if src is not None:
                        self._rejects_done += src.rejects.total
                        self._source = None
                if self.stop.is_set():
                    break
                if error is None:
                    if not getattr(src, "live", True):
                        self.stats.state = "done"
                        break
                    error = EOFError("source ended")
                attempt += 1
                self.stats.last_error = f"{type(error).__name__}: {error}"
                pol = spec.restart
                if pol.max_restarts and attempt > pol.max_restarts:
                    self.stats.state = "failed"
                    log.error("%s: source failed: %s; giving up after %d restarts",
                              spec.name, self.stats.last_error, pol.max_restarts)
                    break
                delay = pol.delay(attempt)
                self.stats.state = "backoff"
                log.warning("%s: source failed: %s; restarting it in %.1f s (restart %d)",
                            spec.name, error, delay, attempt)
                if self.stop.wait(delay):
                    break
                self.stats.restarts += 1
        finally:
            if self.stats.state not in ("done", "failed"):
                self.stats.state = "stopped"
            self._put_end()

    def _put(self, fr: Frames, live: bool) -> None:
        self.stats.frames += len(fr)
        self.stats.chunks += 1
        if live:
            try:
                self.queue.put_nowait(fr)
            except queue.Full:
                self.stats.drops += len(fr)
            return
        while not self.stop.is_set():
            try:
                self.queue.put(fr, timeout=0.1)
                return
            except queue.Full:
                continue

    def _put_end(self) -> None:
        while True:
            try:
                self.queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.stop.is_set():  # the processor drains on stop; make room
                    try:
                        self.queue.get_nowait()
                    except queue.Empty:
                        pass

    # -- processor thread
    def _chunks(self) -> Iterator[Frames]:
        while True:
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set() and not self._reader.is_alive():
                    return
                continue
            if item is _END:
                return
            yield item

    def _process(self) -> None:
        try:
            run_stream(self._chunks(), self.pipes, [self.sink], source=self.spec.name,
                       run_context=self.run_context)
        except Exception:  # noqa: BLE001 - pipelines are guarded; this is a bug elsewhere
            log.exception("%s: stream processing crashed", self.spec.name)
            self.stats.state = "failed"


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Supervisor:
    """Starts the workers, waits for them, reports status, shuts everything down.

    Parameters
    ----------
    specs : list of StreamSpec
        Streams to run.
    sinks : list of Sink
        Event sinks; closed by :meth:`shutdown`.
    device : str
        Agent name (status label).
    """

    def __init__(self, specs: Sequence[StreamSpec], sinks: Sequence[Sink], *,
                 device: str = "ambisense", stop: threading.Event | None = None) -> None:
        self.device = device
        self.stop = stop if stop is not None else threading.Event()
        self.fanout = SinkFanout(sinks)
        self.workers = [StreamWorker(s, self.fanout, self.stop) for s in specs]
        run_context: dict[str, Any] = {}
        for worker in self.workers:
            worker.run_context = run_context
        self._t0 = time.monotonic()
        self._cpu0 = self._cpu_s()
        self._prev: dict[str, dict[str, Any]] = {}
        self._status_lock = threading.Lock()

    @staticmethod
    def _cpu_s() -> float:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._cpu0 = self._cpu_s()
        for w in self.workers:
            w.start()

    @property
    def done(self) -> bool:
        return all(w.done for w in self.workers)

    def wait(self, *, status_interval_s: float = 0.0,
             on_status: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Block until every stream ended or :attr:`stop` is set; report status meanwhile."""
        next_status = time.monotonic() + status_interval_s if status_interval_s > 0 else None
        while not self.done and not self.stop.is_set():
            timeout = 0.2
            if next_status is not None:
                timeout = max(0.0, min(timeout, next_status - time.monotonic()))
            self.stop.wait(timeout)
            if next_status is not None and time.monotonic() >= next_status:
                next_status += status_interval_s
                st = self.status()
                if on_status is not None:
                    on_status(st)

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop the sources, let the processors drain and flush, then close every sink.

        Returns True when every stream finished within ``timeout_s``.
        """
        self.stop.set()
        for w in self.workers:
            w.interrupt()
        deadline = time.monotonic() + timeout_s
        clean = True
        for w in self.workers:
            if not w.join(max(0.0, deadline - time.monotonic())):
                clean = False
                log.error("%s: did not stop within %.0f s", w.spec.name, timeout_s)
        self.fanout.close()
        return clean

    @property
    def failed(self) -> list[str]:
        """Streams whose source gave up (``max_restarts`` exceeded) or crashed."""
        return [w.spec.name for w in self.workers if w.stats.state == "failed"]

    def status(self, consumer: str = "log") -> dict[str, Any]:
        """Counters, and rates since the previous call by the same ``consumer``.

        Returns
        -------
        dict
            ``device``, ``uptime_s``, ``cpu_percent`` (of one core, since the previous
            call), ``rss_mb``, ``threads``, ``events``, ``sink_errors``, ``dropped_events``
            and ``streams``: name → ``type``, ``state``, ``frames``, ``fps``, ``rejects``,
            ``drops``, ``restarts``, ``kernel_drops`` (UDP sources: datagrams the kernel
            dropped, receive buffer full; else None), ``last_error`` and ``pipelines``: name → ``frames``,
            ``fps``, ``events``, ``errors``, ``restarts``, ``drops``, ``load`` (busy share
            of wall time), ``state``.
        """
        with self._status_lock:
            now = time.monotonic()
            cpu = self._cpu_s()
            prev = self._prev.get(consumer) or {"t": self._t0, "cpu": self._cpu0, "frames": {}}
            dt = max(now - prev["t"], 1e-9)
            prev_frames: dict[str, Any] = prev["frames"]
            frames_now: dict[str, Any] = {}
            streams: dict[str, Any] = {}
            for w in self.workers:
                s = w.stats
                key = w.spec.name
                frames_now[key] = s.frames
                pipes = {}
                for p in w.pipes:
                    pk = f"{key}/{p.name}"
                    ps = p.stats
                    frames_now[pk] = ps.frames
                    frames_now[pk + "#busy"] = ps.busy_s
                    busy_prev = prev_frames.get(pk + "#busy", 0.0)
                    pipes[p.name] = {
                        "frames": ps.frames,
                        "fps": round((ps.frames - prev_frames.get(pk, 0)) / dt, 2),
                        "events": ps.events, "errors": ps.errors, "restarts": ps.restarts,
                        "drops": ps.drops, "load": round((ps.busy_s - busy_prev) / dt, 4),
                        "state": ps.state, "last_error": ps.last_error,
                    }
                streams[key] = {
                    "type": w.spec.kind, "state": s.state, "frames": s.frames,
                    "fps": round((s.frames - prev_frames.get(key, 0)) / dt, 2),
                    "rejects": w.rejects, "drops": s.drops, "restarts": s.restarts,
                    "kernel_drops": w.kernel_drops,
                    "last_error": s.last_error, "pipelines": pipes,
                }
            out = {
                "device": self.device,
                "uptime_s": round(now - self._t0, 1),
                "cpu_percent": round(100.0 * (cpu - prev["cpu"]) / dt, 1),
                "rss_mb": round(_rss_bytes() / 2**20, 1),
                "threads": threading.active_count(),
                "events": self.fanout.events,
                "sink_errors": self.fanout.errors,
                "dropped_events": self.fanout.dropped,
                "streams": streams,
            }
            self._prev[consumer] = {"t": now, "cpu": cpu, "frames": frames_now}
            return out


def format_status(st: dict[str, Any]) -> str:
    """One log line: process figures, then per stream and pipeline."""
    parts = [f"status {st['device']}: up {st['uptime_s']:.0f} s, cpu {st['cpu_percent']:.1f}%, "
             f"rss {st['rss_mb']:.0f} MB, {st['events']} events"]
    for name, s in st["streams"].items():
        pipes = ", ".join(
            f"{pn} {p['fps']:.0f} fps {p['events']} ev"
            + (f" {p['errors']} err {p['restarts']} restarts {p['drops']} drops"
               if p["errors"] or p["drops"] else "")
            + (f" [{p['state']}]" if p["state"] != "running" else "")
            for pn, p in s["pipelines"].items()
        ) or "no pipelines"
        parts.append(
            f"{name} [{s['state']}] {s['fps']:.1f} fps, {s['frames']} frames, {s['rejects']} "
            f"rejects, {s['drops']} drops, {s['restarts']} restarts ({pipes})"
        )
    return " | ".join(parts)
