"""The csi-breathing simulator: real ESP32 lines, reproducible, truthful sidecar."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent.cli import main
from sensing.formats import open_capture
from sensing.params import OptionError
from sensing.simulate import SIMULATORS, load_truth, params_of, parse_intervals
from sensing.simulate.csi_breathing import (
    SUBCARRIERS,
    ScenarioParams,
    generate,
    overlaps,
    simulate_csi_breathing,
    window_truth_bpm,
)


def _read_all(path):
    reader = open_capture(path)
    frames = list(reader)
    data = np.concatenate([f.data for f in frames])
    times = np.concatenate([f.times_s for f in frames])
    return reader, frames, data, times


def test_registered():
    assert SIMULATORS.get("csi-breathing") is simulate_csi_breathing


@pytest.mark.parametrize("layout", ["esp-csi", "esp32-csi-tool"])
def test_file_matches_in_memory_frames(tmp_path, layout):
    out = tmp_path / "cap.csv"
    truth = simulate_csi_breathing(str(out), seed=3, duration_s=8.0, packet_rate_hz=50.0,
                                   layout=layout)
    reader, frames, data, times = _read_all(out)
    assert reader.name == "esp32_csi" and reader.rejects.total == 0
    assert reader.parser.layout_name == layout
    mem_truth, mem_frames = generate(seed=3, duration_s=8.0, packet_rate_hz=50.0)
    mem = np.concatenate([f.data for f in mem_frames])
    # the reader yields exactly what the in-memory generator yields
    np.testing.assert_array_equal(data, mem)
    np.testing.assert_allclose(times, np.concatenate([f.times_s for f in generate(
        seed=3, duration_s=8.0, packet_rate_hz=50.0)[1]]), atol=1e-9)
    assert len(data) == truth["packets"] == mem_truth["packets"]
    np.testing.assert_array_equal(frames[0].subcarriers, SUBCARRIERS)
    if layout == "esp32-csi-tool":
        assert frames[0].t0 is not None and frames[0].t0.year == 2026


def test_esp32_realism(tmp_path):
    out = tmp_path / "cap.csv"
    simulate_csi_breathing(str(out), seed=1, duration_s=20.0, packet_rate_hz=100.0,
                           loss=0.05, jitter=0.3)
    _, _, data, times = _read_all(out)
    h = data[:, :, 0, 0]
    k = SUBCARRIERS
    guard = (np.abs(k) > 26)
    assert np.all(h[:, guard] == 0), "guard subcarriers must read 0"
    used = (np.abs(k) >= 1) & (np.abs(k) <= 26)
    assert np.median(np.abs(h[:, used])) > 5, "data subcarriers carry int8-scale values"
    assert np.all(np.abs(h.real) <= 128) and np.all(h.real == np.round(h.real))
    # DC carries garbage unrelated to its neighbours
    assert np.std(h[:, k == 0].real) > 3
    # random common phase per packet (CFO): neighbouring packets' phases are unrelated
    dphi = np.angle(h[1:, k == 5] * np.conj(h[:-1, k == 5]))[:, 0]
    assert np.std(dphi) > 1.0
    # irregular timing and bursty loss
    dt = np.diff(times)
    assert np.all(dt > 0)
    assert 0.002 < np.std(dt) and dt.max() > 0.03
    rate = (len(times) - 1) / times[-1]
    assert 85 < rate < 100


def test_deterministic_by_seed(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    for path, seed in ((a, 7), (b, 7), (c, 8)):
        simulate_csi_breathing(str(path), seed=seed, duration_s=5.0, packet_rate_hz=50.0,
                               fidgets=1)
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a.csv.truth.json").read_bytes() == (tmp_path / "b.csv.truth.json").read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_truth_sidecar_contents(tmp_path):
    out = tmp_path / "cap.csv"
    ret = simulate_csi_breathing(str(out), seed=2, duration_s=120.0, rate_bpm=12.0,
                                 packet_rate_hz=20.0, fidgets=2, absent_s="90-100",
                                 drift_bpm_per_min=2.0)
    truth = load_truth(out)
    assert truth == json.loads(json.dumps(ret))
    assert truth["simulator"] == "csi-breathing" and truth["breathing"] is True
    assert truth["params"]["rate_bpm"] == 12.0 and truth["params"]["seed"] == 2
    assert truth["layout"] == "esp-csi"
    assert len(truth["motion_intervals_s"]) == 2
    for a, b in truth["motion_intervals_s"]:
        assert 2.0 <= b - a <= 6.0
    assert truth["absence_intervals_s"] == [[90.0, 100.0]]
    t = np.asarray(truth["rate_times_s"])
    r = np.array([np.nan if v is None else v for v in truth["rate_series_bpm"]])
    assert len(t) == len(r) and t[0] == 0 and t[-1] >= 119
    assert np.all(np.isnan(r[(t >= 90) & (t < 100)]))
    # drift: +2 bpm/min over 2 min, seen in the window means
    early, late = window_truth_bpm(truth, 33, 30), window_truth_bpm(truth, 88, 30)
    assert 10.5 < early < 13.5 and late - early > 1.0
    assert np.isnan(window_truth_bpm(truth, 95, 30)), "windows overlapping absence have no truth"
    onsets = np.asarray(truth["breath_onsets_s"])
    assert 20 < len(onsets) < 35 and np.all(np.diff(onsets) > 2.0)


def test_empty_room_truth():
    truth, frames = generate(empty=True, duration_s=10.0, packet_rate_hz=20.0)
    assert truth["breathing"] is False and truth["rate_bpm"] is None
    assert all(v is None for v in truth["rate_series_bpm"])
    assert np.isnan(window_truth_bpm(truth, 10.0, 5.0))
    assert sum(len(f) for f in frames) == truth["packets"]


def test_window_truth_constant_rate():
    truth, _ = generate(rate_bpm=20.0, duration_s=90.0, packet_rate_hz=10.0, seed=4)
    vals = [window_truth_bpm(truth, e, 30.0) for e in range(30, 91, 5)]
    assert np.all(np.abs(np.asarray(vals) - 20.0) < 1.5)


def test_cli_simulate(tmp_path, capsys):
    out = tmp_path / "cli.csv"
    rc = main(["simulate", "csi-breathing", "--out", str(out), "--rate-bpm", "22",
               "--duration-s", "6", "--packet-rate-hz", "30", "--seed", "5", "--empty",
               "--layout", "esp32-csi-tool"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["out"] == str(out) and summary["breathing"] is False
    assert load_truth(out)["params"]["packet_rate_hz"] == 30.0
    assert out.read_text().startswith("CSI_DATA,STA,")


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="packet_rate_hz"):
        generate(packet_rate_hz=0.0)
    with pytest.raises(ValueError, match="layout"):
        simulate_csi_breathing(str(tmp_path / "x.csv"), layout="nexmon")
    with pytest.raises(ValueError, match="absent_s"):
        generate(absent_s="10-5")
    with pytest.raises(ValueError, match="END > START"):
        parse_intervals("10-5")
    assert parse_intervals("1-2, 5-7.5") == [(1.0, 2.0), (5.0, 7.5)]
    assert overlaps([[10, 12]], 11.5, 20) and not overlaps([[10, 12]], 12.5, 20)


@pytest.mark.parametrize("file_format,reader_name", [
    ("esp32", "esp32_csi"), ("intel5300", "intel5300"), ("nexmon", "nexmon_pcap")])
def test_cli_reports_the_format_it_wrote(tmp_path, capsys, file_format, reader_name):
    out = tmp_path / "cap.dat"
    rc = main(["simulate", "csi-breathing", "--out", str(out), "--duration-s", "4",
               "--packet-rate-hz", "20", "--seed", "1", "--file-format", file_format])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == reader_name and summary["file_format"] == file_format
    truth = load_truth(out)
    assert truth["format"] == reader_name and truth["file_format"] == file_format
    assert open_capture(out).name == reader_name


def _help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    return capsys.readouterr().out


def _entries(text):
    """``--flag`` → its help entry (whitespace collapsed) from argparse's options list."""
    body = text[text.index("options:"):].splitlines()[1:]
    entries, cur = {}, None
    for line in body:
        if line.startswith("  -"):
            cur = line.split()[0].rstrip(",")
            entries[cur] = line
        elif cur is not None:
            entries[cur] += " " + line
    return {k: " ".join(v.split()) for k, v in entries.items()}


