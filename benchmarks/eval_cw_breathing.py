"""CW-tone sonar breathing (``acoustic_cw_breathing``) on simulated captures.

The ``acoustic-sonar`` simulator with ``probe_type="cw"`` (a 20 kHz tone, the person in a
room; multipath, speaker/microphone roll-off, leakage, clock offset and drift) streamed in
memory through :class:`sensing.acoustic.cw_breathing.CwBreathing` and scored per window
against the truth (:func:`sensing.acoustic.simulators.scoring.score_breathing`: the mean
rate of the breaths inside each window). Seeds are held out (``--seed0``, default 5000;
the estimator was developed on seeds 3–9). Reported per sweep case: MAE and p95 error
(bpm) over the answered windows, window coverage, and **captures answered** (at least one
estimate) — a capture without an answer counts against the figure, not out of it — and
the ``acoustic_cw_motion`` detector's motion events on the same (still) scenes. Empty
rooms: windows with a (false) estimate, and motion events.

Usage::

    nice -n 10 python benchmarks/eval_cw_breathing.py            # all sweeps (~10 min)
    nice -n 10 python benchmarks/eval_cw_breathing.py --quick    # 2 seeds per case
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sensing.acoustic.cw import CwMotionDetector  # noqa: E402
from sensing.acoustic.cw_breathing import CwBreathing  # noqa: E402
from sensing.acoustic.simulators.scenes import BreathingSimParams, generate  # noqa: E402
from sensing.acoustic.simulators.scoring import score_breathing  # noqa: E402

BASE = {"distance_m": 0.6, "leak_db": 65.0, "clock_ppm": 40.0}
SWEEPS = {"distance_m": [0.3, 0.6, 1.0, 1.5], "leak_db": [50.0, 65.0, 75.0],
          "clock_ppm": [0.0, 40.0, 150.0, -80.0],
          "rate_band": ["6-12", "12-25", "25-35", "35-40"]}


def run(seed: int, duration_s: float, rate_band: str = "8-25", empty: bool = False,
        **kw: Any) -> dict[str, Any]:
    """One simulated capture through the estimator; its score."""
    lo, hi = (float(x) for x in rate_band.split("-"))
    rng = np.random.default_rng(seed + 7)
    p = BreathingSimParams(seed=seed, duration_s=duration_s, probe_type="cw",
                           rate_bpm=float(rng.uniform(lo, hi)),
                           depth_mm=float(rng.uniform(4, 12)),
                           drift_bpm_per_min=float(rng.uniform(-1, 1)), empty=empty, **kw)
    truth, chunks = generate("sonar", p)
    est = CwBreathing(tones_hz=truth["probe"]["tones_hz"],
                      max_bpm=45.0 if hi > 40 else 40.0)
    motion = CwMotionDetector(tones_hz=truth["probe"]["tones_hz"])
    dets, moves = [], []
    for fr in chunks:
        dets += est.push(fr)
        moves += motion.push(fr)
    dets += est.flush()
    moves += motion.flush()
    sc = score_breathing(dets, truth, est.params.window_s, est.params.hop_s)
    sc["rate_bpm"] = round(p.rate_bpm, 2)
    sc["estimates"] = len(dets)
    sc["motion_events"] = sum(1 for m in moves if m.value == 1)  # the scene is still
    return sc


def aggregate(res: list[dict[str, Any]]) -> dict[str, Any]:
    errs = np.abs(np.concatenate([r["errors"] for r in res])) if res else np.array([])
    return {"mae_bpm": round(float(errs.mean()), 3) if errs.size else None,
            "p95_bpm": round(float(np.percentile(errs, 95)), 3) if errs.size else None,
            "coverage": round(float(np.mean([r["coverage"] for r in res])), 3),
            "answered": f"{sum(r['n'] > 0 for r in res)}/{len(res)}",
            "motion_events": sum(r["motion_events"] for r in res), "captures": len(res)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds per case")
    ap.add_argument("--seeds", type=int, default=4, help="seeds per case")
    ap.add_argument("--seed0", type=int, default=5000, help="first (held-out) seed")
    ap.add_argument("--duration-s", type=float, default=90.0, help="capture length (s)")
    ap.add_argument("--empty", type=int, default=8, help="empty-room captures")
    ap.add_argument("--json", default=None, help="write the rows to this JSON file")
    a = ap.parse_args(argv)
    n = 2 if a.quick else a.seeds
    seeds = list(range(a.seed0, a.seed0 + n))
    rows: list[dict[str, Any]] = []
    done: dict[str, list] = {}
    everything: list[dict[str, Any]] = []
    for factor, values in SWEEPS.items():
        for v in values:
            kw = {**BASE, factor: v}
            key = json.dumps(kw, sort_keys=True)
            t0 = time.time()
            if key not in done:
                done[key] = [run(s, a.duration_s, **kw) for s in seeds]
                everything += done[key]
            row = {"sweep": factor, factor: v, **aggregate(done[key]),
                   "seconds": round(time.time() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    total = {"sweep": "all cases", **aggregate(everything)}
    rows.append(total)
    print(json.dumps(total), flush=True)
    empty = [run(a.seed0 + 900 + i, a.duration_s, empty=True, **BASE) for i in range(a.empty)]
    windows = sum(len(np.arange(30.0, a.duration_s - 0.05 + 1e-9, 5.0)) for _ in empty)
    false = sum(r["estimates"] for r in empty)
    row = {"sweep": "empty room", "captures": len(empty), "windows": windows,
           "false_estimates": false,
           "motion_events": sum(r["motion_events"] for r in empty)}
    rows.append(row)
    print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
