"""Audio inputs: the ambisense:probe model, WAV (+ sidecar) and SigMF readers and writers."""

from __future__ import annotations

import json
import struct
import tracemalloc
import wave

import numpy as np
import pytest
import scipy.io.wavfile

from sensing.acoustic.formats import (
    SigmfAudioReader,
    WavReader,
    WavWriter,
    write_sigmf,
    write_wav,
)
from sensing.acoustic.probe import Probe, ProbeError, probe_from_json, probe_to_json
from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats import detect_format, open_capture
from tests.conftest import SHARED_DATA

FMCW = {"type": "fmcw", "f0_hz": 18000, "f1_hz": 22000, "chirp_s": 0.01, "period_s": 0.012}
CW = {"type": "cw", "tones_hz": [19000, 20000]}


def read_all(path, **kw):
    reader = open_capture(path, **kw)
    chunks = list(reader.chunks())
    return reader, chunks, np.concatenate([c.data for c in chunks])


def signal_(n=5000, ch=2, seed=0):
    return np.random.default_rng(seed).uniform(-0.95, 0.95, (n, ch))


# ----------------------------------------------------------------------------- probe
def test_probe_round_trip_and_defaults():
    p = probe_from_json(FMCW, where="x")
    assert p.type == "fmcw" and p.period_s == 0.012 and p.start_s == 0 and p.window == "none"
    assert probe_from_json(probe_to_json(p)) == p
    c = probe_from_json(CW)
    assert c.tones_hz == (19000.0, 20000.0)
    assert "f0_hz" not in probe_to_json(c) and probe_to_json(c)["tones_hz"] == [19000.0, 20000.0]
    assert Probe(type="cw", tones_hz=[20000]).tones_hz == (20000.0,)  # a list fills the tuple
    assert c.max_hz == 20000 and p.min_hz == 18000 and p.slope_hz_per_s == pytest.approx(4e5)


@pytest.mark.parametrize("obj, words", [
    ({"type": "fmcw", "f0_hz": 18000}, "an fmcw probe needs f1_hz, chirp_s, period_s"),
    ({**FMCW, "period_s": 0.005}, "period_s (0.005 s) must be >= chirp_s (0.01 s)"),
    ({**FMCW, "f1_hz": 18000}, "f0_hz and f1_hz must differ"),
    ({"type": "cw"}, "a cw probe needs tones_hz"),
    ({"type": "cw", "tones_hz": [20000, 20000]}, "tones_hz must be distinct"),
    ({"type": "cw", "tones_hz": [20000], "f0_hz": 1}, "only an fmcw probe has f0_hz"),
    ({"type": "chirp"}, "option 'type': expected \"fmcw\" | \"cw\""),
    ({**CW, "colour": "red"}, "unknown option 'colour'"),
    ({**CW, "amplitude": 2}, "option 'amplitude'"),
    ({"type": "cw", "tones_hz": "20000"}, "option 'tones_hz'"),
    ([1, 2], "expected a JSON object"),
])
def test_probe_errors_name_where_and_what(obj, words):
    with pytest.raises(ProbeError) as err:
        probe_from_json(obj, where="rec.wav.json: ambisense:probe")
    assert str(err.value).startswith("rec.wav.json: ambisense:probe: ")
    assert words in str(err.value)


def test_probe_waveform_is_continuous_across_blocks_and_matches_the_definition():
    fs = 48000
    for obj in (FMCW, CW, {**FMCW, "start_s": 0.003, "window": "hann"}):
        p = probe_from_json(obj)
        whole = p.waveform(fs, 0, 3000)
        parts = np.concatenate([p.waveform(fs, 0, 1234), p.waveform(fs, 1234, 1766)])
        np.testing.assert_allclose(parts, whole, atol=1e-12)
        assert np.abs(whole).max() <= p.amplitude + 1e-12
    p = probe_from_json(FMCW)
    t = np.arange(480) / fs  # inside the first chirp: the linear sweep
    ref = 0.5 * np.cos(2 * np.pi * (18000 * t + 0.5 * 4e5 * t * t))
    np.testing.assert_allclose(p.waveform(fs, 0, 480), ref, atol=1e-9)
    gap = p.waveform(fs, 480, 96)  # 10–12 ms: silent part of the 12 ms period
    assert np.all(gap == 0)
    late = probe_from_json({**FMCW, "start_s": 0.5}).waveform(fs, 0, 24000)
    assert np.all(late == 0)
    with pytest.raises(ProbeError, match="Nyquist"):
        p.check_rate(44000)


