"""The agent's TOML configuration: schema, validation and precise error messages.

A config file is parsed with :mod:`tomllib` and validated in two stages:

1. **Structure** — pydantic v2 models with ``extra="forbid"`` and ``strict=True`` (a TOML
   string is never silently turned into a number). Every pydantic error becomes one line
   ``agent.toml: sources[1].baudrate: expected an integer ≥ 1200, got "fast"`` naming the
   key path, what was expected and what was found (:func:`format_validation_error`).
2. **Meaning** — :func:`check_semantics`: pipeline names exist and accept the source's
   modality, pipeline options are accepted by the pipeline, replayed files exist and are
   captures, the source type is available in this build, secrets can be read.

Secrets (MQTT password, TLS key passphrase) are never written in the file: the config
names an environment variable (``password_env``, ``tls.keyfile_password_env``) or a file
(``password_file``); an inline secret is an error. Validation only checks that the named
source is usable; the MQTT sink reads the value at each connection (as a
:class:`pydantic.SecretStr`), and nothing here prints or logs it.

See ``docs/agent.md`` for the reference of every key.
"""

from __future__ import annotations

import copy
import functools
import glob
import json
import math
import os
import socket
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from sensing.errors import AmbisenseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Characters allowed in source names (they end up in MQTT topics and log lines).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

#: Files in a replay directory that are not captures.
NOT_CAPTURES = ("*.truth.json", "*.wav.json", "README*", "*.md", ".*")


class ConfigError(AmbisenseError):
    """The config is invalid; :attr:`issues` holds one precise message per problem.

    Parameters
    ----------
    origin : str
        File name (or ``"<demo>"``) put in front of every message.
    issues : list of str
        ``"key.path: expected …, got …"`` messages.
    """

    def __init__(self, origin: str, issues: list[str]) -> None:
        self.origin = origin
        self.issues = list(issues)
        super().__init__("\n".join(f"{origin}: {m}" for m in self.issues))


def _hostname() -> str:
    name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())
    return (name or "ambisense")[:64].lstrip("-_.") or "ambisense"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


SourceName = Annotated[str, Field(pattern=NAME_PATTERN)]


class RestartPolicy(_Model):
    """Exponential backoff between restarts of a failed source or pipeline."""

    initial_s: float = Field(1.0, gt=0, le=3600)
    max_s: float = Field(60.0, gt=0, le=86400)
    factor: float = Field(2.0, ge=1, le=10)
    max_restarts: int = Field(0, ge=0)
    """0 = retry forever."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number ``attempt`` (1-based)."""
        return min(self.max_s, self.initial_s * self.factor ** max(attempt - 1, 0))


class _SourceBase(_Model):
    name: SourceName | None = None
    pipelines: list[str] | None = None
    """Pipeline names; default: every default pipeline accepting the source's modality."""
    pipeline_options: dict[str, dict[str, Any]] = {}
    """Per-source pipeline options, merged over ``[pipelines.<name>]``."""
    restart: RestartPolicy = RestartPolicy()
    queue_chunks: int = Field(16, ge=1, le=10000)
    """Chunks buffered between the reader and the pipelines (live sources drop when full)."""


class AgentSection(_Model):
    name: SourceName = Field(default_factory=_hostname)
    """Device name: MQTT client id / topic part and the status line's label."""
    status_interval_s: float = Field(60.0, ge=0, le=86400)
    """Seconds between status log lines (and MQTT status messages); 0 = off."""


