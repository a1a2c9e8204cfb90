"""LoRa module packet logs: the three line styles, rejects, the live serial source
(pyserial loop://) and coarse RSSI motion through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sensing.formats import detect_format
from sensing.lora.formats.module_log import ModuleLogReader, write_module_log
from sensing.lora.simulators.module_log import simulate_module_log
from tests.conftest import REPO

T = np.array([0.5, 1.5, 2.5, 3.5])
RSSI = np.array([-87.0, -88.0, -101.0, -95.0])
SNR = np.array([9.5, 9.25, -3.0, 4.0])
FERR = np.array([-1234.0, -1240.0, -1236.0, -1229.0])


def read_all(path, **kw):
    reader = ModuleLogReader(path, **kw)
    frames = list(reader.chunks())
    data = np.concatenate([f.data for f in frames])
    times = np.concatenate([f.times_s for f in frames])
    return reader, frames, data, times


@pytest.mark.parametrize("style", ["ambisense", "radiolib", "arduino_lora"])
def test_writer_and_reader_agree_in_every_style(tmp_path, style):
    path = write_module_log(tmp_path / f"{style}.log", T, RSSI, SNR, FERR, style=style,
                            header=["boot: SX1276 ready", "Waiting ..."])
    assert detect_format(path).name == "lora_module_log"
    reader, frames, data, times = read_all(path)
    assert reader.rejects.total == 0
    assert frames[0].modality == "lora_packets"
    assert frames[0].channel_names == ("rssi_db", "snr_db", "freq_error_hz")
    np.testing.assert_allclose(data[:, 0], RSSI)
    np.testing.assert_allclose(data[:, 1], SNR)
    if style == "arduino_lora":  # that sketch prints no frequency error
        assert np.isnan(data[:, 2]).all()
    else:
        np.testing.assert_allclose(data[:, 2], FERR, atol=0.01)
    np.testing.assert_allclose(times, T - T[0], atol=1e-3)
    assert frames[0].meta["timed"]


def test_untimed_lines_bad_numbers_and_other_formats(tmp_path):
    p = tmp_path / "plain.txt"
    p.write_text("hello\nRSSI: -80 dBm SNR: 7 dB\nRSSI: -8x0 dBm SNR: 7 dB\n"
                 "RSSI: -81 dBm SNR: 6.5 dB\n", encoding="utf-8")
    reader, frames, data, times = read_all(p, interval_s=2.0)
    assert len(data) == 2 and reader.rejects.total == 1
    assert "bad_number" in reader.rejects.as_dict()
    assert str(reader.rejects.first[0]).startswith(str(p)) and "line 3" in str(
        reader.rejects.first[0])
    np.testing.assert_array_equal(times, [0.0, 2.0])
    assert not frames[0].meta["timed"]
    # not claimed: the ESP32 CSI sample and binary files
    assert not ModuleLogReader.sniff(
        (REPO / "agent/samples/esp32_breathing_15bpm.csv").read_bytes()[:8192], "x.csv")
    assert not ModuleLogReader.sniff(b"\0\1RSSI: -80\nRSSI: -81\n", "x.bin")


def test_serial_source_over_a_loopback_port():
    serial = pytest.importorskip("serial")
    from sensing.lora.sources import LoraSerialSource

    port = serial.serial_for_url("loop://", timeout=0.05)
    text = "".join(f"RSSI: {r:.0f} dBm SNR: {s:.2f} dB freq_err: {f:.0f} Hz\n"
                   for r, s, f in zip(RSSI, SNR, FERR, strict=True))
    port.write(b"garbage\x00\xff\n" + text.encode())
    ticks = iter(np.arange(0, 100, 0.01))
    src = LoraSerialSource("loop://", port=port, chunk_size=2, max_latency_s=0.2,
                           clock=lambda: float(next(ticks)))
    got = []
    for fr in src.chunks(stop=lambda: sum(len(g) for g in got) >= 4):
        got.append(fr)
    data = np.concatenate([g.data for g in got])
    np.testing.assert_allclose(data[:, 0], RSSI)
    assert all(g.modality == "lora_packets" and g.meta["live"] for g in got)
    times = np.concatenate([g.times_s for g in got])
    assert np.all(np.diff(times) >= 0)
    port.close()


def test_rssi_motion_via_the_cli_matches_the_episodes(tmp_path):
    out = tmp_path / "link.log"
    truth = simulate_module_log(out, duration_s=900, seed=2, episodes_per_hour=8,
                                episode_s=30)
    res = subprocess.run([sys.executable, "-m", "agent.cli", "replay", str(out), "--jsonl",
                          "--no-progress"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    events = [json.loads(x) for x in res.stdout.splitlines() if x.strip()]
    on = [e["offset_s"] for e in events if e["type"] == "motion" and e["value"] == 1]
    long_eps = [ep for ep in truth["episodes"] if ep[1] - ep[0] >= 10]
    assert long_eps, truth["episodes"]
    # every long episode is found within it (plus the window), no motion far from any
    for s, e in long_eps:
        assert any(s <= t <= e + 12 for t in on), (s, e, on)
    for t in on:
        assert any(s - 1 <= t <= e + 12 for s, e in truth["episodes"]), (t, truth["episodes"])
    assert all(e["link"] == "link.log" for e in events)
