"""UWB/radar readers: the real DW1000 DecaRanging logs and Acconeer A121/A111 HDF5 files,
the writers (DecaRanging text, .npz) round trip, malformed records as counted rejects,
and the real CLI replaying every real file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sensing.errors import CaptureFormatError, RejectReason, UnsupportedFormatError
from sensing.formats import detect_format, open_capture
from sensing.uwb.formats.acconeer_h5 import AcconeerH5Reader, read_vendor_output
from sensing.uwb.formats.decaranging import (
    C_M_S,
    TAP_S,
    DecaRangingReader,
    write_decaranging,
)
from sensing.uwb.formats.npz import RadarNpzReader, UwbNpzReader, frames_to_npz, write_npz
from tests.conftest import REPO, SHARED_DATA, shared_path

# SOURCES.md of kolakowski-uwb-cirs-2018: file -> (label, CIRs, median Dist m, median FP index)
KOLAKOWSKI = {
    "40.log": ("LOS", 212, 4.79, 747.8), "14.log": ("LOS", 223, 2.76, 748.3),
    "34.log": ("LOS", 225, 4.66, 746.9), "6.log": ("NLOS", 108, 2.67, 747.3),
    "37.log": ("NLOS", 258, 4.98, 746.5), "4.log": ("NDP NLOS", 228, 3.59, 745.2),
    "51.log": ("NDP NLOS", 232, 5.40, 746.7),
}


def read_all(path, **kw):
    reader = open_capture(path, **kw)
    chunks = list(reader)
    return reader, chunks


def cat(chunks, key=None):
    if key is None:
        return np.concatenate([c.data for c in chunks])
    return np.concatenate([c.fields[key] for c in chunks])


# -- real DW1000 logs -----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(KOLAKOWSKI))
def test_kolakowski_logs_match_their_sources_table(name):
    path = shared_path("uwb", "kolakowski-uwb-cirs-2018", "results", name)
    label, n, dist, fpi = KOLAKOWSKI[name]
    assert detect_format(path) is DecaRangingReader
    reader, chunks = read_all(path, chunk_size=50)
    assert sum(len(c) for c in chunks) == n
    assert reader.rejects.total == 0
    data = cat(chunks)
    assert data.shape == (n, 1016) and data.dtype == np.complex64
    assert np.all(data.real == np.round(data.real)) and np.abs(data.real).max() < 32768
    fp = cat(chunks, "first_path_index")
    assert np.median(fp) == pytest.approx(fpi, abs=0.06)
    d = cat(chunks, "distance_m")
    tof = cat(chunks, "tof_ns")
    ok = np.isfinite(d)
    # one ranging result per exchange: every other frame carries one
    assert abs(ok.sum() - n / 2) <= 2
    assert np.nanmedian(d) == pytest.approx(dist, abs=0.006)
    # the reported distance is the time of flight times c (to the log's 1 ps ToF rounding)
    assert np.all(np.abs(d[ok] - tof[ok] * 1e-9 * C_M_S) < 0.005)
    assert set(cat(chunks, "label")) == {label}
    assert np.all(cat(chunks, "rxpacc") > 0)
    m = chunks[-1].meta
    assert m["prf_mhz"] == 64 and m["channel"] == 2 and m["preamble_length"] == 1024
    assert m["tap_s"] == pytest.approx(1.0016e-9, rel=1e-4) and m["chip"] == "DW1000"
    assert m["rx_errors"] >= 2  # the logs' "RX E" accumulator dumps are skipped, counted
    t = np.concatenate([c.times_s for c in chunks])
    assert t[0] == 0 and np.all(np.diff(t) > 0) and 50 < t[-1] < 140  # clock unwrapped
    # the chip's first-path index agrees with the CIR's leading edge (within 2 taps)
    from sensing.uwb.conditioning import detect_first_path

    assert np.median(np.abs(detect_first_path(data) - fp)) < 2.0


def test_decaranging_writer_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    for prf, taps in ((64, 1016), (16, 992)):
        n = 30
        cir = (rng.normal(0, 300, (n, taps)) + 1j * rng.normal(0, 300, (n, taps)))
        times = 5.0 + np.arange(n) * 0.7   # 21 s: crosses the 17.2 s device-clock wrap
        fp = rng.uniform(740, 750, n)
        dist = np.where(np.arange(n) % 2, np.nan, rng.uniform(1, 8, n))
        labels = ["los" if i < 10 else "nlos" for i in range(n)]
        path = tmp_path / f"cap{prf}.log"
        write_decaranging(path, cir, first_path_index=fp, rxpacc=np.arange(n) + 500,
                          times_s=times, prf_mhz=prf, distance_m=dist, labels=labels,
                          chip="DW3000", channel=9)
        assert detect_format(path) is DecaRangingReader
        reader, chunks = read_all(path, chunk_size=7)
        assert reader.rejects.total == 0
        np.testing.assert_array_equal(cat(chunks), np.rint(cir.real) + 1j * np.rint(cir.imag))
        np.testing.assert_allclose(np.concatenate([c.times_s for c in chunks]), times - 5.0,
                                   atol=1e-9)
        np.testing.assert_allclose(cat(chunks, "first_path_index"), fp, atol=5e-5)
        np.testing.assert_array_equal(cat(chunks, "rxpacc"), np.arange(n) + 500)
        np.testing.assert_allclose(cat(chunks, "distance_m"), dist, atol=1e-6)
        assert list(cat(chunks, "label")) == labels
        m = chunks[0].meta
        assert (m["prf_mhz"], m["channel"], m["chip"], m["n_taps"]) == (prf, 9, "DW3000", taps)
        assert chunks[0].fs_hz == pytest.approx(1 / 0.7)


def test_decaranging_malformed_records_are_counted(tmp_path):
    rng = np.random.default_rng(2)
    cir = rng.normal(0, 100, (6, 40)) + 1j * rng.normal(0, 100, (6, 40))
    good = tmp_path / "good.log"
    write_decaranging(good, cir, first_path_index=20.0, rxpacc=900,
                      times_s=np.arange(6) * 0.1)
    lines = good.read_text().splitlines()
    starts = [i for i, s in enumerate(lines) if s.startswith("Accum Len")]
    lines[starts[1] + 3] = "12, x7"                 # record 2: not an integer
    lines[starts[2] + 5] = "40000, 1"               # record 3: outside int16
    del lines[starts[3] + 10: starts[3] + 41]       # record 4: accumulator cut short
    bad = tmp_path / "bad.log"
    bad.write_text("\n".join(lines) + "\n")
    reader, chunks = read_all(bad)
    assert sum(len(c) for c in chunks) == 3
    assert reader.rejects.as_dict() == {RejectReason.BAD_VALUE: 1, RejectReason.OUT_OF_RANGE: 1,
                                        RejectReason.TRUNCATED_RECORD: 1}
    assert all(str(r).startswith(f"{bad}: line ") for r in reader.rejects.first)
    np.testing.assert_array_equal(cat(chunks)[2], np.rint(cir[5].real) + 1j * np.rint(cir[5].imag))
    # the file cut inside the last accumulator: a counted truncated record
    cut = tmp_path / "cut.log"
    text = good.read_text()
    cut.write_text(text[: int(len(text) * 0.95)])
    reader, chunks = read_all(cut)
    assert sum(len(c) for c in chunks) == 5
    assert reader.rejects.as_dict() == {RejectReason.TRUNCATED_RECORD: 1}


def test_decaranging_sniff_does_not_claim_other_text(tmp_path):
    p = tmp_path / "x.log"
    p.write_text("RX OK but no accumulator\nhello\n")
    with pytest.raises(UnsupportedFormatError):
        detect_format(p)


# -- Acconeer HDF5 --------------------------------------------------------------------------

@pytest.mark.parametrize("name,frames,fs", [("breathing-sitting", 773, 20.0),
                                            ("breathing-sitting-no-presence", 667, 20.0)])
def test_acconeer_a121(name, frames, fs):
    path = shared_path("radar", "acconeer-a121", f"{name}.h5")
    assert detect_format(path) is AcconeerH5Reader
    reader, chunks = read_all(path, chunk_size=100)
    assert sum(len(c) for c in chunks) == frames and max(len(c) for c in chunks) == 100
    c = chunks[0]
    assert c.modality == "radar" and c.data.shape[1] == 21 and c.data.dtype == np.complex64
    assert c.fs_hz == fs and c.meta["sweeps_per_frame"] == 16
    r = np.array(c.meta["range_m"])
    np.testing.assert_allclose(r, (119 + 24 * np.arange(21)) * 0.00250227400101721)
    assert c.meta["app_config"]["start_m"] == 0.3 and c.meta["profile"] == "PROFILE_3"
    t = np.concatenate([x.times_s for x in chunks])
    assert np.median(np.diff(t)) == pytest.approx(1 / fs, rel=1e-3)
    # frames are the coherent mean of the 16 sweeps
    import h5py

    with h5py.File(path) as f:
        raw = f["sessions/session_0/group_0/entry_0/result/frame"][:3]
    mean = (raw["real"] + 1j * raw["imag"].astype(np.float64)).mean(axis=1)
    np.testing.assert_allclose(c.data[:3], mean, rtol=1e-5)
    vendor = path.with_name(f"{name}.vendor-output.h5")
    with pytest.raises(UnsupportedFormatError, match="an HDF5 file"):
        detect_format(vendor)  # the vendor's outputs are not captures
    assert np.isfinite(read_vendor_output(vendor)["breathing_rate_bpm"]).sum() > 50


def test_acconeer_a111():
    path = shared_path("radar", "acconeer-a111", "sleep-breathing.h5")
    reader, chunks = read_all(path, chunk_size=64)
    assert sum(len(c) for c in chunks) == 331
    c = chunks[0]
    assert c.data.shape == (64, 827) and c.fs_hz == 10.0 and c.meta["generation"] == "a111"
    r = np.array(c.meta["range_m"])
    assert r[0] == pytest.approx(0.4) and r[-1] == pytest.approx(0.4 + 826 * 0.000484)
    out = read_vendor_output(path.with_name("sleep-breathing.vendor-output.h5"))
    assert out["kind"] == "a111_sleep_breathing" and len(out["f_est_hz"]) == 330


def test_truncated_hdf5_is_a_clear_error(tmp_path):
    src = shared_path("radar", "acconeer-a121", "breathing-sitting.h5")
    cut = tmp_path / "cut.h5"
    cut.write_bytes(src.read_bytes()[:300_000])
    with pytest.raises(CaptureFormatError) as err:
        list(AcconeerH5Reader(cut))
    assert str(cut) in str(err.value)


# -- npz --------------------------------------------------------------------------------------

def test_npz_round_trip_both_modalities(tmp_path):
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(90, 33)) + 1j * rng.normal(size=(90, 33))).astype(np.complex64)
    t = np.arange(90) / 25.0
    p = tmp_path / "cir.npz"
    write_npz(p, x, t, modality="uwb_cir", fs_hz=25.0,
              fields={"first_path_index": np.full(90, 4.5), "label": np.array(["fall"] * 90)},
              tap_s=TAP_S, chip="DW3000", scenario={"room": "bathroom"})
    assert detect_format(p) is UwbNpzReader
    reader, chunks = read_all(p, chunk_size=40)
    assert [len(c) for c in chunks] == [40, 40, 10]
    np.testing.assert_array_equal(cat(chunks), x)
    np.testing.assert_array_equal(np.concatenate([c.times_s for c in chunks]), t)
    assert chunks[0].fs_hz == 25.0 and chunks[0].meta["scenario"] == {"room": "bathroom"}
    assert chunks[0].meta["format"] == "uwb_npz" and cat(chunks, "label")[0] == "fall"
    # radar frames, converted from the real A121 file
    if SHARED_DATA.exists():
        src = shared_path("radar", "acconeer-a121", "breathing-sitting.h5")
        q = tmp_path / "radar.npz"
        _, orig = read_all(src)
        frames_to_npz(q, orig)
        assert detect_format(q) is RadarNpzReader
        _, again = read_all(q)
        np.testing.assert_array_equal(cat(again), cat(orig))
        assert again[0].meta["range_m"] == orig[0].meta["range_m"]
    # another .npz is not claimed; a truncated one is a clear error
    other = tmp_path / "other.npz"
    np.savez(other, data=x)
    with pytest.raises(UnsupportedFormatError):
        detect_format(other)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(p.read_bytes()[:3000])
    with pytest.raises(CaptureFormatError):
        list(UwbNpzReader(cut))


# -- the real CLI on every real file -------------------------------------------------------

def test_cli_replays_every_real_uwb_and_radar_file():
    files = sorted(shared_path("uwb", "kolakowski-uwb-cirs-2018", "results").glob("*.log"))
    files += sorted(p for p in shared_path("radar").glob("*/*.h5")
                    if not p.name.endswith(".vendor-output.h5"))
    assert len(files) == 10
    res = subprocess.run([sys.executable, "-m", "agent.cli", "replay", *map(str, files),
                          "--jsonl", "--no-progress"], capture_output=True, text=True,
                         cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    events = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    by_source: dict[str, set[str]] = {}
    for e in events:
        by_source.setdefault(e["source"], set()).add(e["type"])
    assert set(by_source) == {p.name for p in files}, by_source
    for p in files:
        if p.suffix == ".log":
            assert "link_state" in by_source[p.name]
    assert "breathing_rate" in by_source["breathing-sitting.h5"]
    nlos = {e["source"]: e["value"] for e in events if e["type"] == "link_state"}
    assert nlos["40.log"] == "los" and nlos["4.log"] == "nlos"


def test_uwb_serial_source_reads_the_same_records(tmp_path):
    import io

    from sensing.uwb.sources import UwbSerialSource

    class FakePort:
        """A port serving bytes in small reads, then timing out (b"")."""

        def __init__(self, blob: bytes) -> None:
            self.blob, self.pos = blob, 0

        @property
        def in_waiting(self) -> int:
            return min(len(self.blob) - self.pos, 997)

        def read(self, n: int) -> bytes:
            out = self.blob[self.pos:self.pos + n]
            self.pos += len(out)
            return out

        def close(self) -> None:
            pass

    rng = np.random.default_rng(4)
    cir = rng.normal(0, 200, (12, 1016)) + 1j * rng.normal(0, 200, (12, 1016))
    buf = io.StringIO()
    write_decaranging(buf, cir, first_path_index=745.5, rxpacc=1000,
                      times_s=np.arange(12) * 0.05, distance_m=3.0)
    text = "boot garbage \x00\xff\nRX OK WInd(1), HLP(bad)\n" + buf.getvalue()
    port = FakePort(text.encode("latin-1"))
    src = UwbSerialSource("fake://", chunk_size=5, port=port)
    import time

    t_end = time.monotonic() + 20
    # stop once every byte was read: the end flushes the pending record and chunk
    got = list(src.chunks(stop=lambda: port.pos >= len(port.blob) or time.monotonic() > t_end))
    data = np.concatenate([c.data for c in got])
    assert len(data) == 12
    np.testing.assert_array_equal(data, np.rint(cir.real) + 1j * np.rint(cir.imag))
    assert all(c.modality == "uwb_cir" for c in got) and max(len(c) for c in got) <= 5
    assert src.rejects.total == 1  # the broken RX OK line before the first record
    np.testing.assert_allclose(np.concatenate([c.times_s for c in got]), np.arange(12) * 0.05,
                               atol=1e-9)


def test_decaranging_fuzz_only_counted_rejects(tmp_path):
    """Random byte edits and cuts of a small log: counted rejects with positions, never
    another exception; the same bytes read twice give the same result."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    rng = np.random.default_rng(5)
    cir = rng.normal(0, 100, (4, 24)) + 1j * rng.normal(0, 100, (4, 24))
    seed = tmp_path / "seed.log"
    write_decaranging(seed, cir, first_path_index=10.0, rxpacc=900,
                      times_s=np.arange(4) * 0.1, distance_m=2.0, labels=["los"] * 4)
    blob = seed.read_bytes()

    @settings(max_examples=40, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(cut=st.integers(0, len(blob)),
           edits=st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 255)),
                          max_size=12))
    def check(cut, edits):
        b = bytearray(blob)
        for pos, val in edits:
            b[pos] = val
        p = tmp_path / "fuzz.log"
        p.write_bytes(bytes(b[:cut]))
        runs = []
        for _ in range(2):
            reader = DecaRangingReader(p, chunk_size=3)
            try:
                frames = list(reader)
            except CaptureFormatError as exc:
                assert str(p) in str(exc)
                return
            for fr in frames:
                assert fr.data.dtype == np.complex64 and fr.data.ndim == 2
                assert np.isfinite(fr.times_s).all() and np.all(np.diff(fr.times_s) >= 0)
            assert all(str(r).startswith(f"{p}: line ") for r in reader.rejects.first)
            runs.append((sum(len(f) for f in frames), reader.rejects.as_dict()))
        assert runs[0] == runs[1]

    check()


