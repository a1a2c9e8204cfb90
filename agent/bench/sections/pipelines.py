"""Real-time factor of every default pipeline on a capture of every simulator, and the
capture→event latency in live mode."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from agent.bench.base import Result, Skip, section
from agent.bench.captures import group_of, make, remove
from agent.bench.util import run_child

#: Real-time factor targets of the issue, by modality prefix (reader + every default
#: pipeline, process CPU time): ≥ 200× for CSI, UWB/radar and EEG, ≥ 50× for 48 kHz audio,
#: ≥ 20× for 2-channel 500 kS/s LoRa IQ (the LoRa figure is normalised to that rate).
TARGETS = {"wifi": 200.0, "uwb": 200.0, "radar": 200.0, "eeg": 200.0, "audio": 50.0,
           "lora_iq": 20.0}

#: LoRa target's reference sample rate: 2 channels × 500 kS/s.
LORA_REF_RATE = 2 * 500e3

#: Live-mode chunk length (s of capture per chunk), as a live source delivers them.
LIVE_CHUNK_S = 0.1

CHILD = r"""
import json, sys, time
path, repeat, live_chunk_s, live_max_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
import numpy as np
import scipy.signal
scipy.signal.butter  # scipy loads submodules lazily: pay the one-time import before timing
from agent.pipelines import pipelines_for
from agent.runner import run_stream
from sensing.formats import open_capture

class Count:
    n = 0
    def emit(self, ev): self.n += 1
    def close(self): pass

def instrumented(modality, chunk_cost):
    pipes = [cls() for cls in pipelines_for(modality)]
    cost = {p.name: 0.0 for p in pipes}
    for p in pipes:
        def wrap(fn, name):
            def timed(*a):
                t = time.process_time(); w = time.perf_counter()
                out = fn(*a)
                cost[name] += time.process_time() - t
                chunk_cost[0] += time.perf_counter() - w
                chunk_cost[1] = chunk_cost[1] or bool(out)
                return out
            return timed
        p.push, p.flush = wrap(p.push, p.name), wrap(p.flush, p.name)
    return pipes, cost

runs, info = [], {}
# run 0 is a warm-up, not counted: it loads what the pipelines import lazily (on their
# first window) and fills the page cache
for i in range(repeat + 1):
    reader = open_capture(path)
    chunk_cost = [0.0, False]
    pipes, cost = instrumented(reader.modality, chunk_cost)
    sink = Count()
    c0, w0 = time.process_time(), time.perf_counter()
    st = run_stream(reader.chunks(), pipes, [sink], source=reader.source)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    if i == 0:
        continue
    runs.append(dict(cpu_s=cpu, wall_s=wall, pipes=cost))
    info = dict(modality=reader.modality, format=reader.name, frames=st.frames,
                stream_s=st.stream_s, events=sink.n, pipelines=st.pipelines,
                rejects=reader.rejects.total)
# the stream's rate and width, from one chunk
reader = open_capture(path)
first = next(iter(reader.chunks()))
rate = st.frames / st.stream_s if st.stream_s > 0 else 0.0
info["rows_per_s"] = rate
info["fs_hz"] = first.fs_hz
info["channels"] = int(np.prod(first.data.shape[1:])) if first.data.ndim > 1 else 1
# live mode: chunks of live_chunk_s; processing time of each chunk that completed an event
lat, chunk_s = [], []
if rate > 0 and live_max_s > 0:
    n = max(1, int(round(rate * live_chunk_s)))
    reader = open_capture(path, chunk_size=n)
    chunk_cost = [0.0, False]
    pipes, _ = instrumented(reader.modality, chunk_cost)
    seen = [None, 0.0]
    def on_chunk(fr):
        if chunk_cost[1]:
            lat.append(chunk_cost[0])
        chunk_s.append(chunk_cost[0])
        seen[0] = fr.start_s if seen[0] is None else seen[0]
        seen[1] = fr.end_s - seen[0]
        chunk_cost[0], chunk_cost[1] = 0.0, False
    run_stream(reader.chunks(), pipes, [Count()], source=reader.source, on_chunk=on_chunk,
               stop=lambda: seen[1] >= live_max_s)
    info["live_chunk_rows"] = n
    info["live_stream_s"] = seen[1]
print(json.dumps(dict(runs=runs, info=info, latency_s=lat, chunk_s=chunk_s)))
"""


def target_for(modality: str) -> float | None:
    """The issue's real-time-factor target for a modality (``None``: no target)."""
    return next((t for k, t in TARGETS.items() if modality.startswith(k)), None)


def measure(path: str, repeat: int, live_max_s: float) -> dict[str, Any]:
    """Replay ``path`` in a fresh child ``repeat`` times (plus one live-sized pass)."""
    return run_child(CHILD, path, str(repeat), str(LIVE_CHUNK_S), str(live_max_s))


