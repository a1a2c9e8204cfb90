"""Train the UWB fall classifier on simulated CIRs and ship it as int8 ONNX via the toolchain.

Reproducible (fixed seeds, single process)::

    python -m models.train_uwb_fall [--cache DIR]   # writes models/uwb_fall.*; docs/uwb-fall.md

Data: the ``uwb-activity`` simulator (:mod:`sensing.uwb.simulators`), generated in memory
with :func:`sensing.uwb.simulators.activity.simulate` — the same generator that writes the
files of ``ambisense simulate uwb-activity`` — and passed chunk by chunk through
:class:`sensing.uwb.fall.FallFeatureExtractor`, exactly as the ``uwb_fall`` pipeline does.
Each capture draws its own room (bathroom or bedroom), geometry (bistatic/monostatic),
LOS/NLOS, channel, noise floor and person.

Splits (disjoint seeds; frame rates 50 and 100 Hz):

* train: :data:`TRAIN_SEEDS` (captures of ~3–5 min with 2 falls each) plus
  :data:`TRAIN_ORDINARY_SEEDS` (15 min of ordinary activity each: hard negatives);
* tune: :data:`TUNE_SEEDS` + :data:`TUNE_ORDINARY_SEEDS`: the event operating point
  (threshold, k of n);
* val: :data:`VAL_SEEDS`: the toolchain's held-out window set (fp32 vs int8 gate, .val.npz).

``benchmarks/eval_uwb_fall.py`` scores on further seeds (200 000+, 300 000+) at frame
rates never used here (60, 80, 120 Hz).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from sensing.uwb.fall import (
    CLASSES,
    FEATURE_NAMES,
    FEATURE_VERSION,
    HOP_S,
    WINDOW_S,
    FallDetectorParams,
    window_labels,
)

SEED = 0
MODEL_NAME = "uwb_fall"
#: Simulator version in the cache key (bump when the simulator changes).
SIM_VERSION = "uwb-sim-v3"
TRAIN_SEEDS = range(0, 160)          # 320 falls
TRAIN_ORDINARY_SEEDS = range(65_000, 65_024)   # 24 x 900 s = 6 h
TUNE_SEEDS = range(50_000, 50_024)   # 48 falls
TUNE_ORDINARY_SEEDS = range(60_000, 60_010)    # 10 x 1800 s = 5 h
TUNE_ORDINARY_HOUR_SEEDS = range(61_000, 61_006)   # 6 x 3600 s = 6 h
#: Hard negatives: the short posture changes and walks that a fall detector confuses
#: (no shower, no empty room), densely: train 60 x 600 s = 10 h, tune 20 x 600 s = 3.3 h.
HARD_ACTIVITIES = "walk,still,sit,squat,bend,pick_up,lie_down"
TRAIN_HARD_SEEDS = range(70_000, 70_060)
TUNE_HARD_SEEDS = range(71_000, 71_020)
HARD_S = 600.0
VAL_SEEDS = range(100_000, 100_012)  # 24 falls
FALL_CAPTURE_S = 150.0
FALLS_PER_CAPTURE = 2
ORDINARY_S = 900.0
TUNE_ORDINARY_S = 1800.0
TRAIN_RATES = (50.0, 100.0)
#: Candidate operating points (threshold x consecutive-of-within).
THRESHOLDS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998)
K_OF_N = ((1, 1), (2, 2), (2, 3), (3, 3), (3, 4), (3, 5), (4, 4), (4, 5), (5, 5), (6, 6))
#: A fall event matches a true fall when its onset is within this of the true onset (s).
MATCH_S = 2.0
#: Allowed false alarms per tuning day for the default operating point (the target).
FA_PER_DAY = 1.0
#: Hidden layers (sized so that the int8 file is <= 30 % of the fp32 one: the weights,
#: not the graph, dominate) and the negative windows kept for fitting (a random subset:
#: consecutive windows 0.2 s apart are nearly identical).
HIDDEN = (256, 128)
MAX_NEGATIVES = 80_000
#: Hard-negative mining: training negatives the first fit scores at or above HARD_P are
#: added HARD_COPIES times for a second fit (off by default: with the hard-negative
#: captures in the training set the first fit scores only ~0.2 % of the training
#: negatives >= 0.3, and a second fit doubles the training time).
HARD_P = 0.3
HARD_COPIES = int(os.environ.get("UWB_FALL_HARD_COPIES", "0"))   # 0: no second fit


def rate_for(seed: int, rates: tuple[float, ...] = TRAIN_RATES) -> float:
    """Frame rate of a capture (deterministic per seed)."""
    return float(rates[seed % len(rates)])


#: Version of the conditioning (sub-block statistics) in the cache key.
COND_VERSION = "uwb-cond-v1"


def capture_subblocks(seed: int, duration_s: float, falls: int, fs_hz: float, *,
                      activities: str | None = None, cache: str | None = None,
                      chunk_s: float = 10.0) -> dict[str, Any]:
    """Simulate one capture and condition it into 0.1 s sub-block statistics
    (:class:`sensing.uwb.fall.SubBlocks`), cached in ``cache``: a changed feature
    computation then needs no new simulation.

    Returns ``{"sb": SubBlocks, "falls", "intervals", "hours"}``.
    """
    from sensing.uwb.fall import SubBlocks
    from sensing.uwb.simulators.activity import simulate

    opts: dict[str, Any] = {"seed": seed, "duration_s": duration_s, "falls": falls,
                            "fs_hz": fs_hz}
    if activities:
        opts["activities"] = activities
    key = hashlib.sha1(repr((SIM_VERSION, COND_VERSION, sorted(opts.items()), chunk_s))
                       .encode()).hexdigest()[:16]
    path = os.path.join(cache, f"{seed}-{key}.npz") if cache else None
    fields = ("t_s", "noise", "E", "F", "S", "nf")
    if path and os.path.isfile(path):
        z = np.load(path, allow_pickle=True)
        return {"sb": SubBlocks(*(z[f] for f in fields)), "falls": list(z["falls"]),
                "intervals": list(z["intervals"]), "hours": float(z["hours"])}
    from sensing.uwb.fall import FallFeatureExtractor

    cap = simulate(**opts)
    ex = FallFeatureExtractor()
    parts = [ex.subblocks(fr) for fr in cap.chunks(chunk_s)]
    sb = SubBlocks(*(np.concatenate([getattr(q, f) for q in parts]) for f in fields))
    truth = cap.truth()
    out = {"sb": sb, "falls": truth["falls"], "intervals": truth["intervals"],
           "hours": cap.duration_s / 3600.0}
    if path:
        os.makedirs(cache, exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, **{f: getattr(sb, f) for f in fields},
                 falls=np.array(truth["falls"], dtype=object),
                 intervals=np.array(truth["intervals"], dtype=object), hours=out["hours"])
        os.replace(tmp, path)
    return out


def capture_features(seed: int, duration_s: float, falls: int, fs_hz: float, *,
                     activities: str | None = None, cache: str | None = None,
                     chunk_s: float = 10.0) -> dict[str, Any]:
    """Feature windows of one capture (from its cached sub-blocks when available), exactly
    as :class:`sensing.uwb.fall.FallFeatureExtractor` makes them from the frames.

    Returns ``{"t", "X", "start", "gated", "falls", "intervals", "hours"}``.
    """
    from sensing.uwb.fall import FallFeatureExtractor, SubBlocks

    fkey = hashlib.sha1(repr((SIM_VERSION, COND_VERSION, FEATURE_VERSION, seed, duration_s,
                              falls, fs_hz, activities, chunk_s)).encode()).hexdigest()[:16]
    fpath = os.path.join(cache, "features", f"{seed}-{fkey}.npz") if cache else None
    if fpath and os.path.isfile(fpath):
        z = np.load(fpath, allow_pickle=True)
        return {"t": z["t"], "X": z["X"], "start": z["start"], "gated": z["gated"],
                "falls": list(z["falls"]), "intervals": list(z["intervals"]),
                "hours": float(z["hours"])}
    c = capture_subblocks(seed, duration_s, falls, fs_hz, activities=activities, cache=cache,
                          chunk_s=chunk_s)
    ex = FallFeatureExtractor()
    sb = c["sb"]
    parts = []
    step = 600
    for i in range(0, len(sb.t_s), step):
        sl = slice(i, i + step)
        parts.append(ex.push_subblocks(SubBlocks(sb.t_s[sl], sb.noise[sl], sb.E[sl], sb.F[sl],
                                                 sb.S[sl], sb.nf[sl])))
    parts = [q for q in parts if len(q[0])]
    t, X, start, gated = (tuple(np.concatenate([q[i] for q in parts]) for i in range(4))
                          if parts else (np.zeros(0), np.zeros((0, len(FEATURE_NAMES))),
                                         np.zeros(0), np.zeros(0, bool)))
    out = {"t": t, "X": X, "start": start, "gated": gated, "falls": c["falls"],
           "intervals": c["intervals"], "hours": c["hours"]}
    if fpath:
        os.makedirs(os.path.dirname(fpath), exist_ok=True)
        tmp = fpath + ".tmp.npz"
        np.savez(tmp, t=t, X=X, start=start, gated=gated,
                 falls=np.array(c["falls"], dtype=object),
                 intervals=np.array(c["intervals"], dtype=object), hours=c["hours"])
        os.replace(tmp, fpath)
    return out


def fall_set(seeds: Iterable[int], cache: str | None, *, rates: tuple[float, ...] = TRAIN_RATES,
             duration_s: float = FALL_CAPTURE_S, falls: int = FALLS_PER_CAPTURE
             ) -> list[dict[str, Any]]:
    return [capture_features(s, duration_s, falls, rate_for(s, rates), cache=cache)
            for s in seeds]


def ordinary_set(seeds: Iterable[int], cache: str | None, duration_s: float, *,
                 rates: tuple[float, ...] = TRAIN_RATES, activities: str | None = None
                 ) -> list[dict[str, Any]]:
    return [capture_features(s, duration_s, 0, rate_for(s, rates), activities=activities,
                             cache=cache) for s in seeds]


def windows(caps: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Labelled, ungated windows of captures: ``X``, ``y`` (ambiguous windows left out)."""
    Xs, ys = [], []
    for c in caps:
        y = window_labels(c["t"], c["falls"])
        keep = (y >= 0) & ~c["gated"]
        Xs.append(c["X"][keep])
        ys.append(y[keep])
    return np.concatenate(Xs), np.concatenate(ys)


