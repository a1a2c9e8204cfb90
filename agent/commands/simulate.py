"""``ambisense simulate NAME --out FILE``: write a simulated capture and its ground truth.

Every option of a simulator comes from its parameter model (``fn.Params``, a
:class:`~sensing.params.Params`): ``rate_bpm`` → ``--rate-bpm``, with the model's type,
unit, default, range and description in ``--help``. Only the options given on the command
line are passed back, through the model, so its defaults and validation apply.
"""

from __future__ import annotations

import argparse
import inspect
import json
import types
import typing
from typing import Any, Literal

from agent.commands.base import COMMANDS, Command
from sensing.params import NoParams, Params
from sensing.simulate import SIMULATORS, params_of, truth_path


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar(tp: Any) -> Any:
    """``X`` of ``X | None``; the annotation itself otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def option_help(d: dict[str, Any]) -> str:
    """Help text of one option from :meth:`Params.describe`: doc (unit; range; default)."""
    bits = [d["unit"] and f"unit: {d['unit']}", d["range"],
            "required" if d["required"] else f"default: {json.dumps(d['default'])}"]
    return f"{d['doc']} ({'; '.join(b for b in bits if b)})".replace("%", "%%")


def add_model_options(parser: argparse.ArgumentParser, model: type[Params]) -> None:
    """One ``--option`` per visible field of ``model``; options not given stay out of the
    namespace (``argparse.SUPPRESS``), so the model's defaults apply."""
    for d in model.describe():
        name = d["name"]
        tp = _scalar(model.model_fields[name].annotation)
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": option_help(d),
                              "dest": name}
        if d["required"]:
            kw["required"] = True
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is Literal:
            choices = typing.get_args(tp)
            kw.update(choices=choices, type=type(choices[0]), metavar="{" + ",".join(
                str(c) for c in choices) + "}")
        else:
            kw["type"] = tp if tp in (int, float, str) else str
            kw["metavar"] = {int: "N", float: "X"}.get(tp, "VALUE")
        parser.add_argument(_flag(name), **kw)


def _epilog() -> str:
    lines = ["options of each simulator (NAME --help for details):"]
    for name, fn in SIMULATORS.items():
        lines.append(f"  {name}:")
        for d in params_of(fn).describe():
            unit = f" {d['unit']}" if d["unit"] else ""
            default = "required" if d["required"] else f"default {json.dumps(d['default'])}"
            lines.append(f"    {_flag(d['name'])} [{d['type']}{unit}; {default}]")
    return "\n".join(lines)


def _configure(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _epilog()
    sub = p.add_subparsers(dest="simulator", metavar="NAME", required=True)
    for name, fn in SIMULATORS.items():
        doc = (inspect.getdoc(fn) or "").split("\n\n")[0]
        sp = sub.add_parser(name, help=doc, description=doc)
        sp.add_argument("--out", required=True, metavar="FILE", help="capture file to write")
        add_model_options(sp, params_of(fn))


def _run(args: argparse.Namespace) -> int:
    fn = SIMULATORS.get(args.simulator)
    model = params_of(fn)
    given = {k: v for k, v in vars(args).items() if k in model.model_fields}
    params = model.from_options(given, where=f"simulate {args.simulator}")
    # a plug-in without an option model takes the capture path only
    truth = fn(args.out) if model is NoParams else fn(args.out, params)
    summary = {k: v for k, v in truth.items() if not isinstance(v, (list, dict))}
    print(json.dumps({"out": args.out, "truth": truth_path(args.out), **summary}))
    return 0


COMMANDS.register("simulate")(
    Command("write a simulated capture (real file format) with a ground-truth sidecar",
            _configure, _run)
)
