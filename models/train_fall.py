"""Train the WiFi fall classifier on simulated CSI and ship it as int8 ONNX via the toolchain.

Reproducible (fixed seeds, single process)::

    python -m models.train_fall [--cache DIR]   # writes models/fall.*; see docs/fall.md

Data: the ``csi-activity`` body-kinematics simulator (sensing/simulate/csi_activity.py),
generated in memory with :func:`sensing.simulate.csi_activity.stream_activity` — the same
generator that writes the ``CSI_DATA`` files of ``ambisense simulate csi-activity`` — and
passed chunk by chunk through :class:`sensing.wifi.fall.FallFeatureExtractor`, exactly as
the ``wifi_fall`` pipeline does (with ``--cache`` the decimated packets and the features of
each capture are stored, so that a changed extractor does not need a new simulation). Each
capture draws its own room geometry, SNR, scatter strength, AGC behaviour, packet rate
(50–120 Hz) and loss (0–5 %).

Splits (disjoint seeds):

* train: seeds 0–399, 240 s each, 2 falls each (800 falls), plus 30 h of ordinary activity
  without falls (seeds 65 000–65 119, 900 s each) (model fitting, int8 calibration);
* tune: seeds 50 000–50 019 (40 falls) and 46 h of ordinary activity (seeds
  60 000–60 039 at 50–120 Hz, 61 000–61 071 at 50 Hz, 61 100–61 171 at 100 Hz): choose
  the event operating point (threshold, k of n windows or running mean, stillness) — together
  with the 20 falls of the val captures;
* val: seeds 100 000–100 009: the toolchain's held-out set (fp32 vs int8 gate, .val.npz).

The benchmark ``benchmarks/eval_fall.py`` reports on further unseen seeds (200 000+,
300 000+).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensing.frames import Frames
from sensing.simulate.csi_activity import (
    ALL_SC,
    ORDINARY,
    Channel,
    make_script,
    script_intervals,
    stream_activity,
)
from sensing.wifi.fall import (
    CLASSES,
    FEATURE_NAMES,
    FEATURE_VERSION,
    GRID_HZ,
    OPERATING_POINT_KEYS,
    POST_S,
    WINDOW_S,
    FallDetector,
    decimate_mask,
    extract_features,
    window_labels,
)

_F_PEAK, _F_T_PEAK, _F_RISE = (FEATURE_NAMES.index(k) for k in ("peak_log", "t_peak_s", "rise_s"))

SEED = 0
#: v5: 400 × 240 s, 800 falls (v4: seeds 0–159, 320 falls; 2.5× the fall windows raised
#: the val window fall F1 from 0.915 to 0.963 and the tune + val event F1 at the default
#: point's budget from 0.65 to 0.80: benchmarks/ablate_fall.py --more-data)
TRAIN_SEEDS = range(0, 400)
TUNE_SEEDS = range(50_000, 50_020)  # 40 falls
TUNE_ORDINARY_SEEDS = range(60_000, 60_040)  # 40 × 900 s = 10 h
#: More tuning hours of ordinary activity at fixed packet rates (v4): 10 h cannot tell
#: 1 false alarm per day from 4 (0 events in 10 h allow up to 7/day at 95 %).
TUNE_ORDINARY_EXTRA: tuple[tuple[range, float], ...] = (
    (range(61_000, 61_072), 50.0), (range(61_100, 61_172), 100.0))  # 2 × 18 h
#: Named operating points: the false alarms per day of tuning hours each may spend
#: (rounded to whole events: 2 and 4 in 46.6 h). ``default`` holds the target (<= 1 per day);
#: ``sensitive`` finds more falls for twice the false alarms (docs/fall.md, Results).
OPERATING_POINTS: dict[str, float] = {"default": 1.0, "sensitive": 2.0}
#: Members of the soft-voting ensemble (MLPs differing only in their seed): one MLP's
#: fall probabilities vary with its seed by more than the operating point can absorb.
N_MEMBERS = 5
#: Ordinary activity (no falls) added to the training set: hard negatives (sit-downs,
#: lie-downs, ends of walks followed by stillness).
TRAIN_ORDINARY_SEEDS = range(65_000, 65_120)  # 120 × 900 s = 30 h
VAL_SEEDS = range(100_000, 100_010)
CAPTURE_S = 240.0
FALLS_PER_CAPTURE = 2
ORDINARY_S = 900.0
FALL_OVERSAMPLE = 5
#: A window is ``fall`` when the fall's impact is at least this long before the end of its
#: burst window (the post period then adds 10 s: the person is seen to stay down).
LABEL_POST_S = 4.0
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)
CONSECUTIVE = (4, 6, 8, 10, 12, 14, 16)
#: Run lengths (windows) in which ``consecutive`` windows must reach the threshold
#: (None = ``consecutive`` in a row).
WITHIN = (None, 16, 20, 24, 32)
#: v6: the detector may threshold the mean fall probability of the last ``average``
#: windows instead of each window (1 = the k-of-n grid above); with ``average`` > 1 the
#: grid is MEAN_THRESHOLDS × MEAN_CONSECUTIVE (in a row) × STILL_LOGS.
AVERAGES = (1, 4, 6, 8, 10, 12, 16)
MEAN_THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
MEAN_CONSECUTIVE = (1, 2, 4)
#: Post-fall stillness confirmation: ``peak_log`` limits tried (None = no confirmation),
#: over ``STILL_S`` seconds starting ``SETTLE_S`` after the onset (FallDetector).
STILL_LOGS = (None, 2.0)
STILL_S = 12.0
SETTLE_S = 4.0
#: A detection matches a true fall when its onset is within [start - 3 s, impact + 3 s].
MATCH_S = 3.0


def sim_chunks(seed: int, duration_s: float, falls: int, *, rate_hz: float | None = None,
               loss: float | None = None) -> tuple[Iterator[Frames], list[dict[str, Any]],
                                                    dict[str, Any]]:
    """A simulated capture as a stream of Frames, its truth intervals and its settings.

    ``rate_hz`` / ``loss`` default to per-seed draws (50–120 Hz, 0–5 %).
    """
    rng = np.random.default_rng(seed)
    channel = Channel.random(rng)
    segments = make_script(rng, duration_s, activities=ORDINARY, falls=falls)
    rate = float(rng.uniform(50.0, 120.0)) if rate_hz is None else float(rate_hz)
    lost = float(rng.uniform(0.0, 0.05)) if loss is None else float(loss)

    def gen() -> Iterator[Frames]:
        for t, csi in stream_activity(segments, channel, rng, rate_hz=rate, loss=lost):
            yield Frames(csi[:, :, None, None], t, None, "wifi_csi", f"sim-{seed}",
                         subcarriers=ALL_SC)

    info = {"seed": seed, "rate_hz": rate, "loss": lost, "snr_db": channel.snr_db,
            "duration_s": segments[-1].end_s}
    return gen(), script_intervals(segments), info


def _cache_name(cache: str, kind: str, seed: int, duration_s: float, falls: int,
                kw: dict[str, Any], tag: str = "") -> str:
    opt = "".join(f"-{k}{v}" for k, v in sorted(kw.items()) if v is not None)
    return os.path.join(cache, f"{kind}-{seed}-{int(duration_s)}-{falls}{opt}{tag}.npz")


def raw_capture(seed: int, duration_s: float = CAPTURE_S, falls: int = FALLS_PER_CAPTURE,
                *, cache: str | None = None, **kw) -> Iterator[Frames]:
    """The decimated packets of a simulated capture (at most one per 20 ms bin, exactly
    what :class:`FallFeatureExtractor` keeps) as a stream of Frames.

    With ``cache`` they are stored once (``raw-<seed>-<duration>-<falls>.npz``: times and
    int8 I/Q, ~25 MB per simulated hour), so that a changed feature computation does not
    need the simulation again.
    """
    path = _cache_name(cache, "raw", seed, duration_s, falls, kw) if cache else None
    if path and os.path.exists(path):
        z = np.load(path)
        t, iq = z["t"], z["iq"]
    else:
        chunks, _, _ = sim_chunks(seed, duration_s, falls, **kw)
        ts, cs = [], []
        last = None
        for fr in chunks:
            keep, last = decimate_mask(fr.times_s, last)
            ts.append(fr.times_s[keep])
            cs.append(np.asarray(fr.data)[keep, :, 0, 0])
        t = np.concatenate(ts)
        c = np.concatenate(cs)
        iq = np.stack([c.real, c.imag], axis=-1).astype(np.int8)
        if path:
            os.makedirs(cache, exist_ok=True)
            tmp = path + ".tmp.npz"
            np.savez(tmp, t=t, iq=iq)
            os.replace(tmp, path)
    csi = (iq[..., 0].astype(np.float32) + 1j * iq[..., 1].astype(np.float32))
    step = 500
    return (Frames(csi[i:i + step, :, None, None], t[i:i + step], None, "wifi_csi",
                   f"sim-{seed}", subcarriers=ALL_SC) for i in range(0, len(t), step))


def capture_features(seed: int, duration_s: float = CAPTURE_S, falls: int = FALLS_PER_CAPTURE,
                     *, cache: str | None = None, **kw) -> dict[str, Any]:
    """Features, window labels and truth of one simulated capture.

    ``cache``: optional directory of per-capture feature files
    (``fall-<seed>-<duration>-<falls>-<feature hash>.npz``) and decimated packets
    (:func:`raw_capture`); a hit skips the extraction / the simulation (the truth is
    re-derived from the seeded script, which is cheap). Window labels describe the burst
    window (``[end - 20 s, end - 10 s]``; :func:`sensing.wifi.fall.window_labels`).
    """
    _, intervals, info = sim_chunks(seed, duration_s, falls, **kw)
    path = None
    if cache:
        tag = hashlib.sha256((FEATURE_VERSION + " " + " ".join(FEATURE_NAMES)).encode())
        path = _cache_name(cache, "fall", seed, duration_s, falls, kw,
                           "-" + tag.hexdigest()[:8])
    if path and os.path.exists(path):
        z = np.load(path)
        ends, X = z["ends"], z["X"]
    else:
        ends, X = extract_features(raw_capture(seed, duration_s, falls, cache=cache, **kw))
        if path:
            os.makedirs(cache, exist_ok=True)
            tmp = path + ".tmp.npz"
            np.savez(tmp, ends=ends, X=X)
            os.replace(tmp, path)
    return {"ends": ends, "X": X,
            "labels": window_labels(intervals, ends - POST_S, post_s=LABEL_POST_S),
            "intervals": intervals, **info}


def stack(captures: Iterable[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Training matrix of captures (``fall_partial`` windows dropped), labels as indices."""
    Xs, ys = [], []
    for c in captures:
        keep = np.array([lab != "fall_partial" for lab in c["labels"]])
        Xs.append(c["X"][keep])
        ys.append([CLASSES.index(lab) for lab, k in zip(c["labels"], keep, strict=True) if k])
    return np.concatenate(Xs), np.concatenate(ys).astype(np.int64)


