"""Score the fall detector on held-out simulated captures; prints the figures in docs/fall.md.

Run from the repository root (after ``python -m models.train_fall``)::

    python benchmarks/eval_fall.py [--captures 40] [--ordinary-hours 36] [--cache DIR]

    # fill the cache in two processes first (optional; same figures):
    python benchmarks/eval_fall.py --cache DIR --fill 0/2 &
    python benchmarks/eval_fall.py --cache DIR --fill 1/2

* Held-out captures: seeds 200 000+ (never used for training, tuning or the toolchain's
  validation set), 240 s each with 2 falls, packet rate 50–120 Hz, loss 0–5 %.
  Window level: per-class precision/recall/F1 of the int8 and fp32 models.
  Event level: fall events (detector at each of the model's named operating points,
  ``default`` and ``sensitive``) matched to true falls (onset within [start - 3 s, impact +
  3 s]); precision/recall/F1 for int8, fp32 and the rule fallback.
* False alarms per day: ordinary activity only (walk, sit, stand up, lie down, get up, pick
  up, still; no falls), 900 s per capture, at 50 Hz (seeds 300 000+) and at 100 Hz (seeds
  310 000+) packet rate,
  generated in memory by the same simulator and run through the same streaming extractor;
  false alarms/day = events × 86 400 s / simulated seconds, with the exact one-sided
  Poisson 95 % upper bound (0 events in T hours -> 3.0 × 24 / T per day). The figures in
  docs/fall.md use the defaults: 40 captures (80 falls) and ``--ordinary-hours 36`` (36 h
  per packet rate, 72 h in all).
* File path: one capture written by the registered ``csi-activity`` simulator as real
  ``CSI_DATA`` lines, replayed through the ``wifi_fall`` pipeline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # models/

from agent.inference import (
    load_model,  # noqa: E402
    model_operating_point,  # noqa: E402
)
from agent.pipelines import PIPELINES  # noqa: E402
from models.train_fall import (  # noqa: E402
    capture_features,
    detector_options,
    match_events,
    prf,
)
from sensing.formats import open_capture  # noqa: E402
from sensing.simulate import load_truth  # noqa: E402
from sensing.simulate.csi_activity import csi_activity  # noqa: E402
from sensing.wifi.fall import (  # noqa: E402
    CLASSES,
    RULE_OPERATING_POINT,
    FallDetector,
    rule_fall_probability,
)

TEST_SEED0 = 200_000
ORDINARY_SEED0 = 300_000
ORDINARY_S = 900.0


def window_report(name: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, n = precision_recall_fscore_support(y, pred, labels=range(len(CLASSES)),
                                                 zero_division=0)
    print(f"  {name}: per-class window precision / recall / F1 (support)")
    for i, c in enumerate(CLASSES):
        print(f"    {c:<9} {p[i]:.3f} / {r[i]:.3f} / {f[i]:.3f} ({n[i]})")
    macro = float(np.mean(f))
    print(f"    macro F1 {macro:.3f}; accuracy {(y == pred).mean():.3f}")
    return {"fall_f1": float(f[CLASSES.index("fall")]), "macro_f1": macro}


def _detector(op):
    return FallDetector(**detector_options(op))


def poisson_upper(n: int, conf: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of a Poisson mean after ``n`` events
    (0 events -> 3.0)."""
    from scipy.stats import chi2

    return float(chi2.ppf(conf, 2 * (n + 1)) / 2)


def detect(caps, proba_fn, op, method, delays: list[float] | None = None):
    """(TP, FP, FN) of the detector on ``caps``; ``delays`` collects, per event matching a
    fall, the time from its impact to the decision (s)."""
    tp = fp = fn = 0
    for c in caps:
        det = _detector(op)
        det.method = method
        evs = det.step(c["ends"], c["X"], proba_fn(c["X"]))
        a, b, m = match_events(evs, c["intervals"], delays)
        tp, fp, fn = tp + a, fp + b, fn + m
    return tp, fp, fn


def count_alarms(caps, proba_fn, op):
    n = 0
    for c in caps:
        n += len(_detector(op).step(c["ends"], c["X"], proba_fn(c["X"])))
    return n


