"""``ambisense bench``: every performance figure, as Markdown tables and a JSON document."""

from __future__ import annotations

import argparse

from agent.commands.base import COMMANDS, Command


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats and shorter captures (under 10 minutes on 2 cores)")
    p.add_argument("--json", metavar="FILE", help="write every figure to this JSON file")
    p.add_argument("--markdown", metavar="FILE",
                   help="also write the tables (with each section's description) here")
    p.add_argument("--only", nargs="+", metavar="SECTION",
                   help="run only these sections (`--list` shows them)")
    p.add_argument("--list", action="store_true", help="list the sections and exit")


def _run(args: argparse.Namespace) -> int:
    import json
    import sys

    from agent.bench import BENCHES
    from agent.bench.report import document_markdown, ordered, progress, run_sections

    if args.list:
        for b in ordered():
            print(f"{b.name:14s} {b.title}")
        for name, why in BENCHES.broken.items():
            print(f"{name:14s} (not loaded: {why})")
        return 0
    unknown = [n for n in args.only or [] if n not in BENCHES]
    if unknown:
        print(f"ambisense bench: error: unknown section(s) {', '.join(unknown)}; known: "
              f"{', '.join(BENCHES.names())}", file=sys.stderr)
        return 2
    doc = run_sections(args.only, args.quick, on_done=progress)
    print(document_markdown(doc, describe=False))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write(document_markdown(doc, describe=True))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1, default=str)
            fh.write("\n")
    return 1 if any(s["status"] == "error" for s in doc["sections"].values()) else 0


COMMANDS.register("bench")(Command(
    "measure parse, pipeline, memory, model, start-up and parallel performance "
    "(Markdown tables + JSON)", _configure, _run))