class SinksSection(_Model):
    """``[sinks]``: the console and a JSON Lines file; any other key is the
    ``[sinks.<key>]`` table of a sink plug-in (validated by that sink's ``Params``)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    console: Literal["table", "jsonl", "off"] = "table"
    jsonl_file: str | None = Field(None, min_length=1)
    """Append every event to this JSON Lines file."""


class _AgentConfigBase(_Model):
    """The whole ``agent.toml`` (``sources`` is added from the source registry)."""

    agent: AgentSection = AgentSection()
    sources: list[Any] = Field(min_length=1)
    """``[[sources]]``: one table per source (its model is set by :func:`config_models`)."""
    pipelines: dict[str, dict[str, Any]] = {}
    """``[pipelines.<name>]``: options passed to every instance of that pipeline."""
    sinks: SinksSection = SinksSection()
    mqtt: dict[str, Any] | None = None
    """``[mqtt]``: validated against ``agent.sinks.mqtt.MqttSettings`` (see :func:`mqtt_settings`)."""


@dataclass(frozen=True)
class ConfigModels:
    """The config schema, built from the registries: one ``[[sources]]`` model per
    registered source type (the common keys of :class:`_SourceBase` plus the source's
    own ``Params``), and the whole-file model."""

    sources: dict[str, type[_SourceBase]]
    agent: type[_AgentConfigBase]


@functools.cache
def config_models() -> ConfigModels:
    """Build (once per process) the config models from :data:`sensing.sources.SOURCES`."""
    from sensing.sources import SOURCES

    models: dict[str, type[_SourceBase]] = {}
    for name, cls in SOURCES.items():
        fields: dict[str, Any] = {"type": (Literal[name], ...)}
        for fname, finfo in cls.Params.model_fields.items():
            fields[fname] = (finfo.annotation, copy.deepcopy(finfo))
        doc = (cls.__doc__ or "").strip().split("\n")[0]
        models[name] = create_model(f"{cls.__name__}Config", __base__=_SourceBase,
                                    __doc__=doc, **fields)
    union = Annotated[Union[tuple(models.values())], Field(discriminator="type")]  # noqa: UP007
    agent = create_model("AgentConfig", __base__=_AgentConfigBase,
                         __doc__="The whole ``agent.toml``.",
                         sources=(list[union], Field(min_length=1)))
    return ConfigModels(models, agent)


def __getattr__(name: str) -> Any:
    """``AgentConfig`` and ``SOURCE_CONFIGS`` (type name → model), built on first use."""
    if name == "AgentConfig":
        return config_models().agent
    if name == "SOURCE_CONFIGS":
        return dict(config_models().sources)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus what was resolved from its surroundings.

    Attributes
    ----------
    config : AgentConfig
        The validated tree (an instance of ``config_models().agent``) (relative paths already made absolute).
    origin : str
        File name used in messages.
    mqtt : object or None
        ``MqttSettings`` instance (secrets resolved) when ``[mqtt]`` is configured.
    secrets_from : dict
        Key path → where a secret was read from (``"env AMBISENSE_MQTT_PASSWORD"``), for
        the start-up summary; never the value.
    """

    config: Any
    origin: str
    mqtt: Any = None
    secrets_from: dict[str, str] | None = None


# ---------------------------------------------------------------- error formatting


def _got(value: Any) -> str:
    """What was found, as a person reading the TOML would write it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:6])
        return f"a table {{{keys}}}" if keys else "an empty table"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'s' if len(value) != 1 else ''}"
    return type(value).__name__


def _unwrap(tp: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated`` and ``Optional``; return the core type and collected metadata."""
    meta: list[Any] = []
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            args = typing.get_args(tp)
            tp = args[0]
            meta.extend(args[1:])
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp, meta


