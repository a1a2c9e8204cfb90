"""A file in a known container with no supported content: the error says what was found
and what is supported."""

from __future__ import annotations

import struct
import wave
import zipfile

import numpy as np
import pytest
import scipy.io

from sensing.errors import UnsupportedFormatError
from sensing.formats import FORMATS, detect_format, open_capture
from sensing.formats.nexmon_pcap import NexmonPcapWriter
from tests.conftest import shared_path

SUPPORTED = "; no reader for it in this build; supported formats: " + ", ".join(FORMATS.names())


def _message(path) -> str:
    with pytest.raises(UnsupportedFormatError) as err:
        detect_format(path)
    with pytest.raises(UnsupportedFormatError):  # the same through open_capture
        open_capture(path)
    return str(err.value)


def _udp_frame(dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                     bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    return b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + ip + udp


def _pcap(path, frames) -> None:
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i, d in enumerate(frames):
            fh.write(struct.pack("<IIII", 1_700_000_000, i, len(d), len(d)) + d)


def test_pcap_without_csi_packets(tmp_path):
    path = tmp_path / "dns.pcap"
    _pcap(path, [_udp_frame(53, b"\x12\x34" + bytes(30)) for _ in range(5)]
          + [_udp_frame(5500, b"\x22\x22" + bytes(40))])  # port 5500, not the magic
    msg = _message(path)
    assert msg == (f"{path}: a pcap capture (Ethernet, 6 packets; UDP to ports 53, 5500) with "
                   "no CSI packets among its 6 packets (Nexmon CSI: UDP to port 5500, payload "
                   f"magic 0x1111){SUPPORTED}")


def test_pcap_whose_csi_starts_beyond_the_sniffed_bytes(tmp_path):
    """Other traffic fills the bytes detection reads: the error says where the CSI is and
    how to open it — and it opens with format='nexmon_pcap'."""
    csi_file = tmp_path / "csi.pcap"
    csi = np.ones((3, 64, 1, 1), np.complex64)
    with open(csi_file, "wb") as fh:
        NexmonPcapWriter(fh).write(csi, np.arange(3) * 0.01, np.arange(3), np.full(3, -50))
    csi_records = csi_file.read_bytes()[24:]
    path = tmp_path / "late.pcap"
    filler = [_udp_frame(53, bytes(200)) for _ in range(40)]  # 40 × 258 B > 8192
    _pcap(path, filler)
    path.write_bytes(path.read_bytes() + csi_records)
    msg = _message(path)
    assert "whose first Nexmon CSI packet is packet 41 (byte " in msg
    assert "open it with format='nexmon_pcap'" in msg and msg.endswith(SUPPORTED)
    frames = list(open_capture(path, format="nexmon_pcap").chunks())
    assert sum(len(f) for f in frames) == 3


def test_pcapng(tmp_path):
    path = tmp_path / "x.pcapng"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\x00" * 60)
    assert _message(path) == (f"{path}: a pcapng capture; the Nexmon CSI reader reads classic "
                              "pcap (save it with tcpdump -w, or convert it: editcap -F pcap "
                              f"in.pcapng out.pcap){SUPPORTED}")


def test_wav(tmp_path):
    """PCM and float WAVs are captures (the acoustic reader); a codec no reader decodes
    (A-law, format tag 6) is described."""
    pcm = tmp_path / "pcm.wav"
    with wave.open(str(pcm), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(4 * 1600))
    assert detect_format(pcm).name == "wav"
    path = tmp_path / "alaw.wav"
    fmt = struct.pack("<HHIIHH", 6, 2, 16000, 32000, 2, 8)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", 4)
            + bytes(4))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    assert _message(path) == (f"{path}: a RIFF/WAVE audio file (2 channels, 16000 Hz, 8-bit "
                              f"format 6){SUPPORTED}")


def test_real_wav_and_hdf5_files():
    wav = next(shared_path("acoustic", "rrujo-breath-sounds").glob("*.wav"))
    assert detect_format(wav).name == "wav"
    assert detect_format(shared_path("radar", "acconeer-a121", "breathing-sitting.h5")
                         ).name == "acconeer_h5"
    # the vendor algorithm's output beside it is an HDF5 file, not a capture
    h5 = shared_path("radar", "acconeer-a121", "breathing-sitting.vendor-output.h5")
    assert _message(h5) == f"{h5}: an HDF5 file{SUPPORTED}"


def test_hdf5_and_matlab(tmp_path):
    h5 = tmp_path / "x.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(600))
    assert _message(h5) == f"{h5}: an HDF5 file{SUPPORTED}"
    v73 = tmp_path / "v73.mat"  # MATLAB 7.3: a 512-byte user block, then HDF5
    v73.write_bytes(b"MATLAB 7.3 MAT-file".ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(600))
    assert _message(v73) == f"{v73}: a MATLAB 7.3 MAT-file (HDF5){SUPPORTED}"
    mat = tmp_path / "x.mat"
    scipy.io.savemat(mat, {"csi": np.zeros((3, 3))})
    assert _message(mat) == f"{mat}: a MATLAB 5.0 MAT-file{SUPPORTED}"


def test_zip_and_npz_of_an_unknown_kind(tmp_path):
    npz = tmp_path / "x.npz"
    np.savez(npz, csi=np.zeros((2, 64)), times=np.zeros(2))
    assert _message(npz) == (f"{npz}: a numpy .npz archive of an unknown kind (arrays: csi, "
                             f"times){SUPPORTED}")
    big = tmp_path / "big.npz"
    np.savez_compressed(big, **{f"a{i}": np.zeros(1) for i in range(11)})
    assert "(arrays: a0, a1, a2, a3, a4, a5, a6, a7, … 3 more)" in _message(big)
    z = tmp_path / "x.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("data/values.csv", "1,2")
    assert _message(z) == (f"{z}: a zip archive of an unknown kind (members: readme.txt, "
                           f"data/values.csv){SUPPORTED}")
    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((4, 2), np.int8))
    assert _message(npy) == f"{npy}: a numpy .npy array (int8 (4, 2)){SUPPORTED}"


def test_unknown_bytes_keep_the_generic_message(tmp_path):
    path = tmp_path / "x.bin"
    blob = b"\x01\x02\x03 not any container"
    path.write_bytes(blob)
    assert _message(path) == (f"{path}: not a recognised capture; first bytes {blob[:16]!r}; "
                              "supported formats: " + ", ".join(FORMATS.names()))
