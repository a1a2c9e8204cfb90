"""Score the 3-state presence (empty / still / moving) on labelled simulated captures and
report presence fractions on the real captures; prints the figures in docs/motion.md.

Run from the repository root (nice it: ~10 min per 36 seeds on one core)::

    python benchmarks/eval_presence.py --split train --tune   # choose the breathing knobs
    python benchmarks/eval_presence.py --split test           # held-out report (72 seeds)
    python benchmarks/eval_presence.py --real                 # ESPectre + Intel 5300 files
    python benchmarks/eval_presence.py --split test --quick   # 8 seeds, smoke run

Simulated captures (``sensing/simulate/csi_breathing.py``, in memory, nothing written)
----------------------------------------------------------------------------------------
Per seed, one room (the seed fixes the geometry), one grid point of distance 1/2/3/4 m ×
SNR 20/27/35 dB × 50/100/200 packets/s × 1/3 antennas, breathing rate drawn in 8–25
breaths/min:

* **session** (360 s): nobody 0–90 s, a person breathing 90–270 s (arrives and leaves
  without walking: the simulator makes them appear/disappear), nobody 270–360 s; 3 fidgets
  (2–6 s of body motion) placed at random by the simulator — those falling in the absences
  are invisible, so a session has 0–3 visible fidgets;
* **empty** (300 s): the same room with nobody in it.

Truth per 1 s motion window ``[T-1, T]`` (0.5 s hop): ``empty`` when nobody is there at
``T-0.5``, ``moving`` when the window overlaps a visible fidget, else ``still``. Windows
within 2 s of an arrival/departure or 0.5 s of a fidget's start/end are not scored in the
confusion matrix (the latencies are reported separately). Calibrated mode: :func:`calibrate` on the first 60 s of each capture
(nobody there in either kind), scoring from 60 s on; uncalibrated: default threshold,
scoring from 0 s.

Each capture is run once (motion without and with calibration, and the breathing evidence
with ``min_confidence=0`` so that every threshold can be replayed); the state machine
(:class:`PresenceTracker`) is then replayed for each setting. ``--check`` verifies on one
capture that the replay equals :class:`MotionDetector` end to end.

Train seeds 0–35 (half the grid) choose ``breath_min_confidence``, ``breath_hold_s`` and
``breath_confirm``; test seeds 1000–1071 (the full grid) are reported.
"""

from __future__ import annotations

import argparse
import itertools
import math
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensing.simulate.csi_breathing import generate
from sensing.wifi.breathing import BreathingEstimator
from sensing.wifi.motion import MotionDetector, calibrate
from sensing.wifi.presence import (
    BREATH_CONFIRM,
    BREATH_HOLD_S,
    BREATH_MIN_CONFIDENCE,
    STATES,
    PresenceTracker,
    breathing_evidence,
)

GRID = list(itertools.product((1.0, 2.0, 3.0, 4.0), (20.0, 27.0, 35.0), (50.0, 100.0, 200.0),
                              (1, 3)))
ARRIVE_S, LEAVE_S, SESSION_S, EMPTY_S = 90.0, 270.0, 360.0, 300.0
CAL_S = 60.0
GUARD_S = 2.0
FIDGET_GUARD_S = 0.5
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "csi"


def seeds_for(split: str) -> list[int]:
    """Train: seeds 0–35; test: seeds 1000–1071."""
    return list(range(36)) if split == "train" else list(range(1000, 1072))


def scenario(seed: int) -> dict[str, Any]:
    """Grid point and breathing rate of a seed (train seeds take half the grid points,
    alternating 1 and 3 antennas)."""
    i = seed * 2 + seed % 2 if seed < 1000 else seed - 1000
    dist, snr, rate, n_rx = GRID[i % len(GRID)]
    bpm = float(np.random.default_rng(seed + 77).uniform(8.0, 25.0))
    return dict(distance_m=dist, snr_db=snr, packet_rate_hz=rate, n_rx=n_rx, rate_bpm=bpm)