# ----------------------------------------------------------------------------- WAV
@pytest.mark.parametrize("subtype, tol", [("int16", 2 / 32768), ("int24", 2 / 2**23),
                                          ("int32", 1e-7), ("float32", 1e-7)])
@pytest.mark.parametrize("fs, ch", [(2000, 1), (4500, 1), (48000, 2), (192000, 6)])
def test_wav_round_trip(tmp_path, subtype, tol, fs, ch):
    x = signal_(3001, ch)
    path = tmp_path / "a.wav"
    write_wav(path, x, fs, subtype=subtype)
    assert WavReader.sniff(path.read_bytes()[:8192], str(path))
    reader, chunks, y = read_all(path, chunk_size=1000)
    assert type(reader) is WavReader and reader.rejects.total == 0
    assert [len(c) for c in chunks] == [1000, 1000, 1000, 1]
    assert y.dtype == np.float32 and y.shape == (3001, ch)
    np.testing.assert_allclose(y, x, atol=tol)
    c = chunks[1]
    assert c.modality == "audio" and c.fs_hz == fs and c.times_s.dtype == np.float64
    np.testing.assert_allclose(c.times_s, (1000 + np.arange(1000)) / fs)
    assert c.meta == {"format": "wav", "probe": None, "bits": int(subtype[-2:]),
                      "sample_format": "float" if subtype == "float32" else "int"}
    assert len(c.channel_names) == ch
    if ch > 2 and subtype != "float32":  # extensible header with a channel mask
        assert c.channel_names == ("FL", "FR", "FC", "LFE", "BL", "BR")
        assert struct.unpack("<H", path.read_bytes()[20:22])[0] == 0xFFFE


def test_our_wavs_read_by_scipy_and_stdlib(tmp_path):
    x = signal_(2000, 2)
    for subtype in ("int16", "int24", "int32", "float32"):
        path = tmp_path / f"{subtype}.wav"
        write_wav(path, x, 44100, subtype=subtype)
        fs, y = scipy.io.wavfile.read(path)
        assert fs == 44100 and y.shape == (2000, 2)
        scale = 1.0 if subtype == "float32" else 2.0 ** (int(subtype[-2:]) - 1)
        if subtype == "int24":  # scipy returns 24-bit samples in the top of int32
            scale = 2.0 ** 31
        np.testing.assert_allclose(y / scale, x, atol=2e-4)
    with wave.open(str(tmp_path / "int16.wav")) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == \
            (2, 2, 44100, 2000)


def test_wavs_from_scipy_and_stdlib(tmp_path):
    x = signal_(1500, 3, seed=2)
    for dtype, scale in (("<i2", 32767), ("<i4", 2**31 - 1), ("<f4", 1.0), ("<f8", 1.0)):
        path = tmp_path / f"s{dtype[1:]}.wav"
        scipy.io.wavfile.write(path, 16000, (x * scale).astype(dtype))
        _, _, y = read_all(path)
        np.testing.assert_allclose(y, x, atol=1e-4)
    u8 = tmp_path / "u8.wav"
    scipy.io.wavfile.write(u8, 8000, np.array([0, 128, 255], np.uint8))
    np.testing.assert_allclose(read_all(u8)[2][:, 0], [-1, 0, 127 / 128])
    path = tmp_path / "stdlib.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(3)
        w.setframerate(96000)
        w.writeframes(struct.pack("<i", -(2**23))[:3] + struct.pack("<i", 2**22)[:3])
    np.testing.assert_allclose(read_all(path)[2][:, 0], [-1.0, 0.5])


def test_sidecar_probe_and_its_errors(tmp_path):
    path = tmp_path / "rec.wav"
    write_wav(path, signal_(4800, 1) * 0.1, 48000, probe=probe_from_json(FMCW))
    side = json.loads((tmp_path / "rec.wav.json").read_text())
    assert side == {"ambisense:probe": probe_to_json(probe_from_json(FMCW))}
    _, chunks, _ = read_all(path)
    assert chunks[0].meta["probe"] == probe_to_json(probe_from_json(FMCW))
    # a later write without a probe removes the stale sidecar
    write_wav(path, signal_(10, 1) * 0.1, 48000)
    assert not (tmp_path / "rec.wav.json").exists()
    (tmp_path / "rec.wav.json").write_text('{"ambisense:probe": {"type": "cw"}}')
    with pytest.raises(CaptureFormatError) as err:
        read_all(path)
    assert str(err.value).startswith(f"{tmp_path / 'rec.wav.json'}: ambisense:probe: ")
    assert "a cw probe needs tones_hz" in str(err.value)
    (tmp_path / "rec.wav.json").write_text("{nope")
    with pytest.raises(CaptureFormatError, match="JSONDecodeError"):
        read_all(path)
    (tmp_path / "rec.wav.json").write_text('{"ambisense:probe": {"type": "cw", '
                                           '"tones_hz": [30000]}}')
    with pytest.raises(CaptureFormatError, match="Nyquist"):
        read_all(path)
    (tmp_path / "rec.wav.json").write_text('{"note": "no probe here"}')
    assert read_all(path)[1][0].meta["probe"] is None