# -- block-wise parsing: the same as the line-by-line state machine -----------------------

def _line_by_line(path, chunk_size):
    """The reference: :meth:`DecaRangingParser.records` + :meth:`RecordBatcher.add` over
    the file's lines (what the serial source does), as the reader did before it read in
    blocks."""
    from sensing.errors import RejectLog
    from sensing.uwb.formats.decaranging import DecaRangingParser, RecordBatcher, labels_beside

    rejects = RejectLog()
    parser = DecaRangingParser(str(path), rejects)
    parser._label = labels_beside(str(path))
    if parser._label:
        parser.meta["label"] = parser._label
    batcher = RecordBatcher(str(path), chunk_size, parser)
    out = []
    with open(path, encoding="latin-1", newline=None) as fh:
        for rec in parser.records(fh):
            out += batcher.add(rec)
    last = batcher.flush()
    return out + ([last] if last is not None else []), rejects


def _same_frames(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.data.dtype == y.data.dtype == np.complex64
        np.testing.assert_array_equal(x.data, y.data)
        np.testing.assert_array_equal(x.times_s, y.times_s)  # bit for bit
        assert x.fs_hz == y.fs_hz
        assert x.fields.keys() == y.fields.keys()
        for k in x.fields:
            assert x.fields[k].dtype == y.fields[k].dtype
            np.testing.assert_array_equal(x.fields[k], y.fields[k])
        assert x.meta == y.meta


def _mixed_log(tmp_path, newline):
    """A log of regular records (labels, ranging lines, > 17.2 s so the clock wraps) with
    irregular parts: an RX error record, a mid-file Mode line, a record without Rx time,
    a non-integer tap, an out-of-range tap, an accumulator cut by the next record."""
    rng = np.random.default_rng(21)
    n, taps = 60, 24
    cir = rng.normal(0, 300, (n, taps)) + 1j * rng.normal(0, 300, (n, taps))
    src = tmp_path / "src.log"
    write_decaranging(src, cir, first_path_index=rng.uniform(3, 20, n),
                      rxpacc=rng.integers(500, 1000, n), times_s=np.arange(n) * 0.4,
                      distance_m=np.where(np.arange(n) % 3, np.nan, 2.5),
                      labels=[("los", "nlos")[i % 2] for i in range(n)])
    lines = src.read_text().splitlines()
    acc = [i for i, s in enumerate(lines) if s.startswith("Accum Len")]
    lines[acc[40] + 7] = "12, 4x"                       # BAD_VALUE
    lines[acc[33] + 2] = "-40000, 1"                    # OUT_OF_RANGE
    del lines[acc[25] + 10: acc[25] + taps + 1]          # TRUNCATED (cut by the next one)
    lines[acc[18] - 3] = "21 12 Rx time = garbage"        # no clock: time from the rate
    lines.insert(acc[12] - 3, "Mode: 2, Chan 5, Code 9, PRF 64, Plength 1024")
    err = ["RX ERR PHR", f"Accum Len {taps}"] + ["1, 2"] * taps
    lines[acc[6] - 3: acc[6] - 3] = err
    text = newline.join(lines)
    path = tmp_path / f"mixed{len(newline)}.log"
    path.write_bytes(text.encode("latin-1"))  # no line end after the last line
    return path


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("block", [97, 4096, None])
def test_decaranging_block_parser_equals_line_by_line(tmp_path, monkeypatch, newline, block):
    import sensing.uwb.formats.decaranging as deca

    if block is not None:
        monkeypatch.setattr(deca, "BLOCK_BYTES", block)   # records across block ends
        monkeypatch.setattr(deca, "_LOOKAHEAD", 30)       # (every Accum Len here is < 30)
    path = _mixed_log(tmp_path, newline)
    for chunk_size in (1, 4, 1000):
        ref, ref_rej = _line_by_line(path, chunk_size)
        reader = DecaRangingReader(path, chunk_size=chunk_size)
        got = list(reader)
        _same_frames(got, ref)
        assert reader.rejects.as_dict() == ref_rej.as_dict() == {
            RejectReason.BAD_VALUE: 1, RejectReason.OUT_OF_RANGE: 1,
            RejectReason.TRUNCATED_RECORD: 1}
        assert [str(r) for r in reader.rejects.first] == [str(r) for r in ref_rej.first]
        assert sum(len(c) for c in got) == 57  # 60 records, 3 malformed
        assert got[-1].meta["rx_errors"] == 1 and got[-1].meta["channel"] == 5
        labels = np.concatenate([c.fields["label"] for c in got])
        assert set(labels) == {"los", "nlos"}


def test_decaranging_block_parser_on_real_logs_equals_line_by_line():
    folder = shared_path("uwb", "kolakowski-uwb-cirs-2018", "results")
    for name in ("6.log", "37.log"):
        ref, ref_rej = _line_by_line(folder / name, 50)
        reader = DecaRangingReader(folder / name, chunk_size=50)
        _same_frames(list(reader), ref)
        assert reader.rejects.total == ref_rej.total == 0
