"""Wires Source → Frames → Pipelines → Events → Sinks. Live and replay use this same path."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.events import Event, EventFactory
from agent.pipelines import Pipeline, pipelines_for
from agent.pipelines.shared import SharedStages
from agent.sinks import Sink
from sensing.formats import open_capture
from sensing.frames import Frames

log = logging.getLogger("ambisense.runner")


@dataclass
class StreamStats:
    """Counters of one stream run."""

    source: str
    modality: str = ""
    frames: int = 0
    chunks: int = 0
    events: int = 0
    stream_s: float = 0.0
    wall_s: float = 0.0
    rejects: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    pipelines: list[str] = field(default_factory=list)
    #: Pipeline name → why it emitted nothing (only pipelines that emitted no event).
    quiet: dict[str, str] = field(default_factory=dict)
    #: Pipeline name → the options it ran with (its Params, JSON-ready).
    settings: dict[str, dict] = field(default_factory=dict)
    #: Pipeline name → the models it ran (``OnnxModel.summary()`` of each).
    models: dict[str, list] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """Stream seconds processed per wall-clock second."""
        return self.stream_s / self.wall_s if self.wall_s > 0 else float("inf")


def run_stream(
    chunks: Iterable[Frames],
    pipelines: Sequence[Pipeline],
    sinks: Sequence[Sink],
    *,
    source: str,
    realtime: bool = False,
    on_chunk: Callable[[Frames], None] | None = None,
    stop: Callable[[], bool] | None = None,
    run_context: dict[str, Any] | None = None,
) -> StreamStats:
    """Run ``pipelines`` over a stream of chunks and emit their events to ``sinks``.

    Parameters
    ----------
    chunks : iterable of Frames
        A capture reader or a live source.
    pipelines : sequence of Pipeline
        Fresh pipeline instances (they keep per-stream state).
    sinks : sequence of Sink
        Receive every event in order.
    source : str
        Name put in each event's ``source`` field.
    realtime : bool
        Pace replay to the capture's own clock.
    on_chunk : callable, optional
        Called after each chunk (progress display, counters).
    stop : callable, optional
        Polled between chunks; when it returns True the stream ends (pipelines are flushed).
    run_context : dict, optional
        State shared by the pipelines of every stream of the run
        (:attr:`agent.pipelines.Pipeline.run_context`); default: this stream's own.
    """
    stats = StreamStats(source=source, pipelines=[p.name for p in pipelines])
    shared = SharedStages()  # analyses several pipelines need, run once per chunk
    for pipe in pipelines:
        pipe.bind(shared, run_context)
    factory: EventFactory | None = None
    first_s: float | None = None
    wall0 = time.perf_counter()

    counts = dict.fromkeys(stats.pipelines, 0)

    def emit(dets, pipe: Pipeline) -> None:
        counts[pipe.name] += len(dets)
        for det in dets:
            ev: Event = factory.make(det, pipe.name)  # type: ignore[union-attr]
            for sink in sinks:
                sink.emit(ev)
            stats.events += 1

    for fr in chunks:
        if not len(fr):
            continue
        if factory is None:
            factory = EventFactory(source, fr.t0)
            first_s = fr.start_s
        if realtime:
            ahead = (fr.end_s - first_s) - (time.perf_counter() - wall0)
            if ahead > 0:
                time.sleep(ahead)
        stats.frames += len(fr)
        stats.chunks += 1
        stats.stream_s = fr.end_s - first_s
        for pipe in pipelines:
            emit(pipe.push(fr), pipe)
        if on_chunk is not None:
            on_chunk(fr)
        if stop is not None and stop():
            break
    if factory is None:
        factory = EventFactory(source)
    for pipe in pipelines:
        emit(pipe.flush(), pipe)
    stats.wall_s = time.perf_counter() - wall0
    for pipe in pipelines:
        stats.settings[pipe.name] = pipe.params.model_dump(mode="json")
        stats.models[pipe.name] = pipe.models()
        if not counts[pipe.name]:
            stats.quiet[pipe.name] = pipe.quiet_reason() or (
                f"no {'/'.join(pipe.event_types) or 'event'} found in "
                f"{stats.stream_s:.1f} s of {'capture' if stats.frames else 'an empty stream'}")
    return stats


class Progress:
    """A one-line progress bar on stderr for long replays (only when stderr is a terminal)."""

    def __init__(self, path: str, reader, enabled: bool | None = None) -> None:
        self.path = path
        self.reader = reader
        self.size = max(os.path.getsize(path), 1)
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def __call__(self, fr: Frames) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last < 0.2:
            return
        self._last = now
        frac = min(getattr(self.reader, "bytes_read", 0) / self.size, 1.0)
        bar = "#" * int(frac * 30)
        sys.stderr.write(
            f"\r{os.path.basename(self.path)[:30]:<30} [{bar:<30}] {frac:6.1%} "
            f"t={fr.end_s:8.1f} s"
        )
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def replay_order(paths: Sequence[str], reader_options: dict | None = None) -> list[str]:
    """``paths`` with the captures whose reader says they must go first
    (:meth:`sensing.formats.CaptureReader.replay_first`: a calibration recording that the
    others of its site rely on) moved to the front; the order is otherwise kept. A capture
    that cannot be opened keeps its place (replay reports it)."""
    first = replay_first_flags(paths, reader_options)
    return [p for p, f in zip(paths, first, strict=True) if f] + [
        p for p, f in zip(paths, first, strict=True) if not f]


def replay_first_flags(paths: Sequence[str], reader_options: dict | None = None) -> list[bool]:
    """For each capture, whether its reader asks to be replayed before the others (a
    single capture is not opened for it: its order cannot matter)."""
    if len(paths) < 2:
        return [False] * len(paths)

    def first(path: str) -> bool:
        try:
            return bool(open_capture(path, **(reader_options or {})).replay_first())
        except Exception:  # noqa: BLE001 - reported when the capture is replayed
            return False

    return [first(p) for p in paths]


def replay_capture(
    path: str,
    sinks: Sequence[Sink],
    *,
    pipeline_names: list[str] | None = None,
    pipeline_options: dict[str, dict] | None = None,
    realtime: bool = False,
    progress: bool | None = None,
    reader_options: dict | None = None,
    run_context: dict[str, Any] | None = None,
) -> StreamStats:
    """Replay one recorded capture through the pipelines that apply to it.

    Raises
    ------
    sensing.errors.UnsupportedFormatError
        The file is not a known capture format.
    ValueError
        ``pipeline_names`` given but none of them accepts the capture's modality.

    ``run_context`` is the state shared by the pipelines of every capture of one run
    (:attr:`agent.pipelines.Pipeline.run_context`).
    """
    reader = open_capture(path, **(reader_options or {}))
    classes = pipelines_for(reader.modality, pipeline_names)
    if pipeline_names and not classes:
        raise ValueError(
            f"{path}: none of the pipelines {pipeline_names} accepts {reader.modality!r} data"
        )
    opts = pipeline_options or {}
    pipes = [cls(**opts.get(cls.name, {})) for cls in classes]
    bar = Progress(path, reader, progress)
    stats = run_stream(
        reader.chunks(), pipes, sinks, source=reader.source, realtime=realtime, on_chunk=bar,
        run_context=run_context,
    )
    bar.done()
    stats.modality = reader.modality
    stats.rejects = reader.rejects.total
    stats.reject_reasons = dict(reader.rejects.counts)
    for rej in reader.rejects.first[:3]:
        log.warning("reject: %s", rej)
    if reader.rejects.total > 3:
        log.warning("%s: %d malformed records skipped in all", path, reader.rejects.total)
    return stats
