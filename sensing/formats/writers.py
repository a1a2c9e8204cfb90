"""Writers of the binary CSI formats: Intel 5300 ``.dat`` and Nexmon CSI pcap.

They write exactly what the readers of :mod:`sensing.formats.intel5300` and
:mod:`sensing.formats.nexmon_pcap` (and csiread, CSIKit, MATLAB) read, so that simulated
captures (``ambisense simulate csi-breathing --file-format intel5300``) go through the same
parsing code as real ones. The ESP32 text format has its own writer,
:func:`sensing.formats.esp32_csi.format_csi_line`.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np

from sensing.formats.intel5300 import (
    BFEE_CODE,
    N_GROUPS,
    RATE_HT,
    bfee_bit_positions,
    bfee_csi_len,
)
from sensing.formats.nexmon_pcap import CHIPS, NEXMON_PORT

#: ``antenna_sel`` of the identity permutation (rx chain q → slot q), 2 bits per chain.
IDENTITY_ANTENNA_SEL = 0 | (1 << 2) | (2 << 4)
#: chip name → chip version field.
CHIP_CODES = {name: code for code, name in CHIPS.items()}


def _int8_pairs(csi: np.ndarray) -> np.ndarray:
    """Interleaved (real, imag) int8 of integer-valued complex CSI; raises if out of range."""
    pairs = np.stack([np.rint(csi.real), np.rint(csi.imag)], axis=-1)
    if pairs.size and (pairs.min() < -128 or pairs.max() > 127):
        raise ValueError("Intel 5300 CSI values must fit int8 (-128..127)")
    return pairs.astype(np.int8)


def pack_bfee_csi(csi: np.ndarray) -> np.ndarray:
    """Pack raw CSI into bfee bit streams (the inverse of ``unpack_bfee_csi``).

    Parameters
    ----------
    csi : numpy.ndarray
        Complex ``(n, 30, n_rx, n_tx)`` with integer real/imag parts in -128..127.

    Returns
    -------
    numpy.ndarray
        uint8 ``(n, bfee_csi_len(n_rx, n_tx))``: per group a 3-bit gap, then ``n_rx·n_tx``
        (real, imag) int8 pairs, least significant bit first, not byte aligned.
    """
    n, groups, n_rx, n_tx = csi.shape
    if groups != N_GROUPS:
        raise ValueError(f"Intel 5300 CSI has {N_GROUPS} subcarrier groups, got {groups}")
    m = n_rx * n_tx
    vals = _int8_pairs(csi).reshape(n, -1).view(np.uint8)  # (n, 30·m·2): re, im, …
    byte, shift = bfee_bit_positions(m)  # where the reader takes each value from
    start = byte.astype(np.int64) * 8 + shift
    nbytes = int(bfee_csi_len(n_rx, n_tx))
    bits = np.zeros((n, nbytes * 8), np.uint8)
    bits[:, start[:, None] + np.arange(8)] = np.unpackbits(
        vals[:, :, None], axis=2, bitorder="little")
    return np.packbits(bits, axis=1, bitorder="little")


class Intel5300Writer:
    """Write bfee records (``log_to_file`` layout) to a binary file object.

    Parameters
    ----------
    fh : binary file
        Opened for writing.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.count = 0

    def write(self, csi: np.ndarray, timestamp_us: np.ndarray, rssi_dbm: np.ndarray,
              *, agc_db: int = 30, noise_dbm: int = -92, rate: int = RATE_HT | 0x4000) -> None:
        """Append one bfee record per packet.

        Parameters
        ----------
        csi : numpy.ndarray
            Complex ``(n, 30, n_rx, n_tx)``, integer-valued, -128..127 (raw CSI).
        timestamp_us : numpy.ndarray
            NIC clock of each packet (µs); written modulo 2³² as ``timestamp_low``.
        rssi_dbm : numpy.ndarray
            Total received power per packet (dBm); written as per-chain ``rssi_a/b/c``
            (dB) with the given AGC so that ``get_total_rss`` gives it back (±1 dB).
        agc_db, noise_dbm : int
            AGC gain (dB) and noise floor (dBm) fields.
        rate : int
            ``fake_rate_n_flags`` (default HT, 20 MHz).
        """
        n, _, n_rx, n_tx = csi.shape
        payload = pack_bfee_csi(csi)
        csi_len = payload.shape[1]
        # per-chain RSSI so that 10 log10(n_rx 10^(r/10)) - 44 - agc == rssi_dbm
        chain = np.clip(np.rint(np.asarray(rssi_dbm, float) + 44 + agc_db
                                - 10 * np.log10(n_rx)), 1, 255).astype(np.uint8)
        ts = np.asarray(timestamp_us, np.int64) & 0xFFFFFFFF
        field_len = 1 + 20 + csi_len
        out = bytearray()
        for k in range(n):
            rssi = [int(chain[k]) if c < n_rx else 0 for c in range(3)]
            out += struct.pack(">HB", field_len, BFEE_CODE)
            out += struct.pack("<IHHBBBBBbBBHH", int(ts[k]), (self.count + k) & 0xFFFF, 0,
                               n_rx, n_tx, *rssi, noise_dbm, agc_db, IDENTITY_ANTENNA_SEL,
                               csi_len, rate)
            out += payload[k].tobytes()
        self.fh.write(out)
        self.count += n