def test_truncated_and_unfinalised_data_chunks_are_counted(tmp_path):
    path = tmp_path / "a.wav"
    write_wav(path, signal_(1000, 2), 8000)
    blob = path.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(blob[: 44 + 4 * 600 + 3])  # 600 whole frames and 3 bytes
    reader, _, y = read_all(cut)
    assert len(y) == 600 and reader.rejects.as_dict() == {"truncated": 1}
    msg = str(reader.rejects.first[0])
    assert msg.startswith(f"{cut}: byte 36: truncated: expected 4000 data bytes, got 2403")
    np.testing.assert_array_equal(y, read_all(path)[2][:600])
    raw = bytearray(blob)
    raw[40:44] = struct.pack("<I", 0xFFFFFFFF)  # a recorder that never finalised
    live = tmp_path / "live.wav"
    live.write_bytes(bytes(raw))
    reader, _, y = read_all(live)
    assert len(y) == 1000 and reader.rejects.as_dict() == {"truncated": 1}
    assert "never finalised" in str(reader.rejects.first[0])
    with pytest.raises(CaptureFormatError, match="a data chunk"):
        hdr = tmp_path / "hdr.wav"
        hdr.write_bytes(blob[:36])
        read_all(hdr, format="wav")


def test_chunks_before_data_and_odd_padding(tmp_path):
    x = (signal_(10, 1) * 32767).astype("<i2")
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    lst = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"  # odd size, pad byte
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + lst + b"data" + \
        struct.pack("<I", 20) + x.tobytes()
    path = tmp_path / "list.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    _, _, y = read_all(path)
    np.testing.assert_allclose(y, x / 32768)


def test_other_codecs_and_riff_kinds_are_not_claimed(tmp_path):
    alaw = tmp_path / "alaw.wav"
    fmt = struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4) + bytes(4)
    alaw.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with pytest.raises(UnsupportedFormatError, match="RIFF/WAVE audio file .*format 6"):
        detect_format(alaw)
    avi = tmp_path / "x.avi"
    avi.write_bytes(b"RIFF" + struct.pack("<I", 4) + b"AVI ")
    assert not WavReader.sniff(avi.read_bytes(), str(avi))


def test_streaming_keeps_memory_bounded(tmp_path):
    path = tmp_path / "big.wav"
    with WavWriter(path, 48000, 1) as w:
        for _ in range(40):  # 40 × 1 s = 3.84 MB of int16
            w.write(np.zeros(48000))
    reader = WavReader(path, chunk_size=4096)
    tracemalloc.start()
    n = sum(len(c) for c in reader.chunks())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 40 * 48000
    assert peak < 1_000_000, f"peak {peak} bytes while streaming a 3.8 MB file"


# ----------------------------------------------------------------------------- SigMF
@pytest.mark.parametrize("datatype, tol", [("rf32_le", 1e-7), ("ri16_le", 2 / 32768),
                                           ("ri32_le", 1e-7), ("rf64_be", 1e-7),
                                           ("ri8", 2 / 128), ("ru8", 2 / 128)])
