"""Nexmon CSI pcap reader: every real capture against csiread and MATLAB csireader.m."""

from __future__ import annotations

import struct
from datetime import timezone

import numpy as np
import pytest
import scipy.io

from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats import detect_format
from sensing.formats.nexmon_pcap import NexmonPcapReader, chanspec_info, unpack_float
from tests.conftest import assert_same_chunks, shared_path

FILES = {
    "csikit-nexmon/example_4358.pcap": ("bcm4358", 80, 4),
    "csikit-nexmon/example_4366c0.pcap": ("bcm4366c0", 80, 293),
    "csikit-nexmon/example_43455c0.pcap": ("bcm43455c0", 80, 566),
    "csikit-nexmon/example_4339.pcap": ("bcm4339", 80, 2850),
    "csikit-pi4-nexmon/40mhz_1600085286.pcap": ("bcm43455c0", 40, 81),
    "csikit-pi4-nexmon/walk_1597159475.pcap": ("bcm43455c0", 80, 343),
    "nexmon_csi/output-40.pcap": ("bcm43455c0", 40, 4000),
    "nexmon_csi/output-rssi.pcap": ("bcm43455c0", 80, 383),
}
MATLAB = ["example_4358", "example_4366c0", "example_43455c0"]


def read_all(path, **kw):
    """One row per UDP packet (``assemble=False``), as csiread and MATLAB read them."""
    kw.setdefault("assemble", False)
    reader = NexmonPcapReader(path, **kw)
    chunks = list(reader)
    fields = {k: np.concatenate([c.fields[k] for c in chunks]) for k in chunks[0].fields}
    csi = np.concatenate([c.data[:, :, 0, 0] for c in chunks])
    return reader, chunks, fields, csi


def fft_order(csi: np.ndarray) -> np.ndarray:
    """Ascending subcarrier order back to the firmware's FFT order (as csiread/MATLAB)."""
    return np.fft.ifftshift(csi, axes=1)


