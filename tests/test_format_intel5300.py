"""Intel 5300 ``.dat`` reader: every real file against csiread, CSIKit and MATLAB references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats import detect_format, open_capture
from sensing.formats.intel5300 import (
    SUBCARRIERS_20MHZ,
    Intel5300Reader,
    scaled_csi_frames,
    total_rss_dbm,
)
from tests.conftest import shared_path

FILES = [
    "csikit-intel5300/example.dat",
    "csikit-intel5300/log.all_csi.6.7.6.dat",
    "csiread/sample_0x1_ap.dat",
    "csiread/sample_0x5_64_3000.dat",
    "csikit-intel5300-labeled/heartrate/66bpm.dat",
    "csikit-intel5300-labeled/heartrate/71bpm.dat",
    "csikit-intel5300-labeled/heartrate/73bpm.dat",
    "csikit-intel5300-labeled/heartrate/75bpm.dat",
    "csikit-intel5300-labeled/heartrate/84bpm.dat",
    "csikit-intel5300-labeled/heartrate/88bpm.dat",
    "csikit-intel5300-labeled/heartrate/90bpm.dat",
    "csikit-intel5300-labeled/respiration/3breaths.dat",
    "csikit-intel5300-labeled/activity/walk_1597159688.dat",
    "csikit-intel5300-labeled/activity/brushteeth_1597159877.dat",
    "csikit-intel5300-labeled/activity/cook_1597161029.dat",
    "csikit-intel5300-labeled/activity/washingdishes_1597160711.dat",
    "csikit-intel5300-labeled/activity/getintobed_post_1597163564.dat",
    "csikit-intel5300-labeled/activity/sleeping_post_1597163585.dat",
    "csikit-intel5300-labeled/activity/walk_post_1597163546.dat",
]
FIELDS = ("timestamp_low", "bfee_count", "Nrx", "Ntx", "rssi_a", "rssi_b", "rssi_c", "noise",
          "agc", "rate", "perm")


def read_all(path, **kw):
    reader = Intel5300Reader(path, **kw)
    chunks = list(reader)
    fields = {k: np.concatenate([c.fields[k] for c in chunks]) for k in chunks[0].fields}
    return reader, chunks, fields


@pytest.mark.parametrize("rel", FILES)
def test_matches_reference_parses(rel):
    path = shared_path("csi", *rel.split("/"))
    ref = np.load(f"{path}.ref.npz")
    assert detect_format(path) is Intel5300Reader
    reader, chunks, f = read_all(path, pad_to=(3, 3))
    csi = np.concatenate([c.data for c in chunks])
    n = int(ref["csiread_n"])
    # csiread drops the truncated last record; so do we (counted as a reject)
    assert len(csi) == n
    for k in FIELDS:
        np.testing.assert_array_equal(f[k].astype(np.int64), ref[f"csiread_{k}"], err_msg=k)
    # raw CSI: CSIKit follows MATLAB read_bf_file (permute only valid perms) — exact match
    ck = ref["csikit_csi_head"]
    np.testing.assert_array_equal(csi[:5, :, : ck.shape[2], : ck.shape[3]], ck)
    # scaled CSI (get_scaled_csi): CSIKit agrees with MATLAB to 8e-6
    sc = np.concatenate([scaled_csi_frames(c) for c in chunks])
    np.testing.assert_allclose(sc[:5, :, : ck.shape[2], : ck.shape[3]], ref["csikit_scaled_head"],
                               atol=1e-5, rtol=0)
    if (f["Nrx"] == 3).all():  # csiread applies the permutation the same way when Nrx = 3
        np.testing.assert_array_equal(csi[:5, :, :, : ref["csiread_csi_head"].shape[3]],
                                      ref["csiread_csi_head"])
    valid = f["time_valid"]
    if valid.all():
        ts = ref["csiread_timestamp_low"].astype(np.int64)
        expect = np.cumsum(np.r_[0, np.diff(ts) % 2**32]) * 1e-6
        np.testing.assert_allclose(np.concatenate([c.times_s for c in chunks]), expect, atol=1e-9)
        # CSIKit also emits the truncated last record of walk_1597159688 (402 rows)
        np.testing.assert_allclose(np.concatenate([c.times_s for c in chunks]),
                                   ref["csikit_timestamps"][:n], atol=1e-6)


@pytest.mark.parametrize("name", ["example", "log.all_csi.6.7.6"])
def test_matches_matlab_read_bf_file(name):
    path = shared_path("csi", "csikit-intel5300", f"{name}.dat")
    mat = scipy.io.loadmat(shared_path("csi", "csikit-intel5300", f"{name}.matlab_ref.mat"))
    reader, chunks, f = read_all(path)
    rows = [(c.data[i], scaled_csi_frames(c)[i]) for c in chunks for i in range(len(c))]
    assert len(rows) == len(mat["csi"])
    worst_scaled = 0.0
    for (raw, scaled), m_raw, m_scaled in zip(rows, mat["csi"][:, 0], mat["csi_scaled"][:, 0],
                                              strict=True):
        m_raw = m_raw["csi"][0, 0]  # MATLAB (Ntx, Nrx, 30)
        np.testing.assert_array_equal(raw.transpose(2, 1, 0), m_raw)
        worst_scaled = max(worst_scaled, float(np.abs(scaled.transpose(2, 1, 0) - m_scaled).max()))
    assert worst_scaled < 1e-9


def test_layout_changes_close_chunks_and_pad_to_unifies():
    path = shared_path("csi", "csikit-intel5300", "log.all_csi.6.7.6.dat")
    _, chunks, f = read_all(path)
    for c in chunks:
        assert c.data.shape[1:] == (30, 3, int(c.fields["Ntx"][0]))
        assert (c.fields["Ntx"] == c.fields["Ntx"][0]).all()
        np.testing.assert_array_equal(c.subcarriers, SUBCARRIERS_20MHZ)
    assert set(f["Ntx"].tolist()) == {1, 2, 3}
    _, padded, _ = read_all(path, pad_to=(3, 3), chunk_size=7)
    assert all(c.data.shape[1:] == (30, 3, 3) for c in padded)
    assert [len(c) for c in padded] == [7, 7, 7, 7, 1]


def test_invalid_timestamp_low_falls_back():
    """log.all_csi.6.7.6 has timestamp_low == 4 on every record (SOURCES.md)."""
    path = shared_path("csi", "csikit-intel5300", "log.all_csi.6.7.6.dat")
    reader, chunks, f = read_all(path, pad_to=(3, 3))
    t = np.concatenate([c.times_s for c in chunks])
    assert (t == 0).all() and f["time_valid"].sum() == 1
    info = reader.info()
    assert info["invalid_timestamps"] == 28 and info["rate_hz"] is None
    _, chunks, _ = read_all(path, pad_to=(3, 3), fallback_rate_hz=100.0)
    t = np.concatenate([c.times_s for c in chunks])
    np.testing.assert_allclose(t, np.arange(29) * 0.01)


def test_truncated_last_record_is_a_counted_reject():
    path = shared_path("csi", "csikit-intel5300-labeled", "activity", "walk_1597159688.dat")
    reader, chunks, _ = read_all(path)
    assert sum(len(c) for c in chunks) == 401
    assert reader.rejects.counts == {"truncated_record": 1}
    rej = reader.rejects.first[0]
    # the record declares field_len 273 (275 bytes with the length field); 197 are present
    assert rej.where == f"byte {path.stat().st_size - 197}"
    assert "field_len 273" in rej.expected and "197 bytes" in rej.got


def _records(blob: bytes) -> list[tuple[int, int]]:
    out, pos = [], 0
    while pos + 3 <= len(blob):
        size = 2 + int.from_bytes(blob[pos:pos + 2], "big")
        out.append((pos, size))
        pos += size
    return out


def test_timestamp_wrap_and_bad_records(tmp_path):
    blob = bytearray(shared_path("csi", "csikit-intel5300", "example.dat").read_bytes())
    recs = [r for r in _records(bytes(blob)) if blob[r[0] + 2] == 0xBB]
    # make timestamp_low wrap between record 2 and 3: 2**32 - 100 µs, then +50 µs after 0
    for k, (pos, _) in enumerate(recs[:5]):
        ts = (2**32 - 300 + 100 * k) % 2**32 if k < 3 else 50 + 100 * (k - 3)
        blob[pos + 3: pos + 7] = ts.to_bytes(4, "little")
    blob[recs[6][0] + 3 + 8] = 0  # Nrx = 0 → counted reject, framing kept
    path = tmp_path / "wrap.dat"
    path.write_bytes(bytes(blob))
    reader, chunks, f = read_all(path)
    t = np.concatenate([c.times_s for c in chunks])
    np.testing.assert_allclose(t[:5], [0, 100e-6, 200e-6, 350e-6, 450e-6], atol=1e-12)
    assert len(t) == 25 and reader.rejects.counts == {"bad_bfee": 1}
    assert reader.rejects.first[0].where == f"byte {recs[6][0]}"
    assert "Nrx=0" in reader.rejects.first[0].got


def test_zero_length_field_is_a_format_error(tmp_path):
    blob = bytearray(shared_path("csi", "csikit-intel5300", "example.dat").read_bytes())
    pos, _ = _records(bytes(blob))[3]
    blob[pos: pos + 2] = b"\x00\x00"
    path = tmp_path / "broken.dat"
    path.write_bytes(bytes(blob))
    with pytest.raises(CaptureFormatError) as err:
        list(Intel5300Reader(path))
    assert err.value.where == f"byte {pos}" and str(path) in str(err.value)


def test_chunking_is_invisible_and_bounded():
    path = shared_path("csi", "csiread", "sample_0x5_64_3000.dat")
    _, big, _ = read_all(path, chunk_size=5000)
    _, small, _ = read_all(path, chunk_size=100)
    assert max(len(c) for c in small) == 100
    np.testing.assert_array_equal(np.concatenate([c.data for c in big]),
                                  np.concatenate([c.data for c in small]))


def test_info_and_total_rss():
    path = shared_path("csi", "csikit-intel5300", "example.dat")
    info = open_capture(path).info()
    assert info["format"] == "intel5300" and info["chip"] == "iwl5300"
    assert info["bandwidth_mhz"] == 20 and info["frames"] == 26
    assert abs(info["duration_s"] - 2.014226) < 1e-6
    # get_total_rss: 10*log10(sum dbinv(rssi)) - 44 - agc
    expect = 10 * np.log10(10 ** 3.0 + 10 ** 2.5) - 44 - 30
    assert total_rss_dbm(np.array([30]), np.array([25]), np.array([0]), np.array([30]))[0] \
        == pytest.approx(expect)


def test_not_intel_is_not_detected(tmp_path):
    p = tmp_path / "x.dat"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UnsupportedFormatError):
        detect_format(p)


def test_info_on_every_binary_csi_capture():
    """What `ambisense info` prints (``CaptureReader.info()``) for all Intel 5300, Nexmon and
    PicoScenes files of shared data: detected format, chip, bandwidth, frames."""
    root = shared_path("csi")
    files = sorted(p for pat in ("*/*.dat", "*/*/*.dat", "*/*.pcap", "*/*.csi")
                   for p in root.glob(pat))
    assert len(files) == 31
    by_format: dict[str, int] = {}
    for path in files:
        info = open_capture(path).info()
        by_format[info["format"]] = by_format.get(info["format"], 0) + 1
        assert info["frames"] > 0 and info["chip"] and info["bandwidth_mhz"] in (20, 40, 80)
    assert by_format == {"intel5300": 19, "nexmon_pcap": 8, "picoscenes": 4}
