"""``ambisense bench`` runs and writes a valid JSON document (no speed assertion: speed is
what the command measures, never a unit-test condition)."""

from __future__ import annotations

import json

import pytest

from agent.cli import main


def test_bench_quick_writes_json_with_the_machine_header(tmp_path, capsys, monkeypatch):
    """The real command on two cheap sections; the start-up section is cut to one command
    and one repeat so that the test stays short on a busy machine."""
    from agent.bench.sections import startup
    from agent.commands import COMMANDS

    monkeypatch.setattr(startup, "repeats", lambda quick, **kw: 1)
    monkeypatch.setattr(COMMANDS, "names", lambda: ["bench"])
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    code = main(["bench", "--quick", "--only", "startup", "models", "--json", str(out),
                 "--markdown", str(md)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "ambisense.bench/1" and doc["quick"] is True
    m = doc["machine"]
    assert m["logical_cpus"] >= 1 and m["python"] and m["cpu"]
    assert m["libraries"]["numpy"] and "onnxruntime" in m["libraries"]
    assert list(doc["sections"]) == ["models", "startup"]  # in section order
    models, startup_res = doc["sections"]["models"], doc["sections"]["startup"]
    assert models["status"] in ("ok", "skipped")
    if models["status"] == "ok":
        assert models["rows"]
        for r in models["rows"]:
            assert r["fp32 median ms"] > 0 and r["int8 median ms"] > 0 and r["int8 KiB"] > 0
    assert startup_res["status"] == "ok"
    cmds = {r["command"] for r in startup_res["rows"]}
    assert cmds == {"(baseline) import numpy", "ambisense --help", "ambisense bench --help"}
    assert all(r["median s"] > 0 for r in startup_res["rows"])
    assert all(s["cpu_seconds"] >= 0 for s in doc["sections"].values())
    text = md.read_text()
    assert "CLI start-up" in text and "| command |" in text and "**CPU:**" in text
    assert "CLI start-up" in capsys.readouterr().out


def test_unknown_section_is_refused(capsys):
    assert main(["bench", "--only", "no_such_section"]) == 2
    assert "unknown section" in capsys.readouterr().err


def test_sections_are_a_registry_with_every_documented_section():
    from agent.bench import BENCHES

    assert {"parsers", "edf", "lora_decode", "pipelines", "memory", "models", "startup",
            "parallel"} <= set(BENCHES.names())
    for _, b in BENCHES.items():
        assert b.title and b.description and callable(b.run)


def test_a_failing_or_skipped_section_is_reported_not_fatal():
    from agent.bench.base import Bench, Skip
    from agent.bench.report import document_markdown, run_section

    def boom(quick):
        raise ValueError("broken")

    def skip(quick):
        raise Skip("peer library missing")

    bad = run_section(Bench("x", "X", "d", boom), True)
    assert bad["status"] == "error" and "broken" in bad["reason"]
    sk = run_section(Bench("y", "Y", "d", skip), True)
    assert sk["status"] == "skipped" and sk["reason"] == "peer library missing"
    ok = run_section(Bench("z", "Z", "d", lambda q: [{"a": 1.5, "b": None}]), True)
    assert ok["status"] == "ok" and ok["rows"] == [{"a": 1.5, "b": None}]
    doc = {"quick": True, "started": "t", "seconds": 1, "sections": {"x": bad, "z": ok},
           "machine": {"cpu": "c", "cpu_flags": [], "logical_cpus": 2, "usable_cpus": 2,
                       "memory_gib": 1, "os": "o", "machine": "m", "python": "3",
                       "ambisense": "0", "libraries": {"numpy": "2"}, "load_average": None}}
    text = document_markdown(doc)
    assert "**error:** ValueError: broken" in text and "| 1.5 | – |" in text


@pytest.mark.parametrize("name", ["parsers"])
def test_parsers_section_skips_or_measures(name, monkeypatch, tmp_path):
    """Without shared data the section says so (skipped), it does not fail."""
    from agent.bench import BENCHES
    from agent.bench.report import run_section

    monkeypatch.setenv("AMBISENSE_SHARED_DATA", str(tmp_path / "absent"))
    res = run_section(BENCHES.get(name), True)
    assert res["status"] == "skipped" and "absent" in res["reason"]
