"""The machine a benchmark ran on: CPU model and features, cores, OS, Python, libraries."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

#: Libraries whose versions change the figures.
LIBRARIES = ("numpy", "scipy", "onnxruntime", "mne", "csiread", "softlora", "distributed")

#: CPU flags that matter to the numeric kernels (AVX2/VNNI on x86; dot product on arm64).
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma", "asimd", "asimddp")


def cpu_model() -> tuple[str, list[str]]:
    """CPU model name and the :data:`FLAGS` it has (Linux ``/proc/cpuinfo``)."""
    name, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return name, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            name = value.strip()
            break
    words = set()
    for line in text.splitlines():
        if line.lower().startswith(("flags", "features")):
            words.update(line.partition(":")[2].split())
    return name, [f for f in FLAGS if f in words]


def machine_info() -> dict[str, Any]:
    """Everything of the machine header, JSON-ready."""
    name, flags = cpu_model()
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        mem_gib = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:
        from agent import __version__ as ambisense
    except ImportError:  # pragma: no cover
        ambisense = None
    return {
        "cpu": name, "cpu_flags": flags, "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "memory_gib": round(mem_gib, 1) if mem_gib else None,
        "machine": platform.machine(), "os": platform.platform(),
        "python": platform.python_version(), "ambisense": ambisense,
        "libraries": versions, "load_average": load,
    }


def header_markdown(info: dict[str, Any]) -> str:
    """The machine header as a short Markdown list."""
    libs = ", ".join(f"{k} {v}" for k, v in info["libraries"].items() if v) or "–"
    missing = [k for k, v in info["libraries"].items() if not v]
    return "\n".join([
        f"- **CPU:** {info['cpu']} ({', '.join(info['cpu_flags']) or 'no listed SIMD flags'}), "
        f"{info['logical_cpus']} logical CPUs ({info['usable_cpus']} usable), "
        f"{info['memory_gib']} GiB",
        f"- **OS:** {info['os']} ({info['machine']}); Python {info['python']}; "
        f"ambisense {info['ambisense']}",
        f"- **Libraries:** {libs}" + (f" (not installed: {', '.join(missing)})" if missing
                                      else ""),
        f"- **Load average at start:** {info['load_average']}",
    ])