@pytest.mark.parametrize("rel", sorted(FILES))
def test_matches_csiread(rel):
    path = shared_path("csi", *rel.split("/"))
    chip, bw, n = FILES[rel]
    ref = np.load(f"{path}.ref.npz")
    assert detect_format(path) is NexmonPcapReader
    reader, chunks, f, csi = read_all(path)
    assert len(csi) == n == int(ref["csiread_n"]) and reader.rejects.total == 0
    assert csi.shape[1] == bw * 16 // 5
    np.testing.assert_array_equal(chunks[0].subcarriers, np.arange(-csi.shape[1] // 2,
                                                                   csi.shape[1] // 2))
    for k, ours in (("seq", "seq"), ("core", "core"), ("spatial", "spatial"),
                    ("chan_spec", "chanspec"), ("chip_version", "chip_version")):
        np.testing.assert_array_equal(f[ours].astype(np.int64), ref[f"csiread_{k}"], err_msg=k)
    if "csiread_rssi" in ref:  # rssi+fc header variant
        np.testing.assert_array_equal(f["rssi"], ref["csiread_rssi"])
        np.testing.assert_array_equal(f["fc"], ref["csiread_fc"])
    else:
        assert np.isnan(f["rssi"]).all() and (f["fc"] == -1).all()
    head = ref["csiread_csi_head"]
    np.testing.assert_array_equal(fft_order(csi[: len(head)]), head)
    ts = ref["csiread_ts"]
    np.testing.assert_allclose(np.concatenate([c.times_s for c in chunks]), ts - ts[0], atol=1e-6)
    assert abs(chunks[0].t0.timestamp() - ts[0]) < 1e-5 and chunks[0].t0.tzinfo == timezone.utc
    info = reader.info()
    assert info["chip"] == chip and info["bandwidth_mhz"] == bw and info["frames"] == n


@pytest.mark.parametrize("name", MATLAB)
def test_matches_matlab_csireader(name):
    """csireader.m skips packets with 4 trailing bytes (zero rows at the end of csi_buff);
    every packet it does decode equals ours exactly (int16 and both float formats)."""
    path = shared_path("csi", "csikit-nexmon", f"{name}.pcap")
    m = scipy.io.loadmat(shared_path("csi", "csikit-nexmon", f"{name}.matlab_ref.mat"))["csi_buff"]
    _, _, f, csi = read_all(path)
    decoded = np.abs(m).sum(axis=1) > 0
    normal = f["extra_bytes"] == 0
    assert decoded.sum() == normal.sum()
    np.testing.assert_array_equal(fft_order(csi[normal]), m[decoded])


def test_extra_trailing_bytes_are_kept_and_counted():
    """18 of 566 (example_43455c0) and 407 of 4000 (output-40) frames carry 4 zero bytes
    after the UDP datagram; their CSI is still at offset 18 (csiread agrees on 566/4000)."""
    _, _, f, _ = read_all(shared_path("csi", "csikit-nexmon", "example_43455c0.pcap"))
    assert (f["extra_bytes"] > 0).sum() == 18 and set(f["extra_bytes"].tolist()) == {0, 4}
    _, _, f, csi = read_all(shared_path("csi", "nexmon_csi", "output-40.pcap"))
    extra = f["extra_bytes"] > 0
    assert extra.sum() == 407
    # the CSI of those packets looks like its neighbours' (same mean magnitude within 2x)
    mag = np.abs(csi).mean(axis=1)
    assert 0.5 < mag[extra].mean() / mag[~extra].mean() < 2.0


def test_one_row_per_udp_packet_core_and_stream_in_fields():
    """bcm4339 sends 3 packets per Wi-Fi frame (spatial streams 0, 1, 2; same seq)."""
    _, chunks, f, csi = read_all(shared_path("csi", "csikit-nexmon", "example_4339.pcap"))
    np.testing.assert_array_equal(f["spatial"], np.tile([0, 1, 2], 950))
    seq = f["seq"].reshape(950, 3)
    assert (seq == seq[:, :1]).all()
    # 4358: 2 cores x 2 streams for one frame
    _, _, f4358, _ = read_all(shared_path("csi", "csikit-nexmon", "example_4358.pcap"))
    assert sorted(zip(f4358["core"].tolist(), f4358["spatial"].tolist(), strict=True)) == \
        [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_chanspec_info():
    assert chanspec_info(0xE02A) == {"channel": 42, "bandwidth_mhz": 80, "band_ghz": 5.0}
    assert chanspec_info(0xD826) == {"channel": 38, "bandwidth_mhz": 40, "band_ghz": 5.0}
    assert chanspec_info(0x1006)["bandwidth_mhz"] == 20


def test_unpack_float_sign_and_zero():
    # nman=12, nexp=6: real mantissa bits 18..28, imag 6..16, signs 29 and 17, exponent 0..5
    word = (5 << 18) | (3 << 6) | (1 << 29) | 2  # real -5, imag +3, exponent 2
    out = unpack_float(np.array([[word, 0]], np.uint32), 12, 6)
    # autoscale: largest magnitude → 10 bits; msb(5 | 3) = 2 → shift = 10 - (2 + 2) = 6
    assert out[0, 0] == complex(-5 * 2 ** (2 + 6), 3 * 2 ** (2 + 6))
    assert out[0, 1] == 0


# -- synthetic variants built from real packets ---------------------------------------
def packets(path):
    blob = path.read_bytes()
    pos, out = 24, []
    while pos + 16 <= len(blob):
        sec, usec, incl, _ = struct.unpack_from("<IIII", blob, pos)
        out.append((sec, usec, blob[pos + 16: pos + 16 + incl]))
        pos += 16 + incl
    return out


def write_pcap(path, pkts, *, endian="<", nanos=False, link=1):
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    with open(path, "wb") as fh:
        fh.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, link))
        for sec, frac, data in pkts:
            fh.write(struct.pack(endian + "IIII", sec, frac, len(data), len(data)))
            fh.write(data)


@pytest.mark.parametrize("variant", ["big_endian", "nanoseconds", "linux_sll", "raw_ip"])
def test_pcap_variants_decode_identically(tmp_path, variant):
    src = shared_path("csi", "csikit-pi4-nexmon", "40mhz_1600085286.pcap")
    pk = packets(src)
    _, base, _, csi0 = read_all(src)
    out = tmp_path / f"{variant}.pcap"
    if variant == "big_endian":
        write_pcap(out, pk, endian=">")
    elif variant == "nanoseconds":
        write_pcap(out, [(s, u * 1000, d) for s, u, d in pk], nanos=True)
    elif variant == "linux_sll":
        sll = b"\x00\x00\x00\x01\x00\x06" + b"\x00" * 8 + b"\x08\x00"
        write_pcap(out, [(s, u, sll + d[14:]) for s, u, d in pk], link=113)
    else:
        write_pcap(out, [(s, u, d[14:]) for s, u, d in pk], link=101)
    assert detect_format(out) is NexmonPcapReader
    _, chunks, _, csi = read_all(out)
    np.testing.assert_array_equal(csi, csi0)
    np.testing.assert_allclose(np.concatenate([c.times_s for c in chunks]),
                               np.concatenate([c.times_s for c in base]), atol=1e-9)


def test_other_traffic_truncation_and_bad_payloads(tmp_path):
    src = shared_path("csi", "csikit-pi4-nexmon", "40mhz_1600085286.pcap")
    pk = packets(src)
    other = bytearray(pk[1][2])
    other[36:38] = (5501).to_bytes(2, "big")  # UDP dst port 5501: not CSI
    bad = bytearray(pk[2][2])
    bad[42:44] = b"\x22\x22"  # broken magic
    short = bytearray(pk[3][2])
    short[38:40] = (8 + 100).to_bytes(2, "big")  # UDP length too small for 40 MHz CSI
    recs = [pk[0], (pk[1][0], pk[1][1], bytes(other)), (pk[2][0], pk[2][1], bytes(bad)),
            (pk[3][0], pk[3][1], bytes(short))] + pk[4:]
    out = tmp_path / "mixed.pcap"
    write_pcap(out, recs)
    blob = out.read_bytes()
    out.write_bytes(blob[:-100])  # truncated last record
    reader, _, f, _ = read_all(out)
    assert len(f["seq"]) == 81 - 4
    assert reader.other_packets == 1
    assert reader.rejects.counts == {"bad_magic": 1, "short_csi": 1, "truncated_record": 1}
    where = {r.reason: r.where for r in reader.rejects.first}
    assert where["bad_magic"] == f"byte {24 + 2 * (16 + len(pk[0][2]))}"
    assert "530 bytes" in next(r.expected for r in reader.rejects.first if r.reason == "short_csi")


def test_pcapng_and_garbage_are_rejected(tmp_path):
    ng = tmp_path / "x.pcap"
    ng.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\x00" * 60)
    with pytest.raises(UnsupportedFormatError):
        detect_format(ng)
    with pytest.raises(UnsupportedFormatError, match="pcapng"):
        list(NexmonPcapReader(ng))
    broken = tmp_path / "y.pcap"
    broken.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
                       + struct.pack("<IIII", 0, 0, 1 << 30, 1 << 30) + b"\x00" * 64)
    with pytest.raises(CaptureFormatError) as err:
        list(NexmonPcapReader(broken))
    assert err.value.where == "byte 24"


