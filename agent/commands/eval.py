"""``ambisense eval KIND``: score detector output against a reference.

Each kind of event is one sub-evaluation registered in :data:`EVALUATIONS` (``seizure`` now;
``fall``, ``blink`` … can add theirs with ``@EVALUATIONS.register("fall")``).

``ambisense eval seizure --ref REF --hyp HYP`` prints SzCORE sample- and event-based
sensitivity, precision, F1, false alarms per 24 h (``timescoring``: events merged when < 90 s
apart, split above 5 min, tolerance 30 s before / 60 s after) and the median detection
latency. REF and HYP may each be:

* ``*.jsonl``: events of ``ambisense replay --jsonl`` (``type: seizure`` with ``offset_s``,
  ``duration_s``, ``detected_at_s``); one recording per event ``source``;
* ``*.csv``: per-second labels (1 = seizure), one column per recording, the header row giving
  recording names (Helsinki neonatal annotations); empty cells after a recording's end;
* ``*.truth.json``: ground truth written by ``ambisense simulate`` (``seizures``, ``duration_s``);
* ``*.edf`` / ``*.bdf``: EDF+ annotations whose text matches ``--label`` (default
  ``seiz|ictal|sz|anfall|crise``);
* a CHB-MIT ``*-summary.txt``.

Recordings are matched by name (file name without extension); when each side holds a single
recording they are paired whatever their names. A recording without hypothesis events counts
as "nothing detected". Its duration comes from the reference (or ``--duration`` for JSONL).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.commands.base import COMMANDS, Command
from sensing.errors import CaptureFormatError
from sensing.registry import Registry


@dataclass(frozen=True)
class Evaluation:
    """A sub-evaluation: ``configure`` adds its options, ``run`` returns the exit code."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: Registered sub-evaluations (``ambisense eval NAME``).
EVALUATIONS: Registry[Evaluation] = Registry("evaluation", folder="evaluations")


@dataclass
class Recording:
    """Seizures of one recording: (onset_s, end_s, detected_at_s or None), and its length."""

    name: str
    events: list[tuple[float, float, float | None]] = field(default_factory=list)
    duration_s: float | None = None


DEFAULT_LABEL = r"seiz|ictal|\bsz\b|anfall|crise"