def match_events(events, intervals: list[dict[str, Any]],
                 delays: list[float] | None = None) -> tuple[int, int, int]:
    """(true positives, false positives, missed falls) of fall events against the truth;
    ``delays`` (optional) collects, per matched event, its decision time minus the fall's
    impact (s)."""
    falls = [iv for iv in intervals if iv["label"] == "fall"]
    used: set[int] = set()
    fp = 0
    for ev in events:
        hit = [i for i, f in enumerate(falls) if i not in used
               and f["start_s"] - MATCH_S <= ev.onset_s <= f["impact_s"] + MATCH_S]
        if hit:
            used.add(hit[0])
            if delays is not None:
                delays.append(ev.detect_s - falls[hit[0]]["impact_s"])
        else:
            fp += 1
    return len(used), fp, len(falls) - len(used)


def events_for(capture: dict[str, Any], proba: np.ndarray, threshold: float,
               consecutive: int, method: str = "model", still_log: float | None = None,
               within: int | None = None, average: int = 1):
    """Run the detector's decision logic on a capture's precomputed window probabilities
    (``still_log``: stillness confirmation over ``STILL_S`` s, None = off; ``within``: run
    length, None = ``consecutive``; ``average``: windows averaged before the threshold)."""
    still = {} if still_log is None else {"still_s": STILL_S, "still_log": still_log,
                                          "settle_s": SETTLE_S}
    det = FallDetector(threshold=threshold, consecutive=consecutive, within=within,
                       average=average, **still)
    det.method = method
    return det.step(capture["ends"], capture["X"], proba)