def _ip_checksum(header: bytes) -> int:
    words = struct.unpack(f"!{len(header) // 2}H", header)
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class NexmonPcapWriter:
    """Write Nexmon CSI UDP packets (int16 chips) into a classic pcap file (Ethernet).

    One UDP packet (10.10.10.10 → 255.255.255.255, port 5500) per Wi-Fi frame per receive
    core and spatial stream, with the 2-byte magic + RSSI + frame-control header, as the
    bcm43455c0 (Raspberry Pi 3B+/4) and bcm4339 firmware send.

    Parameters
    ----------
    fh : binary file
        Opened for writing; the pcap global header is written at once.
    chip : {"bcm43455c0", "bcm4339"}
        Chip version field (the int16 CSI chips).
    channel : int
        Channel number in the chanspec.
    src_mac : bytes
        Transmitter MAC of the Wi-Fi frames (6 bytes).
    """

    def __init__(self, fh: BinaryIO, *, chip: str = "bcm43455c0", channel: int = 6,
                 src_mac: bytes = b"\x24\x0a\xc4\x00\x00\x01") -> None:
        if chip not in ("bcm43455c0", "bcm4339"):
            raise ValueError(f"only the int16 chips bcm43455c0/bcm4339 are written, got {chip!r}")
        self.fh = fh
        self.chip = CHIP_CODES[chip]
        self.channel = int(channel)
        self.src_mac = bytes(src_mac)
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))

    def write(self, csi: np.ndarray, times_s: np.ndarray, seq: np.ndarray,
              rssi_dbm: np.ndarray, *, t0_s: float = 0.0, fc: int = 0x08) -> None:
        """Append the UDP packets of ``n`` Wi-Fi frames.

        Parameters
        ----------
        csi : numpy.ndarray
            Complex ``(n, nfft, n_cores, n_streams)`` in ascending subcarrier order
            (``-nfft/2 … nfft/2 - 1``), integer-valued int16; nfft 64/128/256 for
            20/40/80 MHz.
        times_s : numpy.ndarray
            Frame times (s from ``t0_s``), written as pcap timestamps (µs).
        seq : numpy.ndarray
            802.11 sequence numbers (uint16).
        rssi_dbm : numpy.ndarray
            RSSI of each frame (dBm, int8).
        t0_s : float
            Unix time of ``times_s == 0``.
        fc : int
            802.11 frame-control byte.
        """
        n, nfft, n_cores, n_streams = csi.shape
        bw_code = {64: 2, 128: 3, 256: 4}[nfft]
        chanspec = (bw_code << 11) | (self.channel & 0xFF)
        fft = np.fft.ifftshift(csi, axes=1)  # ascending → FFT order
        iq = np.stack([np.rint(fft.real), np.rint(fft.imag)], axis=-1)
        if np.abs(iq).max(initial=0) > 32767:
            raise ValueError("Nexmon int16 CSI values must fit int16")
        iq = iq.astype("<i2")  # (n, nfft, cores, streams, 2)
        out = bytearray()
        us = np.rint((t0_s + np.asarray(times_s, float)) * 1e6).astype(np.int64)
        for k in range(n):
            for c in range(n_cores):
                for s in range(n_streams):
                    payload = struct.pack("<BBbB6sHHHH", 0x11, 0x11, int(rssi_dbm[k]), fc,
                                          self.src_mac, int(seq[k]) & 0xFFFF, c | (s << 3),
                                          chanspec, self.chip) + iq[k, :, c, s].tobytes()
                    out += self._packet(int(us[k]), payload)
        self.fh.write(out)

    def _packet(self, t_us: int, payload: bytes) -> bytes:
        udp = struct.pack("!HHHH", NEXMON_PORT, NEXMON_PORT, 8 + len(payload), 0)
        total = 20 + len(udp) + len(payload)
        # as the firmware sends it: IP id 1, TTL 1, Ethernet source "NEXMON" (csiread and
        # CSIKit look for it)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 1, 17, 0,
                         bytes([10, 10, 10, 10]), b"\xff\xff\xff\xff")
        ip = ip[:10] + struct.pack("!H", _ip_checksum(ip)) + ip[12:]
        eth = b"\xff" * 6 + b"NEXMON" + b"\x08\x00"
        frame = eth + ip + udp + payload
        return struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame),
                           len(frame)) + frame
