"""EEG seizure pipeline: speed on 1 h of 23-channel 256 Hz EEG, memory over a 24-hour file.

Usage (from the repository root)::

    python benchmarks/bench_eeg.py --hours 1            # speed (target: <= 3 s CPU on one core)
    python benchmarks/bench_eeg.py --memory-hours 24    # memory stays flat over 24 h

Both write a CHB-MIT-like EDF+ (23 bipolar channels at 256 Hz, ``T8-P8`` twice) with the
``eeg-seizure`` simulator into a temporary folder (``--keep DIR`` to keep it), then run the same
path as ``ambisense replay``: mne streaming read → montage → notch/band-pass → windows →
features → int8 onnxruntime → detector. Math libraries and onnxruntime are limited to one
thread. Timing is process CPU time (the machine is shared; wall time is printed too). Memory is
the resident set size sampled every simulated hour; "flat" means the last sample is within
``--tolerance-mb`` of the sample after the first hour.
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def make_file(folder: Path, hours: float, seed: int = 0) -> tuple[Path, float, float]:
    """Simulate ``hours`` of 23-channel EEG; returns path, CPU s and peak RSS growth (MB)."""
    from sensing.simulate.eeg_seizure import simulate_eeg_seizure

    out = folder / f"bench_{hours:g}h.edf"
    if out.exists():
        return out, 0.0, 0.0
    r0, c0 = rss_mb(), time.process_time()
    simulate_eeg_seizure(out, seed=seed, duration_s=hours * 3600.0, fs_hz=256.0,
                         layout="chbmit", n_seizures=max(1, int(hours * 2)),
                         n_artefacts=max(7, int(hours * 7)))
    return out, time.process_time() - c0, rss_mb() - r0


def run(path: Path, sample_every_s: float | None = None) -> dict:
    """Replay ``path`` through the eeg_seizure pipeline; CPU/wall time and RSS samples."""
    from agent.pipelines.eeg_seizure import EegSeizurePipeline
    from sensing.formats import open_capture

    pipe = EegSeizurePipeline(threads=1)
    reader = open_capture(path)
    samples = []
    next_sample = sample_every_s
    events = []
    w0, c0 = time.perf_counter(), time.process_time()
    stream_s = 0.0
    for fr in reader.chunks():
        events += pipe.push(fr)
        stream_s = fr.end_s
        if next_sample is not None and stream_s >= next_sample:
            samples.append((round(stream_s / 3600, 2), round(rss_mb(), 1)))
            next_sample += sample_every_s
    events += pipe.flush()
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    scores = score_against_truth(path, events)
    return {
        "file": path.name, "hours": round(stream_s / 3600, 3),
        "channels": len(reader.montage.names), "fs_hz": reader.fs_hz,
        "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
        "cpu_s_per_hour": round(cpu / max(stream_s / 3600, 1e-9), 2),
        "events": {t: sum(e.type == t for e in events) for t in ("seizure_alert", "seizure")},
        "rss_mb_by_hour": samples,
        "model_latency_ms": pipe.model.latency_ms,
        "vs_truth": scores,
    }


def score_against_truth(path: Path, events: list) -> dict | None:
    """SzCORE event scores of the detections against the simulator's truth sidecar."""
    from agent.commands.eval import Recording, evaluate_seizures, read_truth

    truth_file = Path(str(path) + ".truth.json")
    if not truth_file.exists():
        return None
    (ref,) = read_truth(str(truth_file)).values()
    hyp = Recording(ref.name, [(e.offset_s, e.offset_s + e.extra["duration_s"],
                                e.extra["detected_at_s"]) for e in events if e.type == "seizure"])
    res = evaluate_seizures([(ref, hyp)])
    return {"event": {k: res["event"][k] for k in ("sensitivity", "precision", "f1",
                                                   "fp_per_24h", "ref_events")},
            "median_latency_s": res["latency_s"]["median"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=1.0, help="speed run length (h)")
    ap.add_argument("--memory-hours", type=float, default=0.0,
                    help="also run a memory check over a file this long (h), e.g. 24")
    ap.add_argument("--target-s", type=float, default=3.0, help="CPU budget per hour of EEG (s)")
    ap.add_argument("--tolerance-mb", type=float, default=20.0)
    ap.add_argument("--keep", metavar="DIR", help="write/reuse the EDF files here")
    args = ap.parse_args(argv)
    tmp = None
    if args.keep:
        folder = Path(args.keep)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_eeg_")
        folder = Path(tmp.name)
    report: dict = {}
    ok = True
    try:
        path, gen_cpu, _ = make_file(folder, args.hours)
        run(path)  # warm-up: imports, model load, page cache
        speed = run(path)
        speed["generate_cpu_s"] = round(gen_cpu, 2)
        speed["target_cpu_s_per_hour"] = args.target_s
        speed["pass"] = speed["cpu_s_per_hour"] <= args.target_s
        ok &= speed["pass"]
        report["speed"] = speed
        if args.memory_hours:
            mpath, mgen_cpu, mgen_rss = make_file(folder, args.memory_hours, seed=1)
            mem = run(mpath, sample_every_s=3600.0)
            s = mem["rss_mb_by_hour"]
            growth = s[-1][1] - s[0][1] if len(s) > 1 else 0.0
            mem.update(generate_cpu_s=round(mgen_cpu, 1),
                       generate_rss_growth_mb=round(mgen_rss, 1),
                       file_mb=round(mpath.stat().st_size / 1e6, 1),
                       rss_growth_after_first_hour_mb=round(growth, 1),
                       tolerance_mb=args.tolerance_mb,
                       **{"pass": abs(growth) <= args.tolerance_mb})
            ok &= mem["pass"]
            report["memory"] = mem
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