def running_mean(p: np.ndarray, n: int) -> np.ndarray:
    """The detector's running mean of the last ``n`` window probabilities (the first
    ``n - 1`` windows divided by ``n`` too, as :class:`FallDetector` does)."""
    c = np.r_[0.0, np.cumsum(np.asarray(p, float))]
    k = np.arange(len(p))
    return (c[k + 1] - c[np.maximum(k - n + 1, 0)]) / n


@dataclass
class FastEvent:
    """What :func:`fast_events` reports of an event (the fields :func:`match_events` reads)."""

    onset_s: float
    detect_s: float


def fast_events(capture: dict[str, Any], proba: np.ndarray, threshold: float,
                consecutive: int, still_log: float | None = None, within: int | None = None,
                average: int = 1, refractory_s: float = 30.0,
                warmup_s: float = 20.0) -> list[FastEvent]:
    """The events :func:`events_for` gives (same onsets and decision times), computed with
    numpy over runs instead of window by window: the operating-point search runs the
    decision ~600 times over 46 h of windows. ``tests/test_wifi_fall.py`` checks it
    against :meth:`FallDetector.step`."""
    ends = np.asarray(capture["ends"], float)
    X = capture["X"]
    score = running_mean(proba, average) if average > 1 else np.asarray(proba, float)
    high = score >= threshold
    n = len(ends)
    within = max(int(within or consecutive), consecutive)
    cum = np.r_[0, np.cumsum(high)]
    win_s = WINDOW_S + POST_S
    out: list[FastEvent] = []
    last_on = -np.inf
    r = int(np.searchsorted(ends, warmup_s))  # the first input fed to the debouncer
    while r < n:
        idx = np.arange(r, n)
        cnt = cum[idx + 1] - cum[np.maximum(r, idx - within + 1)]
        ok = np.flatnonzero((cnt >= consecutive) & (ends[idx] - last_on >= refractory_s))
        if not len(ok):
            break
        i = int(idx[ok[0]])
        lo_w = max(r, i - within + 1)
        j = lo_w + int(np.argmax(high[lo_w:i + 1]))  # the first high window of the run
        onset = round(float(ends[j] - win_s + X[j, _F_T_PEAK] - X[j, _F_RISE]), 3)
        r = i + 1
        if still_log is None:
            out.append(FastEvent(onset, float(ends[i])))
            last_on = float(ends[i])
            continue
        lo, hi = onset + SETTLE_S, onset + SETTLE_S + STILL_S
        k = r
        while k < n:  # the pending candidate consumes windows until confirmed or dropped
            t = float(ends[k])
            if t - win_s >= lo - 1e-6 and X[k, _F_PEAK] > still_log:
                break
            if t >= hi - 1e-6:
                out.append(FastEvent(onset, t))
                last_on = t
                break
            k += 1
        r = k + 1
    return out