def _key(name: str) -> str:
    base = os.path.basename(str(name))
    for ext in (".truth.json", ".jsonl", ".json", ".csv", ".edf", ".bdf", ".txt"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
    return base


def read_jsonl(path: str, kinds: tuple[str, ...] = ("seizure",)) -> dict[str, Recording]:
    """Seizure events of an ``ambisense replay --jsonl`` output, per source."""
    def events():
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CaptureFormatError(path, f"line {n}", "one JSON event per line",
                                             f"invalid JSON ({exc.msg})") from None
                yield f"line {n}", ev, line

    return recordings_from_events(events(), path, kinds)


def recordings_from_events(events: Iterable[tuple[str, Any, str]], path: str,
                           kinds: tuple[str, ...] = ("seizure",)) -> dict[str, Recording]:
    """Seizure events per source from ``(where, event dict, raw text)`` triples (a JSON
    Lines file's lines, or the events of captures replayed here)."""
    out: dict[str, Recording] = {}
    for where, ev, line in events:
        if not isinstance(ev, dict) or "type" not in ev or "offset_s" not in ev:
            raise CaptureFormatError(path, where, "an ambisense.event/1 object with "
                                     "'type' and 'offset_s'", repr(line[:60]))
        src = _key(ev.get("source", "")) or _key(path)
        rec = out.setdefault(src, Recording(src))
        if ev["type"] not in kinds:
            continue
        if "duration_s" not in ev:
            raise CaptureFormatError(path, where, "a seizure event with 'duration_s'",
                                     repr(line[:80]))
        on = float(ev["offset_s"])
        det = ev.get("detected_at_s")
        rec.events.append((on, on + float(ev["duration_s"]),
                           None if det is None else float(det)))
    return out


def replayed_recordings(captures: list[str], *, workers: int | None, scheduler: str | None,
                        kinds: tuple[str, ...] = ("seizure",)) -> dict[str, Recording]:
    """Replay ``captures`` (in parallel on Dask with ``workers``/``scheduler``, see
    :mod:`agent.parallel`) and gather their events per recording; a capture that fails is
    reported on stderr and counts as "nothing detected".

    Raises
    ------
    ValueError
        Every capture failed.
    """
    if workers or scheduler:
        from agent.parallel import replay_parallel

        def progress(done: int, total: int, res: Any) -> None:
            what = f"error: {res.error}" if res.error else f"{len(res.events)} events"
            print(f"[{done}/{total}] {res.path}: {what}", file=sys.stderr)

        results = replay_parallel(captures, workers=workers, scheduler=scheduler,
                                  progress=progress)
    else:
        from agent.parallel import replay_one

        results = (replay_one(p) for p in captures)
    out: dict[str, Recording] = {}
    failed = 0
    for res in results:
        if res.error is not None:
            print(f"ambisense eval: {res.path}: {res.error}", file=sys.stderr)
            failed += 1
        out.setdefault(_key(res.path), Recording(_key(res.path)))
        evs = ((f"event {i + 1}", ev.to_dict(), ev.to_json()) for i, ev in enumerate(res.events))
        for name, rec in recordings_from_events(evs, res.path, kinds).items():
            out.setdefault(name, Recording(name)).events.extend(rec.events)
    if captures and failed == len(captures):
        raise ValueError("no capture could be replayed")
    return out


def read_label_csv(path: str) -> dict[str, Recording]:
    """Per-second label columns (header row = recording names; blank cells = padding)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise CaptureFormatError(path, "line 1", "a header row of recording names", "empty file")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if all(re.fullmatch(r"[-+]?\d+(\.\d+)?", h) for h in header) and len(header) == 1:
        # single column without header: the first row is data
        header, body = [_key(path)], rows
    out = {}
    for j, name in enumerate(header):
        vals = []
        for i, row in enumerate(body):
            cell = row[j].strip() if j < len(row) else ""
            if cell == "":
                continue
            try:
                vals.append(float(cell))
            except ValueError:
                raise CaptureFormatError(path, f"line {i + 2}, column {j + 1}",
                                         "a 0/1 label", repr(cell)) from None
        key = name if len(header) > 1 else _key(path)
        lab = np.asarray(vals) > 0
        rec = Recording(key, duration_s=float(len(lab)))
        d = np.diff(np.concatenate([[0], lab.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
            rec.events.append((float(a), float(b), None))
        out[key] = rec
    return out


def read_truth(path: str) -> dict[str, Recording]:
    """Ground truth of ``ambisense simulate eeg-seizure`` (``<capture>.truth.json``)."""
    with open(path, encoding="utf-8") as fh:
        t = json.load(fh)
    if "seizures" not in t:
        raise CaptureFormatError(path, "top level", "a 'seizures' list", f"keys {sorted(t)}")
    key = _key(t.get("capture") or path)
    rec = Recording(key, duration_s=t.get("duration_s"))
    for s in t["seizures"]:
        rec.events.append((float(s["onset_s"]), float(s["onset_s"]) + float(s["duration_s"]),
                           None))
    return {key: rec}


def read_edf_annotations(path: str, label: str = DEFAULT_LABEL) -> dict[str, Recording]:
    """Seizure annotations of an EDF+/BDF+ file (text matching ``label``)."""
    from sensing.formats.edf import EdfReader

    r = EdfReader(path)
    pat = re.compile(label, re.IGNORECASE)
    rec = Recording(_key(path), duration_s=r.raw.n_times / r.fs_hz)
    for a in r.annotations():
        if pat.search(a["text"]):
            rec.events.append((a["onset_s"], a["onset_s"] + max(a["duration_s"], 1.0), None))
    return {rec.name: rec}


def read_chbmit_summary(path: str) -> dict[str, Recording]:
    """Seizures per file of a CHB-MIT ``chbNN-summary.txt`` (durations from file times)."""
    out: dict[str, Recording] = {}
    cur: Recording | None = None
    start_t = None
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("File Name:"):
                name = _key(line.split(":", 1)[1].strip())
                cur = out.setdefault(name, Recording(name))
                pending = None
            elif cur is not None and line.startswith("File Start Time:"):
                start_t = _hms(line.split(":", 1)[1])
            elif cur is not None and line.startswith("File End Time:") and start_t is not None:
                end_t = _hms(line.split(":", 1)[1])
                cur.duration_s = float((end_t - start_t) % 86400)
            elif cur is not None and re.match(r"Seizure( \d+)? Start Time:", line):
                pending = float(re.findall(r"(\d+)\s*seconds", line)[0])
            elif cur is not None and re.match(r"Seizure( \d+)? End Time:", line):
                end = float(re.findall(r"(\d+)\s*seconds", line)[0])
                cur.events.append((pending, end, None))
    return out


def _hms(text: str) -> int:
    h, m, s = (int(x) for x in text.strip().split(":"))
    return h * 3600 + m * 60 + s


def read_seizures(path: str, label: str = DEFAULT_LABEL) -> dict[str, Recording]:
    """Recordings of any supported reference/hypothesis file (see module docstring)."""
    low = path.lower()
    if low.endswith(".jsonl"):
        return read_jsonl(path)
    if low.endswith(".truth.json"):
        return read_truth(path)
    if low.endswith(".csv"):
        return read_label_csv(path)
    if low.endswith((".edf", ".bdf")):
        return read_edf_annotations(path, label)
    if low.endswith("summary.txt"):
        return read_chbmit_summary(path)
    raise CaptureFormatError(path, "file name", "a .jsonl, .csv, .truth.json, .edf/.bdf or "
                             "CHB-MIT -summary.txt file", repr(os.path.basename(path)))


def pair_recordings(ref: dict[str, Recording], hyp: dict[str, Recording],
                    ) -> list[tuple[Recording, Recording]]:
    """Match reference and hypothesis recordings by name (single pair: always matched)."""
    if len(ref) == 1 and len(hyp) <= 1:
        (r,) = ref.values()
        h = next(iter(hyp.values()), Recording(r.name))
        return [(r, h)]
    return [(r, hyp.get(k, Recording(k))) for k, r in ref.items()]


def evaluate_seizures(pairs: list[tuple[Recording, Recording]],
                      duration_s: float | None = None) -> dict[str, Any]:
    """Pooled SzCORE scores and latency over matched recordings."""
    from sensing.eeg.scoring import Hypothesis, ScoreReport, score_recording

    total = ScoreReport()
    per = {}
    for r, h in pairs:
        dur = r.duration_s or h.duration_s or duration_s
        if dur is None:
            ends = [e[1] for e in r.events + h.events]
            raise ValueError(f"recording {r.name!r}: length unknown (the reference gives none); "
                             f"pass --duration (last event ends at {max(ends, default=0):.0f} s)")
        rep = score_recording([(a, b) for a, b, _ in r.events],
                              [Hypothesis(a, b, d) for a, b, d in h.events], dur)
        per[r.name] = rep.as_dict()
        total.add(rep)
    out = total.as_dict()
    out["per_recording"] = per
    return out


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:6.1f} %" if pct else f"{v:8.2f}"


def _seizure_configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ref", action="append", metavar="FILE",
                   help="reference: .csv labels, .truth.json, .edf annotations, CHB-MIT summary "
                        "(repeatable); with --captures default: each capture's .truth.json")
    hyp = p.add_mutually_exclusive_group(required=True)
    hyp.add_argument("--hyp", metavar="FILE",
                     help="hypothesis: `ambisense replay --jsonl` output, or any reference format")
    hyp.add_argument("--captures", nargs="+", metavar="CAPTURE",
                     help="replay these captures here and score their events")
    p.add_argument("--workers", type=int, metavar="N",
                   help="with --captures: replay them on N local Dask worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="with --captures: replay them on an existing Dask cluster")
    p.add_argument("--duration", type=float, metavar="S",
                   help="recording length in s when the reference does not give it")
    p.add_argument("--label", default=DEFAULT_LABEL,
                   help=f"regex of seizure annotation text in EDF+ (default {DEFAULT_LABEL!r})")
    p.add_argument("--json", action="store_true", help="print the scores as JSON")
    p.add_argument("--per-recording", action="store_true", help="also list each recording")


def _seizure_run(args: argparse.Namespace) -> int:
    if (args.workers or args.scheduler) and not args.captures:
        raise ValueError("--workers/--scheduler need --captures")
    refs = args.ref or []
    if not refs and args.captures:
        refs = [c + ".truth.json" for c in args.captures]
    if not refs:
        raise ValueError("--ref is required with --hyp")
    ref: dict[str, Recording] = {}
    for path in refs:
        ref.update(read_seizures(path, args.label))
    if args.captures:
        try:
            hyp = replayed_recordings(args.captures, workers=args.workers,
                                      scheduler=args.scheduler)
        except RuntimeError as exc:  # Dask missing, scheduler unreachable
            raise ValueError(str(exc)) from None
    else:
        hyp = read_seizures(args.hyp, args.label)
    res = evaluate_seizures(pair_recordings(ref, hyp), args.duration)
    if not args.per_recording:
        res.pop("per_recording")
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"recordings: {res['recordings']}, "
          f"{res['event']['hours']:.2f} h, reference seizures: {res['event']['ref_events']:.0f}")
    print(f"{'':8} {'sensitivity':>12} {'precision':>10} {'F1':>10} {'FA/24h':>9}")
    for kind in ("sample", "event"):
        s = res[kind]
        fa = _fmt(s["fp_per_24h"]) if kind == "event" else "     (s)"
        print(f"{kind:8} {_fmt(s['sensitivity'], True):>12} {_fmt(s['precision'], True):>10} "
              f"{_fmt(s['f1'], True):>10} {fa:>9}")
    lat = res["latency_s"]
    print(f"latency: median {_fmt(lat['median']).strip()} s over {lat['n']} detected seizures "
          f"(max {_fmt(lat['max']).strip()} s)")
    if args.per_recording:
        for name, r in res["per_recording"].items():
            e = r["event"]
            print(f"  {name}: ref {e['ref_events']:.0f}, TP {e['true_detections']:.0f}, "
                  f"FP {e['false_detections']:.0f}, F1 {_fmt(e['f1'], True).strip()}")
    return 0


EVALUATIONS.register("seizure")(Evaluation(
    "score seizure events (SzCORE via timescoring) and detection latency",
    _seizure_configure, _seizure_run))


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="evaluation", metavar="KIND", required=True)
    for name, ev in EVALUATIONS.items():
        sp = sub.add_parser(name, help=ev.help, description=ev.help)
        ev.configure(sp)
        sp.set_defaults(_eval_run=ev.run)


def _run(args: argparse.Namespace) -> int:
    try:
        return args._eval_run(args)
    except ValueError as exc:
        print(f"ambisense eval {args.evaluation}: {exc}", file=sys.stderr)
        return 2


COMMANDS.register("eval")(Command("score detector events against a reference (eval seizure …)",
                                  _configure, _run))
