"""Golden tests: each capture in tests/golden/manifest.json, replayed through the real CLI
(``agent.cli.main([... '--jsonl'])``), gives the expected events within the stated
tolerances. After an intended change: ``python -m tests.golden --update`` (tests/golden/README.md).
"""

from __future__ import annotations

import copy

import pytest

from tests import golden

ENTRIES = golden.entries()
SKIP = {"README.md"}


def _marks(entry):
    return [pytest.mark.shared] if "shared" in entry else []


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Simulated captures are written here once for the module (entries share them)."""
    return tmp_path_factory.mktemp("golden")


@pytest.mark.parametrize(
    "entry", [pytest.param(e, id=e["name"], marks=_marks(e)) for e in ENTRIES])
def test_golden_capture(entry, workdir):
    try:
        run = golden.run_entry(entry, workdir)
    except golden.Unavailable as exc:
        pytest.skip(str(exc))
    res = golden.check_entry(entry, run)
    assert res.ok, (res.report() + "\n\nIf the change is intended: python -m tests.golden "
                    f"--update {entry['name']}")


def test_every_bundled_sample_and_every_file_has_its_entry():
    samples = sorted(p.relative_to(golden.REPO).as_posix()
                     for p in (golden.REPO / "agent" / "samples").iterdir()
                     if p.is_file() and p.name not in SKIP and not p.name.endswith(".truth.json")
                     and not p.name.endswith(".sigmf-data"))  # the .sigmf-meta names it
    assert samples, "no bundled samples found"
    bundled = {e["bundled"] for e in ENTRIES if "bundled" in e}
    assert set(samples) <= bundled, f"bundled samples without a golden entry: " \
                                    f"{sorted(set(samples) - bundled)}"
    names = [e["name"] for e in ENTRIES]
    assert len(names) == len(set(names)), "duplicate golden names"
    on_disk = {p.name.removesuffix(".events.jsonl")
               for p in golden.GOLDEN.glob("*.events.jsonl")}
    assert on_disk == set(names), (f"missing: {sorted(set(names) - on_disk)}, "
                                   f"orphans: {sorted(on_disk - set(names))}")
    for e in ENTRIES:  # every entry says where it comes from and what it checks
        assert sum(k in e for k in ("bundled", "shared", "simulate")) == 1, e["name"]
        assert e.get("note") and "expect" in e, e["name"]
    assert any("wifi_fall" in e.get("options", []) and "simulate" in e for e in ENTRIES)


# ---------------------------------------------------------------- the comparison has teeth

EXPECTED = golden.read_events(golden.events_path("esp32_breathing_15bpm"))
TOL = golden.tolerances({"name": "x"})


def _first(events, type_):
    return next(i for i, e in enumerate(events) if e["type"] == type_)


def _problems(mutate):
    got = copy.deepcopy(EXPECTED)
    mutate(got)
    return golden.compare_events(EXPECTED, got, TOL, name="t")


def test_identical_events_compare_equal():
    assert len(EXPECTED) == 7
    res = _problems(lambda g: None)
    assert res.ok and res.diff == "" and res.report() == "t: unchanged"


@pytest.mark.parametrize(("mutate", "ok"), [
    (lambda g: g[0].update(value=g[0]["value"] + 0.04), True),     # within 0.05 bpm
    (lambda g: g[0].update(value=g[0]["value"] + 0.06), False),
    (lambda g: g[0].update(offset_s=g[0]["offset_s"] + 0.005), True),
    (lambda g: g[0].update(offset_s=g[0]["offset_s"] + 0.5), False),
    (lambda g: g[0].update(confidence=g[0]["confidence"] - 0.009), True),
    (lambda g: g[0].update(confidence=g[0]["confidence"] - 0.02), False),
    (lambda g: g[0].update(unit="Hz"), False),
    (lambda g: g[0].update(id="0" * 20), False),
    (lambda g: g[0].update(value=None), False),
    (lambda g: g[0].update(snr=g[0]["snr"] * 1.01), True),         # extras: 2 % relative
    (lambda g: g[0].update(snr=g[0]["snr"] * 1.05), False),
    (lambda g: g[0].update(feature="phase"), False),
    (lambda g: g[0].pop("coverage"), False),
    (lambda g: g[0].update(new_key=1), False),
    (lambda g: g[_first(g, "presence")].update(value=0), False),   # presence: exact
    (lambda g: g.pop(3), False),
    (lambda g: g.append(dict(g[-1], offset_s=60.0)), False),
    (lambda g: g[_first(g, "presence")].update(type="motion"), False),
])
def test_a_difference_beyond_tolerance_fails(mutate, ok):
    res = _problems(mutate)
    assert res.ok is ok, res.report()
    if not ok:  # readable: the differing event on a - line and a + line of a unified diff
        assert res.diff.startswith("--- expected (t.events.jsonl)\n+++ got (current replay)")
        body = res.diff.splitlines()[2:]
        assert any(x.startswith(("-", "+")) for x in body), res.diff


def test_report_names_the_field_and_tolerance():
    res = _problems(lambda g: g[0].update(value=15.5))
    assert "event 1 (breathing_rate at 30.0 s): value: expected 14.94, got 15.5 (tolerance " \
           "±0.05)" in res.report()
    res = _problems(lambda g: g.pop(3))
    assert "7 events expected, got 6" in res.problems
    assert any(p.startswith("missing: breathing_rate at 40.0 s") for p in res.problems)
    assert "\n-" in res.diff and "\n+" not in res.diff.replace("\n+++", "")


def test_summary_difference_fails():
    entry = next(e for e in ENTRIES if e["name"] == "esp32_breathing_15bpm")
    run = golden.Run(0, copy.deepcopy(EXPECTED), dict(entry["expect"], rejects=1), "")
    res = golden.check_entry(entry, run)
    assert not res.ok and res.problems == ["summary rejects: expected 0, got 1"]
    res = golden.check_entry(entry, golden.Run(2, [], None, "boom"))
    assert not res.ok and "replay exited 2" in res.problems[0]