def _flatten_meta(meta: list[Any]) -> list[Any]:
    out: list[Any] = []
    for m in meta:
        if hasattr(m, "metadata") and isinstance(getattr(m, "metadata", None), list):
            out.extend(m.metadata)  # a FieldInfo inside Annotated
        else:
            out.append(m)
    return out


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def describe(tp: Any, meta: list[Any] | None = None) -> str:
    """Human description of an annotated type: ``an integer ≥ 1200``, ``one of "a", "b"``."""
    tp, more = _unwrap(tp)
    meta = _flatten_meta(list(meta or []) + more)
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        descs = dict.fromkeys(describe(a) for a in typing.get_args(tp) if a is not type(None))
        return " or ".join(descs)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        base = "an array of " + _plural(describe(item))
    elif origin is dict or tp is dict:
        base = "a table"
    elif isinstance(tp, type) and issubclass(tp, BaseModel):
        base = "a table"
    elif tp is bool:
        base = "true or false"
    elif tp is int:
        base = "an integer"
    elif tp is float:
        base = "a number"
    elif tp is str:
        base = "a string"
    elif tp is Path:
        base = "a file path (string)"
    else:
        base = "a value"
    lo = hi = None
    lo_strict = hi_strict = False
    bits: list[str] = []
    for m in meta:
        if isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Gt):
            lo, lo_strict = m.gt, True
        elif isinstance(m, annotated_types.Le):
            hi = m.le
        elif isinstance(m, annotated_types.Lt):
            hi, hi_strict = m.lt, True
        elif isinstance(m, annotated_types.MinLen) and m.min_length:
            bits.append("non-empty" if m.min_length == 1 else f"with at least {m.min_length} items")
        elif type(m).__name__ == "_PydanticGeneralMetadata" and getattr(m, "pattern", None):
            bits.append("of letters, digits, '_', '.', '-' (at most 64, starting with a letter or digit)")
    if lo is not None and hi is not None and not lo_strict and not hi_strict:
        base += f" from {_num(lo)} to {_num(hi)}"
    else:
        if lo is not None:
            base += f" {'>' if lo_strict else '≥'} {_num(lo)}"
        if hi is not None:
            base += f"{',' if lo is not None else ''} {'<' if hi_strict else '≤'} {_num(hi)}"
    if bits:
        if base.startswith("an array"):
            base = f"a {bits[0]} array{base[len('an array'):]}" if bits[0] == "non-empty" else (
                f"{base} {bits[0]}")
        elif bits[0] == "non-empty":
            base = "a non-empty " + base.split(" ", 1)[1]
        else:
            base += " " + bits[0]
    return base


def _plural(desc: str) -> str:
    for art in ("an ", "a "):
        if desc.startswith(art):
            word, _, rest = desc[len(art):].partition(" ")
            return (word + "s " + rest).strip() if word != "table" else ("tables " + rest).strip()
    return desc


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[str, Any, list[Any], type | None]:
    """Follow a pydantic error location through the model classes.

    Returns the dotted key path (``sources[1].baudrate``, discriminator tags dropped), the
    annotation and metadata of the last field, and the model that owns it.
    """
    path = ""
    tp: Any = model
    meta: list[Any] = []
    owner: type | None = None
    for item in loc:
        core, m2 = _unwrap(tp)
        origin = typing.get_origin(core)
        if isinstance(core, type) and issubclass(core, BaseModel) and isinstance(item, str):
            owner = core
            field = core.model_fields.get(item)
            path = f"{path}.{item}" if path else item
            if field is None:
                tp, meta = Any, []
            else:
                tp, meta = field.annotation, list(field.metadata)
            continue
        if origin is list and isinstance(item, int):
            path += f"[{item}]"
            (tp,) = typing.get_args(core) or (Any,)
            meta = []
            continue
        if origin is dict and isinstance(item, str):
            path = f"{path}.{item}" if path else item
            args = typing.get_args(core)
            tp = args[1] if len(args) == 2 else Any
            meta = []
            continue
        if origin in (Union, types.UnionType) and isinstance(item, str):
            # discriminated union: the tag is in the location, not in the file
            for member in typing.get_args(core):
                if isinstance(member, type) and issubclass(member, BaseModel):
                    disc = member.model_fields.get("type")
                    if disc is not None and item in typing.get_args(disc.annotation):
                        tp = member
                        break
            continue
        path = f"{path}.{item}" if path else str(item)
        tp, meta = Any, []
    return path, tp, meta, owner


def _known_keys(owner: type[BaseModel] | None) -> str:
    if owner is None:
        return ""
    return ", ".join(owner.model_fields)


def _broken_sources() -> str:
    """Source modules or plug-ins that exist but could not be loaded in this build."""
    from sensing.sources import SOURCES

    if not SOURCES.broken:
        return ""
    return " (not available in this build: " + "; ".join(
        f"{k}: {v}" for k, v in sorted(SOURCES.broken.items())) + ")"


