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
    failed = 0
    run_context: dict[str, Any] = {}  # shared by the pipelines of every capture of this run
    try:
        for path in replay_order(args.captures):
            try:
                stats = replay_capture(
                    path, sinks, pipeline_names=args.pipeline, pipeline_options=options,
                    realtime=args.realtime, progress=False if args.no_progress else None,
                    run_context=run_context,
                )
            except (AmbisenseError, OSError, ValueError) as exc:  # go on with the others
                print(f"ambisense replay: error: {exc}", file=sys.stderr)
                failed += 1
                continue
            print(
                f"{stats.source}: {stats.frames} frames, {stats.stream_s:.1f} s of capture in "
                f"{stats.wall_s:.2f} s ({stats.speedup:.0f}x real time), {stats.events} events, "
                f"{stats.rejects} rejects, pipelines: {', '.join(stats.pipelines) or 'none'}",
                file=sys.stderr,
            )
            if not stats.events:
                print(f"ambisense replay: {_why_nothing(path, stats)}", file=sys.stderr)
    finally:
        for s in sinks:
            s.close()
    return 2 if failed else 0


COMMANDS.register("replay")(
    Command("replay recorded captures through every pipeline that applies", _configure, _run)
)
