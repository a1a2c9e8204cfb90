"""Real-data checks of the UWB/radar inputs and detectors (issue 14).

1. **DW1000 logs** (Kolakowski 2018, ``../shared/data/uwb/kolakowski-uwb-cirs-2018``):
   CIRs per log against SOURCES.md; the chip's first-path index (``HLP``) against the
   CIR's leading edge (:func:`sensing.uwb.conditioning.detect_first_path`); the logged
   distance against the logged time of flight (``Dist`` vs ``c * ToF``) and its spread on
   these static links; **LOS/NLOS** per CIR against ``labels.csv``, leave-one-log-out
   (each log scored with thresholds fitted on the other six): the shipped rule's
   first-path-level branch, its shape-only branch, and (reference only, not shipped) a
   logistic regression on all features; plus the shipped defaults' 10 s link-state
   windows.
2. **Acconeer recordings** (``../shared/data/radar``): ``uwb_breathing``'s median rate
   against the vendor algorithm's output beside each recording (target on the two A121
   recordings: within 1.5 bpm of 18.7 and 20.7 bpm), at the default hop (5 s) and at 1 s.
3. **Replay speed**: every real file through its reader and every default UWB/radar
   pipeline in-process (imports warmed up), as capture seconds per wall second
   (target ≥ 200x real time).

Usage::

    python benchmarks/eval_uwb_real.py            # ~1 min on a loaded 2-core machine
    python benchmarks/eval_uwb_real.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sensing.formats import open_capture  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
UWB = SHARED / "uwb" / "kolakowski-uwb-cirs-2018" / "results"
RADAR = SHARED / "radar"
SOURCES_TABLE = {"40.log": ("LOS", 212), "14.log": ("LOS", 223), "34.log": ("LOS", 225),
                 "6.log": ("NLOS", 108), "37.log": ("NLOS", 258), "4.log": ("NDP NLOS", 228),
                 "51.log": ("NDP NLOS", 232)}
C = 299_792_458.0


def _bacc(pred: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * (float(pred[y].mean()) + float((~pred[~y]).mean()))


def dw1000() -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sensing.uwb.conditioning import detect_first_path
    from sensing.uwb.los import FEATURES, LinkStateClassifier, LosParams, classify, frames_features

    out: dict = {"logs": {}}
    X, y, g = [], [], []
    for name, (label, n_expected) in SOURCES_TABLE.items():
        chunks = list(open_capture(UWB / name))
        data = np.concatenate([c.data for c in chunks])
        f = {k: np.concatenate([c.fields[k] for c in chunks]) for k in chunks[0].fields}
        edge = detect_first_path(data)
        ok = np.isfinite(f["distance_m"])
        resid = f["distance_m"][ok] - f["tof_ns"][ok] * 1e-9 * C
        last = float("nan")
        for c in chunks:
            X.append(frames_features(c, last))
            d = c.fields["distance_m"][np.isfinite(c.fields["distance_m"])]
            last = float(d[-1]) if len(d) else last
        nlos = label != "LOS"
        y += [nlos] * len(data)
        g += [name] * len(data)
        clf = LinkStateClassifier()
        states = []
        for c in chunks:
            states += clf.push(c)
        states += clf.flush()
        win_ok = np.mean([(s == "nlos") == nlos for _, s, _, _ in states])
        out["logs"][name] = {
            "label": label, "cirs": len(data), "cirs_sources_md": n_expected,
            "rx_errors_skipped": chunks[-1].meta["rx_errors"],
            "fp_index_median": round(float(np.median(f["first_path_index"])), 2),
            "fp_chip_minus_edge_taps_median": round(float(np.median(f["first_path_index"] - edge)), 2),
            "fp_chip_minus_edge_taps_p95abs": round(float(np.percentile(np.abs(f["first_path_index"] - edge), 95)), 2),
            "ranging_frames": int(ok.sum()),
            "dist_median_m": round(float(np.median(f["distance_m"][ok])), 3),
            "dist_std_cm": round(float(np.std(f["distance_m"][ok]) * 100), 2),
            "dist_minus_c_tof_mm_mean": round(float(resid.mean() * 1e3), 2),
            "dist_minus_c_tof_mm_maxabs": round(float(np.abs(resid).max() * 1e3), 2),
            "link_state_windows": len(states), "link_state_window_accuracy": round(float(win_ok), 3),
        }
    X = np.concatenate(X)
    y = np.array(y)
    g = np.array(g)
    lvl = X[:, FEATURES.index("fp_level_1m_dbm")]
    fpdb = X[:, FEATURES.index("fp_to_peak_db")]
    delay = X[:, FEATURES.index("peak_delay_taps")]
    res = {"level_rule": [], "shape_rule": [], "logistic_all_features": [], "default_rule": []}
    lvl_grid = np.arange(-90.0, -65.0, 0.25)
    shape_grid = [(a, b) for a in np.arange(-20.0, -3.0, 1.0) for b in np.arange(1.0, 10.0, 0.5)]
    for name in SOURCES_TABLE:
        tr, te = g != name, g == name
        thr = max(lvl_grid, key=lambda t, tr=tr: _bacc(lvl[tr] < t, y[tr]))
        fin = np.isfinite(lvl[te])
        p = classify(X[te], LosParams(fp_level_nlos_dbm=float(thr)))
        res["level_rule"].append((name, float(thr), int((p == y[te]).sum()), int(te.sum())))
        a, b = max(shape_grid, key=lambda ab, tr=tr: _bacc((fpdb[tr] < ab[0]) | (delay[tr] > ab[1]), y[tr]))
        ps = (fpdb[te] < a) | (delay[te] > b)
        res["shape_rule"].append((name, (float(a), float(b)), int((ps == y[te]).sum()), int(te.sum())))
        cols = [i for i, n in enumerate(FEATURES) if n != "fp_level_1m_dbm"]
        lr = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
        lr.fit(X[tr][:, cols], y[tr])
        pl = lr.predict(X[te][:, cols])
        res["logistic_all_features"].append((name, None, int((pl == y[te]).sum()), int(te.sum())))
        pd = classify(X[te])
        res["default_rule"].append((name, None, int((pd == y[te]).sum()), int(te.sum())))
        del fin
    out["los_nlos"] = {
        k: {"accuracy": round(sum(c for _, _, c, _ in v) / sum(n for _, _, _, n in v), 4),
            "per_log": {n: {"fitted": t, "accuracy": round(c / m, 3)} for n, t, c, m in v}}
        for k, v in res.items()}
    out["los_nlos"]["note"] = ("leave-one-log-out per CIR (NLOS = NLOS + NDP NLOS); "
                               "default_rule uses the shipped thresholds (chosen on all 7 "
                               "logs: not held out)")
    return out


def acconeer(hops=(5.0, 1.0)) -> dict:
    from sensing.uwb.breathing import RangeBinBreathing
    from sensing.uwb.formats.acconeer_h5 import read_vendor_output

    out = {}
    for path in sorted(RADAR.glob("*/*.h5")):
        if path.name.endswith(".vendor-output.h5"):
            continue
        vendor = read_vendor_output(path.with_name(path.stem + ".vendor-output.h5"))
        v = vendor["breathing_rate_bpm"]
        v = v[np.isfinite(v) & (v > 0)]
        row = {"vendor_median_bpm": round(float(np.median(v)), 2) if len(v) else None,
               "vendor_estimates": int(len(v))}
        for hop in hops:
            est = RangeBinBreathing(hop_s=hop)
            dets = []
            for fr in open_capture(path):
                dets += est.push(fr)
            r = np.array([d.value for d in dets])
            med = float(np.median(r)) if len(r) else float("nan")
            row[f"hop{hop:g}"] = {
                "estimates": int(len(r)), "windows": est.stats["windows"],
                "median_bpm": round(med, 2) if len(r) else None,
                "p10_p90_bpm": [round(float(np.percentile(r, 10)), 2),
                                round(float(np.percentile(r, 90)), 2)] if len(r) else None,
                "abs_diff_vs_vendor_bpm": (round(abs(med - row["vendor_median_bpm"]), 2)
                                           if len(r) and row["vendor_median_bpm"] else None)}
        if "a121" in path.parent.name:
            d = row["hop5"]["abs_diff_vs_vendor_bpm"]
            row["target_within_1.5_bpm"] = bool(d is not None and d <= 1.5)
        out[f"{path.parent.name}/{path.name}"] = row
    return out


def replay_speed(repeats: int = 2) -> dict:
    from agent.pipelines.base import pipelines_for

    files = sorted(UWB.glob("*.log")) + sorted(p for p in RADAR.glob("*/*.h5")
                                                if not p.name.endswith(".vendor-output.h5"))
    # warm up imports (h5py, scipy, onnxruntime of the fall model) outside the timing
    for p in files[:1] + files[-1:]:
        for fr in open_capture(p):
            for cls in pipelines_for(fr.modality):
                cls().push(fr)
            break
    rows = {}
    tot_capture = tot_wall = tot_read = 0.0
    for p in files:
        best = best_read = float("inf")
        dur = 0.0
        names: list[str] = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            chunks = list(open_capture(p))
            t_read = time.perf_counter() - t0
            pipes = [cls() for cls in pipelines_for(chunks[0].modality)]
            names = [q.name for q in pipes]
            for fr in chunks:
                for q in pipes:
                    q.push(fr)
            for q in pipes:
                q.flush()
            best = min(best, time.perf_counter() - t0)
            best_read = min(best_read, t_read)
            dur = float(chunks[-1].times_s[-1] - chunks[0].times_s[0])
        rows[p.name] = {"capture_s": round(dur, 1), "wall_s": round(best, 3),
                        "x_real_time": round(dur / best), "reader_x_real_time": round(dur / best_read),
                        "pipelines": names}
        tot_capture += dur
        tot_wall += best
        tot_read += best_read
    return {"files": rows, "overall_x_real_time": round(tot_capture / tot_wall),
            "reader_only_x_real_time": round(tot_capture / tot_read), "target": 200}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--no-speed", action="store_true", help="skip the replay-speed part")
    args = ap.parse_args(argv)
    if not UWB.exists() or not RADAR.exists():
        print(f"shared data not found under {SHARED}", file=sys.stderr)
        return 2
    res = {"dw1000": dw1000(), "acconeer": acconeer()}
    if not args.no_speed:
        res["replay_speed"] = replay_speed()
    print(json.dumps(res, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
