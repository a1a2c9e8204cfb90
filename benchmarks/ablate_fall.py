"""Why the shipped fall model is a 5-member ensemble on 40 features: ablations on the
tuning split of ``models/train_fall.py`` (never on held-out seeds).

Fits single MLPs (the ensemble's member recipe, :func:`models.train_fall.make_estimator`)
on the v3 features only (the first 33 columns) and on all 40 (v4, with the complex-change
features), and soft-voting ensembles of the first 5 and 10 seeds, then prints for each the
best tune + val event F1 (60 falls) at a given number of false events (false alarms on the
ordinary hours + false positives), over the operating-point grid of ``train_fall``, on the
first 10.2 tuning hours and on all 46.6. Also the window-level fall F1 on the val split.
``--features`` only prints how far the motion features rise above their noise floors in
the val split's fall windows and still windows (per-class medians and 90th percentiles).
The ablations fit v4's training set (fall captures 0–159, 320 falls). ``--more-data``
fits the shipped v5 recipe (ensemble of 5, 40 features, fall captures 0–399, 800 falls)
instead, then the same + 30 h of ordinary activity (seeds 66 000–66 119), and prints the
same table.

Usage::

    python benchmarks/ablate_fall.py --cache DIR     # ~11 MLP fits: ~20 min on 2 cores
    python benchmarks/ablate_fall.py --cache DIR --features     # seconds
    python benchmarks/ablate_fall.py --cache DIR --more-data    # 2 ensembles: ~50 min
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's models/

from models.train_fall import (  # noqa: E402
    FALL_OVERSAMPLE,
    ORDINARY_S,
    TRAIN_ORDINARY_SEEDS,
    TRAIN_SEEDS,
    TUNE_ORDINARY_EXTRA,
    TUNE_ORDINARY_SEEDS,
    TUNE_SEEDS,
    VAL_SEEDS,
    capture_features,
    choose_operating_point,
    make_estimator,
    stack,
)
from sensing.wifi.fall import CLASSES, FEATURE_NAMES  # noqa: E402

V3_COLUMNS = 33


def _fit(seed: int, X: np.ndarray, y: np.ndarray):
    member = make_estimator(n_members=1, n_jobs=None).estimators[0][1]
    member.set_params(mlpclassifier__random_state=seed)
    return member.fit(X, y)


#: The fall captures of v4's training set: the feature / ensemble ablations were run on
#: them (the shipped v5 trains on :data:`models.train_fall.TRAIN_SEEDS`, 0–399).
V4_TRAIN_SEEDS = range(0, 160)  # 160 × 240 s, 320 falls
#: ``--more-data``: ordinary activity beyond the shipped recipe's (disjoint from every split)
MORE_ORDINARY_SEEDS = range(66_000, 66_120)  # 120 × 900 s = 30 h


def _training_set(cache: str | None, falls: range = V4_TRAIN_SEEDS,
                  more_ordinary: range = range(0)) -> tuple[np.ndarray, np.ndarray]:
    """Training windows as ``models/train_fall`` builds them (fall windows oversampled):
    the captures of ``falls`` (240 s, 2 falls each), the training ordinary activity and
    ``more_ordinary`` (900 s each, no falls)."""
    caps = [capture_features(s, cache=cache) for s in falls]
    caps += [capture_features(s, duration_s=ORDINARY_S, falls=0, cache=cache)
             for s in [*TRAIN_ORDINARY_SEEDS, *more_ordinary]]
    X, y = stack(caps)
    fall = CLASSES.index("fall")
    rep = np.r_[np.arange(len(y)), np.repeat(np.flatnonzero(y == fall), FALL_OVERSAMPLE - 1)]
    return X[rep], y[rep]


def feature_levels(cache: str | None) -> int:
    """Print e^feature (multiples of the noise floor) of the log motion features in the
    val split's ``fall`` and ``still`` windows."""
    X, y = stack([capture_features(s, cache=cache) for s in VAL_SEEDS])
    names = ("peak_log", "fine_peak_log", "fast_peak_log", "cpeak_log", "cpost_max_log")
    for c in ("fall", "still"):
        sel = X[y == CLASSES.index(c)]
        for n in names:
            v = np.exp(sel[:, FEATURE_NAMES.index(n)])
            print(f"{c:<5} {n:<14} median {np.median(v):7.2f}x  90th pct "
                  f"{np.percentile(v, 90):7.2f}x  (n={len(v)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=None, metavar="DIR")
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--features", action="store_true",
                    help="only the feature levels of fall vs still windows (val split)")
    ap.add_argument("--more-data", action="store_true",
                    help="the shipped recipe fitted on more fall / ordinary training captures")
    args = ap.parse_args(argv)
    if args.features:
        return feature_levels(args.cache)
    from joblib import Parallel, delayed
    from sklearn.metrics import f1_score

    fall = CLASSES.index("fall")
    if args.more_data:
        variants = []
        for name, fall_seeds, ord_more in (
                ("ensemble of 5, 800 training falls (shipped v5)", TRAIN_SEEDS, range(0)),
                ("ensemble of 5, 800 training falls + 30 h more ordinary", TRAIN_SEEDS,
                 MORE_ORDINARY_SEEDS)):
            X, y = _training_set(args.cache, fall_seeds, ord_more)
            est = make_estimator(n_jobs=2).fit(X, y)
            variants.append((name, est.predict_proba))
    else:
        X, y = _training_set(args.cache)
        jobs = [(0, V3_COLUMNS)] + [(s, X.shape[1]) for s in range(args.members)]
        fitted = Parallel(n_jobs=2)(delayed(_fit)(s, X[:, :n], y) for s, n in jobs)
        v3, members = fitted[0], fitted[1:]

        def proba(models, n):
            return lambda Z: np.mean([m.predict_proba(Z[:, :n]) for m in models], axis=0)

        variants = [("single MLP, v3 features (33)", proba([v3], V3_COLUMNS)),
                    ("single MLP, v4 features (40)", proba(members[:1], X.shape[1])),
                    ("ensemble of 5, v4 features", proba(members[:5], X.shape[1])),
                    (f"ensemble of {args.members}, v4 features", proba(members, X.shape[1]))]
    falls = [capture_features(s, cache=args.cache) for s in list(TUNE_SEEDS) + list(VAL_SEEDS)]
    ord10 = [capture_features(s, duration_s=ORDINARY_S, falls=0, cache=args.cache)
             for s in TUNE_ORDINARY_SEEDS]
    extra = [capture_features(s, duration_s=ORDINARY_S, falls=0, rate_hz=rate, cache=args.cache)
             for seeds, rate in TUNE_ORDINARY_EXTRA for s in seeds]
    Xv, yv = stack(falls[len(TUNE_SEEDS):])
    for name, fn in variants:
        f1v = f1_score(yv == fall, fn(Xv).argmax(1) == fall)
        print(f"\n{name}: val window fall F1 {f1v:.4f}")
        for label, ords in (("10.2 h", ord10), ("46.6 h", ord10 + extra)):
            grid = choose_operating_point(falls, ords, lambda Z, fn=fn: fn(Z)[:, fall])["grid"]
            cells = []
            for k in (0, 1, 2, 3, 4):
                ok = [r for r in grid if r["ordinary_false_alarms"] + r["fp"] <= k]
                best = max(ok, key=lambda r: r["f1"]) if ok else None
                cells.append(f"<= {k}: {best['f1']:.3f} ({best['tp']}/60)" if best else
                             f"<= {k}: -")
            print(f"  {label} ordinary: best event F1 at false events " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
