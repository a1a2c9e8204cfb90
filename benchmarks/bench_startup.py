"""CLI start-up time: every ``ambisense`` command against ``python -c "import numpy"``.

A thin wrapper of the ``startup`` section of ``ambisense bench``
(:mod:`agent.bench.sections.startup`)::

    python benchmarks/bench_startup.py               # 15 runs of each
    python benchmarks/bench_startup.py --repeat 5 --json startup.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.bench.sections.startup import GOAL_RATIO, measure  # noqa: E402


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
    print(f"\nslowest command: {worst:.2f}× the baseline (goal ≤ {GOAL_RATIO:g}×)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