def operating_point_grid() -> list[tuple[int, float, int, int | None, float | None]]:
    """Every ``(average, threshold, consecutive, within, still_log)`` that
    :func:`choose_operating_point` tries."""
    grid = []
    for sl in STILL_LOGS:
        for thr in THRESHOLDS:
            for cons in CONSECUTIVE:
                for wi in WITHIN:
                    if wi is None or wi > cons:
                        grid.append((1, thr, cons, wi, sl))
        for avg in AVERAGES:
            if avg > 1:
                grid += [(avg, thr, cons, None, sl) for thr in MEAN_THRESHOLDS
                         for cons in MEAN_CONSECUTIVE]
    return grid


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def choose_operating_point(fall_caps, ordinary_caps, proba_fn,
                           max_false_per_day: float = OPERATING_POINTS["default"]
                           ) -> dict[str, Any]:
    """Best decision setting of :func:`operating_point_grid` on the tuning split: false
    events (false alarms on the ordinary-activity hours + false positives on the fall
    captures) within ``max_false_per_day`` per day of ordinary hours, rounded to whole
    events (else fewest), then highest event F1, then fewest windows.

    An ordinary capture whose (running-mean) fall probability never reaches the threshold
    after the warm-up cannot raise an event; it is not run through the detector (same
    result, much faster)."""
    pf = [proba_fn(c["X"]) for c in fall_caps]
    po = [proba_fn(c["X"]) for c in ordinary_caps]
    warm = FallDetector().warmup_s
    peak = {avg: np.array([float(np.max(running_mean(p, avg)[c["ends"] >= warm], initial=0.0))
                           for c, p in zip(ordinary_caps, po, strict=True)])
            for avg in AVERAGES}
    hours = sum(c["duration_s"] for c in ordinary_caps) / 3600
    allowed = round(max_false_per_day * hours / 24)
    best = None
    table = []
    for avg, thr, cons, wi, sl in operating_point_grid():
        kw = {"still_log": sl, "within": wi, "average": avg}
        tp = fp = fn = 0
        for c, p in zip(fall_caps, pf, strict=True):
            a, b, m = match_events(fast_events(c, p, thr, cons, **kw), c["intervals"])
            tp, fp, fn = tp + a, fp + b, fn + m
        fa = sum(len(fast_events(ordinary_caps[i], po[i], thr, cons, **kw))
                 for i in np.flatnonzero(peak[avg] >= thr))
        f1 = prf(tp, fp, fn)[2]
        key = (max(fa + fp - allowed, 0), -round(f1, 3), avg + cons, wi or cons,
               sl is not None)
        table.append({"average": avg, "threshold": thr, "consecutive": cons, "within": wi,
                      "still_log": sl, "tp": tp, "fp": fp, "fn": fn, "f1": round(f1, 4),
                      "ordinary_false_alarms": fa})
        if best is None or key < best[0]:
            best = (key, avg, thr, cons, wi, sl, f1, fa, tp, fp, fn)
    _, avg, thr, cons, wi, sl, f1, fa, tp, fp, fn = best
    op: dict[str, Any] = {"threshold": thr, "consecutive": cons, "refractory_s": 30.0}
    if avg > 1:
        op["average"] = avg
    if wi is not None:
        op["within"] = wi
    if sl is not None:
        op.update(still_s=STILL_S, still_log=sl, settle_s=SETTLE_S)
    return {**op, "tune_event_f1": round(f1, 4), "tune_tp_fp_fn": [tp, fp, fn],
            "tune_falls": tp + fn, "tune_ordinary_false_alarms": fa,
            "tune_false_events_allowed": allowed, "tune_max_false_per_day": max_false_per_day,
            "tune_ordinary_hours": round(hours, 2), "grid": table}