#: Operating point of the rule fallback (its own: see docs/fall.md).
RULE_OP = RULE_OPERATING_POINT


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--captures", type=int, default=40)
    ap.add_argument("--ordinary-hours", type=float, default=36.0,
                    help="hours of ordinary activity per packet rate (50 and 100 Hz)")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--fill", default=None, metavar="I/N",
                    help="only compute the I-th of N shares of the captures into --cache")
    args = ap.parse_args()
    t0 = time.time()
    n_ord = max(1, int(round(args.ordinary_hours * 3600 / ORDINARY_S)))
    if args.fill:
        part, nparts = (int(v) for v in args.fill.split("/"))
        specs = [(TEST_SEED0 + i, {}) for i in range(args.captures)]
        specs += [(seed0 + i, {"duration_s": ORDINARY_S, "falls": 0, "rate_hz": rate})
                  for i in range(n_ord)
                  for rate, seed0 in ((50.0, ORDINARY_SEED0), (100.0, ORDINARY_SEED0 + 10_000))]
        for j, (seed, kw) in enumerate(specs):
            if j % nparts == part:
                capture_features(seed, cache=args.cache, **kw)
        print(f"filled share {args.fill} in {time.time() - t0:.0f} s")
        return 0
    m8 = load_model("fall")
    m32 = load_model("fall", precision="fp32")
    names = sorted((m8.meta["extra"].get("operating_points") or {"default": None}),
                   key=lambda n: n != "default")
    ops = {name: model_operating_point(m8.meta, name) for name in names}
    fall = m8.labels.index("fall")
    print(f"model: {m8!r}; operating points {ops}")

    def p8(X):
        return m8.predict_proba(X)[:, fall]

    def p32(X):
        return m32.predict_proba(X)[:, fall]

    caps = [capture_features(TEST_SEED0 + i, cache=args.cache) for i in range(args.captures)]
    n_falls = sum(sum(iv["label"] == "fall" for iv in c["intervals"]) for c in caps)
    hours = sum(c["duration_s"] for c in caps) / 3600
    print(f"\n== held-out captures: {len(caps)} ({hours:.2f} h, {n_falls} falls; packet rate "
          f"{min(c['rate_hz'] for c in caps):.0f}-{max(c['rate_hz'] for c in caps):.0f} Hz) ==")
    keep = [np.array([lab != "fall_partial" for lab in c["labels"]]) for c in caps]
    X = np.concatenate([c["X"][k] for c, k in zip(caps, keep, strict=True)])
    y = np.array([CLASSES.index(lab) for c in caps for lab in c["labels"]
                  if lab != "fall_partial"])
    r8 = window_report("int8", y, m8.predict_proba(X).argmax(1))
    r32 = window_report("fp32", y, m32.predict_proba(X).argmax(1))
    print(f"  fall window F1 int8 {r8['fall_f1']:.4f} vs fp32 {r32['fall_f1']:.4f} "
          f"(diff {100 * (r32['fall_f1'] - r8['fall_f1']):+.2f} points); macro F1 diff "
          f"{100 * (r32['macro_f1'] - r8['macro_f1']):+.2f} points")
    # (detector, probability, operating point, method) of every scored configuration
    configs = [(f"int8 {n}", p8, o, "model") for n, o in ops.items()]
    configs += [(f"fp32 {n}", p32, o, "model") for n, o in ops.items()]
    configs.append(("rule fallback", rule_fall_probability, RULE_OP, "rule"))
    print("\n  event level (onset within [start-3 s, impact+3 s]):")
    res = {}
    for name, fn, o, meth in configs:
        delays: list[float] = []
        tp, fp, fnn = detect(caps, fn, o, meth, delays)
        p, r, f = prf(tp, fp, fnn)
        res[name] = f
        late = (f"; alert delay after the impact p50 {np.percentile(delays, 50):.1f} s, "
                f"p95 {np.percentile(delays, 95):.1f} s ({min(delays):.1f}-{max(delays):.1f})"
                if delays else "")
        print(f"    {name:<18} TP {tp:3d} FP {fp:3d} FN {fnn:3d}  precision {p:.3f} recall "
              f"{r:.3f} F1 {f:.3f}{late}")
    for n in ops:
        print(f"  event F1 int8 vs fp32 ({n}): "
              f"{100 * (res[f'fp32 {n}'] - res[f'int8 {n}']):+.2f} points")
    for lo, hi in ((50, 80), (80, 121), (50, 65), (65, 80), (80, 100), (100, 121)):
        sub = [c for c in caps if lo <= c["rate_hz"] < hi]
        if sub:
            for name, fn, o, meth in configs[:-1]:
                tp, fp, fnn = detect(sub, fn, o, meth)
                p, r, f = prf(tp, fp, fnn)
                print(f"    {name}, packet rate {lo}-{hi - 1} Hz ({len(sub)} captures, "
                      f"{tp + fnn} falls): TP {tp} FP {fp} FN {fnn} precision {p:.3f} "
                      f"recall {r:.3f} F1 {f:.3f}")

    total: dict[str, int] = {}
    total_s = 0.0
    for rate, seed0 in ((50.0, ORDINARY_SEED0), (100.0, ORDINARY_SEED0 + 10_000)):
        ords = [capture_features(seed0 + i, duration_s=ORDINARY_S, falls=0, rate_hz=rate,
                                 cache=args.cache) for i in range(n_ord)]
        sim_s = sum(c["duration_s"] for c in ords)
        print(f"\n== ordinary activity, no falls: {n_ord} captures, {sim_s / 3600:.2f} h at "
              f"{rate:.0f} Hz ==")
        counts: dict[str, int] = {}
        for c in ords:
            for lab in c["intervals"]:
                counts[lab["label"]] = counts.get(lab["label"], 0) + 1
        print(f"  activities: {dict(sorted(counts.items()))}")
        for name, fn, o, _ in configs:
            n = count_alarms(ords, fn, o)
            total[name] = total.get(name, 0) + n
            print(f"    {name:<18} false alarms {n:3d} -> {n * 86400 / sim_s:.2f} per simulated "
                  f"day (95 % upper bound {poisson_upper(n) * 86400 / sim_s:.1f})")
        total_s += sim_s
    print(f"\n== ordinary activity, both rates: {total_s / 3600:.2f} h ==")
    for name, n in total.items():
        print(f"    {name:<18} false alarms {n:3d} -> {n * 86400 / total_s:.2f} per simulated "
              f"day (exact Poisson 95 % upper bound {poisson_upper(n) * 86400 / total_s:.1f})")

    print("\n== file path: ambisense simulate csi-activity -> replay through wifi_fall ==")
    with tempfile.TemporaryDirectory() as td:
        f = os.path.join(td, "fall.csv")
        csi_activity(f, seed=TEST_SEED0 + 999, duration_s=120.0, falls=2)
        truth = load_truth(f)
        pipe = PIPELINES.get("wifi_fall")()
        dets = [d for fr in open_capture(f) for d in pipe.push(fr)] + pipe.flush()
        falls = [iv for iv in truth["intervals"] if iv["label"] == "fall"]
        print(f"  true falls at {[round(iv['start_s'], 1) for iv in falls]} s; detected "
              f"{[(round(d.offset_s, 1), d.extra['method'], round(d.confidence, 2)) for d in dets]}")
    print(f"\n(total {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