def test_select_one_core_and_stream():
    path = shared_path("csi", "csikit-nexmon", "example_4358.pcap")
    _, _, f_all, csi_all = read_all(path)
    reader, chunks, f, csi = read_all(path, core=1, spatial=0)
    assert len(csi) == 1 and f["core"][0] == 1 and f["spatial"][0] == 0
    assert reader.info()["other_streams"] == 3
    k = np.flatnonzero((f_all["core"] == 1) & (f_all["spatial"] == 0))[0]
    np.testing.assert_array_equal(csi[0], csi_all[k])


def test_20mhz_packets(tmp_path):
    """No 20 MHz capture is in shared data: shrink real 40 MHz packets to 20 MHz (chanspec
    bandwidth field 2, 64 subcarriers) and check the layout and values."""
    src = shared_path("csi", "csikit-pi4-nexmon", "40mhz_1600085286.pcap")
    pk = packets(src)
    out = []
    for sec, usec, d in pk[:10]:
        b = bytearray(d[: 42 + 18 + 4 * 64])
        cs = int.from_bytes(b[42 + 14: 42 + 16], "little")
        b[42 + 14: 42 + 16] = ((cs & ~0x3800) | (2 << 11)).to_bytes(2, "little")
        b[16:18] = (len(b) - 14).to_bytes(2, "big")  # IPv4 total length
        b[38:40] = (len(b) - 34).to_bytes(2, "big")  # UDP length
        out.append((sec, usec, bytes(b)))
    path = tmp_path / "20mhz.pcap"
    write_pcap(path, out)
    reader, chunks, f, csi = read_all(path)
    assert csi.shape == (10, 64) and reader.info()["bandwidth_mhz"] == 20
    np.testing.assert_array_equal(chunks[0].subcarriers, np.arange(-32, 32))
    raw = np.frombuffer(pk[0][2][42 + 18: 42 + 18 + 256], "<i2").astype(np.float32)
    np.testing.assert_array_equal(fft_order(csi[:1])[0], raw[0::2] + 1j * raw[1::2])


