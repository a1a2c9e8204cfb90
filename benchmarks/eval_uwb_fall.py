"""Score the UWB fall alerts on held-out simulated captures (EVENT level: what a subscriber
receives); prints the figures of docs/uwb-fall.md.

Run from the repository root (after ``python -m models.train_uwb_fall``)::

    nice -n 10 python benchmarks/eval_uwb_fall.py [--captures 50] [--ordinary-hours 72]
                                                  [--cache DIR] [--json OUT]

* Held-out fall captures: seeds 200 000+ (never used for training, tuning or the
  toolchain's validation set), ~3–5 min each with 2 falls (half of the fallen people get up
  again), at frame rates never used in training (60, 80, 120 Hz). A ``fall`` event is a
  true positive when its onset is within 2 s of a true fall's onset (one event per fall;
  a second event for the same fall is a false positive). Precision, recall, F1 for the
  int8 and fp32 models at the model's two operating points (``default``, ``quiet``) and
  for the rule fallback; the alert delay after the fall ends
  (impact); the onset error; ``fall_cleared`` delays after the true start of getting up.
* False alarms per day: ordinary activity only (walk, still, sit/stand, squat, bend,
  pick up, lie on a bed/get up, shower, empty room; no falls), 1 h per capture at 50 Hz,
  seeds 300 000+; false alarms/day = events × 24 h / simulated hours, with the exact
  one-sided Poisson 95 % upper bound (0 events in T hours → 3.0 × 24 / T per day). Each
  false alarm is attributed to the activity at its onset.
* Breathing: ``uwb_breathing`` (if registered) on ``uwb-breathing`` captures (seeds
  400 000+, 8–24 bpm, lying/sitting/standing, 120 s at 20 Hz): MAE of the median rate.
* One capture is also written by the registered simulator (``.npz``), opened with
  ``open_capture`` and run through the ``uwb_fall`` pipeline as ``ambisense replay`` does.

All features come from :class:`sensing.uwb.fall.FallFeatureExtractor` on streamed chunks,
once per capture; the int8, fp32 and rule detectors decide from the same windows
(:meth:`sensing.uwb.fall.FallDetector.decide`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # models/

from models.train_uwb_fall import MATCH_S, match_events  # noqa: E402
from sensing.uwb.fall import FallDetector, FallDetectorParams, FallFeatureExtractor  # noqa: E402

FALL_SEED0 = 200_000
ORD_SEED0 = 300_000
BREATH_SEED0 = 400_000
HELDOUT_RATES = (60.0, 80.0, 120.0)
FALL_CAPTURE_S = 150.0
ORD_CAPTURE_S = 3600.0
ORD_RATE = 50.0


def poisson_upper(n: int, conf: float = 0.95) -> float:
    """Exact one-sided upper confidence bound of a Poisson mean after ``n`` events."""
    from scipy.stats import chi2

    return float(chi2.ppf(conf, 2 * (n + 1)) / 2)


def run_capture(cap, detectors: dict[str, FallDetector]) -> dict[str, list]:
    """Stream a capture once; every detector decides from the same feature windows."""
    ex = FallFeatureExtractor()
    events: dict[str, list] = {k: [] for k in detectors}
    for fr in cap.chunks(10.0):
        t, X, starts, gated = ex.push(fr)
        for k, det in detectors.items():
            p = det.probabilities(X, gated) if len(t) else np.zeros(0)
            events[k] += det.decide(t, p, starts, X, ex.recent)
    return events


def run_subblocks(sb, detectors: dict[str, FallDetector], step: int = 100) -> dict[str, list]:
    """:func:`run_capture` from a capture's cached 0.1 s statistics
    (:func:`models.train_uwb_fall.capture_subblocks`, the same conditioning on 10 s
    chunks): the features and events are the same, the simulation is skipped."""
    from sensing.uwb.fall import SubBlocks

    ex = FallFeatureExtractor()
    events: dict[str, list] = {k: [] for k in detectors}
    for i in range(0, len(sb.t_s), step):
        sl = slice(i, i + step)
        t, X, starts, gated = ex.push_subblocks(SubBlocks(sb.t_s[sl], sb.noise[sl], sb.E[sl],
                                                          sb.F[sl], sb.S[sl], sb.nf[sl]))
        for k, det in detectors.items():
            p = det.probabilities(X, gated) if len(t) else np.zeros(0)
            events[k] += det.decide(t, p, starts, X, ex.recent)
    return events


def subblock_activity(sb) -> list[tuple[float, float]]:
    """``(t, trailing 0.3 s mean of the log fast change)`` per sub-block: what
    :attr:`sensing.uwb.fall.FallFeatureExtractor.recent` gives chunk by chunk (for
    ``fall_cleared``), for a whole capture at once."""
    from sensing.uwb.fall import _top_mean

    if not len(sb.t_s):
        return []
    lf = np.log(np.maximum(_top_mean((sb.F / (2 * sb.noise[:, None])).astype(np.float32)),
                           1e-3))
    c = np.concatenate([[0.0], np.cumsum(lf)])
    i = np.arange(len(lf))
    lo = np.maximum(i - 2, 0)
    trail = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return list(zip(sb.t_s.tolist(), trail.tolist(), strict=True))


_WORKER: dict[str, Any] = {}


def _init_worker(models_dir: str | None, cache: str | None) -> None:
    """Per-process models (ONNX sessions do not pickle) and operating points."""
    from agent.inference import load_model

    int8 = load_model("uwb_fall", models_dir=models_dir, precision="int8")
    fp32 = load_model("uwb_fall", models_dir=models_dir, precision="fp32")
    _WORKER.update(models=detector_models(int8, fp32), ops=detector_ops(int8.meta),
                   cache=cache)


def detector_models(int8: Any, fp32: Any) -> dict[str, Any]:
    """Detector name -> model (None: the rule)."""
    return {"int8": int8, "fp32": fp32, "int8_quiet": int8, "int8_sensitive": int8,
            "fp32_sensitive": fp32, "rule": None}


def detector_ops(meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Detector name -> operating point (a model without a ``sensitive`` point: its
    ``default``)."""
    from agent.inference import model_operating_point
    from sensing.uwb.pipelines.fall import RULE_OPERATING_POINT

    names = set((meta.get("extra") or {}).get("operating_points") or {})
    d = model_operating_point(meta, "default")
    q = model_operating_point(meta, "quiet")
    s = model_operating_point(meta, "sensitive") if "sensitive" in names else d
    return {"int8": d, "fp32": d, "int8_quiet": q, "int8_sensitive": s, "fp32_sensitive": s,
            "rule": dict(RULE_OPERATING_POINT)}


