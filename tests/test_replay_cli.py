"""The output contract of ``ambisense replay --jsonl``: one schema-valid event per line, stable ids."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from agent.pipelines import PIPELINES
from sensing.simulate import SIMULATORS
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "agent" / "schema" / "event.schema.json").read_text())


def ambisense(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, check=check,
        cwd=REPO, timeout=300,
    )


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("replay")
    out = []
    for rate, seed in ((12.0, 1), (20.0, 2)):
        p = d / f"sim_{int(rate)}bpm.csv"
        SIMULATORS.get("csi-breathing")(str(p), seed=seed, rate_bpm=rate, duration_s=50.0,
                                        packet_rate_hz=50.0)
        out.append(p)
    return out


def parse_stdout(text: str) -> list[dict]:
    events = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            ev = json.loads(line)
        except json.JSONDecodeError as exc:  # stdout must hold nothing but events
            raise AssertionError(f"stdout line {n} is not JSON: {line[:80]!r}") from exc
        jsonschema.validate(ev, SCHEMA)
        events.append(ev)
    return events


def test_jsonl_contract_and_deterministic_ids(captures):
    first = ambisense("replay", "--jsonl", *map(str, captures))
    events = parse_stdout(first.stdout)
    assert events, first.stderr
    assert {e["source"] for e in events} == {p.name for p in captures}
    assert len({e["id"] for e in events}) == len(events)
    known_types = {t for _, cls in PIPELINES.items() for t in cls.event_types}
    assert {e["type"] for e in events} <= known_types
    for p in captures:  # per source, events come in stream order
        offsets = [e["offset_s"] for e in events if e["source"] == p.name]
        assert offsets == sorted(offsets)
    assert "real time" in first.stderr  # the summary goes to stderr, never stdout
    again = parse_stdout(ambisense("replay", "--jsonl", *map(str, captures)).stdout)
    assert [e["id"] for e in again] == [e["id"] for e in events]
    assert again == events


def test_table_output_and_jsonl_file(captures, tmp_path):
    out = tmp_path / "events.jsonl"
    res = ambisense("replay", str(captures[0]), "--out", str(out))
    assert res.stdout.splitlines()[0].split()[:2] == ["offset_s", "type"]
    events = parse_stdout(out.read_text())
    assert len(events) == len(res.stdout.splitlines()) - 1


def test_bad_capture_is_reported_and_others_still_run(captures, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x01\x02 definitely not a capture")
    res = ambisense("replay", "--jsonl", str(junk), str(captures[0]), check=False)
    assert res.returncode == 2
    assert "junk.bin" in res.stderr and "not a recognised capture" in res.stderr
    assert parse_stdout(res.stdout)  # the good capture still produced events


def test_missing_file_and_unknown_pipeline(captures):
    res = ambisense("replay", "/nonexistent/capture.csv", check=False)
    assert res.returncode == 2 and "/nonexistent/capture.csv" in res.stderr
    res = ambisense("replay", "--pipeline", "no_such_pipeline", str(captures[0]), check=False)
    assert res.returncode != 0 and "no_such_pipeline" in res.stderr
