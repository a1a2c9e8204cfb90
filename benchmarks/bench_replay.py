"""Replay throughput and peak memory: a CSI reader + the ``wifi_breathing`` pipeline.

Simulates a short and a long capture (ESP32 by default; Intel 5300 or Nexmon with
``--file-format``) into a temporary directory, then replays each one in a fresh subprocess (so peak RSS belongs to that run alone) in two modes:

* ``reader``   — parse the file only (the format's reader),
* ``pipeline`` — reader + ``wifi_breathing`` through :func:`agent.runner.run_stream`.

Speed is capture seconds per second, from wall time and from the process's CPU time
(user + system; the CPU figure is what a busy shared machine does not distort). Memory is
the child's peak resident set size (``ru_maxrss``, dominated by numpy/scipy imports, which
are loaded before the clock starts) and the current RSS sampled every 20 chunks during the
replay (first sample → maximum): bounded streaming means the long capture must not need
more than the short one.

Usage::

    python benchmarks/bench_replay.py                       # 1 min and 60 min at 100 pkt/s
    python benchmarks/bench_replay.py --minutes 1 10 --packet-rate 50
    python benchmarks/bench_replay.py --file-format nexmon --n-rx 3   # Intel 5300 / Nexmon
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, resource, sys, time
from agent.pipelines import PIPELINES
from agent.runner import run_stream
from sensing.formats import open_capture
import scipy.signal
scipy.signal.butter  # scipy loads submodules lazily: pay the one-time import before timing
path, mode = sys.argv[1], sys.argv[2]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reader = open_capture(path)
class Count:
    n = 0
    def emit(self, ev): self.n += 1
    def close(self): pass
sink = Count()
page = os.sysconf("SC_PAGE_SIZE") / 2**20
rss = []
def sample(_fr=None, _n=[0]):
    _n[0] += 1
    if _n[0] % 20 == 1:
        with open("/proc/self/statm") as fh:
            rss.append(int(fh.read().split()[1]) * page)
c0, w0 = time.process_time(), time.perf_counter()
if mode == "reader":
    frames, stream_s, first = 0, 0.0, None
    for fr in reader:
        frames += len(fr)
        first = fr.start_s if first is None else first
        stream_s = fr.end_s - first
        sample()
else:
    pipe = PIPELINES.get("wifi_breathing")()
    st = run_stream(reader.chunks(), [pipe], [sink], source=reader.source, on_chunk=sample)
    frames, stream_s = st.frames, st.stream_s
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(frames=frames, stream_s=stream_s, wall_s=wall, cpu_s=cpu,
                      peak_rss_mb=peak / 1024, base_rss_mb=base / 1024, events=sink.n,
                      rss_first_mb=rss[0], rss_max_mb=max(rss), rss_last_mb=rss[-1],
                      rejects=reader.rejects.total)))
"""


def run_child(path: str, mode: str) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, path, mode], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 60.0])
    ap.add_argument("--packet-rate", type=float, default=100.0, help="packets/s (default 100)")
    ap.add_argument("--dir", help="where to write the captures (default: a temporary dir)")
    ap.add_argument("--file-format", default="esp32", choices=["esp32", "intel5300", "nexmon"],
                    help="capture format written by the simulator (default esp32)")
    ap.add_argument("--n-rx", type=int, default=1, help="antennas (Intel 5300 / Nexmon)")
    args = ap.parse_args(argv)
    from sensing.simulate.csi_breathing import simulate_csi_breathing

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = []
        for minutes in args.minutes:
            path = os.path.join(tmp, f"{args.file_format}_{minutes:g}min.capture")
            t0 = time.perf_counter()
            simulate_csi_breathing(path, seed=1, duration_s=60.0 * minutes, rate_bpm=15.0,
                                   distance_m=1.5, packet_rate_hz=args.packet_rate,
                                   file_format=args.file_format, n_rx=args.n_rx)
            gen = time.perf_counter() - t0
            size = os.path.getsize(path) / 1e6
            print(f"simulated {minutes:g} min ({size:.1f} MB) in {gen:.1f} s", file=sys.stderr)
            for mode in ("reader", "pipeline"):
                r = run_child(path, mode)
                r.update(minutes=minutes, mode=mode, size_mb=size)
                rows.append(r)
                print(json.dumps(r), file=sys.stderr)
        print(f"\nreplay of simulated {args.file_format} captures ({args.n_rx} antenna(s)) at "
              f"{args.packet_rate:g} packets/s "
              f"(os.cpu_count()={os.cpu_count()}, load {os.getloadavg()[0]:.1f})\n")
        print(f"{'capture':>8} {'MB':>6} {'mode':<9} {'packets':>8} {'wall s':>7} "
              f"{'x realtime':>10} {'cpu s':>7} {'x (cpu)':>8} {'peak RSS MB':>11} "
              f"{'RSS start→max MB':>16} {'events':>6}")
        for r in rows:
            print(f"{r['minutes']:>6g} m {r['size_mb']:>6.1f} {r['mode']:<9} {r['frames']:>8} "
                  f"{r['wall_s']:>7.2f} {r['stream_s'] / r['wall_s']:>10.0f} {r['cpu_s']:>7.2f} "
                  f"{r['stream_s'] / max(r['cpu_s'], 1e-9):>8.0f} {r['peak_rss_mb']:>11.1f} "
                  f"{r['rss_first_mb']:>8.1f}→{r['rss_max_mb']:<7.1f} {r['events']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
