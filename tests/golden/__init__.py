"""Golden event files: replay fixed captures through the real CLI and compare the events.

``tests/golden/manifest.json`` names each capture (a bundled sample, a file under the shared
data dir, or a seeded simulator run written to a temporary dir), the ``ambisense replay``
options used, the expected run summary (frames, rejects, pipelines) and the tolerances;
``tests/golden/<name>.events.jsonl`` holds the expected events, exactly as
``ambisense replay --jsonl`` printed them. ``tests/test_golden.py`` checks them;
``python -m tests.golden --update`` regenerates them after an intended change (see README.md).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent
REPO = GOLDEN.parents[1]
MANIFEST = GOLDEN / "manifest.json"
# the same lookup as tests/conftest.py (not imported: `python -m tests.golden` runs without pytest)
SHARED_DATA = Path(os.environ.get("AMBISENSE_SHARED_DATA", REPO.parent / "shared" / "data"))

#: Event keys compared with their own rule; every other key is an "extra" (see compare_events).
CORE = ("schema", "id", "type", "source", "detector", "offset_s", "ts", "value", "unit",
        "confidence")
SUMMARY = re.compile(
    r"^(?P<source>.+?): (?P<frames>\d+) frames, .*?, (?P<events>\d+) events, "
    r"(?P<rejects>\d+) rejects, pipelines: (?P<pipelines>.*)$", re.M)


class Unavailable(Exception):
    """The capture cannot be had here (shared data dir absent): skip, do not fail."""


@dataclass
class Run:
    """One replay through ``agent.cli.main``."""

    rc: int
    events: list[dict[str, Any]]
    summary: dict[str, Any] | None
    stderr: str


@dataclass
class Result:
    name: str
    problems: list[str] = field(default_factory=list)
    diff: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        if self.ok:
            return f"{self.name}: unchanged"
        lines = [f"{self.name}: {len(self.problems)} difference(s)"]
        lines += [f"  - {p}" for p in self.problems]
        if self.diff:
            lines += ["", self.diff]
        return "\n".join(lines)


# -------------------------------------------------------------------------- manifest, files

def load_manifest() -> dict[str, Any]:
    return json.loads(MANIFEST.read_text())


def entries(names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    all_ = load_manifest()["captures"]
    if not names:
        return all_
    names = list(names)
    unknown = sorted(set(names) - {e["name"] for e in all_})
    if unknown:
        raise KeyError(f"unknown golden capture(s) {unknown}; known: "
                       f"{', '.join(e['name'] for e in all_)}")
    return [e for e in all_ if e["name"] in names]


def events_path(name: str) -> Path:
    return GOLDEN / f"{name}.events.jsonl"


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def tolerances(entry: dict[str, Any]) -> dict[str, Any]:
    """The manifest's tolerances, with the entry's own ``tolerances`` merged over them."""
    tol = json.loads(json.dumps(load_manifest()["tolerances"]))
    for key, val in entry.get("tolerances", {}).items():
        if isinstance(val, dict):
            tol.setdefault(key, {}).update(val)
        else:
            tol[key] = val
    return tol


# -------------------------------------------------------------------------- running

def _main(argv: list[str]) -> tuple[int, str, str]:
    from agent.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


_SIMULATED: dict[tuple[str, ...], Path] = {}


def capture_path(entry: dict[str, Any], workdir: Path) -> Path:
    """Where the entry's capture is; a ``simulate`` capture is written into ``workdir`` once
    per process (entries with the same command share it).

    Raises
    ------
    Unavailable
        A ``shared`` capture and the shared data dir (or that file) is absent.
    """
    if "bundled" in entry:
        return REPO / entry["bundled"]
    if "shared" in entry:
        p = SHARED_DATA / entry["shared"]
        if not p.exists():
            raise Unavailable(
                f"third-party data not present: {p} (it lives in ../shared/data beside the "
                f"repository; set AMBISENSE_SHARED_DATA to point elsewhere)")
        return p
    sim = entry["simulate"]
    key = (sim["file"], *sim["args"])
    if key in _SIMULATED and _SIMULATED[key].exists():
        return _SIMULATED[key]
    d = workdir / f"sim{len(_SIMULATED)}"
    d.mkdir(parents=True, exist_ok=True)
    out = d / sim["file"]  # the file name is the events' `source` (and part of their ids)
    rc, _, err = _main(["simulate", sim["args"][0], "--out", str(out), *sim["args"][1:]])
    if rc != 0 or not out.exists():
        raise RuntimeError(f"{entry['name']}: `ambisense simulate {' '.join(sim['args'])}` "
                           f"failed (exit {rc}):\n{err}")
    _SIMULATED[key] = out
    return out


def replay(path: Path, options: list[str]) -> Run:
    """``ambisense replay CAPTURE OPTIONS --jsonl --no-progress`` in this process."""
    rc, out, err = _main(["replay", str(path), *options, "--jsonl", "--no-progress"])
    events = []
    for n, line in enumerate(out.splitlines(), 1):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{path}: stdout line {n} is not JSON: {line[:120]!r}\n"
                                 f"stderr:\n{err}") from exc
    m = SUMMARY.search(err)
    summary = None if m is None else {
        "frames": int(m["frames"]), "rejects": int(m["rejects"]),
        "pipelines": [p for p in m["pipelines"].split(", ") if p and p != "none"],
    }
    if summary is not None and not events:  # why nothing came out, as replay explains it
        why = re.search(r"^ambisense replay: .*?: no events:? (.*)$", err, re.M)
        text = why[1] if why else None
        if text and text.startswith("(") and text.endswith(")"):
            text = text[1:-1]
        summary["no_events"] = text
    return Run(rc, events, summary, err)


def run_entry(entry: dict[str, Any], workdir: Path) -> Run:
    return replay(capture_path(entry, workdir), entry.get("options", []))


# -------------------------------------------------------------------------- comparing

def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _close(a: Any, b: Any, abs_tol: float, rel_tol: float = 0.0) -> bool:
    if _num(a) and _num(b):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= max(abs_tol, rel_tol * max(abs(a), abs(b))) + 1e-12
    return a == b


def _ts(s: Any) -> Any:
    if isinstance(s, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    return s


def compare_event(exp: dict[str, Any], got: dict[str, Any], tol: dict[str, Any]) -> list[str]:
    """Differences beyond tolerance between two events (empty list: they match).

    * ``offset_s`` within ``tol.offset_s`` (and ``ts``, as a time, within the same);
    * ``value`` within ``tol.value[type]`` (``tol.value._default`` for other types); null
      only equals null;
    * ``confidence`` within ``tol.confidence``;
    * ``id``, ``type``, ``unit``, ``source``, ``detector``, ``schema``: equal;
    * the extra keys: the same set; numbers within ``tol.extra[key]`` (absolute) or else
      ``tol.extra._default_rel`` (relative); anything else equal.
    """
    out = []
    vt = tol["value"].get(exp.get("type"), tol["value"]["_default"])
    checks = [("offset_s", tol["offset_s"], 0.0), ("value", vt, 0.0),
              ("confidence", tol["confidence"], 0.0)]
    for key, abs_tol, rel in checks:
        a, b = exp.get(key), got.get(key)
        if not _close(a, b, abs_tol, rel):
            out.append(f"{key}: expected {a!r}, got {b!r} (tolerance ±{abs_tol:g})")
    if not _close(_ts(exp.get("ts")), _ts(got.get("ts")), tol["offset_s"]):
        out.append(f"ts: expected {exp.get('ts')!r}, got {got.get('ts')!r}")
    for key in ("id", "type", "unit", "source", "detector", "schema"):
        if exp.get(key) != got.get(key):
            out.append(f"{key}: expected {exp.get(key)!r}, got {got.get(key)!r}")
    ex = {k: v for k, v in exp.items() if k not in CORE}
    gx = {k: v for k, v in got.items() if k not in CORE}
    for k in sorted(ex.keys() - gx.keys()):
        out.append(f"{k}: expected {ex[k]!r}, missing")
    for k in sorted(gx.keys() - ex.keys()):
        out.append(f"{k}: not expected, got {gx[k]!r}")
    rel = tol["extra"]["_default_rel"]
    for k in sorted(ex.keys() & gx.keys()):
        abs_tol = tol["extra"].get(k, 0.0)
        if not _close(ex[k], gx[k], abs_tol, 0.0 if k in tol["extra"] else rel):
            how = f"±{abs_tol:g}" if k in tol["extra"] else f"±{rel:.0%}"
            out.append(f"{k}: expected {ex[k]!r}, got {gx[k]!r} (tolerance {how})")
    return out


def line(ev: dict[str, Any]) -> str:
    """One readable line per event, for the diff."""
    val = ev.get("value")
    unit = f" {ev['unit']}" if ev.get("unit") else ""
    extra = {k: v for k, v in ev.items() if k not in CORE}
    return (f"{ev.get('offset_s'):>8}s {ev.get('type', '?'):<15} value={val}{unit} "
            f"conf={ev.get('confidence')} id={ev.get('id')} {json.dumps(extra)}")


def compare_events(exp: list[dict[str, Any]], got: list[dict[str, Any]],
                   tol: dict[str, Any], *, name: str = "") -> Result:
    """Align expected and got events (by type and offset), list the differences and a
    unified diff of the events that differ beyond tolerance (those within tolerance are
    shown as unchanged context)."""
    res = Result(name)
    if len(exp) != len(got):
        res.problems.append(f"{len(exp)} events expected, got {len(got)}")
    step = max(tol["offset_s"], 1e-3)

    def key(e):
        return (e.get("type"), round(float(e.get("offset_s") or 0.0) / step))

    a_lines = [line(e) for e in exp]
    b_lines = [line(e) for e in got]
    sm = difflib.SequenceMatcher(None, [key(e) for e in exp], [key(e) for e in got],
                                 autojunk=False)
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                diffs = compare_event(exp[i], got[j], tol)
                if diffs:
                    res.problems.append(f"event {i + 1} ({exp[i]['type']} at "
                                        f"{exp[i]['offset_s']} s): " + "; ".join(diffs))
                else:
                    b_lines[j] = a_lines[i]  # within tolerance: not part of the diff
            continue
        for i in range(i1, i2):
            res.problems.append(f"missing: {exp[i]['type']} at {exp[i]['offset_s']} s "
                                f"(expected event {i + 1})")
        for j in range(j1, j2):
            res.problems.append(f"unexpected: {got[j].get('type')} at "
                                f"{got[j].get('offset_s')} s (got event {j + 1})")
    if res.problems:
        res.diff = "\n".join(difflib.unified_diff(
            a_lines, b_lines, f"expected ({name}.events.jsonl)", "got (current replay)",
            n=2, lineterm=""))
    return res


def check_entry(entry: dict[str, Any], run: Run) -> Result:
    """Compare a replay against the entry's expected files and summary."""
    name = entry["name"]
    path = events_path(name)
    exp = read_events(path) if path.exists() else []
    res = compare_events(exp, run.events, tolerances(entry), name=name)
    if not path.exists():
        res.problems.insert(0, f"no expected file {path.relative_to(REPO)} "
                               f"(run `python -m tests.golden --update {name}`)")
    if run.rc != 0:
        res.problems.insert(0, f"replay exited {run.rc}; stderr:\n{run.stderr}")
    want = entry.get("expect", {})
    if want and run.summary is None:
        res.problems.append(f"no run summary on stderr:\n{run.stderr}")
    elif want:
        for k in sorted(want.keys() | run.summary.keys()):
            if run.summary.get(k) != want.get(k):
                res.problems.append(f"summary {k}: expected {want.get(k)!r}, "
                                    f"got {run.summary.get(k)!r}")
    return res