# ----------------------------------------------------------------------------- events


def detect(cap: dict[str, Any], proba: np.ndarray, params: FallDetectorParams) -> list[dict[str, float]]:
    """Fall events from precomputed window probabilities (the :class:`FallDetector`
    debouncing, without the feature extraction)."""
    from sensing.dsp import Debouncer

    deb = Debouncer(params.threshold, on_count=params.consecutive, on_window=params.within,
                    refractory_s=params.refractory_s, latch=False)
    out = []
    # only the windows less than `within` before or after a high one can change or see
    # the k-of-n count: the others are skipped (same events, much faster over hours)
    proba = np.asarray(proba)
    hi = proba >= params.threshold
    c = np.concatenate([[0], np.cumsum(hi)])
    i = np.arange(len(hi))
    n = params.within
    keep = np.flatnonzero(c[np.minimum(i + n, len(hi))] - c[np.maximum(i - n + 1, 0)] > 0)
    t_all = np.asarray(cap["t"])
    for i in keep.tolist():
        t, p = t_all[i], proba[i]
        tr = deb.step(float(t), float(p), item=i)
        if tr is not None and tr.kind == "on":
            j = tr.inputs[0].item
            out.append({"onset_s": float(cap["start"][j]), "detect_s": float(t)})
    return out