def format_validation_error(
    exc: ValidationError, model: type[BaseModel], prefix: tuple[Any, ...] = ()
) -> list[str]:
    """One ``key.path: expected …, got …`` message per pydantic error (tags dropped)."""
    out: list[str] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        etype = err["type"]
        path, tp, meta, owner = _walk(model, loc)
        path = ".".join([*map(str, prefix), path]) if prefix and path else (
            ".".join(map(str, prefix)) or path)
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if etype == "extra_forbidden":
            known = _known_keys(owner)
            msg = f"unknown key {json.dumps(loc[-1])}; expected one of: {known}"
            out.append(f"{path}: {msg}")
            continue
        if etype == "missing":
            out.append(f"{path}: required key is missing; expected {describe(tp, meta)}")
            continue
        if etype == "union_tag_invalid":
            tags = ctx.get("expected_tags", "")
            out.append(f"{path}.type: unknown source type {_got(ctx.get('tag'))}; expected one "
                       f"of {tags.replace(chr(39), chr(34))}{_broken_sources()}")
            continue
        if etype == "union_tag_not_found":
            out.append(f"{path}.type: required key is missing; expected one of "
                       + ", ".join(json.dumps(t) for t in config_models().sources))
            continue
        if etype in ("model_type", "model_attributes_type", "dict_type"):
            out.append(f"{path}: expected a table, got {_got(value)}")
            continue
        if etype == "value_error":
            msg = str(ctx.get("error", err["msg"]))
            out.append(f"{path}: {msg}")
            continue
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            out.append(f"{path}: expected {describe(tp, meta)}, got {value}")
            continue
        out.append(f"{path}: expected {describe(tp, meta)}, got {_got(value)}")
    return out


# ---------------------------------------------------------------- loading


def parse_toml(text: str, origin: str) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes a :class:`ConfigError` naming line and column."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(origin, [f"not valid TOML: {exc}"]) from None


