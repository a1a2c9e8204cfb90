"""Run bench sections and render their tables (Markdown) and figures (JSON)."""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from agent.bench.base import BENCHES, Bench, Result, Skip
from agent.bench.machine import header_markdown, machine_info

#: JSON document schema name.
SCHEMA = "ambisense.bench/1"


def ordered(names: Sequence[str] | None = None) -> list[Bench]:
    """The sections to run, in their order; ``names`` restricts them (unknown: KeyError)."""
    chosen = [BENCHES.get(n) for n in names] if names else [b for _, b in BENCHES.items()]
    return sorted(chosen, key=lambda b: (b.order, b.name))


def run_section(bench: Bench, quick: bool) -> dict[str, Any]:
    """Run one section; a :class:`Skip` or an error becomes its ``status`` and ``reason``."""
    t0, c0 = time.perf_counter(), _cpu_seconds()
    out: dict[str, Any] = {"title": bench.title, "description": bench.description}
    try:
        res = bench.run(quick)
        if not isinstance(res, Result):
            res = Result(list(res or []))
        out.update(status="ok", rows=res.rows, notes=res.notes)
    except Skip as exc:
        out.update(status="skipped", reason=str(exc), rows=[], notes=[])
    except Exception as exc:  # one broken section must not lose the others' figures
        out.update(status="error", reason=f"{type(exc).__name__}: {exc}", rows=[], notes=[],
                   traceback=traceback.format_exc(limit=6))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    out["cpu_seconds"] = round(_cpu_seconds() - c0, 1)
    return out


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its finished children: what a
    section costs whatever else runs on the machine."""
    import resource

    tot = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        tot += r.ru_utime + r.ru_stime
    return tot


def run_sections(names: Sequence[str] | None, quick: bool,
                 on_done: Callable[[str, dict[str, Any]], None] | None = None
                 ) -> dict[str, Any]:
    """Run the sections; returns the JSON document (machine header + every section)."""
    doc: dict[str, Any] = {
        "schema": SCHEMA, "quick": quick,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(), "sections": {},
    }
    t0 = time.perf_counter()
    for bench in ordered(names):
        res = run_section(bench, quick)
        doc["sections"][bench.name] = res
        if on_done is not None:
            on_done(bench.name, res)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    doc["cpu_seconds"] = round(sum(s["cpu_seconds"] for s in doc["sections"].values()), 1)
    return doc


def _cell(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != v:
            return "–"
        a = abs(v)
        return (f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.3g}" if a >= 0.1
                else f"{v:.3f}" if a >= 0.001 else f"{v:.2g}")
    if isinstance(v, (list, tuple)):
        return ", ".join(_cell(x) for x in v)
    return str(v).replace("|", "\\|").replace("\n", " ")


def table_markdown(rows: list[dict[str, Any]]) -> str:
    """A Markdown table; columns are the union of the row keys (first appearance order);
    keys starting with ``_`` stay in the JSON only."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols and not k.startswith("_")]
    if not cols:
        return ""
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def section_markdown(name: str, res: dict[str, Any], describe: bool = True) -> str:
    """Heading, table and notes of one section."""
    parts = [f"### {res['title']} (`{name}`)"]
    if describe and res.get("description"):
        parts.append(res["description"])
    if res["status"] != "ok":
        parts.append(f"**{res['status']}:** {res.get('reason', '')}")
    elif res["rows"]:
        parts.append(table_markdown(res["rows"]))
    if res.get("notes"):
        parts.append("\n".join(f"- {note}" for note in res["notes"]))
    parts.append(f"_({res['seconds']} s wall, {res.get('cpu_seconds', '?')} s CPU)_")
    return "\n\n".join(parts)


def document_markdown(doc: dict[str, Any], describe: bool = True) -> str:
    """The whole report: machine header, then every section."""
    mode = "--quick" if doc["quick"] else "full"
    parts = [f"## ambisense bench ({mode}), {doc['started']}, {doc.get('seconds', '?')} s wall, "
             f"{doc.get('cpu_seconds', '?')} s CPU",
             header_markdown(doc["machine"])]
    parts += [section_markdown(n, r, describe) for n, r in doc["sections"].items()]
    return "\n\n".join(parts) + "\n"


def progress(name: str, res: dict[str, Any]) -> None:
    """Default ``on_done``: one line on stderr per finished section."""
    print(f"bench {name}: {res['status']} in {res['seconds']} s"
          + (f" ({res.get('reason')})" if res["status"] != "ok" else ""), file=sys.stderr,
          flush=True)