def _job(job: tuple[str, int, float, float, int]) -> tuple[dict[str, Any], dict[str, list]]:
    """One capture (simulated, or its cached sub-blocks): truth and per-detector events
    as plain tuples ``(kind, offset_s, detect_s)``."""
    from sensing.uwb.simulators.activity import simulate

    kind, seed, duration_s, fs, falls = job
    dets = make_detectors(_WORKER["models"], _WORKER["ops"])
    if _WORKER["cache"]:
        from models.train_uwb_fall import capture_features, capture_subblocks

        c = capture_features(seed, duration_s, falls, fs, cache=_WORKER["cache"])
        sb = capture_subblocks(seed, duration_s, falls, fs, cache=_WORKER["cache"])["sb"]
        truth = {"falls": c["falls"], "intervals": c["intervals"],
                 "duration_s": c["hours"] * 3600.0}
        recent = subblock_activity(sb)
        evs = {}
        for k, det in dets.items():
            p = (det.probabilities(c["X"], c["gated"]) if len(c["t"])
                 else np.zeros(0, np.float32))
            evs[k] = det.decide(c["t"], p, c["start"], c["X"], recent)
    else:
        cap = simulate(seed=seed, duration_s=duration_s, falls=falls, fs_hz=fs)
        tr = cap.truth()
        truth = {"falls": tr["falls"], "intervals": tr["intervals"],
                 "duration_s": cap.duration_s}
        evs = run_capture(cap, dets)
    return truth, {k: [(e.kind, e.offset_s, e.detect_s) for e in v] for k, v in evs.items()}


