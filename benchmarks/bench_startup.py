"""CLI start-up time: every ``ambisense`` command against ``python -c "import numpy"``.

Each command is started as a new process (``python -m agent.cli CMD --help``, which
parses the command's arguments and exits: what a user waits for before anything runs),
``--repeat`` times, interleaved with the numpy baseline; the table shows the median wall
time of each and its ratio to the baseline. The goal (issue "one plug-in shape") is at
most 4× the baseline for every command.

Usage::

    python benchmarks/bench_startup.py               # 15 runs of each
    python benchmarks/bench_startup.py --repeat 5 --json startup.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def _time(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def measure(repeat: int) -> dict[str, dict[str, float]]:
    """Median seconds per command (and the numpy baseline), commands interleaved."""
    from agent.commands import COMMANDS

    base = [sys.executable, "-c", "import numpy"]
    cmds = {"(baseline) import numpy": base,
            "ambisense --help": [sys.executable, "-m", "agent.cli", "--help"]}
    for name in COMMANDS.names():
        cmds[f"ambisense {name} --help"] = [sys.executable, "-m", "agent.cli", name, "--help"]
    runs: dict[str, list[float]] = {k: [] for k in cmds}
    for cmd in cmds.values():  # warm the file cache
        _time(cmd)
    for _ in range(repeat):
        for key, cmd in cmds.items():
            runs[key].append(_time(cmd))
    ref = statistics.median(runs["(baseline) import numpy"])
    return {k: {"median_s": statistics.median(v), "ratio": statistics.median(v) / ref}
            for k, v in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args()
    res = measure(args.repeat)
    print("| command | median wall (s) | × `import numpy` |")
    print("| --- | --- | --- |")
    for k, v in res.items():
        print(f"| `{k}` | {v['median_s']:.3f} | {v['ratio']:.2f} |")
    worst = max(v["ratio"] for k, v in res.items() if not k.startswith("(baseline)"))
    print(f"\nslowest command: {worst:.2f}× the baseline (goal ≤ 4×)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
