"""The issue's ESP32 figure: replay of 10 minutes of ESP32 capture at 100 and 200
packets/s through every default WiFi pipeline, against the 200× goal."""

from __future__ import annotations

import tempfile
from pathlib import Path

from agent.bench.base import Result, Skip, section
from agent.bench.sections.pipelines import CHILD
from agent.bench.util import median, run_child, simulate

#: Goal of the issue for ESP32 replay (capture seconds per CPU second).
GOAL = 200.0


@section("esp32_replay", "ESP32 replay: 10 minutes at 100 and 200 packets/s",
         "A 10-minute `csi-breathing` ESP32 log (esp-csi layout, one person breathing at "
         "2 m) at 100 and at 200 packets/s, replayed in a fresh process through the default "
         "WiFi pipelines (`wifi_breathing` + `wifi_motion`), as `ambisense replay` does; "
         "`× real time` = capture seconds / process CPU seconds (and / wall seconds), "
         f"median of the repeats; goal ≥ {GOAL:g}×. The reader's share is its own CPU time "
         "(the rest is the pipelines').", order=31)
def bench_esp32_replay(quick: bool) -> Result:
    from sensing.simulate import SIMULATORS

    if "csi-breathing" not in SIMULATORS:
        raise Skip("the csi-breathing simulator is not registered")
    rows = []
    with tempfile.TemporaryDirectory(prefix="ambisense-bench-") as td:
        for rate in (100.0, 200.0):
            out = Path(td) / f"esp32_{rate:.0f}hz.csv"
            simulate("csi-breathing", out, duration_s=600.0, packet_rate_hz=rate)
            res = run_child(CHILD, str(out), "2" if quick else "5", "0.1", "0")
            info, runs = res["info"], res["runs"]
            cpu = median([r["cpu_s"] for r in runs])
            wall = median([r["wall_s"] for r in runs])
            pipes = median([sum(r["pipes"].values()) for r in runs])
            rtf = info["stream_s"] / cpu
            rows.append({"packets/s": rate, "MB": out.stat().st_size / 1e6,
                         "packets": info["frames"], "capture s": info["stream_s"],
                         "× real time (CPU)": rtf, "× real time (wall)": info["stream_s"] / wall,
                         "reader × real time": info["stream_s"] / max(cpu - pipes, 1e-9),
                         "reader share": (cpu - pipes) / cpu,
                         f"goal ≥ {GOAL:g}×": rtf >= GOAL, "events": info["events"]})
            out.unlink()
    return Result(rows)