def test_sigmf_round_trip(tmp_path, datatype, tol):
    import sigmf

    x = signal_(2500, 2)
    anns = [{"start_s": 0.01, "duration_s": 0.005, "label": "blink", "amplitude_mm": 1.5},
            {"sample_start": 100, "sample_count": 10, "comment": "breath"}]
    meta, data = write_sigmf(tmp_path / "rec", x, 48000, probe=probe_from_json(CW),
                             annotations=anns, datatype=datatype)
    assert meta.endswith("rec.sigmf-meta") and data.endswith("rec.sigmf-data")
    # the sigmf package reads it back, checksum verified
    sf = sigmf.sigmffile.fromfile(meta)
    assert sf.get_global_info()["ambisense:probe"] == probe_to_json(probe_from_json(CW))
    for path in (meta, data):  # either file of the pair opens the recording
        reader, chunks, y = read_all(path, chunk_size=1000)
        assert type(reader) is SigmfAudioReader and reader.rejects.total == 0
        np.testing.assert_allclose(y, x, atol=tol)
    m = chunks[0].meta
    assert m["format"] == "sigmf" and m["datatype"] == datatype
    assert m["probe"] == probe_to_json(probe_from_json(CW))
    a0, a1 = m["annotations"]  # sorted by start
    assert a0 == {"sample_start": 100, "sample_count": 10, "comment": "breath",
                  "start_s": 100 / 48000, "duration_s": 10 / 48000}
    assert a1["label"] == "blink" and a1["amplitude_mm"] == 1.5
    assert a1["sample_start"] == 480 and a1["duration_s"] == pytest.approx(0.005)
    assert reader.annotations() == m["annotations"]
    assert chunks[0].source == "rec" and chunks[0].fs_hz == 48000


def test_sigmf_complex_datatypes_are_left_to_other_readers(tmp_path):
    for dt in ("cf32_le", "ci16_le", "cu8"):
        meta = tmp_path / f"{dt}.sigmf-meta"
        meta.write_text(json.dumps({"global": {"core:datatype": dt, "core:sample_rate": 1e6,
                                               "core:version": "1.2.0"},
                                    "captures": [], "annotations": []}))
        (tmp_path / f"{dt}.sigmf-data").write_bytes(bytes(64))
        assert not SigmfAudioReader.sniff(meta.read_bytes(), str(meta))
        assert not SigmfAudioReader.sniff(b"", str(tmp_path / f"{dt}.sigmf-data"))
        with pytest.raises(CaptureFormatError, match="a real audio datatype"):
            list(SigmfAudioReader(meta).chunks())


def test_sigmf_errors(tmp_path):
    meta, data = write_sigmf(tmp_path / "r", signal_(100, 1), 8000, datatype="ri16_le")
    with open(data, "ab") as fh:
        fh.write(b"\x01")  # half a sample
    reader, _, y = read_all(meta)
    assert len(y) == 100 and reader.rejects.as_dict() == {"truncated": 1}
    (tmp_path / "r.sigmf-data").unlink()
    with pytest.raises(CaptureFormatError, match="no such file"):
        read_all(meta)
    bad = tmp_path / "bad.sigmf-meta"
    bad.write_text('{"global": {"core:datatype": "rf32_le", "core:sample_rate": -1, '
                   '"core:version": "1.2.0"}, "captures": [], "annotations": []}')
    (tmp_path / "bad.sigmf-data").write_bytes(bytes(8))
    with pytest.raises(CaptureFormatError) as err:
        read_all(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(ValueError, match="real SigMF datatype"):
        write_sigmf(tmp_path / "c", signal_(10, 1), 8000, datatype="cf32_le")


# ----------------------------------------------------------------------------- real files
def test_real_wavs_are_detected_as_wav():
    root = SHARED_DATA / "acoustic"
    if not root.exists():
        pytest.skip("../shared/data/acoustic is absent")
    wavs = sorted(root.rglob("*.wav"))
    assert len(wavs) >= 60
    for path in wavs:
        assert detect_format(path) is WavReader, path
    r = WavReader(next(p for p in wavs if "karolus" in str(p)))
    lay = r.layout()
    assert (lay.fs_hz, lay.n_channels, lay.bits) == (44100, 1, 16)


def test_plot_of_an_audio_recording(tmp_path):
    pytest.importorskip("matplotlib")
    from agent.cli import main as cli_main
    from sensing.acoustic.plotters import AudioPlotter

    t = np.arange(48000 * 3) / 48000
    x = 0.3 * np.cos(2 * np.pi * 20000 * t) + 0.01 * np.random.default_rng(0).standard_normal(
        len(t))
    path = tmp_path / "tone.wav"
    write_wav(path, x, 48000)
    summary = AudioPlotter().summarize(open_capture(path).chunks(), max_columns=200)
    assert summary.columns <= 200 and summary.spec_db.shape[1] == 128
    row = int(np.nanargmax(np.nanmean(summary.spec_db, axis=0)))
    assert row == int(20000 / 24000 * 128)  # the tone's row is the loudest
    out = tmp_path / "tone.png"
    assert cli_main(["plot", str(path), "-o", str(out), "--detect"]) == 0
    assert out.stat().st_size > 10_000
