"""``python -m tests.golden [--update] [--force] [NAME ...]`` (from the repository root).

Without ``--update``: replay the golden captures and print what differs from the expected
files (exit 1 if anything does). With ``--update``: the same report, then rewrite the
expected events (and run summaries in manifest.json) of the captures that changed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests import golden


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME", help="captures (default: all)")
    p.add_argument("--update", action="store_true",
                   help="rewrite the expected files of the captures that changed")
    p.add_argument("--force", action="store_true",
                   help="with --update: rewrite even differences within tolerance")
    p.add_argument("--list", action="store_true", help="list the golden captures and exit")
    args = p.parse_args(argv)
    try:
        chosen = golden.entries(args.names)
    except KeyError as exc:
        p.error(str(exc.args[0]))
    if args.list:
        for e in chosen:
            where = e.get("bundled") or e.get("shared") or "simulate " + " ".join(
                e["simulate"]["args"])
            opts = " ".join(e.get("options", []))
            print(f"{e['name']:<28} {where}" + (f"  (replay {opts})" if opts else ""))
        return 0
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        if args.update:
            n = golden.update(args.names, Path(tmp), force=args.force)
            print(f"{n} of {len(chosen)} golden capture(s) changed" if n else
                  f"all {len(chosen)} golden capture(s) unchanged")
            return 0
        bad = 0
        for e in chosen:
            try:
                run = golden.run_entry(e, Path(tmp))
            except golden.Unavailable as exc:
                print(f"{e['name']}: skipped, {exc}")
                continue
            res = golden.check_entry(e, run)
            print(res.report())
            bad += not res.ok
        if bad:
            print(f"\n{bad} golden capture(s) differ; if intended: python -m tests.golden "
                  f"--update", file=sys.stderr)
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
