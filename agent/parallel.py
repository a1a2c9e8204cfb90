"""Replay many captures in parallel on Dask (a local cluster of processes, or an existing one).

``ambisense replay CAPTURES... --workers N`` (a local cluster of N single-threaded worker
processes) or ``--scheduler ADDRESS`` (an existing ``dask.distributed`` cluster whose
workers see the same files) runs one task per capture. Each task replays its capture
exactly as the serial run does (:func:`agent.runner.replay_capture`) into memory and returns
the events; the caller emits them to its sinks **in capture order**, so the output (events,
ids, order per capture and across captures) is that of the serial run. Events are few
(one every few seconds of capture), so holding a capture's events until its turn costs
little.

A capture that fails is reported in its result and the others finish. Captures whose reader
asks to go first (:meth:`sensing.formats.CaptureReader.replay_first`, calibration
recordings) are replayed first, one after another in this process, and the run state they
leave (:attr:`agent.pipelines.Pipeline.run_context`) is handed to every other task.

Dask is an optional dependency (the ``dask`` extra), imported only here and only when asked
for. The scheduler is Dask's; nothing here queues or schedules work itself.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.events import Event
from agent.runner import StreamStats, replay_capture, replay_first_flags
from sensing.errors import AmbisenseError


@dataclass
class CaptureResult:
    """What replaying one capture gave: its events (in emission order) and counters, or
    the error that stopped it."""

    path: str
    events: list[Event] = field(default_factory=list)
    stats: StreamStats | None = None
    error: str | None = None
    run_context: dict[str, Any] = field(default_factory=dict)


class _Collect:
    """Sink keeping the events of one capture."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def replay_one(path: str, pipeline_names: list[str] | None = None,
               pipeline_options: dict[str, dict] | None = None,
               reader_options: dict | None = None,
               run_context: dict[str, Any] | None = None) -> CaptureResult:
    """Replay one capture into memory (a Dask task; also the serial fallback).

    Errors a capture can cause (unknown format, corrupt file, bad options) are returned in
    :attr:`CaptureResult.error`, never raised, so one bad capture does not stop the run.
    """
    ctx = copy.deepcopy(run_context) if run_context else {}
    sink = _Collect()
    try:
        stats = replay_capture(path, [sink], pipeline_names=pipeline_names,
                               pipeline_options=pipeline_options, progress=False,
                               reader_options=reader_options, run_context=ctx)
    except (AmbisenseError, OSError, ValueError) as exc:
        return CaptureResult(path, sink.events, None, str(exc), ctx)
    return CaptureResult(path, sink.events, stats, None, ctx)