# -- the fast path (one structured row per record) against the general path -------------
def _all_chunks(path, **kw):
    kw.setdefault("assemble", False)
    return list(NexmonPcapReader(path, **kw).chunks())


def _general_only(monkeypatch):
    monkeypatch.setattr(NexmonPcapReader, "_decode_fast", lambda self, *a, **k: None)


@pytest.mark.parametrize("rel", sorted(FILES))
def test_fast_path_equals_general_path(rel, monkeypatch):
    path = shared_path("csi", *rel.split("/"))
    fast = _all_chunks(path, chunk_size=100)
    _general_only(monkeypatch)
    assert_same_chunks(fast, _all_chunks(path, chunk_size=100))


def _irregular_captures(tmp_path):
    """Real packets with Ethernet trailers of several sizes, 80 MHz packets in a 40 MHz
    capture, other traffic, a broken magic and an IPv4 header with options."""
    pk40 = packets(shared_path("csi", "nexmon_csi", "output-40.pcap"))[:600]
    pk80 = packets(shared_path("csi", "csikit-nexmon", "example_4339.pcap"))[:50]
    rng = np.random.default_rng(3)
    out = {}
    trailers = [(s, u, d + bytes(int(rng.choice([0, 0, 0, 4, 8, 2])))) for s, u, d in pk40]
    out["trailers"] = trailers
    out["sizes_mixed"] = [trailers[i] if i % 9 else pk80[i % 50] for i in range(len(trailers))]
    other = bytearray(pk40[5][2])
    other[36:38] = (5501).to_bytes(2, "big")
    bad = bytearray(pk40[6][2])
    bad[42:44] = b"\x22\x22"
    out["other_and_bad"] = pk40[:5] + [(0, 0, bytes(other)), (0, 0, bytes(bad))] + pk40[7:]
    opt = bytearray(pk40[8][2])  # IHL 6: one 4-byte IPv4 option
    opt = opt[:14] + bytes([0x46]) + opt[15:34] + b"\x01\x01\x01\x01" + opt[34:]
    opt[16:18] = (int.from_bytes(opt[16:18], "big") + 4).to_bytes(2, "big")
    out["ip_options"] = pk40[:8] + [(0, 0, bytes(opt))] + pk40[9:]
    return out


def test_fast_path_equals_general_path_on_irregular_captures(tmp_path, monkeypatch):
    cases = _irregular_captures(tmp_path)
    fast = {}
    for name, pk in cases.items():
        write_pcap(tmp_path / f"{name}.pcap", pk)
        fast[name] = _all_chunks(tmp_path / f"{name}.pcap", chunk_size=64)
    _general_only(monkeypatch)
    for name in cases:
        assert_same_chunks(fast[name], _all_chunks(tmp_path / f"{name}.pcap", chunk_size=64))
    assert sum(len(c) for c in fast["sizes_mixed"]) == 600
    assert sum(len(c) for c in fast["other_and_bad"]) == 598
    assert sum(len(c) for c in fast["ip_options"]) == 600
