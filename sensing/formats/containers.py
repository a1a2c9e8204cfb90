"""Say what a file is when no reader takes it: the container, from its magic bytes.

:func:`sensing.formats.detect_format` asks every reader first; only when none recognises
the content does it call :func:`describe`, so that the error names what was found — "a
RIFF/WAVE audio file", "an HDF5 file", "a pcap capture … with no Nexmon CSI packet", "a
numpy .npz archive of an unknown kind (arrays: …)" — instead of a byte dump. Nothing here
reads a capture: a container is recognised, never decoded.
"""

from __future__ import annotations

import struct
import zipfile
from collections import Counter

from sensing.formats.nexmon_pcap import LINKTYPES, NEXMON_PORT, PCAP_MAGIC, PCAPNG_MAGIC

#: pcap records looked at to describe a pcap capture (its first packets).
PCAP_SCAN_RECORDS = 100_000
#: Members named in a description of an archive.
LIST_MEMBERS = 8

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
#: Offsets where an HDF5 superblock may start (after a user block, e.g. MATLAB 7.3's 512).
HDF5_OFFSETS = (0, 512, 1024, 2048, 4096)

#: Simple magic → description (checked after the containers described in detail).
MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (decompress it first)"),
    (b"BZh", "a bzip2-compressed file (decompress it first)"),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"fLaC", "a FLAC audio file"),
    (b"OggS", "an Ogg media file"),
    (b"ID3", "an MP3 audio file"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"%PDF-", "a PDF document"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "an ELF executable"),
)

_LINK_NAMES = {1: "Ethernet", 113: "Linux cooked (SLL)", 101: "raw IPv4", 228: "raw IPv4",
               12: "raw IPv4"}


def describe(path: str, head: bytes) -> str | None:
    """What container ``head`` (the first bytes of ``path``) is, in a few words, or None
    when it is not one this module knows."""
    if head[:4] in PCAP_MAGIC:
        return _pcap(path, head)
    if head[:4] == PCAPNG_MAGIC:
        return ("a pcapng capture; the Nexmon CSI reader reads classic pcap (save it with "
                "tcpdump -w, or convert it: editcap -F pcap in.pcapng out.pcap)")
    if head[:4] == b"RIFF" and len(head) >= 12:
        return _riff(head)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip(path)
    if head.startswith(b"\x93NUMPY"):
        return _npy(head)
    hdf5_at = next((o for o in HDF5_OFFSETS if head[o:o + 8] == HDF5_MAGIC), None)
    if hdf5_at is not None:
        if head.startswith(b"MATLAB 7.3 MAT-file"):
            return "a MATLAB 7.3 MAT-file (HDF5)"
        return "an HDF5 file"
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        return "a MATLAB 5.0 MAT-file"
    for magic, what in MAGICS:
        if head.startswith(magic):
            return what
    return None


def _riff(head: bytes) -> str:
    form = head[8:12].decode("latin-1")
    if form == "WAVE":
        detail = ""
        # the "fmt " chunk usually comes first: format tag, channels, rate, …, bits
        if head[12:16] == b"fmt " and len(head) >= 36:
            tag, channels, rate = struct.unpack("<HHI", head[20:28])
            bits = struct.unpack("<H", head[34:36])[0]
            kind = {1: "PCM", 3: "float", 0xFFFE: "extensible"}.get(tag, f"format {tag}")
            detail = f" ({channels} channel{'s' if channels != 1 else ''}, {rate} Hz, " \
                     f"{bits}-bit {kind})"
        return f"a RIFF/WAVE audio file{detail}"
    if form == "AVI ":
        return "a RIFF/AVI video file"
    return f"a RIFF/{form.strip() or '?'} file"


