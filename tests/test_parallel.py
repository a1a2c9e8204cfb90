"""``--workers``/``--scheduler``: captures replayed on Dask give exactly the serial output
(same events, ids and order), report a failing capture and finish the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> tuple[Path, list[str]]:
    d = tmp_path_factory.mktemp("captures")
    names = []
    for seed in (1, 2):
        name = f"csi{seed}.csv"
        assert cli("simulate", "csi-breathing", "--out", name, "--seed", str(seed),
                   "--duration-s", "60", cwd=d).returncode == 0
        names.append(name)
    assert cli("simulate", "eeg-seizure", "--out", "eeg.edf", "--seed", "3",
               cwd=d).returncode == 0
    names.append("eeg.edf")
    (d / "broken.csv").write_text("this is not a capture\n")
    return d, names


def test_workers_give_the_serial_output_and_report_a_bad_capture(captures):
    d, names = captures
    order = [names[0], "broken.csv", *names[1:]]
    serial = cli("replay", *order, "--jsonl", "--no-progress", cwd=d)
    par = cli("replay", *order, "--jsonl", "--workers", "2", cwd=d)
    assert serial.returncode == par.returncode == 2  # the broken capture
    assert par.stdout == serial.stdout
    events = [json.loads(line) for line in par.stdout.splitlines()]
    assert {e["source"] for e in events} == set(names)
    assert "broken.csv: not a recognised capture" in par.stderr
    assert "[4/4]" in par.stderr  # progress on stderr; every capture finished
    for name in names:
        assert f"{name}: " in par.stderr


def test_eval_replays_captures_on_workers_with_the_serial_scores(captures):
    d, _ = captures
    serial = cli("eval", "seizure", "--captures", "eeg.edf", "--json", cwd=d)
    par = cli("eval", "seizure", "--captures", "eeg.edf", "--workers", "1", "--json", cwd=d)
    assert serial.returncode == par.returncode == 0, par.stderr
    assert json.loads(par.stdout) == json.loads(serial.stdout)
    assert json.loads(serial.stdout)["event"]["ref_events"] > 0


def test_an_unreachable_scheduler_is_a_clear_error(captures):
    d, names = captures
    done = cli("replay", names[0], "--scheduler", "tcp://127.0.0.1:9", "--jsonl", cwd=d)
    assert done.returncode == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in done.stderr
