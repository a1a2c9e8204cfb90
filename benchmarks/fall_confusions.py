"""What the shipped fall model confuses, on the tuning split (never on held-out seeds).

For the tune + val fall captures and the tune ordinary-activity hours of
``models/train_fall.py``, the shipped int8 model's P(fall) is averaged over ``--k``
consecutive windows (0.5 s apart). Prints, per threshold, the share of falls whose
sustained P(fall) reaches it (within 30 s after impact) and the number of ordinary captures
in which it does, then the ordinary activities behind every sustained P(fall) ≥ 0.8, and how
fall-like the features of those windows are: the share of their 40 features inside the
10th–90th percentile range of the fall windows (tune + val), against ordinary windows.

Usage::

    python benchmarks/fall_confusions.py --cache /tmp/fallraw3     # cached features: ~5 s
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's models/

from agent.inference import load_model  # noqa: E402
from models.train_fall import (  # noqa: E402
    ORDINARY_S,
    TUNE_ORDINARY_SEEDS,
    TUNE_SEEDS,
    VAL_SEEDS,
    capture_features,
    stack,
)
from sensing.wifi.fall import CLASSES, POST_S  # noqa: E402


def sustained(p: np.ndarray, k: int) -> np.ndarray:
    """Mean of ``k`` consecutive window probabilities (one value per complete run)."""
    return np.convolve(p, np.ones(k) / k, mode="valid")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", help="feature cache of models/train_fall.py")
    ap.add_argument("--k", type=int, default=10, help="windows averaged (default 10 = 5 s)")
    args = ap.parse_args(argv)
    model = load_model("fall")
    fi = CLASSES.index("fall")
    falls = [capture_features(s, cache=args.cache) for s in [*TUNE_SEEDS, *VAL_SEEDS]]
    ords = [capture_features(s, ORDINARY_S, 0, cache=args.cache) for s in TUNE_ORDINARY_SEEDS]
    k = args.k
    fall_peak = []
    for c in falls:
        s = sustained(model.predict_proba(c["X"])[:, fi], k)
        ends = c["ends"][k - 1:]
        for iv in c["intervals"]:
            if iv["label"] == "fall":
                sel = (ends >= iv["impact_s"]) & (ends <= iv["impact_s"] + 30)
                fall_peak.append(s[sel].max() if sel.any() else 0.0)
    ord_s = [sustained(model.predict_proba(c["X"])[:, fi], k) for c in ords]
    hours = len(ords) * ORDINARY_S / 3600
    fp = np.array(fall_peak)
    print(f"{len(fp)} falls, {hours:.1f} h of ordinary activity; P(fall) averaged over {k} "
          f"windows")
    for thr in (0.5, 0.6, 0.7, 0.8, 0.9):
        n_ord = sum(int(s.max() >= thr) for s in ord_s)
        print(f"  >= {thr:.1f}: falls {np.mean(fp >= thr):.3f}, ordinary captures {n_ord}")
    print("\nordinary activity behind sustained P(fall) >= 0.8 (burst window = the first "
          f"10 s of the {10 + POST_S:g} s span):")
    Xf, yf = stack(falls)
    lo, hi = np.percentile(Xf[yf == fi], [10, 90], axis=0)

    def fall_like(x: np.ndarray) -> float:
        return float(np.mean((x >= lo) & (x <= hi)))

    for c, s in zip(ords, ord_s, strict=True):
        i = int(np.argmax(s))
        if s[i] < 0.8:
            continue
        burst = c["ends"][i + k - 1] - 10 - POST_S
        acts = [f"{iv['label']} {iv['start_s']:.1f}-{iv['end_s']:.1f} s"
                for iv in c["intervals"]
                if iv["end_s"] >= burst - 3 and iv["start_s"] <= burst + 10]
        print(f"  {s[i]:.3f}  burst window from {burst:.1f} s: {', '.join(acts)}; "
              f"{fall_like(c['X'][i + k - 1]):.0%} of its features fall-like")
    others = np.concatenate([c["X"][::20] for c in ords])
    print(f"(fall-like features of ordinary windows: median "
          f"{np.median([fall_like(x) for x in others]):.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
