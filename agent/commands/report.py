"""``ambisense report CAPTURE... -o report.html``: one self-contained HTML report."""

from __future__ import annotations

import argparse
import sys

from agent.commands.base import COMMANDS, Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("captures", nargs="+", metavar="CAPTURE", help="recorded capture file(s)")
    p.add_argument("-o", "--out", required=True, metavar="FILE.html",
                   help="the report to write (one file: images embedded, no network needed)")
    p.add_argument("--pipeline", action="append", metavar="NAME",
                   help="pipeline(s) to run (repeatable); default: all that apply")
    p.add_argument("--set", action="append", default=[], metavar="PIPELINE.KEY=VALUE",
                   help="pipeline option, as for `ambisense replay`")
    p.add_argument("--start-s", type=float, default=None, help="plots start here (s)")
    p.add_argument("--end-s", type=float, default=None, help="plots end here (s)")


def _run(args: argparse.Namespace) -> int:
    from agent.commands.replay import check_request, parse_sets
    from agent.report import build_report

    try:
        options = parse_sets(args.set)
    except ValueError as exc:
        print(f"ambisense report: error: {exc}", file=sys.stderr)
        return 2
    problems = check_request(args.pipeline, options)
    for msg in problems:
        print(f"ambisense report: error: {msg}", file=sys.stderr)
    if problems:
        return 2
    plot_options = {k: v for k, v in (("start_s", args.start_s), ("end_s", args.end_s))
                    if v is not None}
    reports = build_report(args.captures, args.out, pipeline_names=args.pipeline,
                           pipeline_options=options, plot_options=plot_options)
    failed = 0
    for r in reports:
        if r.error:
            failed += 1
            print(f"ambisense report: error: {r.error}", file=sys.stderr)
        elif r.plot_error:
            print(f"ambisense report: {r.path}: no plot: {r.plot_error}", file=sys.stderr)
    n = sum(len(r.events) for r in reports)
    print(f"ambisense report: {args.out}: {len(reports)} capture(s), {n} event(s)",
          file=sys.stderr)
    return 2 if failed else 0


COMMANDS.register("report")(
    Command("one self-contained HTML report: capture summaries, plots, events, settings, "
            "models", _configure, _run)
)
