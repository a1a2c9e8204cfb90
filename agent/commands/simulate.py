"""``ambisense simulate NAME --out FILE``: write a simulated capture and its ground truth."""

from __future__ import annotations

import argparse
import inspect
import json
import typing

from agent.commands.base import COMMANDS, Command
from sensing.simulate import SIMULATORS, truth_path


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="simulator", metavar="NAME", required=True)
    for name, fn in SIMULATORS.items():
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0]
        sp = sub.add_parser(name, help=doc, description=doc)
        sp.add_argument("--out", required=True, metavar="FILE", help="capture file to write")
        hints = typing.get_type_hints(fn)
        for pname, param in inspect.signature(fn).parameters.items():
            if pname == "out" or param.kind != param.KEYWORD_ONLY:
                continue
            kind = hints.get(pname, str)
            flag = "--" + pname.replace("_", "-")
            if kind is bool:
                sp.add_argument(flag, action=argparse.BooleanOptionalAction, default=param.default)
            else:
                conv = kind if kind in (int, float, str) else str
                sp.add_argument(flag, type=conv, default=param.default,
                                help=f"default: {param.default}")


def _run(args: argparse.Namespace) -> int:
    fn = SIMULATORS.get(args.simulator)
    params = {
        k: v for k, v in vars(args).items()
        if k in inspect.signature(fn).parameters and k != "out"
    }
    truth = fn(args.out, **params)
    summary = {k: v for k, v in truth.items() if not isinstance(v, (list, dict))}
    print(json.dumps({"out": args.out, "truth": truth_path(args.out), **summary}))
    return 0


COMMANDS.register("simulate")(
    Command("write a simulated capture (real file format) with a ground-truth sidecar",
            _configure, _run)
)
