"""``ambisense plot``: the default plot of one capture, with its events, as PNG or SVG."""

from __future__ import annotations

import argparse

from agent.commands.base import COMMANDS, Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("capture", metavar="CAPTURE", help="recorded capture file")
    p.add_argument("-o", "--out", required=True, metavar="FILE",
                   help="image to write: FILE.png or FILE.svg")
    p.add_argument("--start-s", type=float, default=None, metavar="S",
                   help="start of the time range drawn (s from the start of the capture)")
    p.add_argument("--end-s", type=float, default=None, metavar="S",
                   help="end of the time range drawn (s)")
    p.add_argument("--channels", metavar="LIST",
                   help="comma-separated EEG channel names or indices (default: the first "
                        "23); for WiFi CSI, receive antenna indices to average")
    ev = p.add_mutually_exclusive_group()
    ev.add_argument("--events", metavar="FILE.jsonl",
                    help="draw the events of this JSON Lines file (`ambisense replay "
                         "--jsonl`); only this capture's when it holds several sources")
    ev.add_argument("--detect", action="store_true",
                    help="run the detectors on the capture first and draw their events")
    p.add_argument("--pipeline", action="append", metavar="NAME",
                   help="with --detect: pipeline(s) to run (repeatable; default: all that "
                        "apply)")
    p.add_argument("--set", action="append", default=[], metavar="PIPELINE.KEY=VALUE",
                   help="with --detect: pipeline option, e.g. wifi_breathing.window_s=20")
    p.add_argument("--format", metavar="NAME",
                   help="capture format (`ambisense info --formats`); default: detected")
    p.add_argument("--dpi", type=float, default=100, metavar="N",
                   help="resolution of a PNG (default: 100; the figure is 12 in wide)")


def _channels(text: str | None) -> list[str | int] | None:
    if text is None:
        return None
    out: list[str | int] = []
    for item in text.split(","):
        item = item.strip()
        if item:
            out.append(int(item) if item.isdigit() else item)
    return out or None


def _run(args: argparse.Namespace) -> int:
    import os
    import sys

    from sensing.errors import AmbisenseError

    def fail(msg: object) -> int:
        print(f"ambisense plot: error: {msg}", file=sys.stderr)
        return 2

    if (args.pipeline or args.set) and not args.detect:
        return fail("--pipeline and --set need --detect")
    events = None
    try:
        from sensing.plot import plot_capture, read_events_jsonl, require_matplotlib

        require_matplotlib()  # before any detector runs
        if args.events:
            events = read_events_jsonl(args.events)
            sources = {e.get("source") for e in events}
            if len(sources) > 1:
                name = os.path.basename(args.capture)
                events = [e for e in events if e.get("source") == name]
                if not events:
                    print(f"ambisense plot: warning: {args.events} holds no event of "
                          f"{name} (sources: {', '.join(sorted(map(str, sources)))})",
                          file=sys.stderr)
        elif args.detect:
            events = _detect(args)
            if isinstance(events, int):
                return events
        info = plot_capture(args.capture, args.out, events=events, start_s=args.start_s,
                            end_s=args.end_s, channels=_channels(args.channels),
                            dpi=args.dpi, format=args.format)
    except (AmbisenseError, OSError, ValueError, KeyError) as exc:
        return fail(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
    print(f"{info.out}: {info.modality} plot of {os.path.basename(info.path)} "
          f"({info.format}), {info.start_s:.1f}–{info.end_s:.1f} s in {info.columns} "
          f"columns, {info.n_events} events", file=sys.stderr)
    return 0


def _detect(args: argparse.Namespace) -> list[dict] | int:
    """Events of the detectors run on the capture (or exit code 2 on a bad request)."""
    import json
    import sys

    from agent.commands.replay import check_request, parse_sets
    from agent.runner import replay_capture
    from agent.sinks import Sink

    try:
        options = parse_sets(args.set)
    except ValueError as exc:
        print(f"ambisense plot: error: {exc}", file=sys.stderr)
        return 2
    problems = check_request(args.pipeline, options)
    if problems:
        for msg in problems:
            print(f"ambisense plot: error: {msg}", file=sys.stderr)
        return 2

    class Collect(Sink):
        def __init__(self) -> None:
            self.events: list[dict] = []

        def emit(self, event) -> None:
            self.events.append(json.loads(event.to_json()))

    sink = Collect()
    stats = replay_capture(args.capture, [sink], pipeline_names=args.pipeline,
                           pipeline_options=options, progress=False,
                           reader_options={"format": args.format} if args.format else None)
    print(f"{stats.source}: {stats.events} events from {', '.join(stats.pipelines) or 'no'} "
          f"pipeline(s)", file=sys.stderr)
    return sink.events


COMMANDS.register("plot")(
    Command("plot a capture (CSI heat map + breathing, EEG channels) with its events as "
            "PNG/SVG", _configure, _run)
)
