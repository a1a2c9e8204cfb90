"""LoRa IQ inputs: SigMF complex recordings, raw complex64 files, reader options on the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats import detect_format, open_capture
from sensing.lora.formats.raw_iq import RawIqReader, name_options, write_raw_iq
from sensing.lora.formats.sigmf_iq import SigmfIqReader, write_sigmf_iq
from sensing.params import OptionError
from tests.conftest import REPO, SHARED_DATA

REF = SHARED_DATA / "lora" / "gr-lora_sdr-qa-ref"


def _iq(n: int, ch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * (rng.standard_normal((n, ch)) + 1j * rng.standard_normal((n, ch)))
            ).astype(np.complex64)


def _read(path, **kw):
    reader = open_capture(path, **kw)
    chunks = list(reader)
    return reader, chunks, np.concatenate([c.data for c in chunks])


@pytest.mark.parametrize("datatype,tol", [("cf32_le", 0), ("ci16_le", 1e-4), ("cu8", 8e-3)])
@pytest.mark.parametrize("channels", [1, 2])
def test_sigmf_round_trip(tmp_path, datatype, tol, channels):
    x = np.clip(_iq(5000, channels).view(np.float32), -0.99, 0.99).view(np.complex64)
    meta, data = write_sigmf_iq(tmp_path / "rec", x, 500e3, center_hz=868.1e6,
                                datatype=datatype, lora={"sf": 9, "bw_hz": 125000},
                                soil={"depths_m": [0.1, 0.3], "site": "a"},
                                annotations=[{"core:sample_start": 10,
                                              "core:sample_count": 5, "core:label": "x"}])
    for path in (meta, data):  # either file opens the recording
        assert detect_format(path) is SigmfIqReader
        reader, chunks, y = _read(path, chunk_size=1000)
        assert all(0 < len(c) <= 1000 for c in chunks)
        assert y.dtype == np.complex64 and y.shape == (5000, channels)
        np.testing.assert_allclose(y, x, atol=tol * 1.5 + 1e-7)
        times = np.concatenate([c.times_s for c in chunks])
        np.testing.assert_allclose(times, np.arange(5000) / 500e3)
        m = chunks[0].meta
        assert m["format"] == "sigmf" and m["datatype"] == datatype
        assert m["center_hz"] == 868.1e6 and m["soil"] == {"depths_m": [0.1, 0.3], "site": "a"}
        assert m["lora"]["sf"] == 9 and m["lora"]["sync_word"] == 0x12  # defaults filled
        assert chunks[0].fs_hz == 500e3 and chunks[0].modality == "lora_iq"
        assert reader.rejects.total == 0
    doc = json.loads(open(meta).read())
    assert doc["annotations"][0]["core:label"] == "x"
    assert doc["global"]["core:num_channels"] == channels


def test_soil_reference_recordings_are_replayed_first(tmp_path):
    from agent.runner import replay_order

    x = _iq(100, 2)
    a, _ = write_sigmf_iq(tmp_path / "a", x, 1e3, soil={"depths_m": [0.1, 0.3], "site": "s"})
    b, _ = write_sigmf_iq(tmp_path / "b", x, 1e3, soil={"depths_m": [0.1, 0.3], "site": "s",
                                                        "reference_vwc": 21.0})
    assert not SigmfIqReader(a).replay_first() and SigmfIqReader(b).replay_first()
    assert replay_order([a, b]) == [b, a]


def test_sigmf_channels_are_interleaved_per_sample(tmp_path):
    """SigMF: s0c0 s0c1 s1c0 …, each sample an (I, Q) pair."""
    x = np.array([[1 + 2j, 3 + 4j], [5 + 6j, 7 + 8j]], np.complex64) / 10
    _, data = write_sigmf_iq(tmp_path / "r", x, 1e3)
    np.testing.assert_allclose(np.fromfile(data, "<f4") * 10, [1, 2, 3, 4, 5, 6, 7, 8],
                               rtol=1e-6)
    # an independently written ci16 file reads back the same way
    raw = np.array([100, -200, 300, -400, 500, 600, 700, 800], "<i2")
    (tmp_path / "h.sigmf-data").write_bytes(raw.tobytes())
    (tmp_path / "h.sigmf-meta").write_text(json.dumps({
        "global": {"core:datatype": "ci16_le", "core:sample_rate": 1000,
                   "core:num_channels": 2, "core:version": "1.0.0"},
        "captures": [{"core:sample_start": 0}], "annotations": []}))
    _, _, y = _read(tmp_path / "h.sigmf-meta")
    np.testing.assert_allclose(y * 32768, [[100 - 200j, 300 - 400j], [500 + 600j, 700 + 800j]])


def test_sigmf_not_claimed_when_real_or_other_modality(tmp_path):
    x = _iq(100, 1)
    meta, _ = write_sigmf_iq(tmp_path / "uwb", x, 1e3, extra_global={"ambisense:uwb": {}})
    with pytest.raises(UnsupportedFormatError):
        if detect_format(meta) is SigmfIqReader:
            raise AssertionError("claimed a UWB recording")
        raise UnsupportedFormatError("another reader claimed it")
    (tmp_path / "a.sigmf-data").write_bytes(np.zeros(100, "<f4").tobytes())
    (tmp_path / "a.sigmf-meta").write_text(json.dumps({
        "global": {"core:datatype": "rf32_le", "core:sample_rate": 48000,
                   "core:version": "1.0.0"}, "captures": [], "annotations": []}))
    assert not SigmfIqReader.sniff((tmp_path / "a.sigmf-meta").read_bytes(),
                                   str(tmp_path / "a.sigmf-meta"))
    assert not SigmfIqReader.sniff(b"", str(tmp_path / "a.sigmf-data"))


def test_sigmf_broken_inputs(tmp_path):
    x = _iq(1001, 2)
    meta, data = write_sigmf_iq(tmp_path / "r", x, 1e3, datatype="ci16_le")
    with open(data, "ab") as fh:  # half a sample at the end: a counted reject
        fh.write(b"\x01\x02\x03")
    reader, _, y = _read(meta)
    assert len(y) == 1001 and reader.rejects.total == 1
    assert "3 trailing bytes" in str(reader.rejects.first[0])
    (tmp_path / "bad.sigmf-meta").write_text('{"global": {"core:datatype": "cf32_le"')
    with pytest.raises(CaptureFormatError, match="bad.sigmf-meta"):
        SigmfIqReader(tmp_path / "bad.sigmf-meta")
    meta2, _ = write_sigmf_iq(tmp_path / "s", x, 1e3, lora={"sf": 5})
    with pytest.raises(CaptureFormatError, match="ambisense:lora"):
        SigmfIqReader(meta2)
    with pytest.raises(OptionError, match="unknown option 'bogus'"):
        SigmfIqReader(meta, bogus=1)
    meta3, data3 = write_sigmf_iq(tmp_path / "n", x, 1e3)
    (tmp_path / "n.sigmf-data").unlink()
    with pytest.raises(CaptureFormatError, match="n.sigmf-data"):
        list(SigmfIqReader(meta3))


def test_nan_samples_are_counted_and_zeroed(tmp_path):
    x = _iq(300, 2)
    x[10, 1] = np.nan
    x[200, 0] = complex(np.inf, 0)
    meta, _ = write_sigmf_iq(tmp_path / "nan", x, 1e3)
    reader, _, y = _read(meta, chunk_size=100)
    assert np.isfinite(y.view(np.float32)).all() and y[10, 1] == 0
    assert reader.rejects.total == 2 and "NaN/Inf" in str(reader.rejects.first[0])
    raw = write_raw_iq(tmp_path / "nan.fs1k.cf32", x[:, 0])
    reader, _, y = _read(raw, format="lora_raw")
    assert np.isfinite(y.view(np.float32)).all() and reader.rejects.total == 1


def test_raw_reader_options_and_name_tokens(tmp_path):
    x = _iq(3000, 2)
    path = write_raw_iq(tmp_path / "cap.dat", x)
    with pytest.raises(CaptureFormatError, match="fs_hz"):
        open_capture(path, format="lora_raw")
    with pytest.raises(OptionError, match="unknown option 'fs'"):
        open_capture(path, format="lora_raw", fs=1)
    with pytest.raises(OptionError, match="fs_hz"):
        open_capture(path, format="lora_raw", fs_hz="fast")
    reader, chunks, y = _read(path, format="lora_raw", fs_hz=250e3, channels=2, sf=8,
                              chunk_size=700)
    np.testing.assert_array_equal(y, x)
    assert chunks[0].meta["lora"]["sf"] == 8 and chunks[0].meta["format"] == "raw"
    assert name_options("x_sf9_bw250k.fs1M.cf32") == {"sf": 9, "bw_hz": 250000,
                                                        "fs_hz": 1e6}
    # a .cf32 name with its rate is detected; other raw files are never sniffed
    named = write_raw_iq(tmp_path / "rec.sf7.fs500k.cf32", x[:, 0])
    assert detect_format(named) is RawIqReader
    _, chunks, _ = _read(named)
    assert chunks[0].fs_hz == 500e3 and chunks[0].meta["lora"]["sf"] == 7
    with pytest.raises(UnsupportedFormatError):
        detect_format(path)
    with open(named, "ab") as fh:
        fh.write(b"\x00\x00\x80")
    assert not RawIqReader.sniff(open(named, "rb").read(8192), str(named))
    r = RawIqReader(named)
    list(r)
    assert r.rejects.total == 1


class _Res:
    def __init__(self, rc, out, err):
        self.returncode, self.stdout, self.stderr = rc, out, err


@pytest.fixture
def cli(capsys):
    """The CLI in this process (``agent.cli.main``): return code, stdout, stderr."""
    from agent.cli import main

    def run(*args):
        capsys.readouterr()
        rc = main(list(args))
        got = capsys.readouterr()
        return _Res(rc, got.out, got.err)
    return run


def test_cli_reader_options(tmp_path, cli):
    _cli = cli
    x = _iq(2000, 1)
    path = write_raw_iq(tmp_path / "cap.bin", x)
    res = _cli("info", str(path), "--format", "lora_raw", "--read", "fs_hz=500000",
               "--read", "sf=8", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["frames"] == 2000 and info["format"] == "lora_raw"
    assert info["lora"]["sf"] == 8
    res = _cli("info", str(path), "--format", "lora_raw", "--read", "fz=1")
    assert res.returncode == 2 and "unknown option 'fz'" in res.stderr
    assert "fs_hz" in res.stderr  # the valid options are listed
    res = _cli("replay", str(path), "--format", "nope")
    assert res.returncode == 2 and "--format 'nope': unknown format" in res.stderr
    csv = REPO / "agent" / "samples" / "esp32_breathing_15bpm.csv"
    res = _cli("info", str(csv), "--read", "fs_hz=1")
    assert res.returncode == 2 and "takes no reader options" in res.stderr


def test_cli_replay_real_reference_frame(cli):
    _cli = cli
    path = REF / "ref_tx_sf8_cr2.bin"
    if not path.exists():
        pytest.skip(f"shared data absent: {path}")
    res = _cli("replay", str(path), "--jsonl", "--no-progress", "--pipeline", "lora_packet",
               "--format", "lora_raw", "--read", "fs_hz=500000", "--read", "bw_hz=125000")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    payload = (REF / "example_tx_source.txt").read_text().split(",")[0].encode()
    assert [(e["payload_hex"], e["crc_ok"], e["sf"]) for e in events] == [
        (payload.hex(), True, 8)]
