"""Helpers shared by the bench sections: data paths, medians, child processes, captures."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The repository checkout this package runs from (None when installed elsewhere).
_HERE = Path(__file__).resolve()
REPO: Path | None = _HERE.parents[2] if (_HERE.parents[2] / "pyproject.toml").is_file() else None


def shared_data() -> Path:
    """The third-party data root: ``AMBISENSE_SHARED_DATA``, else ``<repo>/../shared/data``
    (``./shared/data`` beside the current directory for an installed package)."""
    env = os.environ.get("AMBISENSE_SHARED_DATA")
    if env:
        return Path(env)
    base = REPO.parent if REPO is not None else Path.cwd().parent
    return base / "shared" / "data"


def median(xs: Sequence[float]) -> float:
    """Median, NaN for no value."""
    return statistics.median(xs) if xs else float("nan")


def repeats(quick: bool, full: int = 5, fast: int = 3) -> int:
    """How many times each figure is measured (its median is reported)."""
    return fast if quick else full


def child_env(threads: int | None = 1) -> dict[str, str]:
    """Environment of a measured child: this checkout importable, math libraries on
    ``threads`` threads (the agent's per-pipeline setting), the bytecode cache on, no
    progress bars."""
    env = dict(os.environ)
    # as after `pip install`, which byte-compiles the package: a child writes and reuses
    # the bytecode cache even where this environment disables it (else every child
    # compiles every module it imports, and that is counted in its time)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if threads:
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[v] = str(threads)
    if REPO is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
    return env


def run_child(code: str, *args: str, timeout: float = 900.0, threads: int | None = 1
              ) -> dict[str, Any]:
    """Run ``python -c code args…`` and return the JSON object on its last stdout line.

    Raises
    ------
    RuntimeError
        The child failed (its stderr tail is in the message).
    """
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=child_env(threads), timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"child exited {proc.returncode}: {tail}")
    return json.loads(lines[-1])


def simulate(name: str, out: Path, **options: Any) -> tuple[dict[str, Any], float]:
    """Run the simulator ``name`` (its defaults, with ``options``) in this process.

    Returns
    -------
    (truth, seconds)
        Its ground-truth dict and the wall time it took.
    """
    from sensing.simulate import SIMULATORS, params_of

    fn = SIMULATORS.get(name)
    fields = getattr(params_of(fn), "model_fields", {})
    opts = {k: v for k, v in options.items() if k in fields}
    t0 = time.perf_counter()
    truth = fn(str(out), **opts)
    return truth, time.perf_counter() - t0


def simulator_defaults(name: str) -> dict[str, Any]:
    """Default option values of a simulator."""
    from sensing.simulate import SIMULATORS, params_of

    fields = getattr(params_of(SIMULATORS.get(name)), "model_fields", {})
    return {k: f.default for k, f in fields.items()}


def capture_files(out: Path) -> list[Path]:
    """The files a simulator wrote for ``out`` (the capture and its sidecars, e.g. a SigMF
    ``.sigmf-data`` beside its ``.sigmf-meta``), truth excluded."""
    stem = out.name.split(".")[0]
    return [p for p in out.parent.iterdir()
            if p.name.startswith(stem) and not p.name.endswith(".truth.json")]


def capture_bytes(out: Path) -> int:
    """Total size of what a simulator wrote for ``out``."""
    return sum(p.stat().st_size for p in capture_files(out) if p.is_file())


def replay_path(out: Path, truth: dict[str, Any]) -> str:
    """The path to replay for a simulated capture (the simulator may name it)."""
    return str(truth.get("out") or out) if isinstance(truth, dict) else str(out)