def _zip(path: str) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
    except (OSError, zipfile.BadZipFile) as exc:
        return f"a zip archive that cannot be opened ({type(exc).__name__}: {exc})"
    if not names:
        return "an empty zip archive"
    if all(n.endswith(".npy") for n in names):
        return f"a numpy .npz archive of an unknown kind (arrays: {_listing(n[:-4] for n in names)})"
    return f"a zip archive of an unknown kind (members: {_listing(names)})"


def _listing(names) -> str:
    names = list(names)
    more = len(names) - LIST_MEMBERS
    return ", ".join(names[:LIST_MEMBERS]) + (f", … {more} more" if more > 0 else "")


def _npy(head: bytes) -> str:
    import io

    import numpy as np

    try:
        fh = io.BytesIO(head)
        version = np.lib.format.read_magic(fh)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)
        shape, _, dtype = read(fh)
    except (ValueError, OSError):
        return "a numpy .npy array"
    return f"a numpy .npy array ({dtype} {tuple(shape)})"


def _pcap(path: str, head: bytes) -> str:
    order, _ = PCAP_MAGIC[head[:4]]
    e = "<" if order == "little" else ">"
    link = int.from_bytes(head[20:24], order) & 0x0FFFFFFF if len(head) >= 24 else -1
    kind = LINKTYPES.get(link)
    link_name = _LINK_NAMES.get(link, f"link type {link}")
    if kind is None:
        return (f"a pcap capture of {link_name} packets (the Nexmon CSI reader reads Ethernet, "
                "Linux SLL or raw IPv4 captures)")
    l2 = {"ethernet": 14, "linux_sll": 16, "raw": 0}[kind]
    packets = udp = 0
    ports: Counter[int] = Counter()
    first_csi: tuple[int, int] | None = None
    with open(path, "rb") as fh:
        fh.seek(24)
        pos = 24
        while packets < PCAP_SCAN_RECORDS:
            rec = fh.read(16)
            if len(rec) < 16:
                break
            incl = struct.unpack(e + "I", rec[8:12])[0]
            pkt = fh.read(min(incl, l2 + 60 + 8 + 2))  # link, IPv4, UDP, magic
            packets += 1
            port = _udp_port(pkt, l2, kind)
            if port is not None:
                udp += 1
                ports[port[0]] += 1
                if port[0] == NEXMON_PORT and port[1] == b"\x11\x11" and first_csi is None:
                    first_csi = (packets, pos)
            pos += 16 + incl
            fh.seek(pos)
    scanned = f"first {packets}" if packets >= PCAP_SCAN_RECORDS else f"{packets}"
    what = f"a pcap capture ({link_name}, {packets} packet{'s' if packets != 1 else ''}"
    if udp:
        top = ", ".join(str(p) for p, _ in ports.most_common(3))
        what += f"; UDP to port{'s' if len(ports) > 1 else ''} {top}"
    what += ")"
    if first_csi is not None:
        return (f"{what} whose first Nexmon CSI packet is packet {first_csi[0]} (byte "
                f"{first_csi[1]}), beyond the bytes format detection reads; open it with "
                "format='nexmon_pcap'")
    return (f"{what} with no CSI packets among its {scanned} packets (Nexmon CSI: UDP to "
            f"port {NEXMON_PORT}, payload magic 0x1111)")


def _udp_port(pkt: bytes, l2: int, kind: str) -> tuple[int, bytes] | None:
    """(destination port, first 2 payload bytes) of an IPv4/UDP packet, else None."""
    if kind == "ethernet" and pkt[12:14] != b"\x08\x00":
        return None
    if kind == "linux_sll" and pkt[14:16] != b"\x08\x00":
        return None
    if len(pkt) < l2 + 28 or pkt[l2] >> 4 != 4 or pkt[l2 + 9] != 17:
        return None
    udp = l2 + (pkt[l2] & 0x0F) * 4
    if len(pkt) < udp + 8:
        return None
    return int.from_bytes(pkt[udp + 2: udp + 4], "big"), pkt[udp + 8: udp + 10]