def _results(jobs: list, workers: int, models_dir: str | None, cache: str | None):
    """``(truth, events)`` per job, in order, on ``workers`` processes."""
    if workers <= 1:
        _init_worker(models_dir, cache)
        for j in jobs:
            yield _job(j)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, initializer=_init_worker,
                             initargs=(models_dir, cache)) as pool:
        yield from pool.map(_job, jobs)


def make_detectors(models: dict[str, Any], ops: dict[str, dict]) -> dict[str, FallDetector]:
    out = {}
    for k, m in models.items():
        prm = FallDetectorParams(**ops[k])
        out[k] = (FallDetector(prm) if m is None else
                  FallDetector(prm, predict_proba=m.predict_proba, labels=m.labels,
                               n_features=m.n_features))
    return out


def activity_at(intervals: list[dict], t: float) -> str:
    for iv in intervals:
        if iv["start_s"] <= t < iv["end_s"]:
            return iv["label"]
    return intervals[-1]["label"] if intervals else "?"


def summarise(x: list[float]) -> dict[str, float]:
    if not x:
        return {"n": 0}
    a = np.asarray(x)
    return {"n": len(a), "within_3s": round(float((a <= 3.0).mean()), 4),
            "median": round(float(np.median(a)), 3),
            "p90": round(float(np.percentile(a, 90)), 3), "max": round(float(a.max()), 3),
            "min": round(float(a.min()), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--captures", type=int, default=50, help="held-out fall captures (2 falls each)")
    ap.add_argument("--ordinary-hours", type=float, default=72.0)
    ap.add_argument("--breathing", type=int, default=12, help="breathing captures")
    ap.add_argument("--json", default=None, help="write the figures as JSON here")
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--cache", default=None,
                    help="directory for the captures' 0.1 s statistics (simulate once)")
    ap.add_argument("--workers", type=int, default=1, help="processes")
    ap.add_argument("--ordinary-seed0", type=int, default=ORD_SEED0,
                    help="first seed of the ordinary hours")
    args = ap.parse_args()
    from agent.inference import load_manifest, load_model
    t_start = time.time()
    int8 = load_model("uwb_fall", models_dir=args.models_dir, precision="int8")
    fp32 = load_model("uwb_fall", models_dir=args.models_dir, precision="fp32")
    models = detector_models(int8, fp32)
    ops = detector_ops(int8.meta)
    op, quiet = ops["int8"], ops["int8_quiet"]
    entry = load_manifest(args.models_dir)["models"]["uwb_fall"]
    sizes = {k: entry["precisions"][k]["size_bytes"] for k in ("fp32", "int8")}
    res: dict[str, Any] = {"operating_point": op, "quiet_operating_point": quiet,
                           "sensitive_operating_point": ops["int8_sensitive"],
                           "rule_operating_point": ops["rule"],
                           "sizes_bytes": sizes,
                           "int8_over_fp32_size": round(sizes["int8"] / sizes["fp32"], 4)}

    # ------------------------------------------------------------------ fall captures
    per: dict[str, dict[str, Any]] = {k: {"tp": 0, "fp": 0, "delays": [], "errs": [],
                                          "fp_at": {}} for k in models}
    n_falls = 0
    cleared_delays: list[float] = []
    cleared_missed = cleared_spurious = 0
    fall_hours = 0.0
    fall_jobs = [("fall", FALL_SEED0 + i, FALL_CAPTURE_S, HELDOUT_RATES[i % len(HELDOUT_RATES)],
                  2) for i in range(args.captures)]
    for i, (truth, evs) in enumerate(_results(fall_jobs, args.workers, args.models_dir,
                                              args.cache)):
        seed, fs = fall_jobs[i][1], fall_jobs[i][3]
        falls = truth["falls"]
        n_falls += len(falls)
        fall_hours += truth["duration_s"] / 3600
        for k, ev in evs.items():
            fe = [{"onset_s": o, "detect_s": d} for kind, o, d in ev if kind == "fall"]
            tp, fp, d, er = match_events(fe, falls)
            r = per[k]
            r["tp"] += tp
            r["fp"] += fp
            r["delays"] += d
            r["errs"] += er
            if fp:
                for e in fe:
                    if not any(abs(e["onset_s"] - f["onset_s"]) <= MATCH_S for f in falls):
                        a = activity_at(truth["intervals"], e["onset_s"])
                        r["fp_at"][a] = r["fp_at"].get(a, 0) + 1
            if k == "int8":
                cl = [(o, d) for kind, o, d in ev if kind == "fall_cleared"]
                for f in falls:
                    hits = [e for e in cl if f["cleared_s"] is not None
                            and f["cleared_s"] - 2 <= e[0] <= f["cleared_s"] + 15]
                    if f["cleared_s"] is not None:
                        if hits:
                            cleared_delays.append(hits[0][1] - f["cleared_s"])
                        else:
                            cleared_missed += 1
                cleared_spurious += sum(
                    1 for e in cl if not any(f["cleared_s"] is not None and f["cleared_s"] - 2
                                             <= e[0] <= f["cleared_s"] + 15 for f in falls))
        print(f"  fall capture {i + 1}/{args.captures} seed {seed} {fs:.0f} Hz: "
              + ", ".join(f"{k} {per[k]['tp']}/{n_falls} fp {per[k]['fp']}" for k in per),
              flush=True)
    ev_res = {}
    for k, r in per.items():
        prec = r["tp"] / max(r["tp"] + r["fp"], 1)
        rec = r["tp"] / max(n_falls, 1)
        ev_res[k] = {"falls": n_falls, "tp": r["tp"], "fp": r["fp"],
                     "precision": round(prec, 4), "recall": round(rec, 4),
                     "f1": round(2 * prec * rec / max(prec + rec, 1e-9), 4),
                     "alert_delay_after_fall_end_s": summarise(r["delays"]),
                     "onset_error_s": summarise(r["errs"]), "fp_by_activity": r["fp_at"]}
    res["fall_captures"] = {"captures": args.captures, "hours": round(fall_hours, 3),
                            "frame_rates_hz": list(HELDOUT_RATES), "events": ev_res,
                            "fall_cleared": {"delay_s": summarise(cleared_delays),
                                             "missed": cleared_missed,
                                             "spurious": cleared_spurious}}
    print(json.dumps(res["fall_captures"], indent=1), flush=True)

    # ------------------------------------------------------------------ ordinary days
    n_caps = int(np.ceil(args.ordinary_hours * 3600 / ORD_CAPTURE_S))
    fa = {k: 0 for k in models}
    fa_at: dict[str, dict[str, int]] = {k: {} for k in models}
    hours = 0.0
    time_at: dict[str, float] = {}
    ord_jobs = [("ordinary", args.ordinary_seed0 + i, ORD_CAPTURE_S, ORD_RATE, 0)
                for i in range(n_caps)]
    fa_list: list[dict[str, Any]] = []
    for i, (truth, evs) in enumerate(_results(ord_jobs, args.workers, args.models_dir,
                                              args.cache)):
        iv = truth["intervals"]
        for d in iv:
            time_at[d["label"]] = time_at.get(d["label"], 0.0) + d["end_s"] - d["start_s"]
        hours += truth["duration_s"] / 3600
        for k, ev in evs.items():
            for kind, o, d in ev:
                if kind == "fall":
                    fa[k] += 1
                    a = activity_at(iv, o)
                    fa_at[k][a] = fa_at[k].get(a, 0) + 1
                    if k == "int8":
                        fa_list.append({"seed": ord_jobs[i][1], "onset_s": round(o, 2),
                                        "detect_s": round(d, 2), "activity": a})
        print(f"  ordinary hour {i + 1}/{n_caps}: {hours:.1f} h, false alarms "
              + ", ".join(f"{k} {fa[k]}" for k in fa), flush=True)
    days = hours / 24
    res["ordinary"] = {
        "hours": round(hours, 2), "frame_rate_hz": ORD_RATE,
        "activity_hours": {k: round(v / 3600, 2) for k, v in sorted(time_at.items())},
        **{k: {"false_alarms": fa[k], "per_day": round(fa[k] / days, 3),
               "per_day_95_upper": round(poisson_upper(fa[k]) / days, 3),
               "by_activity": fa_at[k]} for k in models},
        "int8_false_alarms": fa_list}
    print(json.dumps(res["ordinary"], indent=1), flush=True)

    # ------------------------------------------------------------------ file path
    from agent.pipelines import PIPELINES
    from sensing.formats import open_capture
    from sensing.simulate import SIMULATORS

    with tempfile.TemporaryDirectory() as td:
        out = os.path.join(td, "fall.npz")
        truth = SIMULATORS.get("uwb-activity")(out, seed=FALL_SEED0 + 999, duration_s=60,
                                               falls=1, fs_hz=100.0)
        pipe = PIPELINES.get("uwb_fall")(models_dir=args.models_dir)
        dets = []
        for fr in open_capture(out):
            dets += pipe.push(fr)
        dets += pipe.flush()
        res["file_replay"] = {"truth_falls": truth["falls"],
                              "events": [(d.type, d.offset_s, d.extra.get("detect_s"),
                                          d.extra.get("method")) for d in dets]}
    print("file replay:", res["file_replay"], flush=True)

    # ------------------------------------------------------------------ breathing
    res["breathing"] = breathing_mae(args.breathing)
    print("breathing:", res["breathing"], flush=True)
    res["cpu_s"] = round(time.process_time(), 1)
    res["wall_s"] = round(time.time() - t_start, 1)
    print(f"done in {res['wall_s']} s wall, {res['cpu_s']} s CPU")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


def breathing_mae(n: int) -> dict[str, Any]:
    """MAE of ``uwb_breathing`` on ``uwb-breathing`` captures (if that pipeline exists)."""
    from agent.pipelines import PIPELINES
    from sensing.formats import open_capture
    from sensing.simulate import SIMULATORS

    try:
        cls = PIPELINES.get("uwb_breathing")
    except Exception as exc:  # not registered
        return {"status": f"uwb_breathing not available: {exc}"}
    rng = np.random.default_rng(BREATH_SEED0)
    errs, rows = [], []
    postures = ("lying_bed", "sitting", "standing")
    with tempfile.TemporaryDirectory() as td:
        for i in range(n):
            bpm = float(rng.uniform(8.0, 24.0))
            out = os.path.join(td, f"b{i}.npz")
            SIMULATORS.get("uwb-breathing")(out, seed=BREATH_SEED0 + i, duration_s=120.0,
                                            fs_hz=20.0, rate_bpm=bpm,
                                            posture=postures[i % 3])
            pipe = cls()
            dets = []
            for fr in open_capture(out):
                dets += pipe.push(fr)
            dets += pipe.flush()
            rates = [d.value for d in dets if d.type == "breathing_rate"]
            est = float(np.median(rates)) if rates else float("nan")
            rows.append({"truth_bpm": round(bpm, 2), "median_bpm": round(est, 2),
                         "n": len(rates), "posture": postures[i % 3]})
            if rates:
                errs.append(abs(est - bpm))
    return {"captures": n, "with_estimate": len(errs),
            "mae_bpm": round(float(np.mean(errs)), 3) if errs else None, "rows": rows}


if __name__ == "__main__":
    sys.exit(main())
