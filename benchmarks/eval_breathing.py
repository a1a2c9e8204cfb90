"""Breathing-rate accuracy on a grid of simulated ESP32 captures.

For every combination of breathing rate, distance, SNR and packet rate (several seeds),
simulates a capture (``sensing.simulate.csi_breathing``), runs the streaming estimator and
scores each emitted window against the truth (mean true rate over the window).

Usage::

    python benchmarks/eval_breathing.py            # full grid: 216 captures (~5 min, 1 core)
    python benchmarks/eval_breathing.py --quick    # smaller grid
    python benchmarks/eval_breathing.py --quick --file-format nexmon --n-rx 3
        # through a written Nexmon pcap and the real reader (also intel5300, esp32)
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sensing.formats import open_capture  # noqa: E402
from sensing.simulate.csi_breathing import (  # noqa: E402
    generate,
    score_detections,
    simulate_csi_breathing,
)
from sensing.wifi.breathing import BreathingEstimator  # noqa: E402


def run_case(duration_s: float = 90.0, estimator: dict | None = None,
             file_format: str = "memory", **params) -> dict:
    """Simulate one capture, estimate, score. Returns the score dict + params.

    ``file_format="memory"`` streams the simulator's frames directly; ``"esp32"``,
    ``"intel5300"`` or ``"nexmon"`` writes that file format to a temporary directory and
    reads it back through the format's reader (for Nexmon, with its per-link assembly).
    """
    est = BreathingEstimator(**(estimator or {}))
    if file_format == "memory":
        truth, frames = generate(duration_s=duration_s, **params)
        dets = [d for fr in frames for d in est.push(fr)]
    else:
        with tempfile.TemporaryDirectory(prefix="eval_breathing_") as tmp:
            path = os.path.join(tmp, "capture")
            truth = simulate_csi_breathing(path, duration_s=duration_s,
                                           file_format=file_format, **params)
            dets = [d for fr in open_capture(path).chunks() for d in est.push(fr)]
    score = score_detections(dets, truth, window_s=est.window_s, hop_s=est.hop_s)
    score.update(params)
    score["stats"] = dict(est.stats)
    return score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller grid, one seed")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per grid point")
    ap.add_argument("--duration", type=float, default=90.0, help="seconds per capture")
    ap.add_argument("--stress", action="store_true",
                    help="instead: 40 captures of 120 s with drift, fidgets, heavy loss and "
                         "jitter, frequent AGC steps, varied chest depth, 1-3 antennas")
    ap.add_argument("--file-format", default="memory",
                    choices=["memory", "esp32", "intel5300", "nexmon"],
                    help="write each capture in this format and read it back (default: "
                         "in-memory frames)")
    ap.add_argument("--n-rx", type=int, default=1, help="receive antennas / spatial streams")
    args = ap.parse_args(argv)
    if args.stress:
        return stress()
    rates = [6, 10, 15, 22, 30, 40]
    dists = [1.0, 2.0, 3.0, 4.0]
    snrs = [20.0, 27.0, 35.0]
    pkts = [50.0, 100.0, 200.0]
    seeds = range(1 if args.quick else args.seeds)
    if args.quick:
        rates, dists, snrs, pkts = [6, 15, 30, 40], [1.0, 4.0], [20.0, 35.0], [50.0, 200.0]
    rows = []
    t0 = time.perf_counter()
    for i, (r, d, s, p, seed) in enumerate(itertools.product(rates, dists, snrs, pkts, seeds)):
        rows.append(run_case(args.duration, rate_bpm=float(r), distance_m=d, snr_db=s,
                             packet_rate_hz=p, seed=1000 * i + seed,
                             file_format=args.file_format, n_rx=args.n_rx))
    wall = time.perf_counter() - t0
    print(f"{len(rows)} captures x {args.duration:.0f} s, {args.file_format}, n_rx "
          f"{args.n_rx}, window 30 s, hop 5 s ({wall:.0f} s wall)\n")
    print(f"{'group':<22} {'windows':>7} {'MAE bpm':>8} {'worst':>7} {'p95':>6} {'coverage':>8}")

    def line(name: str, sel: list[dict]) -> None:
        errs = np.abs(np.concatenate([np.asarray(x["errors"], float) for x in sel] or [[]]))
        exp = sum(x["expected"] for x in sel)
        mae = errs.mean() if errs.size else float("nan")
        worst = errs.max() if errs.size else float("nan")
        p95 = np.percentile(errs, 95) if errs.size else float("nan")
        print(f"{name:<22} {errs.size:>7} {mae:>8.3f} {worst:>7.2f} {p95:>6.2f} "
              f"{errs.size / max(exp, 1):>8.1%}")

    line("all", rows)
    for key, vals, unit in (("rate_bpm", rates, "bpm"), ("distance_m", dists, "m"),
                            ("snr_db", snrs, "dB"), ("packet_rate_hz", pkts, "pkt/s")):
        for v in vals:
            line(f"{key.split('_')[0]} {v:g} {unit}", [x for x in rows if x[key] == v])
    false = sum(x["false"] for x in rows)
    print(f"\nestimates where the truth has no breathing: {false}")
    return 0


def stress(n: int = 40) -> int:
    """Random scenarios far from the grid's defaults; prints the same summary."""
    rng = np.random.default_rng(2024)
    rows = []
    t0 = time.perf_counter()
    for i in range(n):
        p = dict(
            rate_bpm=float(rng.uniform(6, 40)), distance_m=float(rng.uniform(1, 4)),
            snr_db=float(rng.uniform(20, 35)), packet_rate_hz=float(rng.choice([20, 50, 100, 200])),
            drift_bpm_per_min=float(rng.uniform(-2, 2)), fidgets=int(rng.integers(0, 3)),
            depth_mm=float(rng.uniform(3, 12)), loss=float(rng.uniform(0.0, 0.15)),
            jitter=float(rng.uniform(0.1, 0.5)), agc_jumps_per_min=float(rng.uniform(0, 4)),
            n_rx=int(rng.choice([1, 1, 2, 3])), seed=5000 + i,
        )
        rows.append(run_case(120.0, **p))
    errs = np.abs(np.concatenate([np.asarray(x["errors"], float) for x in rows]))
    exp = sum(x["expected"] for x in rows)
    mot = [e for x in rows for e in x["motion_errors"]]
    print(f"stress: {n} captures x 120 s ({time.perf_counter() - t0:.0f} s wall): "
          f"{errs.size} windows, MAE {errs.mean():.3f} bpm, worst {errs.max():.2f}, "
          f"p95 {np.percentile(errs, 95):.2f}, coverage {errs.size / exp:.1%}; "
          f"estimates in windows overlapping a fidget: {len(mot)} "
          f"(max |error| {max(map(abs, mot), default=0):.2f}); "
          f"estimates without breathing: {sum(x['false'] for x in rows)}")
    for k in (1, 2, 3):
        sel = [x for x in rows if x["n_rx"] == k]
        e = np.abs(np.concatenate([np.asarray(x["errors"], float) for x in sel] or [[]]))
        ex = sum(x["expected"] for x in sel)
        if e.size:
            print(f"  n_rx={k}: {len(sel)} captures, {e.size} windows, MAE {e.mean():.3f}, "
                  f"worst {e.max():.2f}, coverage {e.size / max(ex, 1):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
