"""Intel 5300 / Nexmon writers, per-link assembly and breathing through the binary formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sensing.formats import open_capture
from sensing.formats.intel5300 import Intel5300Writer
from sensing.formats.nexmon_pcap import LinkAssembler, NexmonPcapWriter
from sensing.frames import Frames
from sensing.simulate.csi_breathing import simulate_csi_breathing, window_truth_bpm
from sensing.wifi.breathing import ratio_axis

ROOT = Path(__file__).resolve().parents[1]
SHARED_CSI = ROOT.parent / "shared" / "data" / "csi"


def _read_all(path) -> np.ndarray:
    return np.concatenate([f.data for f in open_capture(path).chunks()])


def _rand_csi(rng, shape, lim):
    return (rng.integers(-lim, lim, shape) + 1j * rng.integers(-lim, lim, shape)).astype(np.complex64)


@pytest.mark.parametrize("n_rx,n_tx", [(1, 1), (2, 1), (3, 1), (2, 3), (3, 3)])
def test_intel5300_writer_round_trip(tmp_path, n_rx, n_tx):
    rng = np.random.default_rng(n_rx * 10 + n_tx)
    csi = _rand_csi(rng, (40, 30, n_rx, n_tx), 128)
    csi.real[0, 0, 0, 0], csi.imag[0, 0, 0, 0] = -128, 127  # the int8 extremes
    path = tmp_path / "w.dat"
    with open(path, "wb") as fh:
        Intel5300Writer(fh).write(csi, np.arange(40) * 10_000, np.full(40, -50.0))
    reader = open_capture(path)
    assert reader.name == "intel5300"
    frames = list(reader.chunks())
    np.testing.assert_array_equal(np.concatenate([f.data for f in frames]), csi)
    np.testing.assert_allclose(frames[0].times_s[:3], [0.0, 0.01, 0.02])
    np.testing.assert_allclose(frames[0].fields["rssi"], -50.0, atol=1.0)


def test_intel5300_writer_rejects_out_of_range(tmp_path):
    with open(tmp_path / "w.dat", "wb") as fh, pytest.raises(ValueError, match="int8"):
        Intel5300Writer(fh).write(np.full((1, 30, 1, 1), 200 + 0j), np.zeros(1), np.zeros(1))


def test_writers_agree_with_csiread(tmp_path):
    csiread = pytest.importorskip("csiread", reason="csiread (benchmark extra) not installed")
    rng = np.random.default_rng(5)
    csi = _rand_csi(rng, (20, 30, 3, 2), 128)
    with open(tmp_path / "w.dat", "wb") as fh:
        Intel5300Writer(fh).write(csi, np.arange(20) * 1000, np.full(20, -50.0))
    c = csiread.Intel(str(tmp_path / "w.dat"), nrxnum=3, ntxnum=2, if_report=False)
    c.read()
    np.testing.assert_array_equal(c.csi, csi)
    csi = _rand_csi(rng, (15, 64, 1, 3), 3000)
    with open(tmp_path / "w.pcap", "wb") as fh:
        NexmonPcapWriter(fh, chip="bcm4339").write(csi, np.arange(15) * 0.01, np.arange(15),
                                                   np.full(15, -55), t0_s=1.7e9)
    n = csiread.Nexmon(str(tmp_path / "w.pcap"), chip="4339", bw=20, if_report=False)
    n.read()
    # csiread: one row per UDP packet, FFT order
    np.testing.assert_array_equal(np.fft.fftshift(n.csi, axes=1),
                                  csi.transpose(0, 3, 2, 1).reshape(-1, 64))
    np.testing.assert_array_equal(n.spatial[:3], [0, 1, 2])


@pytest.mark.parametrize("nfft", [64, 128, 256])
def test_nexmon_writer_round_trip_and_assembly(tmp_path, nfft):
    rng = np.random.default_rng(nfft)
    csi = _rand_csi(rng, (30, nfft, 2, 2), 3000)
    path = tmp_path / "w.pcap"
    with open(path, "wb") as fh:
        NexmonPcapWriter(fh, chip="bcm4339", channel=11).write(
            csi, np.arange(30) * 0.02, np.arange(100, 130), np.full(30, -60), t0_s=1.7e9)
    # groups straddle chunk boundaries
    rows = list(open_capture(path, chunk_size=7, assemble=False).chunks())
    assert sum(len(f) for f in rows) == 30 * 4
    assert rows[0].meta["channel"] == 11 and rows[0].meta["bandwidth_mhz"] == nfft * 5 // 16
    reader = open_capture(path, chunk_size=7)  # the reader assembles them
    assert reader.name == "nexmon_pcap"
    packets = list(reader.chunks())
    data = np.concatenate([f.data for f in packets])
    np.testing.assert_array_equal(data, csi)
    np.testing.assert_allclose(np.concatenate([f.times_s for f in packets]), np.arange(30) * 0.02,
                               atol=1e-6)
    assert packets[0].meta["links"]["cores"] == [0, 1]


def _link_rows(seq, core, spatial, times=None) -> Frames:
    n = len(seq)
    data = (np.arange(n, dtype=np.float32)[:, None, None, None] * np.ones((1, 4, 1, 1))
            ).astype(np.complex64)
    return Frames(data=data, times_s=np.arange(n) * 0.01 if times is None else times,
                  fs_hz=None, modality="wifi_csi", source="t",
                  fields={"seq": np.asarray(seq), "core": np.asarray(core),
                          "spatial": np.asarray(spatial), "rssi": np.full(n, -50.0)})


def test_link_assembler_drops_incomplete_and_splits_retransmissions():
    # seq 1 complete; seq 2 loses core 1; seq 3 is sent twice (retransmission, same seq)
    fr = _link_rows(seq=[1, 1, 2, 3, 3, 3, 3], core=[0, 1, 0, 0, 1, 0, 1], spatial=[0] * 7)
    asm = LinkAssembler()
    out = asm.update(fr)
    tail = asm.flush()
    got = np.concatenate([out.data, tail.data])
    assert got.shape == (3, 4, 2, 1)
    np.testing.assert_array_equal(got[:, 0, :, 0].real, [[0, 1], [3, 4], [5, 6]])
    assert asm.incomplete == 1 and asm.assembled == 3


def test_single_link_stream_passes_through_unchanged():
    fr = _link_rows(seq=[1, 2, 3], core=[0, 0, 0], spatial=[0, 0, 0])
    asm = LinkAssembler()
    assert asm.update(fr) is fr
    assert asm.flush() is None


@pytest.mark.skipif(not (SHARED_CSI / "csikit-nexmon" / "example_4339.pcap").exists(),
                    reason="shared data (../shared/data/csi) not present in this checkout")
def test_real_bcm4339_capture_assembles_three_spatial_streams():
    path = SHARED_CSI / "csikit-nexmon" / "example_4339.pcap"
    rows = list(open_capture(path, assemble=False).chunks())
    packets = list(open_capture(path).chunks())
    data = np.concatenate([f.data for f in packets])
    assert data.shape == (950, 256, 1, 3)
    flat = np.concatenate([f.data[:, :, 0, 0] for f in rows])
    spatial = np.concatenate([f.fields["spatial"] for f in rows])
    for s in range(3):
        np.testing.assert_array_equal(data[:, :, 0, s], flat[spatial == s])
    assert ratio_axis(data) == 3


def test_regenerating_the_bundled_esp32_sample_is_byte_identical(tmp_path):
    out = tmp_path / "s.csv"
    simulate_csi_breathing(str(out), seed=3, duration_s=60, rate_bpm=15, distance_m=1.0,
                           packet_rate_hz=20, snr_db=30)
    assert out.read_bytes() == (ROOT / "agent" / "samples" / "esp32_breathing_15bpm.csv").read_bytes()


@pytest.mark.parametrize("file_format,n_rx", [("intel5300", 3), ("nexmon", 3), ("nexmon", 1)])
def test_breathing_through_binary_formats(tmp_path, file_format, n_rx):
    """Simulated breathing written as a real Intel 5300 / Nexmon file, replayed by the CLI."""
    out = tmp_path / f"b.{file_format}"
    truth = simulate_csi_breathing(str(out), seed=11, duration_s=75, rate_bpm=16.0,
                                   distance_m=1.5, file_format=file_format, n_rx=n_rx,
                                   packet_rate_hz=50)
    assert json.loads(Path(str(out) + ".truth.json").read_text())["file_format"] == file_format
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "replay", str(out), "--jsonl",
                           "--pipeline", "wifi_breathing"],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    rates = [(e["offset_s"], e["value"]) for e in events if e["type"] == "breathing_rate"]
    assert len(rates) >= 3
    for t, bpm in rates:
        assert abs(bpm - window_truth_bpm(truth, t, 30.0)) < 1.0


def test_live_udp_multi_stream_packets_are_assembled(tmp_path):
    """The Pi's live path: per-stream UDP packets → NexmonUdpSource, which assembles them."""
    from sensing.sources.udp import NexmonUdpSource
    from tests.test_source_udp import run, sender, udp_payloads

    rng = np.random.default_rng(9)
    csi = _rand_csi(rng, (40, 64, 1, 3), 2000)
    path = tmp_path / "w.pcap"
    with open(path, "wb") as fh:
        NexmonPcapWriter(fh, chip="bcm4339").write(csi, np.arange(40) * 0.01, np.arange(40),
                                                   np.full(40, -50), t0_s=1.7e9)
    payloads = udp_payloads(path)
    assert len(payloads) == 120
    src = NexmonUdpSource("127.0.0.1", 0, chunk_size=16, max_latency_s=0.2)

    packets = run(src, lambda addr: sender(payloads)(addr) // 3)  # 3 datagrams per frame
    data = np.concatenate([f.data for f in packets])
    np.testing.assert_array_equal(data, csi)


def test_info_reports_the_link_layout_of_a_nexmon_capture(tmp_path, capsys):
    from agent.cli import main

    rng = np.random.default_rng(4)
    csi = _rand_csi(rng, (12, 64, 2, 3), 1000)
    path = tmp_path / "w.pcap"
    with open(path, "wb") as fh:
        NexmonPcapWriter(fh, chip="bcm4339").write(csi, np.arange(12) * 0.01, np.arange(12),
                                                   np.full(12, -50))
    assert main(["info", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == info["wifi_frames"] == 12
    assert info["shape"] == [[64, 2, 3]]
    assert info["cores"] == [0, 1] and info["spatial_streams"] == [0, 1, 2]
    assert info["incomplete_frames"] == 0


def test_info_and_replay_count_the_same_frames(tmp_path, capsys):
    """The reader assembles the links, so ``info`` and ``replay`` (which runs the reader's
    chunks unchanged) report one frame count: Wi-Fi frames, not UDP packets."""
    from agent.cli import main

    rng = np.random.default_rng(5)
    csi = _rand_csi(rng, (20, 64, 2, 2), 1000)
    written = tmp_path / "w.pcap"
    with open(written, "wb") as fh:
        NexmonPcapWriter(fh, chip="bcm4339").write(csi, np.arange(20) * 0.01, np.arange(20),
                                                   np.full(20, -50))
    paths = [written]
    real = SHARED_CSI / "csikit-nexmon" / "example_4358.pcap"  # 2 cores x 2 streams
    if real.exists():
        paths.append(real)
    for path, n in zip(paths, (20, 1), strict=False):
        assert main(["info", "--json", str(path)]) == 0
        info = json.loads(capsys.readouterr().out)
        assert main(["replay", "--jsonl", "--no-progress", str(path)]) == 0
        err = capsys.readouterr().err
        assert f"{path.name}: {n} frames," in err, err
        assert info["frames"] == info["wifi_frames"] == n