def rows_for(sim: str, cap: Any, res: dict[str, Any], pi: dict[str, Any]
             ) -> list[dict[str, Any]]:
    """Rows of one simulated capture: all pipelines together, then each one alone."""
    import numpy as np

    from agent.bench.pi import core_share_pct

    info, runs = res["info"], res["runs"]
    stream_s = info["stream_s"]
    cpu = float(np.median([r["cpu_s"] for r in runs]))
    wall = float(np.median([r["wall_s"] for r in runs]))
    modality = info["modality"]
    target = target_for(modality)
    scale = 1.0
    if modality.startswith("lora_iq") and info.get("fs_hz"):
        scale = info["fs_hz"] * info["channels"] / LORA_REF_RATE  # cost ∝ samples
    rtf = stream_s / cpu if cpu > 0 else float("inf")
    lat = np.asarray(res["latency_s"]) * 1e3
    base = {"simulator": sim, "modality": modality, "capture s": stream_s}
    rows = [{**base, "pipeline": "reader + " + (" + ".join(info["pipelines"]) or "none"),
             "× real time (CPU)": rtf, "× real time (wall)": stream_s / wall if wall else None,
             "target": target,
             "× at target rate": rtf * scale if scale != 1.0 else None,
             "met": None if target is None else rtf * scale >= target,
             "events": info["events"],
             "live p50 ms": float(np.percentile(lat, 50)) if lat.size else None,
             "live p99 ms": float(np.percentile(lat, 99)) if lat.size else None,
             "Pi 4 % core (est.)": core_share_pct(rtf, pi["pi4"]),
             "Pi 5 % core (est.)": core_share_pct(rtf, pi["pi5"]),
             "_cpu_s": cpu, "_wall_s": wall, "_info": info,
             "_simulate_s": cap.simulate_s, "_bytes": cap.bytes}]
    pipe_cpu: dict[str, float] = {}
    for name in info["pipelines"]:
        pipe_cpu[name] = float(np.median([r["pipes"][name] for r in runs]))
    reader_cpu = cpu - sum(pipe_cpu.values())
    rows.append({**base, "pipeline": f"(reader {info['format']})",
                 "× real time (CPU)": stream_s / reader_cpu if reader_cpu > 0 else None,
                 "_cpu_s": reader_cpu})
    for name, c in pipe_cpu.items():
        rows.append({**base, "pipeline": name,
                     "× real time (CPU)": stream_s / c if c > 0 else None,
                     "Pi 4 % core (est.)": core_share_pct(stream_s / c, pi["pi4"]) if c > 0
                     else None, "_cpu_s": c})
    return rows


@section("pipelines", "Pipelines: real-time factor and live latency",
         "Every registered simulator writes a capture with its default options (about 60 s "
         "with `--quick`, 300 s otherwise, shorter when the file or the simulation would be "
         "too big: see the capture length), replayed in a fresh process through the "
         "default pipelines of its modality, as `ambisense replay` does. `× real time` = "
         "capture seconds / process CPU seconds (and / wall seconds), median of the repeats "
         "after one uncounted warm-up replay (what the pipelines import on their first "
         "window, the page cache); "
         "one row for the reader and all pipelines together (what the target applies to), "
         "then the reader alone and each pipeline alone (its own `push`/`flush` CPU time; "
         "analyses shared between pipelines count for the first that asks). LoRa's target "
         "(≥ 20× for 2 channels at 500 kS/s) is checked on the figure scaled to that sample "
         "rate (`× at target rate`, cost taken as proportional to samples). `live p50/p99 "
         "ms`: the capture is fed again in live-sized chunks (0.1 s of capture each); for "
         "every chunk that completed an event, the processing time of that chunk (all "
         "pipelines), i.e. the latency beyond the window hop and the chunk's own 0.1 s.",
         order=30)
def bench_pipelines(quick: bool) -> Result:
    from sensing.simulate import SIMULATORS

    sims = SIMULATORS.names()
    if not sims:
        raise Skip("no simulator registered")
    seconds = 60.0 if quick else 300.0
    repeat = 2 if quick else 5
    budget = dict(max_bytes=150e6 if quick else 1.5e9, max_sim_s=8.0 if quick else 90.0)
    from agent.bench.pi import factors

    pi = factors()
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="ambisense-bench-") as td:
        for sim in sims:
            try:
                cap = make(sim, Path(td), seconds, **budget)
            except Exception as exc:
                rows.append({"simulator": sim, "pipeline": "–",
                             "error": f"simulate: {type(exc).__name__}: {exc}"})
                continue
            try:
                res = measure(cap.path, repeat, 30.0 if quick else 120.0)
                rows += rows_for(sim, cap, res, pi)
            except Exception as exc:
                rows.append({"simulator": sim, "pipeline": "–",
                             "error": f"replay: {type(exc).__name__}: {exc}"})
            if cap.shortened:
                notes.append(f"{sim}: {cap.duration_s:g} s of capture instead of "
                             f"{cap.requested_s:g} s ({cap.bytes / 1e6:.0f} MB, simulated in "
                             f"{cap.simulate_s:.1f} s): the file-size/simulation budget.")
            remove(cap)
    missed = [f"{r['simulator']} {r['× at target rate'] or r['× real time (CPU)']:.0f}× "
              f"(target {r['target']:g}×)" for r in rows if r.get("met") is False]
    notes.append("targets not met: " + (", ".join(missed) if missed else "none"))
    notes.append(f"Pi columns: an ESTIMATE (agent/bench/pi.py), not a Pi measurement: share "
                 f"of one core = 100 % × factor / (× real time here), factor Pi 4 "
                 f"{pi['pi4']:.1f}×, Pi 5 {pi['pi5']:.1f}× = sysbench single-core ratio "
                 f"({pi['host_sysbench_events_per_cpu_s']:.0f} events/CPU-s here, "
                 f"{pi['host_source']}; published Pi 4 1478, Pi 5 2737 events/s) × "
                 f"{pi['vector_penalty']:g} assumed for NEON vs AVX numpy kernels.")
    groups = sorted({group_of(s) for s in sims})
    notes.append(f"simulator groups: {', '.join(groups)}; live latency from up to "
                 f"{30 if quick else 120} s of each capture.")
    return Result(rows, notes)