@dataclass
class Raw:
    """Everything the state machine needs from one capture (settings-independent)."""

    kind: str
    params: dict[str, Any]
    truth: dict[str, Any]
    end_s: np.ndarray
    moving: np.ndarray          # default threshold
    moving_cal: np.ndarray      # calibrated threshold
    profile_occ: np.ndarray     # calibrated static-profile test
    breaths: np.ndarray         # (n, 3): offset_s, confidence, bpm of every analysed window
    cpu_s: float


def run_capture(seed: int, kind: str) -> Raw:
    """Simulate one capture in memory and run the detectors once."""
    sc = scenario(seed)
    extra = (dict(duration_s=SESSION_S, absent_s=f"0-{ARRIVE_S:g},{LEAVE_S:g}-{SESSION_S:g}",
                  fidgets=3) if kind == "session" else dict(duration_s=EMPTY_S, empty=True))
    c0 = time.process_time()
    cal = calibrate(generate(seed=seed, chunk_packets=1024, **sc, **extra)[1], max_s=CAL_S)
    truth, frames = generate(seed=seed, chunk_packets=1024, **sc, **extra)
    det = MotionDetector(breathing=False)
    detc = MotionDetector(calibration=cal, breathing=False)
    ev = breathing_evidence(min_confidence=0.0)
    st, stc, br = [], [], []
    for fr in frames:
        st += det.push(fr)
        stc += detc.push(fr)
        br += [(d.offset_s, d.confidence, float(d.value)) for d in ev.push(fr)]
    thr = cal.profile_threshold
    return Raw(kind, sc, truth, np.array([s.end_s for s in st]),
               np.array([s.moving for s in st]), np.array([s.moving for s in stc]),
               np.array([bool(thr is not None and s.profile_distance > thr) for s in stc]),
               np.array(br).reshape(-1, 3), time.process_time() - c0)


def load(seed: int, kind: str, cache: Path | None) -> Raw:
    """:func:`run_capture`, cached as a pickle in ``cache``."""
    f = cache / f"{kind}_{seed}.pkl" if cache else None
    if f is not None and f.exists():
        with open(f, "rb") as fh:
            return pickle.load(fh)
    raw = run_capture(seed, kind)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "wb") as fh:
            pickle.dump(raw, fh)
    return raw


