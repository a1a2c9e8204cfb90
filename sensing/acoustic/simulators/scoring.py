"""Scoring of sonar detections against a simulated capture's truth (breathing rates, blinks,
occupant presence); shared by the tests and ``benchmarks/eval_sonar.py``."""

from __future__ import annotations

from typing import Any

import numpy as np


def _get(d: Any, key: str) -> Any:
    if isinstance(d, dict):
        return d.get(key, (d.get("extra") or {}).get(key))
    if key in ("type", "offset_s", "value", "confidence"):
        return getattr(d, key)
    return d.extra.get(key)


def window_truth_bpm(truth: dict[str, Any], end_s: float, window_s: float) -> float:
    """True mean breathing rate (breaths/min) over ``[end_s − window_s, end_s]``: breaths
    counted from the onsets (fractional at the window edges), NaN without breathing."""
    on = np.asarray(truth.get("breath_onsets_s") or [], float)
    if truth.get("rate_bpm") is None or len(on) < 2:
        return float("nan")
    idx = np.arange(len(on), dtype=float)
    a, b = max(end_s - window_s, 0.0), end_s
    ca = np.interp(a, on, idx, left=np.nan, right=np.nan)
    cb = np.interp(b, on, idx, left=np.nan, right=np.nan)
    if not (np.isfinite(ca) and np.isfinite(cb)) or b <= a:
        return float(60.0 * (len(on) - 1) / (on[-1] - on[0]))
    return float(60.0 * (cb - ca) / (b - a))


def score_breathing(dets: list[Any], truth: dict[str, Any], window_s: float = 30.0,
                    hop_s: float = 5.0) -> dict[str, Any]:
    """Errors of ``breathing_rate`` detections against the windowed truth; ``coverage``
    is the share of the windows that could have had an estimate."""
    errs = []
    for d in dets:
        if _get(d, "type") != "breathing_rate":
            continue
        ref = window_truth_bpm(truth, float(_get(d, "offset_s")), window_s)
        if np.isfinite(ref):
            errs.append(float(_get(d, "value")) - ref)
    dur = float(truth["duration_s"])
    # windows ending at window_s, window_s + hop_s, … that fit in the capture (the first
    # chirp's leakage arrives a few ms in)
    expected = (len(np.arange(window_s, dur - 0.05 + 1e-9, hop_s))
                if truth.get("rate_bpm") else 0)
    e = np.abs(np.asarray(errs))
    return {"errors": [round(x, 3) for x in errs], "n": len(errs), "expected": expected,
            "mae": float(e.mean()) if e.size else float("nan"),
            "worst": float(e.max()) if e.size else float("nan"),
            "coverage": len(errs) / expected if expected else float("nan")}


def score_blinks(dets: list[Any], truth: dict[str, Any], tol_s: float = 0.2
                 ) -> dict[str, Any]:
    """One-to-one matching of ``blink`` onsets within ``tol_s``: true/false positives,
    misses, precision, recall, onset and duration errors."""
    tb = truth.get("blinks") or []
    on = np.asarray([b["onset_s"] for b in tb], float)
    du = np.asarray([b["duration_s"] for b in tb], float)
    used = np.zeros(len(on), bool)
    tp = fp = 0
    on_err, du_err = [], []
    for d in sorted((d for d in dets if _get(d, "type") == "blink"),
                    key=lambda d: float(_get(d, "offset_s"))):
        t = float(_get(d, "offset_s"))
        cand = np.flatnonzero(~used & (np.abs(on - t) <= tol_s))
        if cand.size:
            j = cand[np.argmin(np.abs(on[cand] - t))]
            used[j] = True
            tp += 1
            on_err.append(t - on[j])
            du_err.append(float(_get(d, "duration_s")) - du[j])
        else:
            fp += 1
    n = len(on)
    return {"tp": tp, "fp": fp, "fn": int(n - used.sum()), "n_true": n,
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / n if n else float("nan"),
            "onset_mae_s": float(np.mean(np.abs(on_err))) if on_err else float("nan"),
            "duration_mae_s": float(np.mean(np.abs(du_err))) if du_err else float("nan"),
            "duration_bias_s": float(np.mean(du_err)) if du_err else float("nan")}


def score_presence(dets: list[Any], truth: dict[str, Any]) -> dict[str, Any]:
    """Occupant presence: time from the occupant's arrival to the first ``presence`` = 1
    (``latency_s``) and the alerts raised while nobody was there (``false_alerts``)."""
    iv = truth.get("presence_intervals_s") or []
    ups = [float(_get(d, "offset_s")) for d in dets
           if _get(d, "type") == "presence" and int(_get(d, "value") or 0) == 1]
    false = [t for t in ups if not any(a <= t <= b + 30.0 for a, b in iv)]
    latency = None
    if iv:
        a = float(iv[0][0])
        after = [t - a for t in ups if t >= a]
        latency = min(after) if after else None
    return {"alerts": len(ups), "false_alerts": len(false), "latency_s": latency,
            "occupied": bool(iv)}