def client_for(workers: int | None, scheduler: str | None) -> Any:
    """A ``dask.distributed.Client``: on ``scheduler`` when given, else on a new local
    cluster of ``workers`` single-threaded worker processes.

    Raises
    ------
    RuntimeError
        Dask is not installed (``pip install 'ambisense[dask]'``), or the scheduler cannot
        be reached.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise RuntimeError("--workers/--scheduler need Dask: pip install 'ambisense[dask]' "
                           f"({exc})") from None
    # Dask logs its start-up and shutdown at INFO on its own handler; follow the CLI's level.
    logging.getLogger("distributed").setLevel(max(logging.WARNING, logging.getLogger().level))
    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except OSError as exc:
            raise RuntimeError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    cluster = LocalCluster(n_workers=max(1, int(workers or 1)), threads_per_worker=1,
                           processes=True, dashboard_address=":0",
                           silence_logs=logging.ERROR)
    return Client(cluster)


def _import_plugins() -> None:
    """Import every format and pipeline module (numpy, scipy … with them) in this process,
    so that the forked workers inherit them instead of each importing them again."""
    from agent.pipelines import PIPELINES
    from sensing.formats import FORMATS

    FORMATS.names()
    PIPELINES.names()


def _replay_local(paths: list[str], workers: int, done: int, total: int,
                  progress: Callable[[int, int, CaptureResult], None] | None,
                  **kwargs: Any) -> Iterator[CaptureResult]:
    """``--workers N``: Dask's local multiprocessing scheduler with ``N`` worker processes
    forked from this one (they inherit the imported libraries and pipelines, so a worker
    costs no start-up: what matters when the captures take seconds each). Results in the
    order of ``paths``."""
    try:
        import dask
        from dask.callbacks import Callback
    except ImportError as exc:
        raise RuntimeError("--workers/--scheduler need Dask: pip install 'ambisense[dask]' "
                           f"({exc})") from None
    count = [done]

    class _Progress(Callback):
        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker: Any) -> None:
            if isinstance(result, CaptureResult) and progress is not None:
                count[0] += 1
                progress(count[0], total, result)

    _import_plugins()  # once here, not once per forked worker
    tasks = [dask.delayed(replay_one, pure=False)(p, **kwargs) for p in paths]
    with dask.config.set({"multiprocessing.context": "fork"}), _Progress():
        try:
            # chunksize 1: one capture per hand-out (Dask batches 6 tasks per worker by
            # default, which left one worker with 6 of 8 captures and the other idle)
            results = dask.compute(*tasks, scheduler="processes", num_workers=workers,
                                   chunksize=1)
        except Exception as exc:  # noqa: BLE001 - a worker died: report every capture
            results = [CaptureResult(p, error=f"{type(exc).__name__}: {exc}") for p in paths]
    yield from results


def replay_parallel(
    paths: Sequence[str], *, workers: int | None = None, scheduler: str | None = None,
    pipeline_names: list[str] | None = None, pipeline_options: dict[str, dict] | None = None,
    reader_options: dict | None = None,
    progress: Callable[[int, int, CaptureResult], None] | None = None,
) -> Iterator[CaptureResult]:
    """Replay ``paths`` on Dask; yield their results in the order of the serial run.

    Parameters
    ----------
    paths : sequence of str
        Captures (files every worker can read).
    workers : int, optional
        Worker processes of the local run (Dask's multiprocessing scheduler, forked
        workers); ignored with ``scheduler``.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``).
    pipeline_names, pipeline_options, reader_options
        As for :func:`agent.runner.replay_capture`.
    progress : callable, optional
        ``progress(done, total, result)`` after each capture finishes (any order).
    """
    flags = replay_first_flags(list(paths), reader_options)
    firsts = [p for p, f in zip(paths, flags, strict=True) if f]
    rest = [p for p, f in zip(paths, flags, strict=True) if not f]
    total, done = len(flags), 0
    ctx: dict[str, Any] = {}
    # Calibration captures first, serially, each seeing the state the previous ones left.
    for path in firsts:
        res = replay_one(path, pipeline_names, pipeline_options, reader_options, ctx)
        ctx = res.run_context
        done += 1
        if progress:
            progress(done, total, res)
        yield res
    if not rest:
        return
    if not scheduler:
        yield from _replay_local(rest, int(workers or 1), done, total, progress,
                                 pipeline_names=pipeline_names,
                                 pipeline_options=pipeline_options,
                                 reader_options=reader_options, run_context=ctx)
        return
    from distributed import as_completed

    client = client_for(workers, scheduler)
    try:
        futures = client.map(replay_one, rest, pipeline_names=pipeline_names,
                             pipeline_options=pipeline_options, reader_options=reader_options,
                             run_context=ctx, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        ready: dict[int, CaptureResult] = {}
        next_i = 0
        for fut in as_completed(futures):
            i = index[fut.key]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - a worker died or a bug: report it
                res = CaptureResult(rest[i], error=f"{type(exc).__name__}: {exc}")
            done += 1
            if progress:
                progress(done, total, res)
            ready[i] = res
            while next_i in ready:
                yield ready.pop(next_i)
                next_i += 1
    finally:
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None and not scheduler:
            cluster.close()