def make_estimator(n_members: int = N_MEMBERS, n_jobs: int | None = 2):
    """The shipped classifier: soft vote (mean probability) of ``n_members`` pipelines of
    standardisation + a small MLP (int8-friendly MatMuls), seeds ``SEED .. SEED + n - 1``.

    ``flatten_transform=False``: skl2onnx converts only that form of ``VotingClassifier``.
    """
    from sklearn.ensemble import VotingClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    members = [(f"mlp{i}", make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 32), alpha=1e-3, max_iter=800,
                                        random_state=SEED + i))) for i in range(n_members)]
    return VotingClassifier(members, voting="soft", flatten_transform=False, n_jobs=n_jobs)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=None, help="models directory (default: models/)")
    ap.add_argument("--cache", default=None, metavar="DIR",
                    help="reuse/store per-capture features here (same seeds -> same features)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny run for smoke testing (NOT the shipped model)")
    ap.add_argument("--retune", action="store_true",
                    help="keep the written model; only choose its operating points again "
                         "(tune + val, tune ordinary hours) and update its manifest entry")
    args = ap.parse_args(argv)
    if args.retune:
        return retune(args.cache, args.out_dir)
    train, tune, tune_ord, val = TRAIN_SEEDS, TUNE_SEEDS, TUNE_ORDINARY_SEEDS, VAL_SEEDS
    train_ord = TRAIN_ORDINARY_SEEDS
    if args.quick:
        train, tune, tune_ord, val = range(0, 6), range(50_000, 50_002), range(60_000, 60_001), \
            range(100_000, 100_002)
        train_ord = range(65_000, 65_001)
    t0 = time.time()
    caps = []
    for i, s in enumerate(train):
        caps.append(capture_features(s, cache=args.cache))
        if i % 10 == 9:
            _progress(f"train capture {i + 1}/{len(train)} ({time.time() - t0:.0f} s)")
    caps += [capture_features(s, duration_s=ORDINARY_S, falls=0, cache=args.cache)
             for s in train_ord]
    _progress(f"train ordinary captures {len(train_ord)} ({time.time() - t0:.0f} s)")
    X, y = stack(caps)
    fall = CLASSES.index("fall")
    rep = np.r_[np.arange(len(y)), np.repeat(np.flatnonzero(y == fall), FALL_OVERSAMPLE - 1)]
    Xtr, ytr = X[rep], y[rep]
    _progress(f"train windows {len(y)} (+{len(rep) - len(y)} oversampled falls); "
              f"class counts {np.bincount(y, minlength=len(CLASSES)).tolist()}")
    est = make_estimator(n_members=2 if args.quick else N_MEMBERS)
    est.fit(Xtr, ytr)
    tune_caps = [capture_features(s, cache=args.cache) for s in tune]
    ord_caps = [capture_features(s, duration_s=ORDINARY_S, falls=0, cache=args.cache)
                for s in tune_ord]
    if not args.quick:
        ord_caps += [capture_features(s, duration_s=ORDINARY_S, falls=0, rate_hz=rate,
                                      cache=args.cache)
                     for seeds, rate in TUNE_ORDINARY_EXTRA for s in seeds]
    val_caps = [capture_features(s, cache=args.cache) for s in val]
    # the operating points are chosen on the tune + val fall captures (60 falls; val is the
    # toolchain's int8 gate set, not the benchmark's held-out seeds) and 46 h of ordinary
    # activity
    ops = {name: choose_operating_point(tune_caps + val_caps, ord_caps,
                                        lambda Z: est.predict_proba(Z)[:, fall], per_day)
           for name, per_day in OPERATING_POINTS.items()}
    for name, op in ops.items():
        _progress(f"operating point {name}: {[(k, op[k]) for k in op if k != 'grid']}")
    Xv, yv = stack(val_caps)
    from models.toolchain import (
        MODELS_DIR,
        QuantizationAccuracyError,
        build_model,
        update_manifest,
    )

    # Quantisation settings of QUANT_ATTEMPTS in order (static QDQ per-channel first).
    # Besides the toolchain's gate (window accuracy), the int8 model must keep the fall
    # class's window F1 on the val split and the event F1 on the operating-point captures
    # (tune + val) at every operating point within 1 point of fp32 (the done criterion);
    # else the next setting; if none does, the setting with the smallest drop is rebuilt
    # and shipped.

    tried: list[tuple[float, int]] = []
    entry = ev = None
    for attempt, qopts in enumerate(QUANT_ATTEMPTS):
        try:
            entry = _build(build_model, est, Xtr, ytr, Xv, yv, train, tune, tune_ord, val,
                           ops, args, qopts, train_ord)
        except QuantizationAccuracyError as exc:
            _progress(f"quantisation attempt {attempt + 1} {qopts or 'defaults'} refused: {exc}")
            entry = None
            continue
        f32, f8 = _fall_f1(args.out_dir, "fp32", Xv, yv), _fall_f1(args.out_dir, "int8", Xv, yv)
        ev = {name: _event_comparison(args.out_dir, tune_caps + val_caps, ord_caps, op)
              for name, op in ops.items()}
        ev_drop = max(e["f1_drop_points"] for e in ev.values())
        drop = max(f32 - f8, ev_drop / 100)
        _progress(f"attempt {attempt + 1} {qopts or 'defaults'}: val fall F1 fp32 {f32:.4f} "
                  f"int8 {f8:.4f}; event F1 drop {ev_drop:.2f} points")
        tried.append((drop, attempt))
        if drop <= 0.01:
            break
    else:
        if not tried:
            raise RuntimeError("no quantisation setting passed the toolchain's gate")
        best = min(tried)[1]
        _progress(f"WARNING: no quantisation setting keeps the fall F1 within 1 point; "
                  f"shipping attempt {best + 1} {QUANT_ATTEMPTS[best] or 'defaults'}")
        entry = _build(build_model, est, Xtr, ytr, Xv, yv, train, tune, tune_ord, val,
                       ops, args, QUANT_ATTEMPTS[best], train_ord)
        ev = {name: _event_comparison(args.out_dir, tune_caps + val_caps, ord_caps, op)
              for name, op in ops.items()}
    # event-level int8 vs fp32 on the operating-point captures, stored in the manifest
    # entry's extra through the toolchain
    entry = {**entry, "extra": {**entry["extra"], "event_level": ev}}
    update_manifest(args.out_dir or MODELS_DIR, "fall", entry)
    _progress(f"event level on tune+val: {ev}")
    m = entry["metrics"]["heldout"]
    _progress(f"shipped fall model: {GATE_METRIC} fp32 {m['fp32']['score']:.4f} int8 "
              f"{m['int8']['score']:.4f} (drop {m['drop']:.4f}) in {time.time() - t0:.0f} s")
    return 0


