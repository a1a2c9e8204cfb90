"""Raspberry Pi CPU-budget estimate: a scale factor from this machine to a Pi 4 / Pi 5 core.

**This is an estimate, not a measurement on a Pi.** No arm64 machine or emulator is used
(user-mode emulation such as ``qemu-aarch64`` translates instructions and says nothing
about a Cortex-A72's speed). The factor combines:

1. a **scalar** ratio measured in the same run when ``sysbench`` is installed
   (``sysbench cpu --threads=1``, version 1.0.20, default ``--cpu-max-prime=10000``: events
   per CPU second of this machine) over the published single-core results of the same
   test on the boards (leoncode.co.uk, "Raspberry Pi CPU Benchmarks": Pi 4 1477.83,
   Pi 5 2737.49 events/s); without sysbench, :data:`DEFAULT_HOST_EVENTS` (measured on the
   project's 2-core AMD EPYC development machine);
2. a **vector penalty** (:data:`VECTOR_PENALTY`, an assumption): numpy/scipy kernels run
   AVX2/AVX-512 here but 128-bit NEON on the Pi, with less memory bandwidth, so array-heavy
   code loses more than scalar integer code. Interpreter overhead (most of a small chunk's
   cost) scales like the scalar ratio; the penalty is the pessimistic end.

A pipeline's share of one Pi core is then ``100 % × factor / (× real time here)``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

#: Published sysbench 1.0.20 ``cpu --threads=1`` results (events/s).
PI4_EVENTS = 1477.83
PI5_EVENTS = 2737.49
#: sysbench events per CPU second on the development machine (AMD EPYC, 2 cores), used
#: when sysbench is not installed.
DEFAULT_HOST_EVENTS = 4150.0
#: Extra slowdown assumed for vectorised numpy/scipy code on NEON vs AVX2/AVX-512.
VECTOR_PENALTY = 2.0


@lru_cache(maxsize=1)
def host_events() -> tuple[float, str]:
    """sysbench events per CPU second here (and where the figure comes from)."""
    exe = shutil.which("sysbench")
    if exe is None:
        return DEFAULT_HOST_EVENTS, "default (sysbench not installed)"
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run([exe, "cpu", "--threads=1", "--time=3", "run"],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return DEFAULT_HOST_EVENTS, "default (sysbench failed)"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    m = re.search(r"total number of events:\s+(\d+)", out)
    if not m or cpu <= 0:
        return DEFAULT_HOST_EVENTS, "default (sysbench output not understood)"
    return int(m.group(1)) / cpu, "measured in this run (sysbench)"


def factors() -> dict[str, float | str]:
    """How many times slower one Pi 4 / Pi 5 core is than one core here (pessimistic:
    scalar ratio × vector penalty), with the inputs."""
    host, how = host_events()
    return {"host_sysbench_events_per_cpu_s": round(host, 1), "host_source": how,
            "pi4_scalar": host / PI4_EVENTS, "pi5_scalar": host / PI5_EVENTS,
            "vector_penalty": VECTOR_PENALTY,
            "pi4": host / PI4_EVENTS * VECTOR_PENALTY, "pi5": host / PI5_EVENTS * VECTOR_PENALTY}


def core_share_pct(rtf_here: float, factor: float) -> float:
    """Percent of one Pi core a stream needs, from its real-time factor here."""
    return 100.0 * factor / rtf_here if rtf_here > 0 else float("inf")
