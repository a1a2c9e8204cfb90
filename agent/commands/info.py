"""``ambisense info``: what a capture holds; ``--formats`` / ``--pipelines`` list what is supported."""

from __future__ import annotations

import argparse
import json
import sys

from agent.commands.base import COMMANDS, Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("captures", nargs="*", metavar="CAPTURE")
    p.add_argument("--json", action="store_true", help="one JSON object per capture")
    p.add_argument("--formats", action="store_true", help="list the supported capture formats (modality; \"plot\": "
                        "`ambisense plot` has a default plot for it)")
    p.add_argument("--pipelines", action="store_true",
                   help="list the detector pipelines: what they accept and emit, their "
                        "options with types, units and defaults (with --json: one JSON "
                        "array)")
    p.add_argument("--sources", action="store_true",
                   help="list the agent's source types and their config keys")
    from agent.commands.replay import add_reader_arguments

    add_reader_arguments(p)


def _run(args: argparse.Namespace) -> int:
    from sensing.formats import FORMATS, open_capture

    if args.formats:
        from sensing.plot import PLOTTERS  # plotters import no matplotlib

        for name, cls in FORMATS.items():
            plot = "plot" if cls.modality in PLOTTERS else "-"
            print(f"{name:<16} {cls.modality:<9} {plot:<4} {cls.description}")
    if args.pipelines:
        from agent.reference import pipeline_catalog, pipelines_text

        catalog = pipeline_catalog()
        if args.json:
            print(json.dumps(catalog))
        else:
            print(pipelines_text(catalog), end="")
    if args.sources:
        from agent.reference import source_catalog, sources_text

        catalog = source_catalog()
        print(json.dumps(catalog) if args.json else sources_text(catalog), end="\n" if
              args.json else "")
    if not args.captures and not (args.formats or args.pipelines or args.sources):
        print("ambisense info: error: give a CAPTURE, --formats, --pipelines or --sources",
              file=sys.stderr)
        return 2
    from agent.commands.replay import reader_options

    for path in args.captures:
        info = open_capture(path, **reader_options(path, args.format, args.read)).info()
        if args.json:
            print(json.dumps(info))
            continue
        print(path)
        for key, value in info.items():
            if key != "path":
                print(f"  {key:<16} {value}")
    return 0


COMMANDS.register("info")(
    Command("describe captures: format, frames, duration, rate, layout, rejects", _configure, _run)
)