def match_events(events: list[dict[str, float]], falls: list[dict[str, Any]]
                 ) -> tuple[int, int, list[float], list[float]]:
    """(true positives, false positives, alert delays after the fall ends (s), onset
    errors (s)). An event matches the first unmatched fall whose onset is within
    :data:`MATCH_S` of its onset."""
    used = [False] * len(falls)
    tp = fp = 0
    delays: list[float] = []
    errs: list[float] = []
    for ev in events:
        hit = None
        for k, f in enumerate(falls):
            if not used[k] and abs(ev["onset_s"] - float(f["onset_s"])) <= MATCH_S:
                hit = k
                break
        if hit is None:
            fp += 1
        else:
            used[hit] = True
            tp += 1
            delays.append(ev["detect_s"] - float(falls[hit]["impact_s"]))
            errs.append(ev["onset_s"] - float(falls[hit]["onset_s"]))
    return tp, fp, delays, errs


def event_scores(caps: list[dict[str, Any]], probas: list[np.ndarray],
                 params: FallDetectorParams) -> dict[str, Any]:
    tp = fp = n_falls = 0
    delays: list[float] = []
    errs: list[float] = []
    for c, p in zip(caps, probas, strict=True):
        a, b, d, e = match_events(detect(c, p, params), c["falls"])
        tp, fp, n_falls = tp + a, fp + b, n_falls + len(c["falls"])
        delays += d
        errs += e
    prec = tp / max(tp + fp, 1)
    rec = tp / max(n_falls, 1)
    f1 = 2 * prec * rec / max(prec + rec, 1e-9)
    return {"tp": tp, "fp": fp, "falls": n_falls, "precision": prec, "recall": rec, "f1": f1,
            "delays": delays, "onset_errors": errs}


