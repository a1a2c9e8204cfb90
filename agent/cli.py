"""``ambisense`` command line: ``replay``, ``info``, ``simulate``, ``subscribe``, ``agent`` …"""

from __future__ import annotations

import argparse
import logging
import sys

from agent import __version__
from agent.commands import COMMANDS
from sensing.errors import AmbisenseError


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI parser. With ``argv``, only the chosen subcommand's arguments are built, so
    a command never imports what the others need (start-up stays fast on a Pi)."""
    chosen = next((a for a in (argv or []) if not a.startswith("-")), None)
    parser = argparse.ArgumentParser(
        prog="ambisense", description="Contact-free wireless sensing and health monitoring."
    )
    parser.add_argument("--version", action="version", version=f"ambisense {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if argv is None or chosen == name:
            cmd.configure(p)
        p.set_defaults(_run=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except (AmbisenseError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"ambisense {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
