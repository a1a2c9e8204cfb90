"""``ambisense info``: what a capture holds."""

from __future__ import annotations

import argparse
import json

from agent.commands.base import COMMANDS, Command
from sensing.formats import open_capture


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("captures", nargs="+", metavar="CAPTURE")
    p.add_argument("--json", action="store_true", help="one JSON object per capture")


def _run(args: argparse.Namespace) -> int:
    for path in args.captures:
        info = open_capture(path).info()
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
