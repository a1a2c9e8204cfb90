"""Reference of the registered pipelines, built from their parameter models alone.

The same data feeds ``ambisense info --pipelines [--json]`` and ``docs/pipelines.md``
(regenerate it with ``python -m agent.reference > docs/pipelines.md``; a test checks the
file is up to date), so the listing, the docs and the validation can never disagree.
"""

from __future__ import annotations

import json
from typing import Any


def pipeline_catalog() -> list[dict[str, Any]]:
    """One dict per registered pipeline: name, description, modalities, the capture
    formats of those modalities, default or opt-in, event types, options (name, type,
    unit, default, range, doc) and where it comes from (built-in or a plug-in)."""
    from agent.pipelines import PIPELINES
    from sensing.formats import FORMATS

    out = []
    for name, cls in PIPELINES.items():
        entry = cls.describe()
        entry["formats"] = [f for f, r in FORMATS.items() if r.modality in cls.modalities]
        entry["origin"] = PIPELINES.origin(name)
        out.append(entry)
    return out


def source_catalog() -> list[dict[str, Any]]:
    """One dict per registered source type: name, modality, live, description, options."""
    from sensing.sources import SOURCES

    return [{"name": name, "modality": cls.modality, "live": cls.live,
             "description": cls.description, "origin": SOURCES.origin(name),
             "options": cls.Params.describe()} for name, cls in SOURCES.items()]


def sources_text(catalog: list[dict[str, Any]]) -> str:
    """The readable listing of ``ambisense info --sources``."""
    lines = []
    for s in catalog:
        lines.append(f"{s['name']}  [{'live' if s['live'] else 'replay'}, "
                     f"{s['modality'] or 'modality of the file'}]  {s['description']}")
        lines += _option_lines(s["options"])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _option_lines(options: list[dict[str, Any]]) -> list[str]:
    out = []
    for o in options:
        unit = f" {o['unit']}" if o["unit"] else ""
        default = "required" if o["required"] else f"default {json.dumps(o['default'])}"
        rng = f", {o['range']}" if o["range"] else ""
        out.append(f"    {o['name']:<22} {o['type']}{unit}{rng}; {default}. {o['doc']}")
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return f"`{json.dumps(value)}`" if value else '`""`'
    return f"`{json.dumps(value)}`"


def pipelines_text(catalog: list[dict[str, Any]]) -> str:
    """The readable listing of ``ambisense info --pipelines``."""
    lines = []
    for p in catalog:
        flag = "default" if p["default"] else "opt-in"
        lines.append(f"{p['name']}  [{flag}]  {p['description']}")
        lines.append(f"  accepts  {', '.join(p['modalities'])} "
                     f"(formats: {', '.join(p['formats']) or 'none registered'})")
        lines.append(f"  emits    {', '.join(p['event_types'])}")
        if p["origin"] != "built-in":
            lines.append(f"  from     {p['origin']}")
        lines += _option_lines(p["options"])
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def pipelines_markdown(catalog: list[dict[str, Any]]) -> str:
    """``docs/pipelines.md``: one section per pipeline with its option table."""
    lines = [
        "# Pipelines",
        "",
        "Generated from each pipeline's parameter model by `python -m agent.reference > "
        "docs/pipelines.md`; `tests/test_pipeline_params.py` fails when this file and the "
        "models disagree. The same models validate `--set PIPELINE.KEY=VALUE` and the agent "
        "config's `[pipelines.<name>]` tables, before any pipeline is built or model "
        "loaded, and `ambisense info --pipelines [--json]` prints the same listing.",
        "",
        "| pipeline | runs | accepts | events |",
        "| --- | --- | --- | --- |",
    ]
    for p in catalog:
        lines.append(f"| [`{p['name']}`](#{p['name']}) | "
                     f"{'by default' if p['default'] else 'opt-in (`--pipeline`)'} | "
                     f"{', '.join(p['modalities'])} | "
                     f"{', '.join(f'`{t}`' for t in p['event_types'])} |")
    for p in catalog:
        desc = p["description"][:1].upper() + p["description"][1:]
        lines += ["", f"## {p['name']}", "", desc.rstrip(".") + ".", "",
                  f"- Accepts: {', '.join(p['modalities'])} (formats: "
                  f"{', '.join(f'`{f}`' for f in p['formats']) or 'none'}).",
                  f"- Emits: {', '.join(f'`{t}`' for t in p['event_types'])}.",
                  f"- Runs: {'by default on every capture it accepts' if p['default'] else 'only when named (`--pipeline ' + p['name'] + '` or a config entry)'}.",
                  ""]
        if not p["options"]:
            lines.append("No options.")
            continue
        lines += ["| option | type | unit | default | range | meaning |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for o in p["options"]:
            default = "required" if o["required"] else _cell(o["default"])
            lines.append(f"| `{o['name']}` | {o['type'].replace('|', '&#124;')} | "
                         f"{o['unit'] or '—'} | {default} | {o['range'] or '—'} | "
                         f"{o['doc']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - regenerates docs/pipelines.md
    print(pipelines_markdown(pipeline_catalog()), end="")
