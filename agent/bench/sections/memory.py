"""Peak resident memory of a 1-minute vs a long capture per modality (bounded streaming
means flat), and the agent's RSS at live pace and fully loaded with every default
pipeline running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.bench.base import Result, Skip, section
from agent.bench.captures import Capture, group_of, make
from agent.bench.util import child_env, run_child

#: Flat: the long run's peak RSS within this factor of the short run's.
FLAT_RATIO = 1.10

CHILD = r"""
import json, os, resource, sys, time
path, mode, limit_s = sys.argv[1], sys.argv[2], float(sys.argv[3])
import scipy.signal
scipy.signal.butter
from agent.pipelines import pipelines_for
from agent.runner import run_stream
from sensing.formats import open_capture
from sensing.sources.replay import ReplaySource
page = os.sysconf("SC_PAGE_SIZE") / 2**20
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page
def hwm():
    # VmHWM: this process image's peak RSS (ru_maxrss would include the parent's peak,
    # which Linux carries over an exec)
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
reader = open_capture(path)
pipes = [cls() for cls in pipelines_for(reader.modality)]
class Sink:
    def emit(self, ev): pass
    def close(self): pass
samples, seen, n = [], [None, 0.0], [0]
def on_chunk(fr):
    seen[0] = fr.start_s if seen[0] is None else seen[0]
    seen[1] = fr.end_s - seen[0]
    n[0] += 1
    if n[0] % 10 == 1:
        samples.append((seen[1], rss()))
base = hwm()
if mode == "loop":
    src = ReplaySource(path, "bench", loop=True)
    chunks = src.chunks(lambda: seen[1] >= limit_s)
else:
    chunks = reader.chunks()
c0 = time.process_time()
st = run_stream(chunks, pipes, [Sink()], source="bench", on_chunk=on_chunk,
                stop=lambda: seen[1] >= limit_s)
cpu = time.process_time() - c0
samples.append((seen[1], rss()))
peak = hwm()
later = [r for t, r in samples if t >= 0.1 * seen[1]] or [samples[-1][1]]
print(json.dumps(dict(stream_s=seen[1], cpu_s=cpu, peak_mb=peak, base_mb=base,
                      rss_first_mb=samples[0][1], rss_max_mb=max(r for _, r in samples),
                      rss_after_10pct_mb=min(later), rss_last_mb=samples[-1][1],
                      modality=reader.modality, pipelines=st.pipelines)))
