"""CLI start-up time of every command against ``python -c "import numpy"``."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from agent.bench.base import Result, section
from agent.bench.util import child_env, repeats

#: Goal (issue "one plug-in shape"): every command within this many times the baseline.
GOAL_RATIO = 4.0


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env=env)
    return time.perf_counter() - t


def measure(repeat: int) -> dict[str, dict[str, float]]:
    """Median wall seconds of ``ambisense [CMD] --help`` per command and of the numpy
    baseline, runs interleaved (so the machine's other load hits all alike)."""
    from agent.commands import COMMANDS

    env = child_env(threads=None)  # bytecode cache on: written by the warm-up runs
    base = [sys.executable, "-c", "import numpy"]
    cmds = {"(baseline) import numpy": base,
            "ambisense --help": [sys.executable, "-m", "agent.cli", "--help"]}
    for name in COMMANDS.names():
        cmds[f"ambisense {name} --help"] = [sys.executable, "-m", "agent.cli", name, "--help"]
    runs: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():  # warm the file and bytecode caches
        _time(cmd, env)
    for _ in range(repeat):
        for key, cmd in cmds.items():
            runs[key].append(_time(cmd, env))
    ref = statistics.median(runs["(baseline) import numpy"])
    return {k: {"median_s": statistics.median(v), "ratio": statistics.median(v) / ref}
            for k, v in runs.items()}


@section("startup", "CLI start-up", "Median wall time of `python -m agent.cli CMD --help` "
         "(parse the command's arguments and exit: what a user waits for before anything "
         "runs) per command, each run interleaved with `python -c \"import numpy\"`, with the "
         "bytecode cache written (as `pip install` leaves it; a warm-up run writes it where "
         "`PYTHONDONTWRITEBYTECODE` is set); goal "
         f"≤ {GOAL_RATIO:g}× that baseline.", order=70)
def bench_startup(quick: bool) -> Result:
    res = measure(repeats(quick, full=9, fast=3))
    rows = [{"command": k, "median s": v["median_s"], "× import numpy": v["ratio"],
             "goal ≤ 4×": None if k.startswith("(baseline)") else v["ratio"] <= GOAL_RATIO}
            for k, v in res.items()]
    worst = max(v["ratio"] for k, v in res.items() if not k.startswith("(baseline)"))
    return Result(rows, [f"slowest command: {worst:.2f}× the baseline (goal ≤ {GOAL_RATIO:g}×)"])
