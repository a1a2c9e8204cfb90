"""``ambisense replay``: run recorded captures through their pipelines."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from agent.commands.base import COMMANDS, Command
from agent.pipelines import PIPELINES
from agent.runner import replay_capture
from agent.sinks import SINKS, Sink
from sensing.errors import AmbisenseError

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
                        "(`ambisense info --pipelines` lists them)")
    p.add_argument("--set", action="append", default=[], metavar="PIPELINE.KEY=VALUE",
                   help="pipeline option, e.g. wifi_breathing.window_s=30 (value parsed as JSON)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def parse_sets(items: list[str]) -> dict[str, dict]:
    """``["p.key=1"]`` → ``{"p": {"key": 1}}`` (values parsed as JSON, else kept as text)."""
    out: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        pipe, dot, opt = key.partition(".")
        if not sep or not dot or not opt:
            raise SystemExit(f"--set {item!r}: expected PIPELINE.KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(pipe, {})[opt] = value
    return out


def _run(args: argparse.Namespace) -> int:
    unknown = [n for n in args.pipeline or [] if n not in PIPELINES]
    if unknown:
        print(f"ambisense replay: error: unknown pipeline(s) {', '.join(unknown)}; "
              f"known: {', '.join(PIPELINES.names())}", file=sys.stderr)
        return 2
    sinks: list[Sink] = []
    if args.jsonl:
        sinks.append(SINKS.get("jsonl")())
    else:
        sinks.append(SINKS.get("table")())
    if args.out:
        sinks.append(SINKS.get("jsonl")(path=args.out))
    if args.mqtt:
        sinks.append(SINKS.get("mqtt").from_url(args.mqtt))
    options = parse_sets(args.set)
    failed = 0
    try:
        for path in args.captures:
            try:
                stats = replay_capture(
                    path, sinks, pipeline_names=args.pipeline, pipeline_options=options,
                    realtime=args.realtime, progress=False if args.no_progress else None,
                )
            except AmbisenseError as exc:  # not a capture, broken beyond reading: go on
                print(f"ambisense replay: error: {exc}", file=sys.stderr)
                failed += 1
                continue
            except (OSError, ValueError) as exc:
                print(f"ambisense replay: {path}: {exc}", file=sys.stderr)
                failed += 1
                continue
            print(
                f"{stats.source}: {stats.frames} frames, {stats.stream_s:.1f} s of capture in "
                f"{stats.wall_s:.2f} s ({stats.speedup:.0f}x real time), {stats.events} events, "
                f"{stats.rejects} rejects, pipelines: {', '.join(stats.pipelines) or 'none'}",
                file=sys.stderr,
            )
    finally:
        for s in sinks:
            s.close()
    return 2 if failed else 0


COMMANDS.register("replay")(
    Command("replay recorded captures through every pipeline that applies", _configure, _run)
)
