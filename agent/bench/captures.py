"""Simulated captures for the bench: every registered simulator, at a length bounded by a
file-size and a simulation-time budget (measured on a short probe run first)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.bench.util import capture_bytes, capture_files, simulate, simulator_defaults

#: File extension to write per simulator-name prefix (the simulators pick their format from
#: their options; a few also look at the extension).
EXTENSIONS = {"csi": ".csv", "eeg": ".edf", "acoustic": ".wav"}

#: Length of the probe run (s of capture) that measures bytes and simulation time per second.
PROBE_S = 2.0


@dataclass
class Capture:
    """A simulated capture ready to replay."""

    simulator: str
    path: str
    duration_s: float
    requested_s: float
    bytes: int
    simulate_s: float
    truth: dict[str, Any]

    @property
    def shortened(self) -> bool:
        return self.duration_s < self.requested_s * 0.999


def group_of(simulator: str) -> str:
    """Modality group of a simulator from its name (``csi-breathing`` → ``csi``)."""
    return simulator.split("-")[0]


def _out(folder: Path, simulator: str, tag: str) -> Path:
    return folder / f"{simulator}-{tag}{EXTENSIONS.get(group_of(simulator), '.dat')}"


def replayable(out: Path) -> str:
    """The file of a simulated capture that a reader opens (``out`` itself, or the
    sidecar it wrote instead, such as ``.sigmf-meta``)."""
    from sensing.formats import detect_format

    candidates = ([out] if out.is_file() else []) + sorted(
        (p for p in capture_files(out) if p != out and p.suffix != ".json"),
        key=lambda p: (not p.name.endswith("meta"), p.name))
    for p in candidates:
        try:
            detect_format(p)
            return str(p)
        except Exception:
            continue
    raise RuntimeError(f"no readable capture among {[p.name for p in candidates]}")


def remove(cap: Capture) -> None:
    """Delete a capture's files."""
    for p in capture_files(Path(cap.path)):
        if p.is_file():
            p.unlink()


def make(simulator: str, folder: Path, seconds: float, *, max_bytes: float,
         max_sim_s: float, tag: str = "bench", **options: Any) -> Capture:
    """Simulate ``seconds`` of capture (or less, within the budgets) into ``folder``.

    Parameters
    ----------
    seconds : float
        Wanted length (the simulator's ``duration_s``; simulators without one write their
        default capture).
    max_bytes, max_sim_s : float
        Budgets: the length is cut so that the files stay under ``max_bytes`` and the
        simulation under ``max_sim_s`` seconds (extrapolated from a probe run).
    """
    folder.mkdir(parents=True, exist_ok=True)
    defaults = simulator_defaults(simulator)
    if "duration_s" not in defaults:
        out = _out(folder, simulator, tag)
        truth, dt = simulate(simulator, out, **options)
        return Capture(simulator, replayable(out), float("nan"), float("nan"),
                       capture_bytes(out), dt, truth)
    probe_s = min(PROBE_S, seconds)
    probe = _out(folder, simulator, "probe")
    truth, dt = simulate(simulator, probe, duration_s=probe_s, **options)
    size = capture_bytes(probe)
    for p in probe.parent.glob(probe.name.split(".")[0] + "*"):
        if p.is_file():
            p.unlink()
    per_s_bytes, per_s_time = size / probe_s, dt / probe_s
    length = min(seconds, max_bytes / max(per_s_bytes, 1e-9),
                 max_sim_s / max(per_s_time, 1e-9))
    length = max(probe_s, float(int(length)) if length >= 10 else round(length, 1))
    out = _out(folder, simulator, tag)
    truth, dt = simulate(simulator, out, duration_s=length, **options)
    return Capture(simulator, replayable(out), length, seconds, capture_bytes(out), dt, truth)


def clean(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
