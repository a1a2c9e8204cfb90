"""Typed, frozen parameter models: every stage, pipeline, source, sink and simulator declares
its options once, as a subclass of :class:`Params`.

From that one declaration come the validation of options given on the command line
(``--set``) or in the agent config (without building the stage or loading a model), the
listing in ``ambisense info --pipelines``, and the reference tables in ``docs/``.

>>> from sensing.params import OptionError, Params, param
>>> class WindowParams(Params):
...     window_s: float = param(30.0, unit="s", gt=0, le=600, doc="analysis window")
>>> WindowParams.from_options({"window_s": 20}).window_s
20.0
>>> try:
...     WindowParams.from_options({"bogus": 1}, where="demo")
... except OptionError as exc:
...     print(exc)
demo: unknown option 'bogus'; valid options: window_s (number, s, > 0, ≤ 600)
"""

from __future__ import annotations

import json
import math
import types
import typing
from typing import Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import Self

from sensing.errors import AmbisenseError

__all__ = ["Params", "param", "OptionError", "describe_type", "NoParams", "is_path_field"]


class OptionError(AmbisenseError, ValueError):
    """An option is unknown or has a bad value; the message names it and lists the valid
    options with their types."""


def param(default: Any = ..., *, doc: str, unit: str = "", path: bool = False,
          **constraints: Any) -> Any:
    """Declare one option of a :class:`Params` model.

    Parameters
    ----------
    default : object
        Default value (``...``: required).
    doc : str
        One-line description (shown by ``info --pipelines`` and in ``docs/``).
    unit : str
        Unit of the value (``"s"``, ``"Hz"``, ``"bpm"``, ``"dB"`` …), empty if none.
    path : bool
        The value is a file path: the agent config resolves it relative to the config
        file's directory.
    **constraints
        pydantic ``Field`` constraints: ``ge``, ``gt``, ``le``, ``lt``, ``min_length`` …
    """
    extra: dict[str, Any] = {"unit": unit}
    if path:
        extra["path"] = True
    return Field(default, description=doc, json_schema_extra=extra, **constraints)


def is_path_field(field: Any) -> bool:
    """True for a field declared with ``param(..., path=True)``."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and bool(extra.get("path"))


def _bounds(meta: list[Any]) -> str:
    lo = hi = ""
    for m in meta:
        for attr, sym in (("ge", "≥"), ("gt", ">")):
            if getattr(m, attr, None) is not None:
                lo = f"{sym} {_num(getattr(m, attr))}"
        for attr, sym in (("le", "≤"), ("lt", "<")):
            if getattr(m, attr, None) is not None:
                hi = f"{sym} {_num(getattr(m, attr))}"
    return ", ".join(b for b in (lo, hi) if b)


def _num(x: Any) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return str(int(x))
    return str(x)


def describe_type(tp: Any) -> str:
    """Short name of an annotation: ``number``, ``integer``, ``true/false``, ``"a" | "b"``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        parts = [describe_type(a) for a in typing.get_args(tp) if a is not type(None)]
        optional = type(None) in typing.get_args(tp)
        return " | ".join(dict.fromkeys(parts)) + (" (optional)" if optional else "")
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return f"list of {describe_type(args[0]) if args else 'values'}"
    return {float: "number", int: "integer", bool: "true/false", str: "string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _plain(obj: Any) -> Any:
    """numpy scalars and arrays as plain numbers and lists (for JSON-mode validation)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not a plain value")


class Params(BaseModel):
    """Base of every parameter model: frozen, unknown keys refused, values validated.

    Subclasses declare fields with :func:`param`. Validation is strict, as in the agent
    config: a string is never turned into a number (``--set window_s=abc`` or a TOML
    ``window_s = "30"`` is refused with a message naming the option, its type and range);
    an array may fill a tuple field.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, strict=True)

    #: Option names not shown to users (internal wiring); none by default.
    hidden: ClassVar[frozenset[str]] = frozenset()

    # ------------------------------------------------------------------ building
    @classmethod
    def from_options(cls, options: typing.Mapping[str, Any] | None = None, *,
                     where: str = "") -> Self:
        """Validate ``options`` (a mapping of option name → value).

        Raises
        ------
        OptionError
            An unknown option (message lists the valid ones with types), or a value of the
            wrong type or out of range (message names the option and what it accepts).
        """
        options = dict(options or {})
        try:
            try:  # JSON mode: a list may fill a tuple, but a string never becomes a number
                text = json.dumps(options, allow_nan=True, default=_plain)
            except (TypeError, ValueError):
                return cls.model_validate(options)
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise OptionError(cls._message(exc, where)) from None

    @classmethod
    def build(cls, params: Params | None, options: typing.Mapping[str, Any], *,
              where: str = "") -> Self:
        """``params`` (an instance, or None for the defaults) with ``options`` applied."""
        if params is None:
            return cls.from_options(options, where=where)
        if not isinstance(params, cls):
            raise TypeError(f"{where or cls.__name__}: expected {cls.__name__}, got "
                            f"{type(params).__name__}")
        if not options:
            return params
        return cls.from_options({**params.model_dump(), **options}, where=where)

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied."""
        return type(self).from_options({**self.model_dump(), **changes})

    def given(self) -> dict[str, Any]:
        """The options that differ from their defaults (for logs and reports)."""
        return {k: v for k, v in self.model_dump().items()
                if k in self.model_fields_set}

    # --------------------------------------------------------------- describing
    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One dict per visible option: ``name``, ``type``, ``unit``, ``default``,
        ``range``, ``doc``."""
        out = []
        for name, f in cls.model_fields.items():
            if name in cls.hidden:
                continue
            extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            if isinstance(default, float) and not math.isfinite(default):
                default = str(default)
            if isinstance(default, tuple):
                default = list(default)
            out.append({
                "name": name, "type": describe_type(f.annotation),
                "unit": extra.get("unit", ""), "default": default,
                "required": f.is_required(), "range": _bounds(list(f.metadata)),
                "doc": f.description or "",
            })
        return out

    @classmethod
    def summary(cls) -> str:
        """``name (type, unit)`` of every visible option, comma separated."""
        parts = []
        for d in cls.describe():
            bits = ", ".join(b for b in (d["type"], d["unit"], d["range"]) if b)
            parts.append(f"{d['name']} ({bits})")
        return ", ".join(parts) or "(none)"

    @classmethod
    def _message(cls, exc: ValidationError, where: str) -> str:
        pre = f"{where}: " if where else ""
        lines = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(x) for x in err["loc"]) or "(options)"
            if err["type"] == "extra_forbidden":
                lines.append(f"unknown option {loc!r}")
                continue
            field = cls.model_fields.get(str(err["loc"][0])) if err["loc"] else None
            want = ""
            if field is not None:
                extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
                bits = [describe_type(field.annotation), extra.get("unit", ""),
                        _bounds(list(field.metadata))]
                want = ", ".join(b for b in bits if b)
            got = json.dumps(err.get("input"), default=str)
            lines.append(f"option {loc!r}: expected {want or err['msg']}, got {got}"
                         + (f" ({err['msg']})" if want and "range" not in err["type"]
                            and "greater" not in err["msg"] and "less" not in err["msg"]
                            else ""))
        return f"{pre}{'; '.join(lines)}; valid options: {cls.summary()}"


class NoParams(Params):
    """A stage without options."""