def tuning_captures(cache: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The operating-point captures: tune + val fall captures, tune ordinary hours."""
    falls = [capture_features(s, cache=cache) for s in [*TUNE_SEEDS, *VAL_SEEDS]]
    ords = [capture_features(s, duration_s=ORDINARY_S, falls=0, cache=cache)
            for s in TUNE_ORDINARY_SEEDS]
    ords += [capture_features(s, duration_s=ORDINARY_S, falls=0, rate_hz=rate, cache=cache)
             for seeds, rate in TUNE_ORDINARY_EXTRA for s in seeds]
    return falls, ords


def retune(cache: str | None, out_dir: str | None = None) -> int:
    """Choose the operating points of the written ``fall`` model again (same rule and
    captures as :func:`main`, on its fp32 ONNX graph = the fitted ensemble) and store them
    in its manifest entry (``extra.operating_point(s)``, ``extra.tuning``,
    ``extra.event_level``); the model files and their hashes are not touched."""
    from agent.inference import load_manifest, load_model
    from models.toolchain import MODELS_DIR, update_manifest

    t0 = time.time()
    model = load_model("fall", models_dir=out_dir, precision="fp32")
    fi = model.labels.index("fall")
    falls, ords = tuning_captures(cache)
    _progress(f"tuning captures loaded ({time.time() - t0:.0f} s)")
    ops = {name: choose_operating_point(falls, ords,
                                        lambda Z: model.predict_proba(Z)[:, fi], per_day)
           for name, per_day in OPERATING_POINTS.items()}
    for name, op in ops.items():
        _progress(f"operating point {name}: {[(k, op[k]) for k in op if k != 'grid']}")
    ev = {name: _event_comparison(out_dir, falls, ords, op) for name, op in ops.items()}
    entry = dict(load_manifest(out_dir)["models"]["fall"])
    entry["extra"] = {**entry["extra"],
                      "operating_point": detector_options(ops["default"]),
                      "operating_points": {n: detector_options(o) for n, o in ops.items()},
                      "tuning": {n: {k: v for k, v in o.items() if k != "grid"}
                                 for n, o in ops.items()},
                      "event_level": ev}
    update_manifest(out_dir or MODELS_DIR, "fall", entry)
    _progress(f"event level on tune+val: {ev} ({time.time() - t0:.0f} s)")
    return 0


#: Metric of the toolchain's int8-vs-fp32 gate. Window accuracy over the 7 classes; the
#: fall-class F1 of int8 vs fp32 (the done criterion) is reported by benchmarks/eval_fall.py.
#: (macro F1 over 7 partly confusable classes flips by > 1 point on a few boundary windows.)
GATE_METRIC = "accuracy"
#: Quantisation settings tried in order (static QDQ int8 first, dynamic int8 last; main()).
QUANT_ATTEMPTS: tuple[dict[str, Any], ...] = (
    {"per_channel": True}, {}, {"per_channel": True, "calibration_size": 4000},
    {"quant_mode": "dynamic"})


def _event_comparison(out_dir: str | None, fall_caps, ordinary_caps,
                      op: dict[str, Any]) -> dict[str, Any]:
    """Event-level precision/recall/F1 and ordinary-activity false alarms of the written
    fp32 and int8 models at the operating point ``op``."""
    from agent.inference import load_model

    still = op.get("still_log")
    out: dict[str, Any] = {"captures": "tune + val fall captures; tune ordinary hours",
                           "falls": int(op["tune_falls"]),
                           "ordinary_hours": op["tune_ordinary_hours"]}
    for precision in ("fp32", "int8"):
        model = load_model("fall", models_dir=out_dir, precision=precision)
        fi = model.labels.index("fall")
        tp = fp = fn = 0
        for c in fall_caps:
            a, b, m = match_events(events_for(c, model.predict_proba(c["X"])[:, fi],
                                              op["threshold"], op["consecutive"],
                                              still_log=still, within=op.get("within"),
                                              average=op.get("average", 1)),
                                   c["intervals"])
            tp, fp, fn = tp + a, fp + b, fn + m
        fa = sum(len(events_for(c, model.predict_proba(c["X"])[:, fi], op["threshold"],
                                op["consecutive"], still_log=still, within=op.get("within"),
                                average=op.get("average", 1)))
                 for c in ordinary_caps)
        p, r, f = prf(tp, fp, fn)
        out[precision] = {"tp": tp, "fp": fp, "fn": fn, "precision": round(p, 4),
                          "recall": round(r, 4), "f1": round(f, 4),
                          "ordinary_false_alarms": fa}
    out["f1_drop_points"] = round(100 * (out["fp32"]["f1"] - out["int8"]["f1"]), 2)
    return out


def _fall_f1(out_dir: str | None, precision: str, X: np.ndarray, y: np.ndarray) -> float:
    """Fall-class F1 of a written model on (X, y)."""
    from sklearn.metrics import f1_score

    from agent.inference import load_model

    model = load_model("fall", models_dir=out_dir, precision=precision)
    fall = model.labels.index("fall")
    return float(f1_score(y == fall, model.predict_proba(X).argmax(1) == fall))


def detector_options(op: dict[str, Any]) -> dict[str, Any]:
    """The :class:`FallDetector` options of a chosen operating point."""
    return {k: op[k] for k in OPERATING_POINT_KEYS if k in op}


def _build(build_model, est, Xtr, ytr, Xv, yv, train, tune, tune_ord, val, ops, args, qopts,
           train_ord):
    return build_model(
        "fall", est, Xtr, ytr, Xv, yv, labels=list(CLASSES), feature_names=list(FEATURE_NAMES),
        fs_hz=GRID_HZ, window_s=WINDOW_S + POST_S,
        training_data={
            "source": "csi-activity body-kinematics simulator (sensing/simulate/csi_activity.py)",
            "train_seeds": [train.start, train.stop - 1], "tune_seeds": [tune.start, tune.stop - 1],
            "tune_ordinary_seeds": [tune_ord.start, tune_ord.stop - 1],
            "tune_ordinary_extra": [{"seeds": [r.start, r.stop - 1], "packet_rate_hz": hz}
                                    for r, hz in TUNE_ORDINARY_EXTRA],
            "train_ordinary_seeds": [train_ord.start, train_ord.stop - 1],
            "ordinary_capture_s": ORDINARY_S,
            "operating_point_on": "tune + val fall captures, tune ordinary hours",
            "val_seeds": [val.start, val.stop - 1], "capture_s": CAPTURE_S,
            "falls_per_capture": FALLS_PER_CAPTURE, "packet_rate_hz": [50, 120],
            "fall_oversample": FALL_OVERSAMPLE,
            "labels": "window_labels() of the burst window (the first 10 s of the 20 s span): "
                      "fall = descent inside it and >= 4 s after impact (>= 14 s before "
                      "the span's end)",
            "features": f"{FEATURE_VERSION}: one packet per 20 ms bin, 10 s burst window "
                        f"+ {POST_S:.0f} s post period, amplitude + complex (phase-aligned) "
                        f"change",
        },
        metric=GATE_METRIC, seed=SEED, out_dir=args.out_dir,
        description="WiFi CSI fall vs walk/sit/stand up/lie down/pick up/still: 10 s burst "
                    "window + 10 s post period",
        # ``operating_point``: the default one (what a pipeline without the
        # ``operating_point`` option uses; the only one of models before v4.1)
        extra={"operating_point": detector_options(ops["default"]),
               "operating_points": {name: detector_options(op) for name, op in ops.items()},
               "tuning": {name: {k: v for k, v in op.items() if k != "grid"}
                          for name, op in ops.items()},
               "quick": bool(args.quick)},
        **qopts,
    )


if __name__ == "__main__":
    raise SystemExit(main())