# -------------------------------------------------------------------------- updating

def write_events(name: str, events: list[dict[str, Any]]) -> None:
    events_path(name).write_text(
        "".join(json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n" for e in events))


def write_manifest(manifest: dict[str, Any]) -> None:
    MANIFEST.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def update(names: Iterable[str] | None, workdir: Path, *, force: bool = False,
           echo=print) -> int:
    """Re-run the named captures (all by default), print what changed and rewrite their
    expected events and summaries (``force``: even when they differ only within tolerance).
    Returns how many captures changed."""
    manifest = load_manifest()
    by_name = {e["name"]: e for e in manifest["captures"]}
    changed = 0
    for entry in entries(names):
        try:
            run = run_entry(entry, workdir)
        except Unavailable as exc:
            echo(f"{entry['name']}: skipped, {exc}")
            continue
        if run.rc != 0:
            echo(f"{entry['name']}: NOT updated, replay exited {run.rc}:\n{run.stderr}")
            changed += 1
            continue
        res = check_entry(entry, run)
        echo(res.report())
        if res.ok and "expect" in entry and not force:
            continue
        changed += not res.ok
        write_events(entry["name"], run.events)
        if run.summary is not None:
            by_name[entry["name"]]["expect"] = run.summary
        echo(f"  wrote {events_path(entry['name']).relative_to(REPO)} "
             f"({len(run.events)} events)")
    write_manifest(manifest)
    return changed
