"""``ambisense replay``: run recorded captures through their pipelines."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from agent.commands.base import COMMANDS, Command

log = logging.getLogger("ambisense.replay")


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="recorded capture file(s)")
    p.add_argument("--jsonl", action="store_true",
                   help="print exactly one JSON event per line on stdout (nothing else)")
    p.add_argument("--out", metavar="FILE", help="also append events to this JSON Lines file")
    p.add_argument("--realtime", action="store_true", help="pace replay to the capture's clock")
    p.add_argument("--mqtt", metavar="URL",
                   help="also publish to a broker: mqtt://[user@]host[:port] or mqtts://…; "
                        "password from AMBISENSE_MQTT_PASSWORD")
    p.add_argument("--pipeline", action="append", metavar="NAME",
                   help="pipeline(s) to run (repeatable); default: all that apply "
                        "(`ambisense info --pipelines` lists them with their options)")
    p.add_argument("--set", action="append", default=[], metavar="PIPELINE.KEY=VALUE",
                   help="pipeline option, e.g. wifi_breathing.window_s=30 (value parsed as "
                        "JSON, else kept as text); checked before any capture is read")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--workers", type=int, metavar="N",
                   help="replay the captures in parallel on N local Dask worker processes "
                        "(the dask extra); the output is that of the serial run")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="replay the captures on an existing Dask cluster (tcp://host:8786); "
                        "every worker must see the capture files at the same paths")
    add_reader_arguments(p)


def add_reader_arguments(p: argparse.ArgumentParser) -> None:
    """``--format NAME`` and repeatable ``--read KEY=VALUE`` (reader options)."""
    p.add_argument("--format", metavar="NAME",
                   help="read the captures as this format instead of detecting it "
                        "(`ambisense info --formats` lists them), e.g. lora_raw")
    p.add_argument("--read", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, e.g. fs_hz=500000 (value parsed as JSON, else "
                        "kept as text); checked against the reader's options")


def reader_options(path: str, fmt: str | None, items: list[str]) -> dict[str, Any]:
    """``open_capture`` keyword arguments for ``path`` from ``--format`` and ``--read``.

    Raises
    ------
    sensing.params.OptionError
        An item is not ``KEY=VALUE``, the format is unknown, or the reader takes no (or
        not these) options (the message lists the valid ones).
    """
    from sensing.formats import FORMATS, detect_format
    from sensing.params import OptionError

    opts: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise OptionError(f"--read {item!r}: expected KEY=VALUE")
        try:
            opts[key] = json.loads(raw)
        except json.JSONDecodeError:
            opts[key] = raw
    if fmt is None and not opts:
        return {}
    if fmt is not None and fmt not in FORMATS:
        raise OptionError(f"--format {fmt!r}: unknown format; known: "
                          f"{', '.join(FORMATS.names())}")
    cls = FORMATS.get(fmt) if fmt else detect_format(path)
    if opts:
        model = getattr(cls, "Options", None)
        if model is None:
            raise OptionError(f"{path}: format {cls.name} takes no reader options (--read)")
        model.from_options(opts, where=f"--read ({cls.name})")
    return {"format": cls.name, **opts}


def parse_sets(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["p.key=1"]`` → ``{"p": {"key": 1}}`` (values parsed as JSON, else kept as text).

    Raises
    ------
    ValueError
        An item is not ``PIPELINE.KEY=VALUE``.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        pipe, dot, opt = key.partition(".")
        if not sep or not dot or not opt or not pipe:
            raise ValueError(f"--set {item!r}: expected PIPELINE.KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(pipe, {})[opt] = value
    return out


def check_request(names: list[str] | None, options: dict[str, dict[str, Any]]) -> list[str]:
    """Problems with ``--pipeline`` names and ``--set`` options, from the pipelines'
    parameter models alone (nothing is built, no model is loaded)."""
    from agent.pipelines import PIPELINES
    from sensing.params import OptionError

    known = ", ".join(PIPELINES.names())
    problems = [f"unknown pipeline {n!r}; known: {known}" for n in names or []
                if n not in PIPELINES]
    for name, opts in options.items():
        if name not in PIPELINES:
            problems.append(f"--set {name}.…: unknown pipeline {name!r}; known: {known}")
            continue
        try:
            PIPELINES.get(name).check_options(opts)
        except OptionError as exc:
            problems.append(f"--set {exc}")
    return problems


def _why_nothing(path: str, stats: Any) -> str:
    """One line for stderr when a capture gave no event."""
    from agent.pipelines import PIPELINES

    if not stats.pipelines:
        accepting = [n for n, c in PIPELINES.items() if stats.modality in c.modalities]
        hint = (f"; opt-in pipelines for it: {', '.join(accepting)} (--pipeline NAME)"
                if accepting else "")
        return (f"{path}: no events: no default pipeline accepts {stats.modality} data"
                f"{hint}")
    reasons = "; ".join(f"{n}: {r}" for n, r in stats.quiet.items())
    return f"{path}: no events ({reasons})"


def _run(args: argparse.Namespace) -> int:
    from agent.runner import replay_capture, replay_order
    from agent.sinks import open_sinks
    from sensing.errors import AmbisenseError

    try:
        options = parse_sets(args.set)
    except ValueError as exc:
        print(f"ambisense replay: error: {exc}", file=sys.stderr)
        return 2
    problems = check_request(args.pipeline, options)
    if problems:
        for msg in problems:
            print(f"ambisense replay: error: {msg}", file=sys.stderr)
        return 2
    sinks = open_sinks(console="jsonl" if args.jsonl else "table", jsonl_file=args.out)
    if args.mqtt:
        from agent.sinks import SINKS

        sinks.append(SINKS.get("mqtt").from_url(args.mqtt))
    if args.workers is not None and args.workers < 1:
        print("ambisense replay: error: --workers must be >= 1", file=sys.stderr)
        return 2
    failed = 0
    run_context: dict[str, Any] = {}  # shared by the pipelines of every capture of this run
    try:
        if args.workers or args.scheduler:
            return _run_parallel(args, options, sinks)
        first = reader_options(args.captures[0], args.format, args.read) if args.format \
            else None  # the same format for every capture: its options order them too
        for path in replay_order(args.captures, first):
            try:
                stats = replay_capture(
                    path, sinks, pipeline_names=args.pipeline, pipeline_options=options,
                    reader_options=reader_options(path, args.format, args.read),
                    realtime=args.realtime, progress=False if args.no_progress else None,
                    run_context=run_context,
                )
            except (AmbisenseError, OSError, ValueError) as exc:  # go on with the others
                print(f"ambisense replay: error: {exc}", file=sys.stderr)
                failed += 1
                continue
            _summary(path, stats)
    finally:
        for s in sinks:
            s.close()
    return 2 if failed else 0


def _summary(path: str, stats: Any) -> None:
    print(
        f"{stats.source}: {stats.frames} frames, {stats.stream_s:.1f} s of capture in "
        f"{stats.wall_s:.2f} s ({stats.speedup:.0f}x real time), {stats.events} events, "
        f"{stats.rejects} rejects, pipelines: {', '.join(stats.pipelines) or 'none'}",
        file=sys.stderr,
    )
    if not stats.events:
        print(f"ambisense replay: {_why_nothing(path, stats)}", file=sys.stderr)


def _run_parallel(args: argparse.Namespace, options: dict[str, dict[str, Any]],
                  sinks: list[Any]) -> int:
    """``--workers``/``--scheduler``: one Dask task per capture (:mod:`agent.parallel`);
    events reach the sinks in the serial run's order."""
    from agent.parallel import replay_parallel

    if args.realtime:
        print("ambisense replay: error: --realtime cannot be combined with --workers/--scheduler",
              file=sys.stderr)
        return 2

    def progress(done: int, total: int, res: Any) -> None:
        if not args.no_progress:
            what = f"error: {res.error}" if res.error else f"{len(res.events)} events"
            print(f"[{done}/{total}] {res.path}: {what}", file=sys.stderr)

    failed = 0
    try:
        opts = (reader_options(args.captures[0], args.format, args.read)
                if args.format or args.read else None)
        for res in replay_parallel(args.captures, workers=args.workers,
                                   scheduler=args.scheduler, pipeline_names=args.pipeline,
                                   pipeline_options=options, reader_options=opts,
                                   progress=progress):
            for ev in res.events:
                for sink in sinks:
                    sink.emit(ev)
            if res.error is not None:
                print(f"ambisense replay: error: {res.error}", file=sys.stderr)
                failed += 1
            else:
                _summary(res.path, res.stats)
    except RuntimeError as exc:  # Dask missing or the scheduler unreachable
        print(f"ambisense replay: error: {exc}", file=sys.stderr)
        return 2
    return 2 if failed else 0


COMMANDS.register("replay")(
    Command("replay recorded captures through every pipeline that applies", _configure, _run)
)
