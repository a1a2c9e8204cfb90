"""Intel 5300 ``.dat`` reader: every real file against csiread, CSIKit and MATLAB references."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import scipy.io

from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats import detect_format, open_capture
from sensing.formats.intel5300 import (
    SUBCARRIERS_20MHZ,
    Intel5300Reader,
    bfee_csi_len,
    gather_rows,
    matlab_rx_order,
    record_offsets,
    scaled_csi_frames,
    total_rss_dbm,
    unpack_bfee_csi,
    unpack_bfee_rows,
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


# -- fast paths against straightforward references ------------------------------------------
def _walk_reference(buf, *, len_at, len_bytes, big_endian, overhead, min_len, max_len):
    """One record at a time: (offsets, sizes, end) or the offset of a bad length field."""
    code = (">" if big_endian else "<") + {2: "H", 4: "I"}[len_bytes]
    pos, offs = 0, []
    while pos + len_at + len_bytes <= len(buf):
        size = overhead + struct.unpack_from(code, buf, pos + len_at)[0]
        if not max(overhead + min_len, 1) <= size <= overhead + max_len:
            return pos
        if pos + size > len(buf):
            break
        offs.append(pos)
        pos += size
    return offs, np.diff(offs + [pos]).tolist(), pos


@pytest.mark.parametrize("seed", range(6))
def test_record_walk_speculation_equals_one_by_one(seed):
    """Regular runs (one size, two alternating sizes), rare and frequent odd sizes,
    a cut last record and corrupted length fields, for every length-field layout."""
    rng = np.random.default_rng(seed)
    for _ in range(60):
        len_bytes = int(rng.choice([2, 4]))
        big = bool(rng.integers(2))
        len_at = int(rng.choice([0, 3, 8]))
        overhead = len_at + len_bytes + int(rng.choice([0, 4]))
        pool = rng.integers(overhead + 1, overhead + 80, size=int(rng.integers(1, 4)))
        n = int(rng.integers(0, 600))
        mode = rng.integers(3)
        if mode == 0:
            sizes = pool[np.arange(n) % len(pool)]
        elif mode == 1:
            sizes = np.where(rng.random(n) < 0.9, pool[0], pool[-1])
        else:
            sizes = rng.choice(pool, n)
        code = (">" if big else "<") + {2: "H", 4: "I"}[len_bytes]
        buf = bytearray()
        for s in sizes.tolist():
            rec = bytearray(rng.integers(0, 256, s, dtype=np.uint8).tobytes())
            rec[len_at: len_at + len_bytes] = struct.pack(code, s - overhead)
            buf += rec
        if len(buf) and rng.random() < 0.3:
            buf = buf[: int(rng.integers(0, len(buf)))]
        if len(buf) > 8 and rng.random() < 0.2:
            buf[int(rng.integers(len(buf)))] ^= 0xFF
        kw = dict(len_at=len_at, len_bytes=len_bytes, big_endian=big, overhead=overhead,
                  min_len=int(rng.choice([0, 1, 5])), max_len=int(rng.choice([40, 80, 0xFFFF])))
        ref = _walk_reference(bytes(buf), **kw)
        if isinstance(ref, int):
            with pytest.raises(CaptureFormatError) as err:
                record_offsets(bytes(buf), path="x", base=0, **kw)
            assert err.value.where == f"byte {ref}"
            continue
        offs, sizes_out, end = record_offsets(bytes(buf), path="x", base=0, **kw)
        assert (offs.tolist(), sizes_out.tolist(), end) == ref


def test_unpack_rows_equals_unpack_per_antenna_selection():
    rng = np.random.default_rng(0)
    for n_rx, n_tx in ((1, 1), (2, 2), (3, 1), (3, 3), (2, 3)):
        width = int(bfee_csi_len(n_rx, n_tx))
        payload = rng.integers(0, 256, (200, width + 5), dtype=np.uint8)
        sel = rng.integers(0, 64, 200).astype(np.uint8)
        sel[:50] = 0b100100  # valid permutations for 3 rx
        sel[50:80] = 0b011000
        got = unpack_bfee_rows(payload, n_rx, n_tx, sel, matlab_rx_order)
        for s in np.unique(sel).tolist():
            rows = sel == s
            expect = unpack_bfee_csi(payload[rows], n_rx, n_tx, matlab_rx_order(s, n_rx))
            np.testing.assert_array_equal(got[rows], expect)


def test_unpack_bits_equals_bitwise_reference():
    rng = np.random.default_rng(1)
    n_rx, n_tx = 3, 2
    payload = rng.integers(0, 256, (20, int(bfee_csi_len(n_rx, n_tx))), dtype=np.uint8)
    got = unpack_bfee_csi(payload, n_rx, n_tx)
    for r in range(len(payload)):
        bits = int.from_bytes(payload[r].tobytes(), "little")
        for g in range(30):
            for k in range(n_rx * n_tx):
                at = g * (16 * n_rx * n_tx + 3) + 3 + 16 * k
                re = ((bits >> at) & 0xFF) - (((bits >> at) & 0x80) << 1)
                im = ((bits >> (at + 8)) & 0xFF) - (((bits >> (at + 8)) & 0x80) << 1)
                assert got[r, g, k // n_tx, k % n_tx] == complex(re, im)


def test_total_rss_table_equals_powers():
    rng = np.random.default_rng(2)
    a, b, c, agc = (rng.integers(0, 256, 500).astype(np.uint8) for _ in range(4))
    a[:20] = 0
    fast = total_rss_dbm(a, b, c, agc)
    slow = total_rss_dbm(a.astype(np.int64), b.astype(np.int64), c.astype(np.int64), agc)
    np.testing.assert_array_equal(fast, slow)


def test_gather_rows_equals_sliding_windows():
    arr = np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8)
    starts = np.array([0, 7, 7, 100, 4000 - 9, 5000 - 33])
    for width in (1, 8, 33):
        np.testing.assert_array_equal(
            gather_rows(arr, starts, width),
            np.lib.stride_tricks.sliding_window_view(arr, width)[starts])
    assert gather_rows(arr, starts[:0], 8).shape == (0, 8)


def test_unpack_with_cached_positions_equals_per_call_reorder():
    """The value positions cached per antenna layout and order (tuple or array order) give
    the stream-order unpacking with the rx slots permuted."""
    rng = np.random.default_rng(2)
    buf = rng.integers(0, 256, 50_000, dtype=np.uint8)
    for n_rx, n_tx in ((1, 1), (2, 1), (2, 2), (3, 1), (3, 3), (1, 3)):
        width = int(bfee_csi_len(n_rx, n_tx))
        starts = rng.integers(0, len(buf) - width, 40)
        payload = gather_rows(buf, starts, width)
        plain = unpack_bfee_csi(payload, n_rx, n_tx)
        assert plain.dtype == np.complex64 and plain.flags["C_CONTIGUOUS"]
        order = tuple(range(n_rx))[::-1]
        for given in (order, np.array(order)):
            for _ in range(2):  # second call: from the cache
                got = unpack_bfee_csi(payload, n_rx, n_tx, given)
                np.testing.assert_array_equal(got, plain[:, :, list(order)])