"""


def pick_simulators() -> dict[str, str]:
    """One simulator per modality group, preferring ``<group>-breathing``."""
    from sensing.simulate import SIMULATORS

    out: dict[str, str] = {}
    for name in SIMULATORS.names():
        g = group_of(name)
        if g not in out or name in (f"{g}-breathing", f"{g}-sonar"):
            out[g] = name
    return out


def measure(path: str, mode: str, limit_s: float) -> dict[str, Any]:
    return run_child(CHILD, path, mode, str(limit_s), timeout=1800)


def compare(sim: str, folder: Path, long_s: float, quick: bool) -> dict[str, Any]:
    """Short (60 s) vs long run of one simulator; the long run is a simulated file when
    that fits the budgets, else the short file replayed in a loop (the agent's replay
    source), which checks the pipelines but reads no long file."""
    short = make(sim, folder, 60.0, max_bytes=200e6, max_sim_s=12.0 if quick else 60.0,
                 tag="short")
    a = measure(short.path, "file", 1e12)
    rtf = a["stream_s"] / max(a["cpu_s"], 1e-6)
    cpu_budget = 12.0 if quick else 300.0
    want = min(long_s, rtf * cpu_budget)  # what replay can do within the CPU budget
    long: Capture | None = None
    try:
        long = make(sim, folder, want, max_bytes=0.3e9 if quick else 4e9,
                    max_sim_s=20.0 if quick else 600.0, tag="long")
    except Exception:
        long = None
    if long is not None and long.duration_s >= min(want, 0.9 * long_s) * 0.95:
        b = measure(long.path, "file", 1e12)
        how = f"file of {long.duration_s / 60:.0f} min ({long.bytes / 1e6:.0f} MB)"
    else:
        b = measure(short.path, "loop", want)
        how = (f"the {short.duration_s:g} s file looped to {b['stream_s'] / 60:.1f} min "
               f"(a {long_s / 60:.0f}-min file would take too long to simulate or store)")
    for cap in (short, long):
        if cap is not None:
            for p in folder.glob(Path(cap.path).name.split(".")[0] + "*"):
                p.unlink()
    return {"simulator": sim, "modality": a["modality"],
            "short s": a["stream_s"], "short peak MB": a["peak_mb"],
            "long": how, "long s": b["stream_s"], "long peak MB": b["peak_mb"],
            "peak ratio": b["peak_mb"] / a["peak_mb"],
            "RSS after 10 % → end MB": f"{b['rss_after_10pct_mb']:.0f} → {b['rss_last_mb']:.0f}",
            "flat": b["peak_mb"] / a["peak_mb"] <= FLAT_RATIO,
            "_short": a, "_long": b}


def _rss_mb(pid: int) -> tuple[float, float]:
    """Current (VmRSS) and peak (VmHWM) resident set of a process, MB."""
    vals = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                vals[line.split(":")[0]] = int(line.split()[1]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


def agent_rss(captures: list[str], folder: Path, realtime: bool, seconds: float
              ) -> dict[str, Any]:
    """Run ``ambisense agent`` replaying ``captures`` in a loop (one source each, every
    default pipeline) for ``seconds``; RSS sampled every 0.5 s, then SIGTERM."""
    cfg = folder / f"agent-{'live' if realtime else 'loaded'}.toml"
    lines = ['[agent]', 'name = "bench"', 'status_interval_s = 3600', '']
    for i, c in enumerate(captures):
        lines += ["[[sources]]", 'type = "replay"', f'name = "s{i}"', f'path = "{c}"',
                  "loop = true", f"realtime = {'true' if realtime else 'false'}", ""]
    lines += ["[sinks]", 'console = "off"']
    cfg.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "agent", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=child_env(threads=1))
    samples = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds and proc.poll() is None:
            time.sleep(0.5)
            try:
                samples.append((time.monotonic() - t0, *_rss_mb(proc.pid)))
            except OSError:
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    if not samples:
        raise RuntimeError(f"agent exited {proc.returncode}: {(err or '').strip()[-300:]}")
    settled = [r for t, r, _ in samples if t >= seconds / 2] or [samples[-1][1]]
    return {"rss_mb": max(settled), "peak_mb": samples[-1][2], "seconds": samples[-1][0],
            "returncode": proc.returncode}


@section("memory", "Memory: 1 minute vs a long capture, and the agent",
         "Peak resident set (`VmHWM` of a fresh child process, which includes numpy/scipy "
         "and the pipelines' imports) while replaying a 60-s capture of one simulator per "
         "modality vs a long one (60 min; 10 min with `--quick`; a simulated file when "
         "practical, else the short file replayed in a loop through the agent's replay "
         "source); `peak ratio` long/short ≈ 1.00 means memory does not grow with the "
         f"capture (flat: ≤ {FLAT_RATIO:.2f}). Then `ambisense agent` with one looping "
         "replay source per modality and every default pipeline: RSS at live pace "
         "(`realtime = true`: mostly waiting, the idle footprint with all pipelines built) "
         "and fully loaded (`realtime = false`: every stream as fast as the CPU allows).",
         order=40)
def bench_memory(quick: bool) -> Result:
    sims = pick_simulators()
    if not sims:
        raise Skip("no simulator registered")
    long_s = 600.0 if quick else 3600.0
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="ambisense-bench-") as td:
        folder = Path(td)
        for _g, sim in sorted(sims.items()):
            try:
                rows.append(compare(sim, folder, long_s, quick))
            except Exception as exc:
                rows.append({"simulator": sim, "error": f"{type(exc).__name__}: {exc}"})
        caps = []
        for _g, sim in sorted(sims.items()):
            try:
                caps.append(make(sim, folder / "agent", 30.0, max_bytes=50e6, max_sim_s=10.0,
                                 tag="agent").path)
            except Exception as exc:
                notes.append(f"agent run without {sim}: {type(exc).__name__}: {exc}")
        secs = 12.0 if quick else 40.0
        for realtime, label in ((True, "agent, live pace (idle)"),
                                (False, "agent, loaded (as fast as possible)")):
            try:
                r = agent_rss(caps, folder, realtime, secs)
                rows.append({"simulator": label, "modality": f"{len(caps)} streams",
                             "long": f"RSS over {r['seconds']:.0f} s", "long peak MB":
                             r["peak_mb"], "RSS after 10 % → end MB": f"{r['rss_mb']:.0f}",
                             "_agent": r})
            except Exception as exc:
                rows.append({"simulator": label, "error": f"{type(exc).__name__}: {exc}"})
    notes.append(f"os.cpu_count() = {os.cpu_count()}; math libraries on 1 thread in the "
                 "children; RSS in MB = 2**20 bytes.")
    return Result(rows, notes)