@pytest.mark.parametrize("name", ["csi-breathing", "csi-activity", "eeg-seizure"])
def test_cli_help_lists_every_option_of_the_model(capsys, name):
    fn = SIMULATORS.get(name)
    entries = _entries(_help(["simulate", name, "--help"], capsys))
    described = params_of(fn).describe()
    assert {"--" + d["name"].replace("_", "-") for d in described} | {"-h", "--out"} \
        == set(entries)
    for d in described:
        entry = entries["--" + d["name"].replace("_", "-")]
        assert d["doc"].split()[0] in entry
        assert f"default: {json.dumps(d['default'])}" in entry, entry
        if d["unit"]:
            assert f"unit: {d['unit']}" in entry, entry
    overview = " ".join(_help(["simulate", "--help"], capsys).split())
    for d in described:
        assert "--" + d["name"].replace("_", "-") + " [" in overview


def test_every_simulator_option_is_documented():
    for name, fn in SIMULATORS.items():
        for d in params_of(fn).describe():
            assert d["doc"], f"{name}: {d['name']} has no description"
            if d["type"] in ("number", "integer") and d["name"] not in ("seed",):
                assert d["range"], f"{name}: {d['name']} has no range"


def test_cli_passes_options_through_the_model(tmp_path, capsys):
    out = tmp_path / "a.csv"
    assert main(["simulate", "csi-activity", "--out", str(out), "--duration-s", "20",
                 "--falls", "0", "--rate-hz", "30", "--seed", "2"]) == 0
    truth = load_truth(out)
    assert truth["falls"] == 0 and truth["rate_hz"] == 30.0 and truth["seed"] == 2
    capsys.readouterr()
    # bad values are refused by the model, with the option named
    assert main(["simulate", "csi-breathing", "--out", str(out), "--loss", "0.95"]) == 2
    assert "'loss'" in capsys.readouterr().err
    assert main(["simulate", "csi-breathing", "--out", str(out), "--n-rx", "2"]) == 2
    assert "n_rx" in capsys.readouterr().err
    assert main(["simulate", "csi-activity", "--out", str(out), "--activities", "dance"]) == 2
    assert "activities" in capsys.readouterr().err


def test_python_api_validates_through_the_model(tmp_path):
    with pytest.raises(OptionError, match="unknown option 'rate'"):
        simulate_csi_breathing(str(tmp_path / "x.csv"), rate=12.0)
    with pytest.raises(OptionError, match="absent_s"):
        generate(absent_s="10-5")
    p = ScenarioParams(duration_s=5.0, packet_rate_hz=20.0, seed=4)
    t1 = simulate_csi_breathing(str(tmp_path / "a.csv"), p)
    t2 = simulate_csi_breathing(str(tmp_path / "b.csv"), duration_s=5.0, packet_rate_hz=20.0,
                                seed=4)
    assert t1 == t2 and (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert t1["params"]["data_tones"] == 26
    assert simulate_csi_breathing(str(tmp_path / "c.dat"), p, file_format="intel5300",
                                  n_rx=2)["params"]["data_tones"] == 28
