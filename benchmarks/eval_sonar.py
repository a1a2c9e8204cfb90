"""FMCW sonar evaluation on simulated captures: breathing MAE, blink precision/recall,
cabin occupant latency and empty-cabin false alerts, across SNR (leakage-to-noise),
distance and clock-offset sweeps; and the front end's speed.

Each sweep varies one factor around a base case (the others at their base values); every
case is simulated with held-out seeds (``--seed0``, default 1000: the detectors were tuned
on seeds 0–299; the blink detector's rework on 0–49 and 3002–3007, its figures are on
7000–7003 and, ``--mixed``, 7100–7115) and a random breathing rate (8–25 bpm), blink rate
and head-motion timeline per seed. Captures are streamed from the simulator in memory (the
same chunks the WAV reader yields; ``--through-file`` writes and reads a WAV instead).

Usage::

    nice -n 10 python benchmarks/eval_sonar.py                 # all sweeps (~20 min, 1 core)
    nice -n 10 python benchmarks/eval_sonar.py --quick         # 1 seed per case
    nice -n 10 python benchmarks/eval_sonar.py --only cabin --empty-hours 1
    nice -n 10 python benchmarks/eval_sonar.py --only blink --seeds 4 --mixed 16
    python benchmarks/eval_sonar.py --speed                    # replay speed only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sensing.acoustic.blink import BlinkDetector  # noqa: E402
from sensing.acoustic.cabin import CabinOccupancy  # noqa: E402
from sensing.acoustic.simulators.scenes import (  # noqa: E402
    BlinkSimParams,
    BreathingSimParams,
    CabinSimParams,
    generate,
    write_capture,
)
from sensing.acoustic.simulators.scoring import (  # noqa: E402
    score_blinks,
    score_breathing,
    score_presence,
)
from sensing.acoustic.sonar import SonarBreathing, SonarFrontEnd  # noqa: E402

BASE_BREATH = {"distance_m": 0.6, "leak_db": 65.0, "clock_ppm": 40.0}
SWEEP_BREATH = {"leak_db": [40.0, 50.0, 65.0, 75.0], "distance_m": [0.3, 0.6, 1.0, 1.5],
                "clock_ppm": [0.0, 40.0, 150.0, -80.0]}
BASE_BLINK = {"distance_m": 0.4, "leak_db": 65.0, "clock_ppm": 40.0}
SWEEP_BLINK = {"leak_db": [50.0, 65.0, 75.0], "distance_m": [0.25, 0.4, 0.6],
               "clock_ppm": [0.0, 40.0, 150.0], "head_moves_per_min": [0.0, 2.0, 6.0]}


def _chunks(kind: str, params: Any, through_file: bool):
    if not through_file:
        return generate(kind, params)
    from sensing.formats import open_capture

    tmp = tempfile.mkdtemp(prefix="eval_sonar_")
    path = os.path.join(tmp, "c.wav")
    truth = write_capture(kind, path, params)
    return truth, open_capture(path).chunks()


def run_breathing(seed: int, duration_s: float, through_file: bool = False, **kw: Any
                  ) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 7)
    p = BreathingSimParams(seed=seed, duration_s=duration_s,
                           rate_bpm=float(rng.uniform(8, 25)),
                           depth_mm=float(rng.uniform(4, 12)),
                           drift_bpm_per_min=float(rng.uniform(-1, 1)), **kw)
    truth, chunks = _chunks("sonar", p, through_file)
    st = SonarBreathing()
    dets = [d for fr in chunks for d in st.push(fr)] + st.flush()
    sc = score_breathing(dets, truth, st.params.window_s, st.params.hop_s)
    sc["rate_bpm"] = round(p.rate_bpm, 2)
    sc["clock_err_ppm"] = round(abs(st.front.stats["clock_ppm"] - truth["clock_ppm_end"]), 3)
    return sc


def run_blink(seed: int, duration_s: float, through_file: bool = False, **kw: Any
              ) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 11)
    p = BlinkSimParams(seed=seed, duration_s=duration_s,
                       rate_bpm=float(rng.uniform(10, 20)),
                       depth_mm=float(rng.uniform(4, 12)),
                       blink_rate_per_min=float(rng.uniform(10, 25)),
                       drowsy=bool(seed % 3 == 2), **kw)
    truth, chunks = _chunks("blink", p, through_file)
    st = BlinkDetector()
    dets = [d for fr in chunks for d in st.push(fr)] + st.flush()
    sc = score_blinks(dets, truth)
    drowsy = [d.value for d in dets if d.type == "drowsiness"]
    sc["drowsy_truth"] = p.drowsy
    sc["drowsy_final"] = drowsy[-1] if drowsy else None
    return sc


def run_blink_mixed(seed: int, duration_s: float, through_file: bool = False
                    ) -> dict[str, Any]:
    """One blink capture with its conditions drawn from the seed within the target (face
    at 0.25–0.6 m, leakage 60–75 dB over the floor, clock −100…150 ppm, 0–5 head
    motions/min; every third seed drowsy)."""
    r = np.random.default_rng(seed + 999)
    kw = {"distance_m": float(r.uniform(0.25, 0.6)),
          "leak_db": float(r.choice([60.0, 65.0, 75.0])),
          "head_moves_per_min": float(r.uniform(0, 5)),
          "clock_ppm": float(r.uniform(-100, 150))}
    sc = run_blink(seed, duration_s, through_file, **kw)
    sc.update({k: round(v, 3) for k, v in kw.items()})
    return sc


def run_cabin(seed: int, duration_s: float, occupant: bool, **kw: Any) -> dict[str, Any]:
    rng = np.random.default_rng(seed + 13)
    p = CabinSimParams(seed=seed, duration_s=duration_s, occupant=occupant,
                       rate_bpm=float(rng.uniform(16, 40)),
                       depth_mm=float(rng.uniform(2, 6)),
                       occupant_m=float(rng.uniform(0.8, 2.0)), **kw)
    truth, chunks = generate("cabin", p)
    st = CabinOccupancy()
    dets = [d for fr in chunks for d in st.push(fr)] + st.flush()
    sc = score_presence(dets, truth)
    sc["max_confidence"] = st.stats["max_confidence"]
    return sc


def _sweep(name: str, fn, base: dict, sweep: dict, seeds: list[int], duration_s: float,
           agg) -> list[dict[str, Any]]:
    rows = []
    done: dict[str, list] = {}
    for factor, values in sweep.items():
        for v in values:
            kw = {**base, factor: v}
            key = json.dumps(kw, sort_keys=True)
            t0 = time.time()
            if key not in done:  # the base case is in every sweep: run it once
                done[key] = [fn(s, duration_s, **kw) for s in seeds]
            res = done[key]
            row = {"sweep": factor, factor: v, **agg(res), "seconds": round(time.time() - t0, 1)}
            rows.append(row)
            print(name, json.dumps(row), flush=True)
    return rows


def agg_breath(res: list[dict]) -> dict[str, Any]:
    errs = np.abs(np.concatenate([r["errors"] for r in res])) if res else np.array([])
    return {"mae_bpm": round(float(errs.mean()), 3) if errs.size else None,
            "p95_bpm": round(float(np.percentile(errs, 95)), 3) if errs.size else None,
            "coverage": round(float(np.mean([r["coverage"] for r in res])), 3),
            "clock_err_ppm": round(float(np.max([r["clock_err_ppm"] for r in res])), 3),
            "captures": len(res)}


def agg_blink(res: list[dict]) -> dict[str, Any]:
    tp, fp, fn = (sum(r[k] for r in res) for k in ("tp", "fp", "fn"))
    drowsy_ok = [r["drowsy_final"] == int(r["drowsy_truth"]) for r in res
                 if r["drowsy_final"] is not None]
    return {"precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
            "blinks": tp + fn,
            "onset_mae_s": round(float(np.nanmean([r["onset_mae_s"] for r in res])), 3),
            "duration_mae_s": round(float(np.nanmean([r["duration_mae_s"] for r in res])), 3),
            "drowsy_correct": f"{sum(drowsy_ok)}/{len(res)}", "captures": len(res)}


def speed(duration_s: float = 120.0) -> dict[str, Any]:
    """Front end + the three detectors on one simulated 48 kHz capture (chunks of 4096)."""
    truth, chunks = generate("blink", BlinkSimParams(seed=5, duration_s=duration_s))
    chunks = list(chunks)
    out = {}
    for name, mk in [("front_end", SonarFrontEnd), ("breathing", SonarBreathing),
                     ("blink", BlinkDetector), ("cabin", CabinOccupancy)]:
        st = mk()
        t0 = time.process_time()
        for fr in chunks:
            st.push(fr)
        st.flush()
        dt = time.process_time() - t0
        out[name] = round(duration_s / dt, 1)
    print("speed (x real time, one core, CPU time):", json.dumps(out), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one seed per case")
    ap.add_argument("--seeds", type=int, default=2, help="seeds per case")
    ap.add_argument("--seed0", type=int, default=1000, help="first seed (held out: >= 1000)")
    ap.add_argument("--duration-s", type=float, default=60.0)
    ap.add_argument("--only", choices=["breathing", "blink", "cabin", "speed"], action="append")
    ap.add_argument("--empty-hours", type=float, default=1.0,
                    help="hours of simulated empty cabin (in 10-minute captures)")
    ap.add_argument("--occupied", type=int, default=6, help="occupied cabin captures")
    ap.add_argument("--mixed", type=int, default=0,
                    help="blinks: also this many captures with conditions drawn per seed "
                         "(seeds seed0 + 100 …)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--speed", action="store_true", help="only the speed benchmark")
    a = ap.parse_args(argv)
    only = set(a.only or (["speed"] if a.speed else ["breathing", "blink", "cabin", "speed"]))
    seeds = list(range(a.seed0, a.seed0 + (1 if a.quick else a.seeds)))
    res: dict[str, Any] = {"seeds": seeds}
    if "speed" in only:
        res["speed"] = speed()
    if "breathing" in only:
        res["breathing"] = _sweep("breathing", run_breathing, BASE_BREATH, SWEEP_BREATH,
                                  seeds, a.duration_s, agg_breath)
    if "blink" in only:
        res["blink"] = _sweep("blink", run_blink, BASE_BLINK, SWEEP_BLINK, seeds,
                              a.duration_s, agg_blink)
    if "blink" in only and a.mixed:
        mixed = []
        for s in range(a.seed0 + 100, a.seed0 + 100 + a.mixed):
            r = run_blink_mixed(s, a.duration_s)
            mixed.append(r)
            print("blink mixed", s, json.dumps({k: r[k] for k in (
                "tp", "fp", "fn", "distance_m", "leak_db", "head_moves_per_min",
                "clock_ppm", "drowsy_truth")}), flush=True)
        res["blink_mixed"] = {"cases": mixed, **agg_blink(mixed)}
        print("blink mixed", json.dumps(agg_blink(mixed)), flush=True)
    if "cabin" in only:
        occ = [run_cabin(a.seed0 + i, 60.0, True) for i in range(a.occupied)]
        lat = [r["latency_s"] for r in occ]
        print("cabin occupied", json.dumps(occ), flush=True)
        n10 = max(1, int(round(a.empty_hours * 6)))
        empty = []
        for i in range(n10):
            r = run_cabin(a.seed0 + 500 + i, 600.0, False)
            empty.append(r)
            print("cabin empty 10 min", i, json.dumps(r), flush=True)
        res["cabin"] = {"occupied": occ,
                        "detected": sum(v is not None for v in lat),
                        "max_latency_s": max((v for v in lat if v is not None), default=None),
                        "empty_hours": n10 / 6.0,
                        "empty_false_alerts": sum(r["false_alerts"] for r in empty),
                        "empty_max_confidence": max(r["max_confidence"] for r in empty)}
        print("cabin", json.dumps({k: v for k, v in res["cabin"].items() if k != "occupied"}),
              flush=True)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
