"""Nexmon CSI (seemoo-lab/nexmon_csi) UDP packets: pcap captures and payload decoding.

The patched Broadcom firmware sends one UDP packet (10.10.10.10 → 255.255.255.255, port
5500) per received Wi-Fi frame, per receive core and spatial stream. UDP payload:

=========  =====  =====================================================================
offset     bytes  field
=========  =====  =====================================================================
0          2/4    magic ``0x1111`` — either 4 bytes ``11 11 11 11``, or 2 bytes followed by
                  ``rssi`` (int8, dBm) and ``fc`` (uint8, 802.11 frame-control byte)
4          6      source MAC of the Wi-Fi frame
10         2      sequence number (uint16 LE; 802.11 sequence control)
12         2      core (bits 0–2) and spatial stream (bits 3–5)
14         2      chanspec (uint16 LE: channel bits 0–7, bandwidth bits 11–13)
16         2      chip version (0x0065 bcm43455c0, 0x0001 bcm4339, 0x006a bcm4366c0,
                  0xdead bcm4358)
18         4·nfft CSI, FFT order; nfft = 64/128/256/512 for 20/40/80/160 MHz
=========  =====  =====================================================================

CSI encodings: bcm43455c0 and bcm4339 send int16 (real, imag) pairs; bcm4358 and
bcm4366c0 send packed floating point words (``unpack_float.c``: 9-bit mantissa/5-bit
exponent for 4358, 12/6 for 4366c0), decoded here by :func:`unpack_float`.

Some captured frames carry 4 zero bytes after the UDP datagram (beyond the IP and UDP
lengths: 18 of 566 in ``example_43455c0.pcap``, 407 of 4000 in ``output-40.pcap``). Their
CSI is at the usual place: we decode every packet and put the number of bytes captured
after the CSI in ``fields["extra_bytes"]``. (MATLAB ``csireader.m`` skips those
packets, leaving all-zero rows at the end of its preallocated buffer; CSIKit drops them and
pads, so its rows no longer line up with their timestamps. csiread decodes them like we do.)

Frames layout: **one row per Wi-Fi frame**, ``data`` complex64 ``(n, nfft, n_cores,
n_streams)`` with the subcarriers re-ordered to ascending index ``-nfft/2 … nfft/2 − 1``
(``Frames.subcarriers``): the per-(core, spatial stream) packets of a frame are assembled
on the antenna axes by :class:`LinkAssembler` (frames missing a packet are dropped and
counted in ``info()["incomplete_frames"]``). A single-link capture (bcm43455c0) keeps
``(n, nfft, 1, 1)`` and its per-row ``fields["core"]``/``["spatial"]``.

With ``assemble=False`` the reader yields **one row per UDP packet** ``(n, nfft, 1, 1)``:
the receive core and spatial stream of each row are ``fields["core"]``/``["spatial"]`` and
rows of one Wi-Fi frame share ``fields["seq"]``; select a core/stream with
``frames.fields["core"] == 0`` rather than relying on a fixed packet pattern, since the
firmware drops packets independently. Other per-row fields: ``chanspec``, ``chip_version``,
``rssi`` (dBm, NaN for the 4-byte-magic header), ``fc`` (−1 when absent), ``src_mac``
(uint64 of the 6 bytes), ``extra_bytes``. A chunk never mixes FFT sizes.

Writing: :class:`NexmonPcapWriter` writes the int16-chip packets this reader (and csiread,
CSIKit) reads back.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, BinaryIO

import numpy as np

from sensing.errors import (
    CaptureFormatError,
    Reject,
    RejectLog,
    RejectReason,
    UnsupportedFormatError,
)
from sensing.formats.base import FORMATS, CaptureReader
from sensing.formats.intel5300 import gather_rows, record_blocks
from sensing.frames import Frames

NEXMON_PORT = 5500
#: Bytes of the Nexmon header before the CSI.
HEADER_BYTES = 18
#: chip version field → chip name.
CHIPS = {0x0065: "bcm43455c0", 0x0001: "bcm4339", 0x006A: "bcm4366c0", 0xDEAD: "bcm4358"}
#: Chips whose CSI is packed float, with (mantissa bits, exponent bits) of ``unpack_float.c``.
FLOAT_FORMATS = {"bcm4358": (9, 5), "bcm4366c0": (12, 6)}
#: chanspec bandwidth field (bits 11–13) → MHz.
CHANSPEC_BW = {2: 20, 3: 40, 4: 80, 5: 160}
_BW_LUT = np.array([CHANSPEC_BW.get(i, 0) for i in range(8)], dtype=np.int64)
#: chip version codes of the packed-float chips.
_FLOAT_CODES = np.array([c for c, name in CHIPS.items() if name in FLOAT_FORMATS])

PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("little", 1e-6),
    b"\xa1\xb2\xc3\xd4": ("big", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("little", 1e-9),
    b"\xa1\xb2\x3c\x4d": ("big", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
#: pcap link types → bytes before the IPv4 header (None: Ethernet/SLL, read the type field).
LINKTYPES = {1: "ethernet", 113: "linux_sll", 101: "raw", 228: "raw", 12: "raw"}
BLOCK_BYTES = 1 << 20
MAX_SNAPLEN = 1 << 18
#: Bad packets described in full per decode call (the rest are only counted).
MAX_DESCRIBED = 32


def unpack_float(words: np.ndarray, nman: int, nexp: int, nbits: int = 10) -> np.ndarray:
    """Decode Broadcom packed floating-point CSI words (``unpack_float_acphy``, vectorised).

    Parameters
    ----------
    words : numpy.ndarray
        uint32 ``(n, nfft)``: one word per subcarrier, one row per packet.
    nman, nexp : int
        Mantissa and exponent widths (9, 5 for bcm4358; 12, 6 for bcm4366c0).
    nbits : int
        Target magnitude bits of the largest value in a packet (autoscale).

    Returns
    -------
    numpy.ndarray
        complex64 ``(n, nfft)`` with integer-valued real/imaginary parts, identical to the
        MATLAB mex ``unpack_float(fmt, nfft, H)`` of nexmon_csi.
    """
    h = np.asarray(words, dtype=np.uint32).astype(np.int64)
    iq_mask = (1 << (nman - 1)) - 1
    e_mask = (1 << nexp) - 1
    e_p = 1 << (nexp - 1)
    sgnr = 1 << (nexp + 2 * nman - 1)
    sgni = sgnr >> nman
    vi = (h >> (nexp + nman)) & iq_mask
    vq = (h >> nexp) & iq_mask
    e = h & e_mask
    e = np.where(e >= e_p, e - 2 * e_p, e)
    x = vi | vq
    msb = np.frexp(x.astype(np.float64))[1].astype(np.int64) - 1  # floor(log2 x) for x > 0
    top = np.where(x > 0, e + msb, -e_p)
    maxbit = np.maximum(top.max(axis=1, keepdims=True, initial=-e_p), -e_p)
    ee = e + (nbits - maxbit)

    def scale(v: np.ndarray) -> np.ndarray:
        left = np.left_shift(v, np.clip(ee, 0, 40))
        right = np.right_shift(v, np.clip(-ee, 0, 63))
        return np.where(ee < -nman, 0, np.where(ee < 0, right, left))

    re = scale(vi) * np.where(h & sgnr, -1, 1)
    im = scale(vq) * np.where(h & sgni, -1, 1)
    out = np.empty(h.shape, dtype=np.complex64)
    out.real = re
    out.imag = im
    return out


def decode_payloads(
    pay: np.ndarray, lengths: np.ndarray, *, chip: str | None = None,
    body: Callable[[np.ndarray | None, int], np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[int, RejectReason, str, str]]]:
    """Decode Nexmon CSI UDP payloads.

    Parameters
    ----------
    pay : numpy.ndarray
        uint8 ``(n, width)``; row ``i`` holds a payload of ``lengths[i] <= width`` bytes
        (with ``body`` given, only the first 18 header bytes are read from it).
    lengths : numpy.ndarray
        Payload length of each row in bytes.
    chip : str, optional
        Force the chip (``"bcm43455c0"``, ``"bcm4339"``, ``"bcm4358"``, ``"bcm4366c0"``)
        instead of reading it from the chip version field.
    body : callable, optional
        ``body(rows, nbytes)`` returns the ``nbytes`` CSI bytes after the header of the
        given rows (``None``: all rows) as a contiguous uint8 ``(m, nbytes)`` array; lets a
        caller gather the CSI straight from a file buffer. Default: ``pay[rows, 18:]``.

    Returns
    -------
    rows : dict of str → numpy.ndarray
        ``csi`` complex64 ``(m, max nfft)`` in ascending subcarrier order (rows with a
        smaller ``rows["nfft"]`` are zero-padded at the end) and the per-row fields, for
        the ``m`` good rows in input order.
    good : numpy.ndarray
        Indices (into ``pay``) of the decoded rows.
    bad : list of (row, RejectReason, expected, got)
        Rows that could not be decoded.
    """
    n, width = pay.shape
    bad: list[tuple[int, RejectReason, str, str]] = []
    lengths = np.asarray(lengths, dtype=np.int64)
    if width < HEADER_BYTES:
        return {}, np.empty(0, np.int64), [
            (i, RejectReason.SHORT_PAYLOAD, f"at least {HEADER_BYTES} bytes", f"{int(lengths[i])}")
            for i in range(n)]
    u16 = pay[:, :HEADER_BYTES].astype(np.uint16)
    magic_ok = (u16[:, 0] == 0x11) & (u16[:, 1] == 0x11)
    four = magic_ok & (u16[:, 2] == 0x11) & (u16[:, 3] == 0x11)
    chanspec = u16[:, 14] | (u16[:, 15] << 8)
    chip_version = u16[:, 16] | (u16[:, 17] << 8)
    bw = _BW_LUT[(chanspec >> 11) & 7]
    nfft = bw * 16 // 5  # 20 MHz → 64 … 160 MHz → 512
    extra = lengths - HEADER_BYTES - 4 * nfft
    ok = magic_ok & (lengths >= HEADER_BYTES) & (nfft > 0) & (extra >= 0)
    if not ok.all():
        for i in np.flatnonzero(~ok):
            if len(bad) >= MAX_DESCRIBED:
                reason = (RejectReason.BAD_MAGIC if not magic_ok[i] else RejectReason.SHORT_PAYLOAD
                          if lengths[i] < HEADER_BYTES else RejectReason.BAD_CHANSPEC if nfft[i] == 0
                          else RejectReason.SHORT_CSI)
                bad.append((int(i), reason, "", ""))
            elif not magic_ok[i]:
                bad.append((int(i), RejectReason.BAD_MAGIC, "Nexmon magic 0x1111",
                            pay[i, :4].tobytes().hex()))
            elif lengths[i] < HEADER_BYTES:
                bad.append((int(i), RejectReason.SHORT_PAYLOAD, f"at least {HEADER_BYTES} bytes",
                            f"{int(lengths[i])}"))
            elif nfft[i] == 0:
                bad.append((int(i), RejectReason.BAD_CHANSPEC, "chanspec bandwidth 20/40/80/160 MHz",
                            f"0x{int(chanspec[i]):04x}"))
            else:
                bad.append((int(i), RejectReason.SHORT_CSI, f"{HEADER_BYTES + 4 * int(nfft[i])} bytes "
                            f"for {int(bw[i])} MHz", f"{int(lengths[i])} bytes"))
        good = np.flatnonzero(ok)
    else:
        good = np.arange(n)
    if not len(good):
        return {}, good, bad
    if chip is not None:
        is_float = np.full(n, chip in FLOAT_FORMATS)
    else:
        is_float = chip_version == _FLOAT_CODES[0]
        for code in _FLOAT_CODES[1:]:
            is_float |= chip_version == code
    whole = len(good) == n
    g_nfft = nfft if whole else nfft[good]
    g_float = is_float if whole else is_float[good]
    nf_max = int(g_nfft.max())
    single = bool((g_nfft == nf_max).all()) and not g_float.any()
    csi = np.empty((len(good), nf_max), np.complex64) if single else \
        np.zeros((len(good), nf_max), np.complex64)
    for nf in ([nf_max] if single else np.unique(g_nfft).tolist()):
        for fl in ((False,) if single else (False, True)):
            at = None if single else np.flatnonzero((g_nfft == nf) & (g_float == fl))
            if at is not None and not len(at):
                continue
            rows_sel = good if at is None else good[at]
            everything = len(rows_sel) == n
            if body is not None:
                raw = body(None if everything else rows_sel, 4 * nf)
            else:
                raw = np.ascontiguousarray(pay[:, HEADER_BYTES: HEADER_BYTES + 4 * nf]
                                           if everything else
                                           pay[rows_sel, HEADER_BYTES: HEADER_BYTES + 4 * nf])
            h = nf // 2
            if fl:
                dec = np.empty((len(rows_sel), nf), np.complex64)
                names = np.array([chip or CHIPS[int(c)] for c in chip_version[rows_sel]])
                for name in np.unique(names):
                    sub = names == name
                    nman, nexp = FLOAT_FORMATS[str(name)]
                    dec[sub] = unpack_float(raw[sub].view("<u4"), nman, nexp)
                # FFT order → ascending subcarrier index
                if at is None:
                    csi[:, :h] = dec[:, h:]
                    csi[:, h:nf] = dec[:, :h]
                else:
                    csi[at, :h] = dec[:, h:]
                    csi[at, h:nf] = dec[:, :h]
            else:
                # int16 (re, im) pairs straight into the float32 view of the output, with the
                # FFT order → ascending subcarrier order swap done by the two slices
                iq = raw.view("<i2")
                if at is None:
                    out = csi.view(np.float32)
                    out[:, :nf] = iq[:, nf:]
                    out[:, nf: 2 * nf] = iq[:, :nf]
                else:
                    part = np.empty((len(at), nf), np.complex64)
                    pf = part.view(np.float32)
                    pf[:, :nf] = iq[:, nf:]
                    pf[:, nf:] = iq[:, :nf]
                    csi[at, :nf] = part
    g = good
    sub16 = u16 if whole else u16[g]
    mac = np.zeros(len(g), dtype=np.uint64)
    macb = (pay[:, 4:10] if whole else pay[g, 4:10]).astype(np.uint64)
    for k in range(6):
        mac = (mac << np.uint64(8)) | macb[:, k]
    css = sub16[:, 12] | (sub16[:, 13] << 8)
    g_four = four if whole else four[g]
    rows = {
        "csi": csi,
        "seq": sub16[:, 10] | (sub16[:, 11] << 8),
        "core": (css & 7).astype(np.uint8),
        "spatial": ((css >> 3) & 7).astype(np.uint8),
        "chanspec": chanspec if whole else chanspec[g],
        "chip_version": chip_version if whole else chip_version[g],
        "rssi": np.where(g_four, np.float32(np.nan), sub16[:, 2].astype(np.int8)).astype(np.float32),
        "fc": np.where(g_four, -1, sub16[:, 3].astype(np.int16)).astype(np.int16),
        "src_mac": mac,
        "extra_bytes": (extra if whole else extra[g]).astype(np.int32),
        "nfft": g_nfft,
    }
    return rows, g, bad


def select_stream(
    rows: dict[str, np.ndarray], core: int | None, spatial: int | None
) -> tuple[dict[str, np.ndarray], int]:
    """Keep the rows of one receive core and/or spatial stream; returns (rows, dropped)."""
    if core is None and spatial is None:
        return rows, 0
    keep = np.ones(len(rows["nfft"]), dtype=bool)
    if core is not None:
        keep &= rows["core"] == core
    if spatial is not None:
        keep &= rows["spatial"] == spatial
    if keep.all():
        return rows, 0
    return {k: v[keep] for k, v in rows.items()}, int(np.count_nonzero(~keep))


def chip_name(chip_version: int, chip: str | None = None) -> str:
    """Chip name of a chip version field (or the forced ``chip``)."""
    return chip or CHIPS.get(int(chip_version), f"unknown (0x{int(chip_version):04x})")


def chanspec_info(chanspec: int) -> dict[str, Any]:
    """Channel number, bandwidth (MHz) and band (GHz) of a Broadcom d11ac chanspec."""
    band = {0x0000: 2.4, 0x4000: 2.4, 0xC000: 5.0, 0x8000: 6.0}.get(chanspec & 0xC000)
    return {"channel": chanspec & 0xFF,
            "bandwidth_mhz": CHANSPEC_BW.get((chanspec >> 11) & 7),
            "band_ghz": band}


def frames_from_rows(
    rows: dict[str, np.ndarray], times_s: np.ndarray, source: str, meta: dict[str, Any],
    chunk_size: int, t0: datetime | None, chip: str | None = None,
) -> Iterator[Frames]:
    """Cut decoded rows into :class:`Frames` of at most ``chunk_size`` rows and one nfft."""
    if not len(rows["nfft"]):
        return
    nfft = rows["nfft"]
    n = len(nfft)
    cuts = np.flatnonzero(nfft[1:] != nfft[:-1]) + 1
    bounds = np.concatenate([[0], cuts, [n]]).astype(int)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        nf = int(nfft[a])
        for lo in range(a, b, chunk_size):
            hi = min(lo + chunk_size, b)
            csi = rows["csi"][lo:hi, :nf]
            fields = {k: rows[k][lo:hi] for k in (
                "seq", "core", "spatial", "chanspec", "chip_version", "rssi", "fc", "src_mac",
                "extra_bytes")}
            m = dict(meta)
            m.update(chanspec_info(int(rows["chanspec"][hi - 1])))
            m["chip"] = chip_name(rows["chip_version"][hi - 1], chip)
            m["nfft"] = nf
            m["header"] = "rssi+fc" if not np.isnan(rows["rssi"][hi - 1]) else "4-byte magic"
            yield Frames(
                data=csi.reshape(hi - lo, nf, 1, 1), times_s=times_s[lo:hi], fs_hz=None,
                modality="wifi_csi", source=source,
                subcarriers=np.arange(-nf // 2, nf // 2), t0=t0, fields=fields, meta=m,
            )


# -- link assembly ----------------------------------------------------------------------

#: Per-row fields that identify a link; chunks without them pass through.
LINK_FIELDS = ("seq", "core", "spatial")


class LinkAssembler:
    """Streaming (core, spatial stream) → antenna-axis assembly of per-link CSI rows.

    Nexmon sends one UDP packet per Wi-Fi frame **per receive core and spatial stream**
    (one row each, ``fields["core"]``/``["spatial"]``, a shared ``fields["seq"]``).
    Detectors want one row per Wi-Fi frame with every antenna pair side by side —
    ``(n, n_subcarriers, n_rx, n_tx)`` — so that they can take the CSI ratio between
    antennas. The reader and the UDP source run their rows through this by default:

    * consecutive rows with the same ``seq`` form one group (a repeated (core, stream) pair
      inside a run of equal ``seq`` starts a new group: a retransmission);
    * the **link layout** is the set of cores × spatial streams seen so far; a group that
      holds every link of the layout becomes one packet ``(n_subcarriers, n_cores,
      n_streams)`` (receive cores on the rx axis, spatial streams on the tx axis), timed at
      its first row, with the strongest link's ``rssi`` and ``meta["links"]``;
    * a group missing a link (the firmware drops packets independently) is dropped and
      counted in :attr:`incomplete`;
    * a stream that only ever has one link (bcm43455c0 on a Raspberry Pi) is passed through
      unchanged, chunk objects included, so single-link captures cost nothing.

    The last group of a chunk may continue in the next chunk, so it is held back until the
    next chunk (or :meth:`flush`) shows it complete. Memory: one group.

    Attributes
    ----------
    cores, streams : tuple of int
        The link layout learned so far (receive cores, spatial streams), ascending.
    incomplete : int
        Groups dropped because they lacked a link of the layout.
    assembled : int
        Multi-link packets emitted.
    """

    def __init__(self) -> None:
        self.cores: tuple[int, ...] = ()
        self.streams: tuple[int, ...] = ()
        self.incomplete = 0
        self.assembled = 0
        self._held: Frames | None = None  # rows of the last, possibly unfinished group

    @property
    def multi_link(self) -> bool:
        """True once more than one (core, stream) link has been seen."""
        return len(self.cores) * len(self.streams) > 1

    def update(self, frames: Frames) -> Frames | None:
        """Consume one chunk; return the packets completed by it (``None`` if none).

        Chunks that are not per-link CSI rows (no ``seq``/``core``/``spatial`` fields, or
        already multi-antenna data) are returned unchanged.
        """
        if (frames.modality != "wifi_csi" or any(k not in frames.fields for k in LINK_FIELDS)
                or frames.data.ndim != 4 or frames.data.shape[2:] != (1, 1)):
            return frames
        core = np.asarray(frames.fields["core"], np.int64)
        spatial = np.asarray(frames.fields["spatial"], np.int64)
        self._learn(core, spatial)
        if not self.multi_link:
            return frames
        if self._held is not None:
            frames = _concat(self._held, frames)
            self._held = None
        return self._assemble(frames, final=False)

    def flush(self) -> Frames | None:
        """End of stream: emit the held-back last group if it is complete."""
        held, self._held = self._held, None
        return None if held is None else self._assemble(held, final=True)

    def stream(self, chunks: Iterable[Frames]) -> Iterator[Frames]:
        """Assemble a whole stream: :meth:`update` on every chunk, then :meth:`flush`.

        Parameters
        ----------
        chunks : iterable of Frames
            Per-link rows (or any other chunks, passed through).

        Yields
        ------
        Frames
            Multi-link CSI packets ``(n, n_subcarriers, n_cores, n_streams)`` when the
            stream has several cores or spatial streams; every other chunk unchanged.
            Empty chunks are not yielded.
        """
        try:
            for fr in chunks:
                out = self.update(fr)
                if out is not None and len(out):
                    yield out
        finally:  # stopped early: close a generator input (a live source's socket) now
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        out = self.flush()
        if out is not None and len(out):
            yield out

    # ------------------------------------------------------------------ internals

    def _learn(self, core: np.ndarray, spatial: np.ndarray) -> None:
        cores = set(self.cores) | set(np.unique(core).tolist())
        streams = set(self.streams) | set(np.unique(spatial).tolist())
        self.cores, self.streams = tuple(sorted(cores)), tuple(sorted(streams))

    def _assemble(self, fr: Frames, final: bool) -> Frames | None:
        n = len(fr)
        if not n:
            return None
        seq = np.asarray(fr.fields["seq"], np.int64)
        ci = np.searchsorted(self.cores, np.asarray(fr.fields["core"], np.int64))
        si = np.searchsorted(self.streams, np.asarray(fr.fields["spatial"], np.int64))
        n_links = len(self.cores) * len(self.streams)
        link = ci * len(self.streams) + si
        group = _group_ids(seq, link)
        n_groups = int(group[-1]) + 1
        if not final:
            # the last group may go on in the next chunk: hold its rows back
            last = int(np.searchsorted(group, n_groups - 1))
            self._held = _rows(fr, slice(last, n))
            n_groups -= 1
            if n_groups == 0:
                return None
            fr = _rows(fr, slice(0, last))
            group, link, ci, si = group[:last], link[:last], ci[:last], si[:last]
        counts = np.bincount(group, minlength=n_groups)
        full = counts == n_links
        self.incomplete += int(np.count_nonzero(~full))
        if not full.any():
            return None
        keep_row = full[group]
        out_index = np.cumsum(full) - 1  # group → output packet
        first = np.flatnonzero(np.r_[True, np.diff(group) != 0])  # first row of each group
        first = first[full]
        n_out = len(first)
        data = np.zeros((n_out, fr.data.shape[1], len(self.cores), len(self.streams)),
                        fr.data.dtype)
        rows = np.flatnonzero(keep_row)
        data[out_index[group[rows]], :, ci[rows], si[rows]] = fr.data[rows, :, 0, 0]
        self.assembled += n_out
        fields = {k: np.asarray(v)[first] for k, v in fr.fields.items()
                  if k not in ("core", "spatial")}
        if "rssi" in fr.fields:
            # the strongest link's RSSI (dBm; NaN when no link reports one)
            rssi = np.full((n_out, n_links), np.nan, np.float32)
            rssi[out_index[group[rows]], link[rows]] = np.asarray(fr.fields["rssi"],
                                                                  np.float32)[rows]
            fields["rssi"] = np.fmax.reduce(rssi, axis=1)
        meta = dict(fr.meta)
        meta["links"] = {"cores": list(self.cores), "spatial_streams": list(self.streams),
                         "axes": "rx = receive core, tx = spatial stream"}
        return replace(fr, data=data, times_s=np.asarray(fr.times_s)[first], fields=fields,
                       meta=meta)


def _group_ids(seq: np.ndarray, link: np.ndarray) -> np.ndarray:
    """Group index of each row: a new group at a ``seq`` change or a repeated link."""
    n = len(seq)
    new = np.ones(n, dtype=bool)
    new[1:] = seq[1:] != seq[:-1]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.r_[starts, n])
    run = np.cumsum(new) - 1
    key = run * 64 + link  # links < 64 (cores, streams ≤ 8 each)
    if (lengths > 1).any() and len(np.unique(key)) < n:
        # within a run of equal seq, a link seen before in the run starts a new group
        for a, ln in zip(starts[lengths > 1], lengths[lengths > 1], strict=True):
            seen: set[int] = set()
            for i in range(a, a + ln):
                li = int(link[i])
                if li in seen:
                    new[i] = True
                    seen = set()
                seen.add(li)
    return np.cumsum(new) - 1


def _rows(fr: Frames, sl: slice) -> Frames:
    return replace(fr, data=fr.data[sl], times_s=np.asarray(fr.times_s)[sl],
                   fields={k: np.asarray(v)[sl] for k, v in fr.fields.items()})


def _concat(a: Frames, b: Frames) -> Frames:
    if a.data.shape[1:] != b.data.shape[1:]:
        return b  # layout change (FFT size): the held rows cannot be a whole group
    fields = {k: np.concatenate([np.asarray(a.fields[k]), np.asarray(v)])
              for k, v in b.fields.items() if k in a.fields}
    return replace(b, data=np.concatenate([a.data, b.data]),
                   times_s=np.concatenate([np.asarray(a.times_s), np.asarray(b.times_s)]),
                   fields=fields)


def assemble_links(chunks: Iterable[Frames]) -> Iterator[Frames]:
    """Assemble a stream of per-link rows with a new :class:`LinkAssembler` (see
    :meth:`LinkAssembler.stream`). The readers do this themselves unless told
    ``assemble=False``."""
    return LinkAssembler().stream(chunks)


@functools.lru_cache(maxsize=16)
def _record_dtype(order: str, l2: int) -> np.dtype:
    """Fields of a pcap record holding a Nexmon UDP packet with a 20-byte IPv4 header:
    pcap timestamp, link type field, IPv4, UDP and the Nexmon header (``l2`` link bytes)."""
    e = ">" if order == "big" else "<"
    ip = 16 + l2
    nx = ip + 28  # the UDP payload: the Nexmon header
    fields = {
        "sec": (0, e + "u4"), "frac": (4, e + "u4"), "ver_ihl": (ip, "u1"), "proto": (ip + 9, "u1"),
        "dport": (ip + 22, ">u2"), "ulen": (ip + 24, ">u2"), "magic2": (nx, "<u2"),
        "magic4": (nx, "<u4"), "rssi": (nx + 2, "i1"), "fc": (nx + 3, "u1"),
        "mac8": (nx + 2, ">u8"), "seq": (nx + 10, "<u2"), "css": (nx + 12, "<u2"),
        "chanspec": (nx + 14, "<u2"), "chip_version": (nx + 16, "<u2"),
    }
    if l2:
        fields["ethertype"] = (ip - 2, ">u2")
    return np.dtype({"names": list(fields), "formats": [f for _, f in fields.values()],
                     "offsets": [o for o, _ in fields.values()], "itemsize": nx + HEADER_BYTES})


@FORMATS.register("nexmon_pcap")
class NexmonPcapReader(CaptureReader):
    """Reader for Nexmon CSI UDP packets captured with tcpdump (classic pcap).

    Parameters
    ----------
    path, chunk_size, source
        See :class:`~sensing.formats.base.CaptureReader`.
    port : int
        UDP destination port of the CSI packets (5500). Other packets are skipped and
        counted in ``info()["other_packets"]``.
    chip : str, optional
        Force the chip instead of reading it from the chip version field.
    core, spatial : int, optional
        Keep only the packets of this receive core / spatial stream (multi-core chips such
        as bcm4358/bcm4366c0 send one packet per core and stream); the others are counted
        in ``info()["other_streams"]``.
    assemble : bool
        Assemble the packets of each Wi-Fi frame into one multi-antenna row
        (:class:`LinkAssembler`, the default); False: one row per UDP packet.

    Times are the pcap timestamps relative to the first CSI packet; ``t0`` is its UTC time.

    Attributes
    ----------
    links : LinkAssembler or None
        The link layout (``cores``, ``streams``) and ``incomplete`` frames of the last read
        (None with ``assemble=False``).
    packets : int
        CSI UDP packets decoded in the last read (before assembly).
    """

    name = "nexmon_pcap"
    modality = "wifi_csi"
    extensions = (".pcap", ".cap")
    description = "Nexmon CSI UDP packets in a classic pcap (bcm43455c0, bcm4339, bcm4358, bcm4366c0)"

    def __init__(
        self, path: str | os.PathLike, *, chunk_size: int = 256, source: str | None = None,
        port: int = NEXMON_PORT, chip: str | None = None, core: int | None = None,
        spatial: int | None = None, assemble: bool = True,
    ) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        if chip is not None and chip not in set(CHIPS.values()):
            raise ValueError(f"chip must be one of {sorted(set(CHIPS.values()))}, got {chip!r}")
        self.port = port
        self.chip = chip
        self.core = core
        self.spatial = spatial
        self.assemble = assemble
        self.links: LinkAssembler | None = None
        self.other_packets = 0
        self.other_streams = 0
        self.packets = 0

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        """A classic pcap whose first packets include a UDP datagram to port 5500 with the
        Nexmon magic."""
        if len(head) < 24 or head[:4] not in PCAP_MAGIC:
            return False
        order, _ = PCAP_MAGIC[head[:4]]
        link = int.from_bytes(head[20:24], order) & 0x0FFFFFFF
        if link not in LINKTYPES:
            return False
        pos = 24
        while pos + 16 <= len(head):
            incl = int.from_bytes(head[pos + 8: pos + 12], order)
            if incl > MAX_SNAPLEN:
                return False
            pkt = head[pos + 16: pos + 16 + incl]
            off = _udp_payload_offset(pkt, link)
            if off is not None and len(pkt) >= off + 2 and pkt[off:off + 2] == b"\x11\x11" \
                    and int.from_bytes(pkt[off - 6: off - 4], "big") == NEXMON_PORT:
                return True
            pos += 16 + incl
        return False

    def _header(self, fh) -> tuple[str, float, int]:
        head = fh.read(24)
        if head[:4] == PCAPNG_MAGIC:
            raise UnsupportedFormatError(
                f"{self.path}: pcapng is not supported; save as classic pcap "
                "(tcpdump -w, or editcap -F pcap in.pcapng out.pcap)")
        if len(head) < 24 or head[:4] not in PCAP_MAGIC:
            raise CaptureFormatError(self.path, "byte 0", "a 24-byte pcap global header with "
                                     "magic a1b2c3d4/a1b23c4d", repr(head[:4]))
        order, unit = PCAP_MAGIC[head[:4]]
        link = int.from_bytes(head[20:24], order) & 0x0FFFFFFF
        if link not in LINKTYPES:
            raise CaptureFormatError(self.path, "byte 20", "link type Ethernet (1), Linux SLL "
                                     "(113) or raw IPv4 (101/228)", str(link))
        return order, unit, link

    def _decode_fast(
        self, arr: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, order: str, l2: int,
    ) -> dict[str, np.ndarray] | None:
        """Decode a block in which every record is a Nexmon CSI packet to our port with a
        20-byte IPv4 header, one FFT size and int16 CSI (the usual capture), reading all
        headers through one structured row per record (a strided view of the block when the
        records are equally spaced). Returns None, without side effects, for any other block
        (:meth:`_decode` then takes the general path, which gives identical rows here)."""
        n = len(offsets)
        end = len(arr)
        dt = _record_dtype(order, l2)
        width = dt.itemsize
        first, last = int(offsets[0]), int(offsets[-1])
        if last + width > end:
            return None
        step = int(offsets[1]) - first if n > 1 else width
        regular = step >= width and first + step * (n - 1) == last and (
            n < 3 or bool((np.diff(offsets) == step).all()))
        if regular:
            rec = np.ndarray((n,), dt, buffer=arr, offset=first, strides=(step,))
        else:
            rec = gather_rows(arr, offsets, width).view(dt)[:, 0]
        chanspec, chip_version = rec["chanspec"], rec["chip_version"]
        nf = int(_BW_LUT[(int(chanspec[0]) >> 11) & 7]) * 16 // 5
        chip0 = int(chip_version[0])
        if nf == 0 or (self.chip or CHIPS.get(chip0)) in FLOAT_FORMATS:
            return None
        avail = sizes - (16 + l2 + 28)  # UDP payload bytes captured
        plen = rec["ulen"].astype(np.int64) - 8
        good = (rec["ver_ihl"] == 0x45) & (rec["proto"] == 17) & (rec["dport"] == self.port)
        good &= (rec["magic2"] == 0x1111) & ((chanspec & 0x3800) == (int(chanspec[0]) & 0x3800))
        good &= (plen <= avail) & (plen >= HEADER_BYTES + 4 * nf)
        if self.chip is None:  # one chip (an int16 one) throughout
            good &= chip_version == chip0
        if l2:
            good &= rec["ethertype"] == 0x0800
        if not bool(good.all()):
            return None
        at = 16 + l2 + 28 + HEADER_BYTES  # CSI offset in a record
        if regular:  # a view of the block, no copy
            raw = np.ndarray((n, 4 * nf), np.uint8, buffer=arr, offset=first + at,
                             strides=(step, 1))
        else:
            raw = gather_rows(arr, offsets + at, 4 * nf)
        iq = raw.view("<i2")
        csi = np.empty((n, nf), np.complex64)
        out = csi.view(np.float32)  # FFT order → ascending subcarrier index
        out[:, :nf] = iq[:, nf:]
        out[:, nf:] = iq[:, :nf]
        four = rec["magic4"] == 0x11111111
        rssi = rec["rssi"].astype(np.float32)
        fc = rec["fc"].astype(np.int16)
        if four.any():
            rssi[four] = np.nan
            fc[four] = -1
        css = rec["css"]
        return {
            "csi": csi,
            "seq": rec["seq"].astype(np.uint16),
            "core": (css & 7).astype(np.uint8),
            "spatial": ((css >> 3) & 7).astype(np.uint8),
            "chanspec": rec["chanspec"].astype(np.uint16),
            "chip_version": rec["chip_version"].astype(np.uint16),
            "rssi": rssi,
            "fc": fc,
            "src_mac": rec["mac8"] & np.uint64(0xFFFFFFFFFFFF),
            "extra_bytes": (avail - (HEADER_BYTES + 4 * nf)).astype(np.int32),
            "nfft": np.full(n, nf, np.int64),
            "sec": rec["sec"].astype(np.int64),
            "frac": rec["frac"].astype(np.int64),
        }

    def _decode(
        self, arr: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, base: int, order: str,
        link: int,
    ) -> dict[str, np.ndarray] | None:
        """Decode the pcap records at ``offsets`` (sizes ``sizes``) of the block ``arr``.

        Each header is gathered as a small row per record (pcap + link + IPv4, then UDP,
        then the Nexmon header) and the CSI bytes as one row per packet, straight from the
        block: no per-packet Python and no copy of whole records.
        """
        n = len(offsets)
        kind = LINKTYPES[link]
        l2 = {"ethernet": 14, "linux_sll": 16, "raw": 0}[kind]
        end = len(arr)
        if n:
            fast = self._decode_fast(arr, offsets, sizes, order, l2)
            if fast is not None:
                return fast

        def rows_at(starts: np.ndarray, width: int) -> np.ndarray:
            """``(len(starts), width)`` bytes at the increasing offsets ``starts`` (rows past
            the end are clipped; callers only use rows whose record is long enough)."""
            m = len(starts)
            if end < width or not m:
                return np.zeros((m, width), np.uint8)
            last = int(starts[-1])
            if m > 1:
                first = int(starts[0])
                step = int(starts[1]) - first
                if step >= width and last + width <= end and first + step * (m - 1) == last \
                        and (np.diff(starts) == step).all():  # regular capture: a view
                    view = np.ndarray((m, width), np.uint8, buffer=arr, offset=first,
                                      strides=(step, 1))
                    view.flags.writeable = False
                    return view
            return gather_rows(arr, starts if last + width <= end else
                               np.clip(starts, 0, end - width), width)

        captured = sizes - 16
        # usually every record is long enough for pcap + link + 20-byte IPv4 + UDP + Nexmon
        # headers: gather them all as one row per record
        wide = 16 + l2 + 28 + HEADER_BYTES
        low = rows_at(offsets, wide) if n and int(offsets[-1]) + wide <= end else None
        if low is None or not (low[:, 16 + l2] == 0x45).all():
            low = rows_at(offsets, 16 + l2 + 20)
            wide = 0
        dt = np.dtype(">u4" if order == "big" else "<u4")
        hdr = low[:, :8].copy().view(dt)
        pkt = low[:, 16:]
        ok = captured >= l2 + 28
        if kind == "ethernet":
            ok &= (pkt[:, 12] == 0x08) & (pkt[:, 13] == 0x00)
        elif kind == "linux_sll":
            ok &= (pkt[:, 14] == 0x08) & (pkt[:, 15] == 0x00)
        ver_ihl = pkt[:, l2]
        ihl = (ver_ihl & 0x0F).astype(np.int64) * 4
        ok &= ((ver_ihl >> 4) == 4) & (ihl >= 20) & (pkt[:, l2 + 9] == 17)
        udp = l2 + ihl  # UDP header offset within the packet
        ok &= udp + 8 <= captured
        uh = (pkt[:, l2 + 20: l2 + 28] if wide else rows_at(offsets + 16 + udp, 8)).astype(np.int64)
        dport = (uh[:, 2] << 8) | uh[:, 3]
        ulen = (uh[:, 4] << 8) | uh[:, 5]
        ok &= dport == self.port
        if not ok.all():
            self.other_packets += int(np.count_nonzero(~ok))
            if not ok.any():
                return None
            sel = np.flatnonzero(ok)
        else:
            sel = None
        pick = (lambda a: a) if sel is None else (lambda a: a[sel])
        avail = pick(captured - udp - 8)
        plen = pick(ulen) - 8
        start = pick(offsets + 16 + udp + 8)  # payload offset in the block
        short = plen > avail
        if short.any():
            idx = np.arange(n) if sel is None else sel
            cut = np.flatnonzero(short)
            described = cut[: self.rejects.room]  # the rest are only counted
            for i in described:
                self.rejects.add(Reject(self.path, f"byte {base + int(offsets[idx[i]])}",
                                        RejectReason.TRUNCATED_PACKET,
                                        f"{int(plen[i])} UDP payload bytes",
                                        f"{int(avail[i])} captured"))
            self.rejects.add(RejectReason.TRUNCATED_PACKET, len(cut) - len(described))
            keep = ~short
            sel = idx[keep]
            avail, plen, start = avail[keep], plen[keep], start[keep]
            if not len(sel):
                return None
        if wide:  # the Nexmon header right after the UDP header, in the gathered rows
            head = pkt[:, l2 + 28:] if sel is None else pkt[sel, l2 + 28:]
        else:
            head = rows_at(start, HEADER_BYTES)

        def body(rows: np.ndarray | None, nbytes: int) -> np.ndarray:
            at = start + HEADER_BYTES if rows is None else start[rows] + HEADER_BYTES
            return rows_at(at, nbytes)

        rows, good, bad = decode_payloads(head, plen, chip=self.chip, body=body)
        idx = np.arange(n) if sel is None else sel
        for i, reason, expected, got in bad:
            if expected and self.rejects.room:
                self.rejects.add(Reject(self.path, f"byte {base + int(offsets[idx[i]])}",
                                        reason, expected, got))
            else:
                self.rejects.add(reason)
        if not len(good):
            return None
        whole = len(good) == len(idx)
        rec = idx if whole else idx[good]
        # bytes captured after the UDP datagram (Ethernet trailer), e.g. 4 zero bytes
        trailer = (avail - plen) if whole else (avail - plen)[good]
        rows["extra_bytes"] = rows["extra_bytes"] + trailer.astype(np.int32)
        rows["sec"] = hdr[rec, 0].astype(np.int64)
        rows["frac"] = hdr[rec, 1].astype(np.int64)
        return rows

    def chunks(self) -> Iterator[Frames]:
        rows = self._packet_chunks()
        if not self.assemble:
            self.links = None
            return rows
        self.links = LinkAssembler()
        return self.links.stream(rows)

    def _packet_chunks(self) -> Iterator[Frames]:
        """One row per CSI UDP packet (what ``chunks`` assembles)."""
        self.rejects = RejectLog()
        self.other_packets = 0
        self.other_streams = 0
        self.packets = 0
        t_first: tuple[int, int] | None = None
        t0 = None
        with open(self.path, "rb") as fh:
            order, unit, link = self._header(fh)
        meta = {"format": self.name, "link_type": link}
        for blk in record_blocks(self.path, start=24, block_bytes=BLOCK_BYTES, len_at=8,
                                 len_bytes=4, big_endian=order == "big", overhead=16,
                                 min_len=0, max_len=MAX_SNAPLEN):
            if isinstance(blk, tuple):  # the file ends inside a record
                at, head, have = blk
                need = (16 + int.from_bytes(head[8:12], order)) if have >= 12 else 16
                self.rejects.add(Reject(self.path, f"byte {at}", RejectReason.TRUNCATED_RECORD,
                                        f"a complete pcap record of {need} bytes",
                                        f"{have} bytes before end of file"))
                self.bytes_read = at + have
                continue
            end = int(blk.offsets[-1] + blk.sizes[-1])
            rows = self._decode(blk.arr[:end], blk.offsets, blk.sizes, blk.base, order, link)
            self.bytes_read = blk.base + end
            if rows is not None:
                rows, dropped = select_stream(rows, self.core, self.spatial)
                self.other_streams += dropped
            if rows is not None and len(rows["nfft"]):
                self.packets += len(rows["nfft"])
                if t_first is None:
                    t_first = (int(rows["sec"][0]), int(rows["frac"][0]))
                    t0 = datetime.fromtimestamp(t_first[0] + t_first[1] * unit, tz=timezone.utc)
                times = (rows["sec"] - t_first[0]) + (rows["frac"] - t_first[1]) * unit
                yield from frames_from_rows(rows, times.astype(np.float64), self.source,
                                            meta, self.chunk_size, t0, self.chip)

    def info(self) -> dict[str, Any]:
        """:meth:`CaptureReader.info` (``frames``: what :meth:`chunks` yields — Wi-Fi
        frames, or UDP packets with ``assemble=False``), plus ``other_packets`` (not CSI),
        ``other_streams`` (not the selected core/stream) and, when assembling, the link
        layout ``cores`` and ``spatial_streams``, ``wifi_frames`` (= ``frames``) and the
        ``incomplete_frames`` dropped. :attr:`packets` counts the CSI UDP packets read."""
        out = super().info()
        out.pop("links", None)  # (the chunks' meta["links"]: reported as below)
        out["other_packets"] = self.other_packets
        out["other_streams"] = self.other_streams
        if self.links is not None:
            out["cores"] = list(self.links.cores)
            out["spatial_streams"] = list(self.links.streams)
            out["wifi_frames"] = out["frames"]
            out["incomplete_frames"] = self.links.incomplete
        return out


def _udp_payload_offset(pkt: bytes, link: int) -> int | None:
    """Offset of the UDP payload in one captured packet, or None when it is not IPv4/UDP."""
    kind = LINKTYPES.get(link)
    if kind == "ethernet":
        if pkt[12:14] != b"\x08\x00":
            return None
        ip = 14
    elif kind == "linux_sll":
        if pkt[14:16] != b"\x08\x00":
            return None
        ip = 16
    else:
        ip = 0
    if len(pkt) < ip + 28 or pkt[ip] >> 4 != 4 or pkt[ip + 9] != 17:
        return None
    return ip + (pkt[ip] & 0x0F) * 4 + 8


# -- writer ------------------------------------------------------------------------------

#: chip name → chip version field.
CHIP_CODES = {name: code for code, name in CHIPS.items()}


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
