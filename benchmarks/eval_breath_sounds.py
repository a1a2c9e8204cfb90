"""Breath-sound breathing rate on the RRuJO recordings: MAE per device and per paced rate,
plus the naive estimator (band-pass, envelope, strongest spectral line) for comparison,
and the throughput of the acoustic pipelines on 48 kHz audio.

Each recording (≈ 60 s) runs through the ``acoustic_breath_sounds`` pipeline exactly as
``ambisense replay`` runs it (30 s windows every 5 s); the recording's estimate is the
median of its window rates. Another folder of the same layout (``truth.json`` mapping
file → ``{"rate_bpm", "device"}``) can be given with ``--data``.

Usage::

    python benchmarks/eval_breath_sounds.py                 # ../shared/data/acoustic/rrujo-breath-sounds
    python benchmarks/eval_breath_sounds.py --data DIR --json
    python benchmarks/eval_breath_sounds.py --speed         # also replay throughput at 48 kHz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sensing.acoustic.breath_sounds import BreathSoundsParams  # noqa: E402
from sensing.acoustic.pipelines.breath_sounds import AcousticBreathSoundsPipeline  # noqa: E402
from sensing.formats import open_capture  # noqa: E402
from sensing.frames import Frames  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "acoustic" / \
    "rrujo-breath-sounds"


def estimate(path: Path) -> tuple[float, list[float], int]:
    """(median window rate, window rates, windows with two bursts per breath)."""
    pipe = AcousticBreathSoundsPipeline()
    dets = []
    for fr in open_capture(path).chunks():
        dets += pipe.push(fr)
    dets += pipe.flush()
    vals = [float(d.value) for d in dets]
    doubled = sum(d.extra.get("bursts_per_breath") == 2 for d in dets)
    return (float(np.median(vals)) if vals else float("nan")), vals, doubled


def naive(path: Path) -> float:
    """Band-pass 150–1500 Hz, squared envelope at 10 Hz, strongest line in 6–40 /min."""
    fr = list(open_capture(path, chunk_size=1 << 22).chunks())
    x = np.concatenate([f.data[:, 0] for f in fr]).astype(float)
    fs = fr[0].fs_hz
    sos = signal.butter(4, [150, min(1500, 0.45 * fs)], "bandpass", fs=fs, output="sos")
    e = signal.sosfilt(sos, x) ** 2
    q = int(fs // 10)
    e = e[: len(e) // q * q].reshape(-1, q).mean(axis=1)
    f, p = signal.periodogram(e - e.mean(), 10.0, nfft=1 << 14)
    band = (f * 60 >= 6) & (f * 60 <= 40)
    return float(f[band][np.argmax(p[band])] * 60)


def speed(seconds: float = 60.0) -> dict[str, float]:
    """Real-time factor of each acoustic pipeline of this module on 48 kHz audio (a
    20 kHz tone + noise for CW motion, noise for breath sounds)."""
    from sensing.acoustic.pipelines.cw_motion import AcousticCwMotionPipeline

    fs = 48000
    rng = np.random.default_rng(0)
    t = np.arange(int(fs * seconds)) / fs
    out = {}
    for name, cls, x in (
            ("acoustic_breath_sounds", AcousticBreathSoundsPipeline,
             0.05 * rng.standard_normal(len(t))),
            ("acoustic_cw_motion", AcousticCwMotionPipeline,
             0.3 * np.cos(2 * np.pi * 20000 * t) + 3e-4 * rng.standard_normal(len(t)))):
        x = x.astype(np.float32)[:, None]
        pipe = cls()
        t0 = time.perf_counter()
        for i in range(0, len(x), 4096):
            pipe.push(Frames(x[i:i + 4096], t[i:i + 4096], fs, "audio", "bench",
                             meta={"probe": None}))
        pipe.flush()
        out[name] = round(seconds / (time.perf_counter() - t0), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT, help="folder with truth.json")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON too")
    ap.add_argument("--speed", action="store_true", help="also measure 48 kHz throughput")
    args = ap.parse_args(argv)
    truth = json.loads((args.data / "truth.json").read_text())
    rows = []
    for name, t in sorted(truth.items()):
        est, vals, doubled = estimate(args.data / name)
        rows.append({"file": name, "device": t.get("device", "?"), "rate_bpm": t["rate_bpm"],
                     "estimate_bpm": round(est, 2), "naive_bpm": round(naive(args.data / name), 2),
                     "windows": len(vals), "doubled_windows": doubled})
    err = np.array([abs(r["estimate_bpm"] - r["rate_bpm"]) for r in rows])
    nerr = np.array([abs(r["naive_bpm"] - r["rate_bpm"]) for r in rows])
    print(f"{len(rows)} recordings, defaults {BreathSoundsParams().given() or 'as shipped'}")
    print(f"{'group':<22} {'n':>3} {'MAE bpm':>8} {'≤1 bpm':>7} {'naive MAE':>10} {'naive ≤1':>9}")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        groups[f"device {r['device']}"].append(i)
        groups[f"rate {r['rate_bpm']:>2} bpm"].append(i)
        groups["all"].append(i)
    for g in sorted(groups, key=lambda k: (k == "all", k)):
        ix = groups[g]
        print(f"{g:<22} {len(ix):>3} {err[ix].mean():>8.2f} {int((err[ix] <= 1).sum()):>4}/"
              f"{len(ix):<2} {nerr[ix].mean():>10.2f} {int((nerr[ix] <= 1).sum()):>5}/{len(ix)}")
    octave = [r["file"] for r in rows
              if min(abs(r["estimate_bpm"] - 2 * r["rate_bpm"]),
                     abs(r["estimate_bpm"] - r["rate_bpm"] / 2)) < 1]
    print(f"octave errors (double/half): {len(octave)} {octave}")
    print("misses > 1 bpm:", [(r["file"], r["rate_bpm"], r["estimate_bpm"]) for r in rows
                              if abs(r["estimate_bpm"] - r["rate_bpm"]) > 1])
    if args.json:
        print(json.dumps(rows, indent=1))
    if args.speed:
        print("real-time factor at 48 kHz (one core):", speed())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