def load_config(path: str | os.PathLike, env: dict[str, str] | None = None) -> LoadedConfig:
    """Read, validate and resolve ``path``.

    Relative paths inside the file (replayed captures, JSON Lines file, secret files,
    TLS certificates) are taken relative to the directory of the config file.

    Raises
    ------
    FileNotFoundError, PermissionError, IsADirectoryError
        The file cannot be read.
    ConfigError
        Anything wrong with its content (all problems at once).
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    origin = os.path.basename(path)
    return validate(parse_toml(text, origin), origin, base_dir=os.path.dirname(
        os.path.abspath(path)), env=env)


def validate(
    data: dict[str, Any], origin: str, *, base_dir: str = ".", env: dict[str, str] | None = None,
    semantic: bool = True,
) -> LoadedConfig:
    """Validate a parsed config (structure, then meaning); raise :class:`ConfigError`."""
    model = config_models().agent
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(origin, format_validation_error(exc, model)) from None
    cfg = _absolutize(cfg, base_dir)
    issues: list[str] = sink_issues(cfg.sinks)
    mqtt = None
    secrets_from: dict[str, str] = {}
    if cfg.mqtt is not None:
        mqtt, m_issues, secrets_from = mqtt_settings(
            cfg.mqtt, base_dir=base_dir, env=os.environ if env is None else env)
        issues += m_issues
    if semantic:
        issues += check_semantics(cfg)
    if issues:
        raise ConfigError(origin, issues)
    return LoadedConfig(cfg, origin, mqtt, secrets_from)


def _abs(p: str | None, base: str) -> str | None:
    if p is None:
        return None
    p = os.path.expanduser(p)
    return p if os.path.isabs(p) or "://" in p else os.path.normpath(os.path.join(base, p))


def _absolutize(cfg: Any, base: str) -> Any:
    """Relative file paths (fields declared ``param(..., path=True)``) made absolute."""
    from sensing.params import is_path_field

    sources = []
    for s in cfg.sources:
        update = {k: _abs(getattr(s, k), base) for k, f in type(s).model_fields.items()
                  if is_path_field(f) and getattr(s, k) is not None}
        sources.append(s.model_copy(update=update) if update else s)
    update: dict[str, Any] = {"jsonl_file": _abs(cfg.sinks.jsonl_file, base)}
    if cfg.sinks.model_extra:
        from agent.sinks import SINKS

        tables = {cls.config_key: cls for _, cls in SINKS.items() if cls.config_key}
        for key, table in cfg.sinks.model_extra.items():
            cls = tables.get(key)
            if cls is None or not isinstance(table, dict):
                continue  # reported by sink_issues
            update[key] = {k: _abs(v, base) if isinstance(v, str) and k in cls.Params.model_fields
                           and is_path_field(cls.Params.model_fields[k]) else v
                           for k, v in table.items()}
    sinks = cfg.sinks.model_copy(update=update)
    return cfg.model_copy(update={"sources": sources, "sinks": sinks})


def source_params(src: _SourceBase, **override: Any) -> Any:
    """The source's own options (its class's ``Params``) from a validated ``[[sources]]``
    entry, with ``override`` applied (e.g. one file of a replay's expansion)."""
    from sensing.sources import SOURCES

    cls = SOURCES.get(src.type)
    values = {k: getattr(src, k) for k in cls.Params.model_fields}
    return cls.Params.model_validate({**values, **override}, strict=False)


def sink_issues(sinks: SinksSection) -> list[str]:
    """``[sinks.<key>]`` tables of sink plug-ins: known key, options valid for its Params."""
    from agent.sinks import SINKS
    from sensing.params import OptionError

    tables = {cls.config_key: cls for _, cls in SINKS.items() if cls.config_key}
    issues = []
    for key, table in (sinks.model_extra or {}).items():
        cls = tables.get(key)
        if cls is None:
            known = ", ".join(["console", "jsonl_file", *sorted(tables)])
            issues.append(f"sinks: unknown key {json.dumps(key)}; expected one of: {known}")
            continue
        if not isinstance(table, dict):
            issues.append(f"sinks.{key}: expected a table, got {_got(table)}")
            continue
        try:
            cls.Params.from_options(table)
        except OptionError as exc:
            issues.append(f"sinks.{key}: {exc}")
    return issues


def plugin_sinks(sinks: SinksSection) -> list[tuple[type, Any]]:
    """``(sink class, validated Params)`` of every ``[sinks.<key>]`` plug-in table."""
    from agent.sinks import SINKS

    tables = {cls.config_key: cls for _, cls in SINKS.items() if cls.config_key}
    return [(tables[k], tables[k].Params.from_options(v))
            for k, v in (sinks.model_extra or {}).items()]


# ---------------------------------------------------------------- MQTT and secrets

#: Keys that would put a secret into the file, with the keys to use instead.
INLINE_SECRETS = {
    ("password",): ("password_env", "password_file"),
    ("tls", "keyfile_password"): ("keyfile_password_env",),
    ("tls", "password"): ("keyfile_password_env",),
    ("tls", "passphrase"): ("keyfile_password_env",),
    ("tls", "key_passphrase"): ("keyfile_password_env",),
}


def warn_if_exposed(key: str, path: str | os.PathLike) -> str | None:
    """Warn (log, and return the message) when a secret file is accessible to other users
    (any "other" permission bit); None when it is private enough or cannot be stat'ed."""
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        return None
    if not mode & 0o007:
        return None
    msg = (f"{key}: {os.fspath(path)} holds a secret but is accessible to other users "
           f"(mode {mode:04o}); make it private: chmod 0600 (or 0640 with group ambisense)")
    import logging

    logging.getLogger("ambisense.config").warning("%s", msg)
    return msg


def mqtt_settings(
    table: dict[str, Any], *, base_dir: str, env: typing.Mapping[str, str],
) -> tuple[Any, list[str], dict[str, str]]:
    """Validate ``[mqtt]`` with ``agent.sinks.mqtt.MqttSettings`` and check its secrets.

    Secrets stay out of the file: an inline ``password`` (or TLS key passphrase) is an
    error naming the ``*_env`` / ``*_file`` key to use instead. A secret source named
    explicitly in the file must be usable now (environment variable set, file readable);
    the value itself is read by the MQTT sink at each connection and never printed.

    Returns
    -------
    (settings or None, issues, secret key path → where it is read from)
    """
    try:
        from agent.sinks.mqtt import MqttSettings
    except ImportError as exc:
        return None, [f"mqtt: the MQTT sink is not available in this build ({exc})"], {}
    issues: list[str] = []
    for keys, instead in INLINE_SECRETS.items():
        node: Any = table
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if node is not None:
            path = "mqtt." + ".".join(keys)
            alt = " or ".join(f"{'mqtt.tls.' if len(keys) > 1 else 'mqtt.'}{a}" for a in instead)
            issues.append(f"{path}: secrets may not be written in the config file; expected "
                          f"{alt} (an environment variable name or a file holding the secret), "
                          f"got an inline {'string' if isinstance(node, str) else _got(node)}")
    if issues:
        return None, issues, {}
    data = dict(table)
    for key in ("password_file", "outbox_path"):
        if isinstance(data.get(key), str):
            data[key] = _abs(data[key], base_dir)
    if isinstance(data.get("tls"), dict):
        tls = dict(data["tls"])
        for key in ("ca_file", "certfile", "keyfile"):
            if isinstance(tls.get(key), str):
                tls[key] = _abs(tls[key], base_dir)
        data["tls"] = tls
    try:
        settings = MqttSettings.model_validate(data)
    except ValidationError as exc:
        return None, format_validation_error(exc, MqttSettings, prefix=("mqtt",)), {}
    found: dict[str, str] = {}
    if settings.password_file is not None:
        try:
            with open(settings.password_file, encoding="utf-8"):
                pass
            found["mqtt.password"] = f"file {settings.password_file}"
            warn_if_exposed("mqtt.password_file", settings.password_file)
        except OSError as exc:
            issues.append(f"mqtt.password_file: expected a readable file holding the password, "
                          f"got {json.dumps(str(settings.password_file))} "
                          f"({exc.strerror or exc})")
    elif "password_env" in table and settings.password_env:
        if settings.password_env in env:
            found["mqtt.password"] = f"env {settings.password_env}"
        else:
            issues.append(f"mqtt.password_env: expected environment variable "
                          f"{settings.password_env} to be set (the password is read from it), "
                          f"got it unset")
    elif settings.password_env and settings.password_env in env:
        found["mqtt.password"] = f"env {settings.password_env}"
    if settings.tls is not None and settings.tls.keyfile is not None:
        warn_if_exposed("mqtt.tls.keyfile", settings.tls.keyfile)
    key_env = settings.tls.keyfile_password_env if settings.tls is not None else None
    if key_env:
        if key_env in env:
            found["mqtt.tls.keyfile_password"] = f"env {key_env}"
        else:
            issues.append(f"mqtt.tls.keyfile_password_env: expected environment variable "
                          f"{key_env} to be set (the key passphrase is read from it), got it unset")
    if issues:
        return None, issues, found
    return settings, [], found


# ---------------------------------------------------------------- meaning


def expand_replay(path: str) -> list[str]:
    """Capture files named by a replay ``path``: the file, every capture in a directory,
    or the matches of a glob (sorted; ground-truth and probe sidecars, READMEs and the
    data half of a SigMF pair skipped)."""
    if any(c in path for c in "*?["):
        files = sorted(glob.glob(path))
    elif os.path.isdir(path):
        files = sorted(str(p) for p in Path(path).iterdir())
    else:
        return [path]
    out = []
    for f in files:
        base = os.path.basename(f)
        if not os.path.isfile(f) or any(Path(base).match(pat) for pat in NOT_CAPTURES):
            continue
        if f.endswith(".sigmf-data") and os.path.isfile(f[: -len("data")] + "meta"):
            continue  # one SigMF recording = its .sigmf-meta (which names the data file)
        out.append(f)
    return out


def replay_modalities(src: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """``[(file, modality)]`` of a replay source, or messages why it cannot be replayed."""
    from sensing.formats import FORMATS, detect_format

    files = expand_replay(src.path)
    if not files:
        return [], [f"expected a capture file, a directory holding captures or a glob matching "
                    f"some, got {json.dumps(src.path)} (nothing there)"]
    out, bad = [], []
    for f in files:
        try:
            cls = FORMATS.get(src.format) if src.format else detect_format(f)
        except FileNotFoundError:
            bad.append(f"expected an existing capture file, got {json.dumps(f)} (no such file)")
            continue
        except KeyError as exc:
            bad.append(f"format: {exc.args[0]}")
            continue
        except (OSError, AmbisenseError) as exc:
            if len(files) == 1:
                bad.append(f"expected a recorded capture, got {json.dumps(f)}: {exc}")
            continue  # a stray file in a directory is skipped, not fatal
        out.append((f, cls.modality))
    if not out and not bad:
        bad.append(f"expected a directory holding captures, got {json.dumps(src.path)} "
                   f"(none of its files is a recognised capture)")
    return out, bad


def check_semantics(cfg: Any) -> list[str]:
    """Meaning checks after the structure is valid (see module docstring)."""
    from agent.pipelines import PIPELINES
    from sensing.sources import SOURCES

    issues: list[str] = []
    known = ", ".join(PIPELINES.names()) or "(none)"
    for name, opts in cfg.pipelines.items():
        if name not in PIPELINES:
            issues.append(f"pipelines.{name}: unknown pipeline {json.dumps(name)}; known: {known}")
            continue
        issues += _try_options(f"pipelines.{name}", name, opts)
    names_seen: dict[str, int] = {}
    for i, src in enumerate(cfg.sources):
        where = f"sources[{i}]"
        if src.name is not None:
            if src.name in names_seen:
                issues.append(f"{where}.name: expected a name unique among the sources, got "
                              f"{json.dumps(src.name)} (also sources[{names_seen[src.name]}])")
            names_seen[src.name] = i
        stype = SOURCES.get(src.type)
        if src.type == "replay":
            found, bad = replay_modalities(src)
            issues += [f"{where}.path: {m}" if not m.startswith("format:") else f"{where}.{m}"
                       for m in bad]
            modalities = sorted({m for _, m in found})
        else:
            modalities = [stype.modality]
        if src.pipelines is not None:
            for j, pname in enumerate(src.pipelines):
                if pname not in PIPELINES:
                    issues.append(f"{where}.pipelines[{j}]: unknown pipeline {json.dumps(pname)}; "
                                  f"known: {known}")
                    continue
                accepts = PIPELINES.get(pname).modalities
                if modalities and not any(m in accepts for m in modalities):
                    issues.append(
                        f"{where}.pipelines[{j}]: expected a pipeline accepting "
                        f"{'/'.join(modalities)} data, got {json.dumps(pname)} (accepts "
                        f"{', '.join(accepts) or 'nothing'})")
        for pname, opts in src.pipeline_options.items():
            if pname not in PIPELINES:
                issues.append(f"{where}.pipeline_options.{pname}: unknown pipeline "
                              f"{json.dumps(pname)}; known: {known}")
                continue
            merged = {**cfg.pipelines.get(pname, {}), **opts}
            issues += _try_options(f"{where}.pipeline_options.{pname}", pname, merged)
    return issues


def _try_options(where: str, name: str, opts: dict[str, Any]) -> list[str]:
    """Check options against the pipeline's parameter model only (nothing is built, no
    model is loaded)."""
    from agent.pipelines import PIPELINES
    from sensing.params import OptionError

    try:
        PIPELINES.get(name).check_options(opts)
    except OptionError as exc:
        return [f"{where}: {str(exc).removeprefix(name + ': ')}"]
    return []


def pipeline_options(cfg: Any, src: _SourceBase, name: str) -> dict[str, Any]:
    """Options of pipeline ``name`` for ``src``: ``[pipelines.<name>]`` then the source's."""
    return {**cfg.pipelines.get(name, {}), **src.pipeline_options.get(name, {})}


def redacted(loaded: LoadedConfig) -> dict[str, Any]:
    """The config as a plain dict (it holds no secret values, only where they come from)."""
    data = loaded.config.model_dump(mode="json")
    if loaded.mqtt is not None:
        data["mqtt"] = loaded.mqtt.model_dump(mode="json")
    return data