def replay(raw: Raw, calibrated: bool, min_conf: float, breath_hold_s: float, confirm: int,
           hold_s: float = 60.0, use_breathing: bool = True, use_profile: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    """Presence state and evidence per motion window, as :class:`MotionDetector` would
    report them."""
    tr = PresenceTracker(hold_s=hold_s, breath_hold_s=breath_hold_s, confirm=confirm)
    b = raw.breaths[raw.breaths[:, 1] >= min_conf] if use_breathing else raw.breaths[:0]
    moving = raw.moving_cal if calibrated else raw.moving
    prof = raw.profile_occ if calibrated and use_profile else np.zeros(len(moving), bool)
    out = np.empty(len(raw.end_s), dtype=object)
    why = np.empty(len(raw.end_s), dtype=object)
    j = 0
    for i, t in enumerate(raw.end_s):
        while j < len(b) and b[j, 0] <= t + 1e-6:
            tr.add_breathing(b[j, 0], b[j, 2], b[j, 1])
            j += 1
        dec = tr.step(t, bool(moving[i]), bool(prof[i]))
        out[i], why[i] = dec.state, dec.evidence
    return out, why


def truth_states(raw: Raw) -> tuple[np.ndarray, np.ndarray]:
    """Truth state per window and the mask of windows scored (away from truth changes)."""
    t = raw.end_s
    mid = t - 0.5
    absent = np.zeros(len(t), bool)
    for a, b in raw.truth["absence_intervals_s"]:
        absent |= (mid >= a) & (mid < b)
    moving = np.zeros(len(t), bool)
    for a, b in raw.truth["motion_intervals_s"]:
        moving |= (t > a) & (t - 1.0 < b)
    y = np.where(absent, "empty", np.where(moving, "moving", "still"))
    ok = np.ones(len(t), bool)
    for ivs, guard in ((raw.truth["absence_intervals_s"], GUARD_S),
                       (raw.truth["motion_intervals_s"], FIDGET_GUARD_S)):
        for c in (x for iv in ivs for x in iv if 0 < x < raw.truth["duration_s"]):
            ok &= ~((t - 1.0 - guard <= c) & (t + guard >= c))
    return y, ok


@dataclass
class Score:
    """Aggregated figures of one setting over a set of captures."""

    confusion: np.ndarray     # rows truth, columns prediction, order STATES
    empty_windows: int
    empty_false: int
    empty_episodes: int
    empty_hours: float
    empty_by: dict[str, int]
    to_still: list[float]
    to_empty: list[float]
    n_sessions: int


def evaluate(raws: list[Raw], calibrated: bool, **kw: Any) -> Score:
    """Confusion matrix (sessions), empty-room false occupancy and latencies."""
    conf = np.zeros((3, 3), int)
    ew = ef = eps = 0
    hours = 0.0
    to_still, to_empty = [], []
    n_sess = 0
    by: dict[str, int] = {}
    for raw in raws:
        pred, why = replay(raw, calibrated, **kw)
        t0 = CAL_S if calibrated else 0.0
        keep = raw.end_s - 1.0 >= t0
        if raw.kind == "empty":
            p = pred[keep]
            occ = p != "empty"
            for e in why[keep][occ]:
                by[e] = by.get(e, 0) + 1
            ew += len(p)
            ef += int(occ.sum())
            eps += int((occ[1:] & ~occ[:-1]).sum() + (occ[0] if len(occ) else 0))
            hours += len(p) * 0.5 / 3600.0
            continue
        n_sess += 1
        y, ok = truth_states(raw)
        m = ok & keep
        for a, ta in enumerate(STATES):
            for b, pb in enumerate(STATES):
                conf[a, b] += int(((y == ta) & (pred == pb) & m).sum())
        t = raw.end_s
        arr = np.flatnonzero((t >= ARRIVE_S) & (t < LEAVE_S) & (pred != "empty"))
        to_still.append(float(t[arr[0]] - ARRIVE_S) if len(arr) else math.inf)
        dep = np.flatnonzero((t >= LEAVE_S) & (pred == "empty"))
        to_empty.append(float(t[dep[0]] - LEAVE_S) if len(dep) else math.inf)
    return Score(conf, ew, ef, eps, hours, by, to_still, to_empty, n_sess)


def _q(x: list[float], q: float) -> str:
    """Percentile ``q`` of latencies, ``never`` when it falls on a capture that never got
    there."""
    a = np.asarray(x, float)
    if not len(a):
        return "-"
    v = float(np.percentile(np.where(np.isfinite(a), a, 1e9), q))
    return "never" if v >= 1e8 else f"{v:.1f}"


def report(name: str, s: Score) -> None:
    """Print one setting's figures."""
    c = s.confusion
    print(f"\n-- {name}: {s.n_sessions} sessions, {c.sum()} scored windows --")
    print("  truth \\ pred " + "".join(f"{p:>9}" for p in STATES) + "   recall")
    for i, ts in enumerate(STATES):
        rec = c[i, i] / c[i].sum() if c[i].sum() else float("nan")
        print(f"  {ts:<13}" + "".join(f"{v:>9d}" for v in c[i]) + f"   {rec:6.3f}")
    prec = [c[i, i] / c[:, i].sum() if c[:, i].sum() else float("nan") for i in range(3)]
    print("  precision    " + "".join(f"{p:>9.3f}" for p in prec))
    occ_t = c[1:, 1:].sum() / max(c[1:].sum(), 1)
    print(f"  occupied recall (still+moving → not empty) {occ_t:.3f}; still→empty "
          f"{c[1, 0] / max(c[1].sum(), 1):.3f}")
    print(f"  empty rooms: {s.empty_false}/{s.empty_windows} windows occupied "
          f"({s.empty_false / max(s.empty_windows, 1):.4f}); {s.empty_false * 0.5:.0f} s and "
          f"{s.empty_episodes} episodes in {s.empty_hours:.2f} h → "
          f"{s.empty_false * 0.5 / max(s.empty_hours, 1e-9):.0f} s/h, "
          f"{s.empty_episodes / max(s.empty_hours, 1e-9):.2f} episodes/h; false windows by "
          f"evidence {s.empty_by}")
    ts = np.asarray(s.to_still)
    print(f"  time to occupied after arrival (s): median {_q(s.to_still, 50)}, p90 "
          f"{_q(s.to_still, 90)}, never (within 180 s) {int(np.isinf(ts).sum())}/{len(ts)}")
    print(f"  time to empty after leaving (s): median {_q(s.to_empty, 50)}, p90 "
          f"{_q(s.to_empty, 90)}, max {_q(s.to_empty, 100)}, not within 90 s "
          f"{int(np.isinf(s.to_empty).sum())}/{len(s.to_empty)}")


def breakdown(raws: list[Raw], calibrated: bool, **kw: Any) -> None:
    """Per distance, antenna count, packet rate and SNR: still recall, share of still
    windows reported empty, empty-room false occupancy (s/h) and median time to occupied."""
    print("  breakdown: still recall / still→empty / empty-room occupied s/h / median time "
          "to occupied (s)")
    for key in ("distance_m", "n_rx", "packet_rate_hz", "snr_db"):
        parts = []
        for v in sorted({r.params[key] for r in raws}):
            sub = [r for r in raws if r.params[key] == v]
            s = evaluate(sub, calibrated, **kw)
            c = s.confusion
            parts.append(f"{v:g}: {c[1, 1] / max(c[1].sum(), 1):.2f} / "
                         f"{c[1, 0] / max(c[1].sum(), 1):.2f} / "
                         f"{s.empty_false * 0.5 / max(s.empty_hours, 1e-9):.0f} / "
                         f"{_q(s.to_still, 50)}")
        print(f"  by {key:<15} " + "; ".join(parts))


def check(seed: int) -> None:
    """The replay equals MotionDetector end to end (default settings, no calibration)."""
    sc = scenario(seed)
    raw = run_capture(seed, "session")
    _, frames = generate(seed=seed, chunk_packets=333, **sc, duration_s=SESSION_S,
                         absent_s=f"0-{ARRIVE_S:g},{LEAVE_S:g}-{SESSION_S:g}", fidgets=3)
    det = MotionDetector()
    full = [s.presence for fr in frames for s in det.push(fr)]
    rep, _ = replay(raw, False, BREATH_MIN_CONFIDENCE, BREATH_HOLD_S, BREATH_CONFIRM)
    same = len(full) == len(rep) and all(a == b for a, b in zip(full, rep, strict=True))
    print(f"check seed {seed}: MotionDetector vs replay identical: {same} ({len(full)} windows)")
    if not same:
        raise SystemExit(1)


def real() -> None:
    """Presence state fractions per real capture (default settings, no calibration)."""
    from sensing.formats import FORMATS, open_capture

    files = sorted((DATA / "espectre").glob("*.npz"))
    files = [f for f in files if not f.name.endswith(".ref.npz")]
    if "intel5300" in FORMATS.names():
        files += sorted((DATA / "csikit-intel5300-labeled" / "activity").glob("*.dat"))
    if not files:
        print(f"real captures not found under {DATA}")
        return
    print("\n== real captures: presence state fractions per window (defaults, no calibration; "
          "with and without breathing evidence) ==")
    for f in files:
        row = []
        for br in (False, True):
            det = MotionDetector(breathing=br)
            st = [s for fr in open_capture(f) for s in det.push(fr)]
            p = np.array([s.presence for s in st])
            ev = sorted({s.evidence for s in st if s.presence == "still"})
            row.append(" ".join(f"{k[0]}{np.mean(p == k):.2f}" for k in STATES)
                       + (f" [{','.join(ev)}]" if ev else ""))
            if br:
                n_br = det.breathing.stats
        dur = st[-1].end_s if st else 0.0
        print(f"  {f.name:<42} {dur:5.1f} s  motion only: {row[0]:<26} with breathing: "
              f"{row[1]:<30} breathing windows analysed {n_br['windows']}, "
              f"evidence {n_br['emitted']}")
    # Is anyone breathing in the files too short for the 30 s evidence window? A 15 s
    # window (2 cycles at 8 breaths/min), 1 s hop, every analysed window reported.
    print("\n  diagnostic, 15 s breathing windows (8–40 breaths/min), files >= 15 s:")
    for f in files:
        est = BreathingEstimator(window_s=15.0, hop_s=1.0, min_bpm=8.0, min_confidence=0.0)
        d = [x for fr in open_capture(f) for x in est.push(fr)]
        if not est.stats["windows"]:
            continue
        ok = [x for x in d if x.confidence >= BREATH_MIN_CONFIDENCE]
        rates = ", ".join(f"{x.offset_s:.0f} s {x.value:.1f}" for x in ok[:: max(1, len(ok) // 6)])
        print(f"  {f.name:<42} windows {est.stats['windows']}, gated by motion "
              f"{est.stats['gated_motion']}, confidence >= {BREATH_MIN_CONFIDENCE}: {len(ok)}"
              f" (max {max((x.confidence for x in d), default=0.0):.2f})"
              + (f"; breaths/min at: {rates}" if ok else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=("train", "test"), default="test")
    ap.add_argument("--quick", action="store_true", help="8 seeds only")
    ap.add_argument("--tune", action="store_true", help="grid over the breathing knobs")
    ap.add_argument("--real", action="store_true", help="real captures only")
    ap.add_argument("--check", type=int, metavar="SEED", help="replay == detector on one seed")
    ap.add_argument("--cache", type=Path, default=None, help="directory to cache runs in")
    args = ap.parse_args(argv)
    if args.check is not None:
        check(args.check)
        return 0
    if args.real:
        real()
        return 0
    seeds = seeds_for(args.split)
    if args.quick:
        seeds = seeds[:: max(1, len(seeds) // 8)][:8]
    raws = []
    c0 = time.perf_counter()
    for i, seed in enumerate(seeds):
        for kind in ("session", "empty"):
            raws.append(load(seed, kind, args.cache))
        print(f"  [{i + 1}/{len(seeds)}] seed {seed} {raws[-2].params} "
              f"({time.perf_counter() - c0:.0f} s)", file=sys.stderr)
    print(f"== presence on simulated captures, {args.split} seeds {seeds[0]}–{seeds[-1]} "
          f"({len(seeds)} rooms: session + empty room each) ==")
    default = dict(min_conf=BREATH_MIN_CONFIDENCE, breath_hold_s=BREATH_HOLD_S,
                   confirm=BREATH_CONFIRM)
    if args.tune:
        print("\nmin_conf hold confirm | still rec  empty rec  moving rec | empty-room occ s/h "
              "| to-occupied med/p90 | to-empty med/p90")
        for cal in (False, True):
            for mc, bh, cf in itertools.product((0.1, 0.15, 0.2, 0.3), (15.0, 30.0, 45.0, 60.0),
                                                (1, 2, 3)):
                s = evaluate(raws, cal, min_conf=mc, breath_hold_s=bh, confirm=cf)
                c = s.confusion
                r = [c[i, i] / max(c[i].sum(), 1) for i in range(3)]
                print(f"{'cal' if cal else 'def'} {mc:4.2f} {bh:4.0f} {cf} | {r[1]:.3f} {r[0]:.3f} "
                      f"{r[2]:.3f} | {s.empty_false * 0.5 / max(s.empty_hours, 1e-9):6.0f} | "
                      f"{_q(s.to_still, 50)}/{_q(s.to_still, 90)} | "
                      f"{_q(s.to_empty, 50)}/{_q(s.to_empty, 90)}")
    for cal in (False, True):
        tag = "calibrated" if cal else "no calibration"
        report(f"BEFORE (old behaviour: motion + hold{' + profile' if cal else ''}), {tag}",
               evaluate(raws, cal, **default, use_breathing=False, use_profile=cal))
        if cal:
            report(f"motion + hold only, {tag}",
                   evaluate(raws, cal, **default, use_breathing=False))
        report(f"with breathing evidence (defaults), {tag}", evaluate(raws, cal, **default))
        breakdown(raws, cal, **default)
        if cal:
            report("with breathing and the opt-in profile evidence, calibrated",
                   evaluate(raws, cal, **default, use_profile=True))
    cpu = sum(r.cpu_s for r in raws)
    print(f"\n(simulation + detectors: {cpu:.0f} s CPU for {len(raws)} captures)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
