"""EEG readers: EDF/EDF+/BDF via mne (streamed), Bonn/CSV text, real CHB-MIT headers, errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats import detect_format, open_capture
from sensing.formats.edf import EdfReader
from sensing.formats.edf.writer import EdfWriter
from sensing.formats.eeg_text import EegTextReader


def _write(path, x, names, fs=256.0, **kw):
    with EdfWriter(path, names, fs, **kw) as w:
        w.write(x)
    return path


def _all(reader):
    chunks = list(reader.chunks())
    return chunks, np.concatenate([c.data for c in chunks])


@pytest.mark.parametrize("bdf", [False, True])
def test_edf_bdf_roundtrip_streamed_in_record_chunks(tmp_path, bdf):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 50, (256 * 30, 3))
    p = _write(tmp_path / ("r.bdf" if bdf else "r.edf"), x, ["Fp1", "Fp2", "C3"], bdf=bdf)
    r = open_capture(p, chunk_s=4.0)
    assert isinstance(r, EdfReader) and r.modality == "eeg"
    chunks, y = _all(r)
    assert len(chunks) == 8 and len(chunks[0]) == 4 * 256  # 30 s in 4-s chunks
    step = 6553.5 / (2**24 if bdf else 2**16)  # µV per digital step
    assert np.abs(y - x).max() <= step  # µV preserved to one quantisation step
    t = np.concatenate([c.times_s for c in chunks])
    np.testing.assert_allclose(t, np.arange(len(x)) / 256.0)
    assert chunks[0].meta["format"] == ("bdf" if bdf else "edf")
    assert chunks[0].t0 is not None and chunks[0].t0.year == 2000


def test_edf_plus_latin1_annotations(tmp_path):
    p = tmp_path / "a.edf"
    with EdfWriter(p, ["Cz"], 128.0) as w:
        w.annotate(3.0, 12.5, "Anfall Kaubewegung é")  # Latin-1 byte 0xE9, invalid UTF-8
        w.annotate(20.0, 0.0, "Artefakt")
        w.write(np.zeros((128 * 30, 1)))
    assert b"\xe9" in p.read_bytes()
    ann = open_capture(p).annotations()
    assert ann == [{"onset_s": 3.0, "duration_s": 12.5, "text": "Anfall Kaubewegung é"},
                   {"onset_s": 20.0, "duration_s": 0.0, "text": "Artefakt"}]


def test_mixed_sampling_rates_resampled_without_chunk_edge_artefacts(tmp_path):
    fs_hi, fs_lo, dur = 256.0, 128.0, 20
    t_hi, t_lo = np.arange(int(fs_hi * dur)) / fs_hi, np.arange(int(fs_lo * dur)) / fs_lo
    p = tmp_path / "mixed.edf"
    with EdfWriter(p, ["A", "B"], [fs_hi, fs_lo]) as w:
        w.write_signals([100 * np.sin(2 * np.pi * 5 * t_hi), 100 * np.sin(2 * np.pi * 5 * t_lo)])
    r = EdfReader(p, chunk_s=3.0)
    assert r.fs_hz == fs_hi
    _, y = _all(r)
    # the 128 Hz channel comes out at 256 Hz and matches the sine everywhere, chunk edges too
    assert np.abs(y[:, 1] - 100 * np.sin(2 * np.pi * 5 * t_hi)).max() < 1.0


def test_chbmit_header_duplicates_and_double_banana():
    p = shared_path("eeg", "chbmit_header_fixtures", "chb01_01_sample.edf")
    r = open_capture(p)
    assert r.fs_hz == 256.0
    assert r.duplicates == ["T8-P8"]
    chunks, y = _all(r)
    assert y.shape == (512, 22)  # 23 recorded, the duplicate T8-P8 copy dropped
    assert chunks[0].channel_names.count("T8-P8") == 1
    bb = EdfReader(p, montage="double_banana")
    names = bb.montage.names
    assert len(names) == 18 and names[0] == "FP1-F7" and bb.montage.missing == ()
    # microvolts: real scalp EEG, not volts
    assert 5 < np.median(np.abs(y)) < 500
    assert chunks[0].t0.year == 2076


def test_chbmit_summary_second_file_parses():
    p = shared_path("eeg", "chbmit_header_fixtures", "chb05", "chb05_06.edf")
    assert detect_format(p) is EdfReader
    assert open_capture(p).info()["frames"] == 512


def _header_bytes(path):
    return bytearray(path.read_bytes())


def test_missing_physical_range_is_a_precise_error(tmp_path):
    p = _write(tmp_path / "ok.edf", np.zeros((256, 2)), ["Fp1", "Fp2"])
    raw = _header_bytes(p)
    ns = 3  # 2 EEG + annotations
    off = 256 + ns * (16 + 80 + 8 + 8) + 8 * 1  # physical maximum of signal 2
    raw[off: off + 8] = b" " * 8
    bad = tmp_path / "bad.edf"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CaptureFormatError) as ei:
        open_capture(bad)
    e = ei.value
    assert e.path == str(bad) and f"byte {off}" in e.where and "physical maximum" in e.where
    assert "'Fp2'" in e.where and e.got == "a blank field"


def test_equal_physical_range_is_an_error(tmp_path):
    p = _write(tmp_path / "ok.edf", np.zeros((256, 1)), ["Cz"])
    raw = _header_bytes(p)
    ns = 2
    pmin = 256 + ns * (16 + 80 + 8)
    raw[pmin + 8 * ns: pmin + 8 * ns + 8] = raw[pmin: pmin + 8]  # max := min
    bad = tmp_path / "flat.edf"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CaptureFormatError, match="physical range"):
        EdfReader(bad)


def test_empty_and_short_files(tmp_path):
    empty = tmp_path / "empty.edf"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedFormatError, match="empty"):
        open_capture(empty)
    with pytest.raises(CaptureFormatError) as ei:
        EdfReader(empty)
    assert ei.value.where == "byte 0" and "0 bytes" in ei.value.got
    short = tmp_path / "short.edf"
    short.write_bytes(b"0       " + b" " * 100)
    with pytest.raises(CaptureFormatError, match="byte 108"):
        EdfReader(short)


def test_truncated_data_record(tmp_path):
    p = _write(tmp_path / "t.edf", np.zeros((256 * 5, 2)), ["Fp1", "Fp2"])
    hdr = 256 + 3 * 256
    rec = (256 * 2 + 60) * 2  # two EEG signals + 60 annotation samples, int16
    data = p.read_bytes()
    assert len(data) == hdr + 5 * rec
    cut = tmp_path / "cut.edf"
    cut.write_bytes(data[: hdr + 3 * rec + 100])
    with pytest.raises(CaptureFormatError) as ei:
        open_capture(cut)
    e = ei.value
    assert e.where == f"byte {hdr + 3 * rec} (data record 4 of 5)"
    assert f"{rec} bytes per data record" in e.expected and "100 bytes" in e.got


def test_unfinished_recording_reads_complete_records(tmp_path):
    p = tmp_path / "live.edf"
    w = EdfWriter(p, ["Cz"], 128.0)
    w.write(np.ones((128 * 3, 1)))  # header still says -1 records (not closed)
    r = EdfReader(p)
    assert r.n_records == 3
    w.close()


def test_bonn_text_reader_defaults_and_override():
    p = shared_path("eeg", "bonn", "setE", "S001.txt")
    assert detect_format(p) is EegTextReader
    r = open_capture(p)
    chunks, y = _all(r)
    assert y.shape == (4097, 1) and chunks[0].fs_hz == 173.61
    assert chunks[-1].times_s[-1] == pytest.approx(4096 / 173.61)
    assert y.max() <= 2047  # 12-bit ADC ceiling
    r2 = open_capture(p, fs_hz=256.0, scale_uv=0.5)
    _, y2 = _all(r2)
    assert r2.fs_hz == 256.0 and np.allclose(y2, 0.5 * y)
    upper = shared_path("eeg", "bonn", "setC", "N001.TXT")  # upper-case extension
    assert detect_format(upper) is EegTextReader


def test_csv_with_header_and_bad_line(tmp_path):
    p = tmp_path / "seg.csv"
    p.write_text("Fz\n" + "\n".join(str(v) for v in range(10)) + "\n12.5,\n")
    r = open_capture(p, fs_hz=100.0)
    chunks, y = _all(r)
    assert chunks[0].channel_names == ("Fz",) and y[-1, 0] == 12.5 and len(y) == 11
    bad = tmp_path / "bad.txt"
    bad.write_text("1\n2\n3\n4\n5\nx7\n")
    with pytest.raises(CaptureFormatError) as ei:
        list(EegTextReader(bad).chunks())
    assert ei.value.where == "line 6" and "'x7'" in ei.value.got


def test_channel_selection(tmp_path):
    x = np.random.default_rng(4).normal(0, 20, (512, 3))
    p = _write(tmp_path / "sel.edf", x, ["Fp1", "Fp2", "ECG"])
    assert EdfReader(p).montage.names == ("Fp1", "Fp2")  # ECG is not EEG: dropped
    r = EdfReader(p, channels=["Fp2"])
    _, y = _all(r)
    assert y.shape == (512, 1) and np.abs(y[:, 0] - x[:, 1]).max() < 0.1
    with pytest.raises(ValueError, match=r"channel\(s\) \['Oz'\] not in the recording"):
        EdfReader(p, channels=["Oz"])


FUZZ_BYTES = 4096  # header (256 + 24 × 256 = 6400 bytes for CHB-MIT) is mutated first


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 30180), edits=st.lists(
    st.tuples(st.integers(0, 6400 + FUZZ_BYTES), st.integers(0, 255)), max_size=8))
def test_mutated_or_truncated_edf_gives_only_documented_errors(tmp_path, cut, edits):
    blob = bytearray(shared_path("eeg", "chbmit_header_fixtures", "chb01_01_sample.edf")
                     .read_bytes()[:cut])
    for pos, val in edits:
        if pos < len(blob):
            blob[pos] = val
    p = tmp_path / "fuzz.edf"
    p.write_bytes(bytes(blob))
    try:
        r = EdfReader(p)
        for fr in r.chunks():
            assert np.isfinite(fr.data).all() and fr.data.shape[1] >= 1
    except (CaptureFormatError, UnsupportedFormatError) as exc:
        assert str(p) in str(exc)
