"""EDF: our streaming reader (and reader + EEG features) vs ``mne.io.read_raw_edf``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bench.base import Result, Skip, section
from agent.bench.util import median, repeats, shared_data, simulate


def mne_read(path: Path) -> int:
    """Plain mne: ``read_raw_edf(path).get_data()``; returns the samples per channel."""
    import mne

    raw = mne.io.read_raw_edf(str(path), preload=False, verbose="error")
    return int(raw.get_data().shape[1])


def ours_read(path: Path) -> int:
    """Our EDF reader, streamed chunk by chunk; samples per channel."""
    from sensing.formats import open_capture

    return sum(len(fr) for fr in open_capture(path, format="edf").chunks())


def ours_features(path: Path) -> int:
    """Our reader + the EEG feature stream (filters, sliding windows, per-channel features
    and artefact flags: everything of the seizure pipeline but the model); windows."""
    from sensing.eeg.stream_features import FeatureStream
    from sensing.formats import open_capture

    fs = FeatureStream()
    n = 0
    for fr in open_capture(path, format="edf").chunks():
        n += len(fs.push(fr))
    return n + len(fs.flush())


def _cpu(fn: Callable[[Path], int], path: Path) -> float:
    t = time.process_time()
    fn(path)
    return time.process_time() - t


def compare(path: Path, repeat: int) -> dict[str, Any]:
    """Median CPU seconds of the three ways, runs alternated after a warm-up each."""
    ways = {"mne": mne_read, "ours": ours_read, "ours+features": ours_features}
    times: dict[str, list[float]] = {k: [] for k in ways}
    errors = {}
    for k, fn in ways.items():
        try:
            fn(path)
        except Exception as exc:
            errors[k] = f"{type(exc).__name__}: {exc}"
    for _ in range(repeat):
        for k, fn in ways.items():
            if k not in errors:
                times[k].append(_cpu(fn, path))
    t = {k: median(v) if v else None for k, v in times.items()}
    mb = path.stat().st_size / 1e6
    row: dict[str, Any] = {"MB": mb}
    for k in ways:
        row[f"{k} ms"] = t[k] * 1e3 if t[k] is not None else None
        row[f"{k} MB/s"] = mb / t[k] if t[k] else None
    if t["mne"] and t["ours"]:
        row["read: ours vs mne (× faster)"] = t["mne"] / t["ours"]
    if t["mne"] and t["ours+features"]:
        row["read+features vs mne read"] = t["mne"] / t["ours+features"]
    if errors:
        row["errors"] = "; ".join(f"{k}: {v}" for k, v in errors.items())
    return row


@section("edf", "EDF read (vs mne)",
         "Median process CPU time of reading a whole EDF file: plain "
         "`mne.io.read_raw_edf(path).get_data()` (mne loads every channel into one array), "
         "our streaming EDF reader (bounded memory, chunk by chunk), and our reader plus "
         "the EEG feature stream of the seizure pipeline (filters, 4-s windows, 14 "
         "features and artefact flags per channel). `× faster` > 1 means ours is faster. "
         "Files: a CHB-MIT-layout EDF+ (23 channels, 256 Hz) written by the `eeg-seizure` "
         "simulator, and the real EDF files of `../shared/data/eeg`.", order=15)
def bench_edf(quick: bool) -> Result:
    try:
        import mne  # noqa: F401
    except ImportError as exc:
        raise Skip(f"mne is not installed ({exc})") from None
    rows, notes = [], []
    repeat = repeats(quick, full=7, fast=3)
    with tempfile.TemporaryDirectory(prefix="ambisense-bench-") as td:
        minutes = 10 if quick else 60
        sim = Path(td) / f"eeg-seizure-{minutes}min.edf"
        try:
            simulate("eeg-seizure", sim, duration_s=60.0 * minutes)
            rows.append({"file": f"simulated eeg-seizure, {minutes} min, 23 ch × 256 Hz",
                         **compare(sim, repeat)})
        except Exception as exc:
            notes.append(f"simulated EDF: {type(exc).__name__}: {exc}")
        eeg = shared_data() / "eeg"
        real = sorted(p for p in eeg.rglob("*") if p.suffix.lower() in (".edf", ".bdf")) \
            if eeg.is_dir() else []
        for p in real:
            rows.append({"file": p.relative_to(shared_data()).as_posix(), **compare(p, repeat)})
        if not real:
            notes.append(f"no real EDF in {eeg}" + ("" if eeg.is_dir() else " (absent)"))
    notes.append("The shared real EDF files are CHB-MIT header fixtures of a few seconds: "
                 "their timings are dominated by per-file overhead (header parsing, mne's "
                 "set-up); the simulated file shows the streaming throughput.")
    return Result(rows, notes)