def capture_proba(cap: dict[str, Any], predict: Any) -> np.ndarray:
    p = np.zeros(len(cap["t"]), np.float32)
    live = ~cap["gated"]
    if live.any():
        p[live] = predict(cap["X"][live])
    return p


def choose_operating_point(fall_caps, fall_p, ord_caps, ord_p, hours: float
                           ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Three named operating points: ``default`` = the best event F1 on the tuning falls
    among the points with at most ``FA_PER_DAY * days`` false alarms on the tuning
    ordinary hours (or, when no point is that low, the fewest any point has); ``quiet`` =
    the fewest false alarms, then F1; ``sensitive`` = the best F1 whatever the false
    alarms. Ties: fewer false alarms, more alerts within 3 s, fewer windows."""
    allowed = int(np.floor(FA_PER_DAY * hours / 24.0))
    table = []
    for thr in THRESHOLDS:
        for k, n in K_OF_N:
            prm = FallDetectorParams(threshold=thr, consecutive=k, within=n)
            s = event_scores(fall_caps, fall_p, prm)
            fa = sum(len(detect(c, p, prm)) for c, p in zip(ord_caps, ord_p, strict=True))
            d = np.asarray(s["delays"])
            table.append({"threshold": thr, "consecutive": k, "within": n, "f1": s["f1"],
                          "tp": s["tp"], "fp_falls": s["fp"], "fa_ordinary": fa,
                          "within_3s": float((d <= 3.0).mean()) if len(d) else 0.0,
                          "max_delay_s": float(d.max()) if len(d) else None})

    def key(r: dict[str, Any]) -> tuple:
        return (round(r["f1"], 4), -r["fa_ordinary"], round(r["within_3s"], 3),
                -r["consecutive"])

    cap_fa = max(allowed, min(r["fa_ordinary"] for r in table))
    best = max((r for r in table if r["fa_ordinary"] <= cap_fa), key=key)
    fewest = min(r["fa_ordinary"] for r in table)
    quiet = max((r for r in table if r["fa_ordinary"] == fewest), key=key)
    sensitive = max(table, key=key)
    return {"default": best, "quiet": quiet, "sensitive": sensitive}, table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=os.environ.get("AMBISENSE_UWB_FALL_CACHE"),
                    help="directory for per-capture features (default: none)")
    ap.add_argument("--out-dir", default=None, help="models directory (default: models/)")
    args = ap.parse_args(argv)
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models.toolchain import build_model

    t0 = time.time()
    train = fall_set(TRAIN_SEEDS, args.cache) + ordinary_set(TRAIN_ORDINARY_SEEDS, args.cache,
                                                             ORDINARY_S)
    tune_f = fall_set(TUNE_SEEDS, args.cache)
    train += ordinary_set(TRAIN_HARD_SEEDS, args.cache, HARD_S, activities=HARD_ACTIVITIES)
    tune_o = (ordinary_set(TUNE_ORDINARY_SEEDS, args.cache, TUNE_ORDINARY_S)
              + ordinary_set(TUNE_ORDINARY_HOUR_SEEDS, args.cache, 3600.0)
              + ordinary_set(TUNE_HARD_SEEDS, args.cache, HARD_S, activities=HARD_ACTIVITIES))
    val = fall_set(VAL_SEEDS, args.cache)
    print(f"simulated + features in {time.time() - t0:.0f} s", flush=True)
    X, y = windows(train)
    Xv, yv = windows(val)
    rng = np.random.default_rng(SEED)
    pos = np.flatnonzero(y == 1)
    neg = np.flatnonzero(y == 0)
    if len(neg) > MAX_NEGATIVES:
        neg = np.sort(rng.choice(neg, MAX_NEGATIVES, replace=False))
    all_neg = np.flatnonzero(y == 0)
    X_all = X
    idx = rng.permutation(np.concatenate([neg, pos, pos]))
    X, y = X_all[idx], y[idx]
    print(f"train windows {len(X)} (fall {int((y == 1).sum())}), val {len(Xv)} "
          f"(fall {int((yv == 1).sum())})", flush=True)

    def fit(A: np.ndarray, b: np.ndarray) -> Any:
        e = make_pipeline(StandardScaler(), MLPClassifier(
            HIDDEN, alpha=1e-3, max_iter=60, early_stopping=True, n_iter_no_change=6,
            random_state=SEED))
        return e.fit(A, b)

    est = fit(X, y)
    print(f"fitted in {time.time() - t0:.0f} s ({est[-1].n_iter_} epochs)", flush=True)
    # hard-negative mining: every training negative the first fit scores >= HARD_P
    # (most were not in the random subset) is added HARD_COPIES times, then refit
    p_neg = est.predict_proba(X_all[all_neg])[:, 1]
    hard = all_neg[p_neg >= HARD_P]
    print(f"hard negatives (P >= {HARD_P}): {len(hard)} of {len(all_neg)}", flush=True)
    if len(hard) and HARD_COPIES:
        idx = rng.permutation(np.concatenate([idx] + [hard] * HARD_COPIES))
        y_all = np.zeros(len(X_all), np.int64)
        y_all[pos] = 1
        X, y = X_all[idx], y_all[idx]
        est = fit(X, y)
        print(f"refitted on {len(X)} windows in {time.time() - t0:.0f} s "
              f"({est[-1].n_iter_} epochs)", flush=True)
    predict = lambda A: est.predict_proba(A)[:, 1]  # noqa: E731
    tune_fp = [capture_proba(c, predict) for c in tune_f + val]
    tune_op = [capture_proba(c, predict) for c in tune_o]
    hours = sum(c["hours"] for c in tune_o)
    points, table = choose_operating_point(tune_f + val, tune_fp, tune_o, tune_op, hours)
    for r in table:
        print("  ", r)
    for name, r in points.items():
        print(f"operating point {name} (fp32, tune + val falls, {hours:.1f} tuning hours): {r}")
    keys = ("threshold", "consecutive", "within")
    ops = {name: {k: r[k] for k in keys} for name, r in points.items()}
    op = ops["default"]
    from models.toolchain import QuantizationAccuracyError

    def build(**quant: Any) -> dict[str, Any]:
        return build_model(MODEL_NAME, est, X, y, Xv, yv, **quant, **common)

    common = dict(
        labels=list(CLASSES), feature_names=list(FEATURE_NAMES),
        fs_hz=1.0 / HOP_S, window_s=WINDOW_S, metric="f1", seed=SEED, out_dir=args.out_dir,
        description="UWB CIR fall vs ordinary activity (walk, sit, stand, lie on a bed, squat, "
                    "bend, pick up, shower): 8 s window decided 1.8 s after the burst",
        training_data={
            "source": "uwb-activity simulator (sensing/uwb/simulators), "
                      f"{SIM_VERSION}, features {FEATURE_VERSION}",
            "train_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1],
            "train_ordinary_seeds": [TRAIN_ORDINARY_SEEDS.start, TRAIN_ORDINARY_SEEDS.stop - 1],
            "train_hard_seeds": [TRAIN_HARD_SEEDS.start, TRAIN_HARD_SEEDS.stop - 1],
            "hard_activities": HARD_ACTIVITIES, "hard_capture_s": HARD_S,
            "tune_ordinary_hour_seeds": [TUNE_ORDINARY_HOUR_SEEDS.start,
                                         TUNE_ORDINARY_HOUR_SEEDS.stop - 1],
            "tune_hard_seeds": [TUNE_HARD_SEEDS.start, TUNE_HARD_SEEDS.stop - 1],
            "tune_seeds": [TUNE_SEEDS.start, TUNE_SEEDS.stop - 1],
            "tune_ordinary_seeds": [TUNE_ORDINARY_SEEDS.start, TUNE_ORDINARY_SEEDS.stop - 1],
            "val_seeds": [VAL_SEEDS.start, VAL_SEEDS.stop - 1],
            "fall_capture_s": FALL_CAPTURE_S, "falls_per_capture": FALLS_PER_CAPTURE,
            "ordinary_capture_s": ORDINARY_S, "frame_rates_hz": list(TRAIN_RATES),
            "labels": "window_labels(): fall = impact 1.6-5 s before the window end",
            "fall_oversample": 2, "max_negatives": MAX_NEGATIVES},
        extra={"operating_point": op, "operating_points": ops,
               "tuning": {"hours": round(hours, 2), **{n: r for n, r in points.items()}},
               "feature_version": FEATURE_VERSION, "sim_version": SIM_VERSION})
    # the toolchain's int8 gate (<= 1 point): the default quantisation first, then the
    # toolchain's own suggestions
    for quant in ({}, {"per_channel": True}, {"calibration_size": 4000}):
        try:
            entry = build(**quant)
            break
        except QuantizationAccuracyError as exc:
            print(f"int8 gate failed with {quant or 'defaults'}: {exc}", flush=True)
    else:
        raise SystemExit("uwb_fall: no quantisation passed the int8 gate")
    # event-level fp32 vs int8 on tune + val falls
    from agent.inference import load_model

    res: dict[str, Any] = {}
    for prec in ("fp32", "int8"):
        m = load_model(MODEL_NAME, models_dir=args.out_dir, precision=prec, warmup=0)
        pr = lambda A, m=m: m.predict_proba(A)[:, 1]  # noqa: E731
        probs = [capture_proba(c, pr) for c in tune_f + val]
        for name, o in ops.items():
            s = event_scores(tune_f + val, probs, FallDetectorParams(**o))
            res.setdefault(name, {})[prec] = {k: s[k] for k in ("tp", "fp", "falls", "f1")}
    print("tune + val event level:", res)
    print(f"int8 {entry['precisions']['int8']['size_bytes']} B, fp32 "
          f"{entry['precisions']['fp32']['size_bytes']} B; total {time.time() - t0:.0f} s")
    # record the event-level check in the manifest entry
    from models.toolchain import update_manifest

    entry.setdefault("extra", {})["event_level_tune_val"] = res
    update_manifest(args.out_dir or os.path.dirname(os.path.abspath(__file__)), MODEL_NAME, entry)
    return 0


if __name__ == "__main__":
    sys.exit(main())
