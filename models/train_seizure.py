"""Train the EEG seizure classifier on Bonn odd segments; ship it as int8 ONNX via the toolchain.

Run from the repository root::

    python -m models.train_seizure [--bonn ../shared/data/eeg/bonn]

Steps (fixed seed, deterministic):

1. Window features (4 s, 1 s hop; :mod:`sensing.eeg.features`) of every Bonn segment, computed
   by the same streaming path the detector uses at run time.
2. Model: ``StandardScaler`` + ``MLPClassifier(16)``, trained on the **odd** segments of sets
   A–E (ABCD = 0, E = 1), ictal windows weighted ×4 (class balance).
3. Operating points tuned on odd data only: the segment threshold maximises the balanced
   accuracy of out-of-fold (5-fold, grouped by segment) predictions; the detector threshold
   maximises event F1 on long recordings concatenated from odd segments (ties: the middle
   of the best plateau).
4. ``models.toolchain.build_model`` exports fp32 + static int8 ONNX, gates int8 against fp32
   on the **even** windows, and writes the manifest entry.
5. Final figures with the shipped **int8** model on the even segments: A vs E and ABCD vs E
   accuracy / AUC, and event scores (SzCORE) on long recordings concatenated from even
   segments. They go into the manifest entry (``extra``) and are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from sensing.eeg.evaluate import long_recordings, score_long, segment_features, segment_scores
from sensing.eeg.features import FEATURE_NAMES
from sensing.formats.eeg_text import BONN_FS_HZ
from sensing.formats.eeg_text.bonn import bonn_segments

SEED = 0
WINDOW_S = 4.0
HOP_S = 1.0
ICTAL_WEIGHT = 4.0
THRESHOLD_GRID = np.round(np.arange(0.1, 0.91, 0.05), 2)
DETECTOR_GRID = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
REPO = Path(__file__).resolve().parents[1]
DEFAULT_BONN = REPO.parent / "shared" / "data" / "eeg" / "bonn"


def make_classifier():
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(),
                         MLPClassifier((16,), alpha=0.1, max_iter=1000, random_state=SEED))


def fit(X: np.ndarray, y: np.ndarray):
    w = np.where(y == 1, ICTAL_WEIGHT, 1.0)
    return make_classifier().fit(X, y, mlpclassifier__sample_weight=w)


def oof_threshold(train) -> tuple[float, dict]:
    """Segment threshold maximising out-of-fold balanced accuracy on the odd segments."""
    from sklearn.model_selection import GroupKFold

    oof = np.zeros(len(train.y))
    for a, b in GroupKFold(5).split(train.X, train.y, train.segment):
        oof[b] = fit(train.X[a], train.y[a]).predict_proba(train.X[b])[:, 1]
    n = len(train.segments)
    seg_p = np.bincount(train.segment, weights=oof, minlength=n) / np.bincount(train.segment,
                                                                                minlength=n)
    seg_y = np.array([int(s.ictal) for s in train.segments])
    table = {}
    for th in THRESHOLD_GRID:
        pred = seg_p >= th
        table[float(th)] = round(float(0.5 * (np.mean(pred[seg_y == 1])
                                              + np.mean(~pred[seg_y == 0]))), 4)
    return plateau_midpoint(table), table


def plateau_midpoint(table: dict[float, float]) -> float:
    """Middle of the thresholds reaching the best score (ties are common on small data;
    the middle of the plateau is the choice with the most margin on both sides)."""
    best = max(table.values())
    tops = sorted(t for t, v in table.items() if v == best)
    return round(0.5 * (tops[0] + tops[-1]), 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bonn", default=str(DEFAULT_BONN), help="Bonn folder (setA … setE)")
    ap.add_argument("--out-dir", default=None, help="models directory (default: models/)")
    args = ap.parse_args(argv)
    from models.toolchain import build_model

    root = Path(args.bonn)
    odd = segment_features(bonn_segments(root, parity="odd"), WINDOW_S, HOP_S)
    even = segment_features(bonn_segments(root, parity="even"), WINDOW_S, HOP_S)
    print(f"features: odd {odd.X.shape}, even {even.X.shape}", file=sys.stderr)

    seg_th, th_table = oof_threshold(odd)
    print(f"segment threshold (odd, out-of-fold): {seg_th}", file=sys.stderr)
    clf = fit(odd.X, odd.y)

    odd_long = long_recordings(root, "odd", n=4, seed=SEED)
    det_table = {}
    for th in DETECTOR_GRID:
        r = score_long(odd_long, clf.predict_proba, threshold=th)
        det_table[th] = round(r["event"]["f1"] or 0.0, 4)
    det_th = plateau_midpoint(det_table)
    print(f"detector threshold (odd long recordings, event F1): {det_th} {det_table}",
          file=sys.stderr)

    training_data = {
        "dataset": "Bonn epilepsy EEG (Andrzejak et al. 2001, Phys. Rev. E 64, 061907)",
        "train": "odd-numbered segments of sets A-E (500 x 23.6 s single-channel, 173.61 Hz)",
        "held_out": "even-numbered segments (validation = final test; never used for fitting "
                    "or tuning)",
        "labels": "A-D = background (0), E = ictal (1)",
        "licence": "CC0 per the source repository; cite Andrzejak 2001",
    }
    common = dict(labels=["background", "seizure"], feature_names=list(FEATURE_NAMES),
                  fs_hz=BONN_FS_HZ, window_s=WINDOW_S, training_data=training_data,
                  metric="roc_auc", seed=SEED,
                  description="EEG seizure vs background, per channel window "
                              "(4 s, 1 s hop, 20 features)")
    # pass 1 in a scratch dir: the int8 model the figures are measured with
    from agent.inference import load_model

    with tempfile.TemporaryDirectory() as td:
        build_model("seizure", clf, odd.X, odd.y, even.X, even.y, out_dir=td, **common)
        model = load_model("seizure", models_dir=td, threads=1)
        figures = {"segment_threshold": seg_th, "detector_threshold": det_th,
                   "oof_balanced_accuracy_by_threshold": th_table,
                   "odd_long_event_f1_by_threshold": {str(k): v for k, v in det_table.items()}}
        for task, sets in (("A_vs_E", "AE"), ("ABCD_vs_E", "ABCDE")):
            sub = even.subset(sets)
            figures[task] = segment_scores(sub, model.predict_proba(sub.X), seg_th)
        even_long = long_recordings(root, "even", n=4, seed=SEED)
        figures["even_long_recordings"] = score_long(even_long, model.predict_proba,
                                                     threshold=det_th)
        figures["artefact_flagged_window_fraction_even"] = even.flagged_fraction()
    # pass 2: the same deterministic build, into models/, with the figures in the manifest
    entry = build_model("seizure", clf, odd.X, odd.y, even.X, even.y, out_dir=args.out_dir,
                        extra=figures, **common)
    print(json.dumps({"heldout": entry["metrics"]["heldout"], **figures}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
