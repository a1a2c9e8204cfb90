"""``ambisense replay --workers 2`` (a local Dask cluster) vs the serial run."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from agent.bench.base import Result, Skip, section
from agent.bench.util import child_env, median, simulate

#: Goal of the issue: 8 captures on 2 workers in at most this fraction of the serial time.
GOAL = 0.75

#: (simulator, capture seconds quick, full), the first registered one is used: a workload
#: where each capture costs seconds of CPU, as in real archives (the issue's figure: 10-min
#: ESP32 logs), so that the start-up of the workers is amortised.
WORKLOADS = [("csi-breathing", 600.0, 1200.0), ("uwb-activity", 240.0, 600.0),
             ("lora-soil", 30.0, 60.0)]


def _replay(paths: list[str], workers: int | None) -> tuple[float, str, int]:
    cmd = [sys.executable, "-m", "agent.cli", "replay", *paths, "--jsonl", "--no-progress"]
    if workers:
        cmd += ["--workers", str(workers)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(threads=1),
                          timeout=1800)
    return time.perf_counter() - t0, proc.stdout, proc.returncode


@section("parallel", "Archives on Dask: --workers 2 vs serial",
         f"8 simulated captures replayed by `ambisense replay CAPTURES… --jsonl` serially and "
         f"with `--workers 2` (a local Dask cluster of 2 worker processes), alternately; wall "
         f"time of the whole command (interpreter and cluster start-up included), median of "
         f"the repeats; goal ≤ {GOAL:g}× the serial time on 2 cores; `identical` compares the "
         f"two JSON Lines outputs byte for byte.", order=80)
def bench_parallel(quick: bool) -> Result:
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise Skip(f"dask.distributed is not installed (`pip install ambisense[dask]`): "
                   f"{exc}") from None
    from sensing.simulate import SIMULATORS

    sim, seconds = next(((s, q if quick else f) for s, q, f in WORKLOADS if s in SIMULATORS),
                        (None, 0.0))
    if sim is None:
        raise Skip("none of the workload simulators is registered")
    repeat = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="ambisense-bench-") as td:
        paths = []
        for i in range(8):
            out = Path(td) / f"{sim}-{i}"
            truth, _ = simulate(sim, out, seed=i, duration_s=seconds)
            from agent.bench.captures import replayable

            paths.append(replayable(out))
        serial, para = [], []
        ref = out_p = ""
        ok = True
        for _ in range(repeat):
            t, ref, rc1 = _replay(paths, None)
            serial.append(t)
            t, out_p, rc2 = _replay(paths, 2)
            para.append(t)
            ok &= rc1 == 0 and rc2 == 0
    s, p = median(serial), median(para)
    row = {"captures": f"8 × {sim}, {seconds:g} s each", "serial s": s, "--workers 2 s": p,
           "ratio": p / s, f"goal ≤ {GOAL:g}×": p / s <= GOAL,
           "identical": ok and ref == out_p and bool(ref), "events": ref.count("\n")}
    notes = [] if ok else ["a replay exited non-zero"]
    return Result([row], notes)
