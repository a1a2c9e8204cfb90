"""PicoScenes ``.csi`` captures (Intel IWL5300, Intel AX200/AX210, Qualcomm QCA9300).

File layout (PicoScenes ``rxs_parsing_core`` / ``ModularPicoScenesRxFrame``): a sequence of
frames ``[uint32 LE frame_length][frame_length bytes]``; each frame starts with the magic
``0x20150315`` (uint32 LE), a frame version (uint16, 1) and a segment count (uint8), then
the segments, each ``[uint32 length][uint8 name_length][name][uint16 version][body]``,
then the 802.11 MPDU (its sequence-control field gives ``seq``).

Segments read here:

* ``RxSBasic`` (v1/v2/v3): device type, timestamp, frequency, bandwidth, packet format,
  MCS, stream counts, noise floor (dBm), RSSI (dBm) and per-chain RSSI.
* ``CSI`` (v1–v4): device type, packet format, bandwidth, carrier frequency, tones,
  streams, antenna selection, subcarrier index offset and the raw CSI buffer, decoded per
  device exactly as the PicoScenes parser does:

  - IWL5300 (``0x5300``): the 802.11n CSI Tool bit stream (30 groups), ``ntx`` from the
    buffer length; rx chains re-ordered by PicoScenes' antenna-selection rule (chain ``j``
    goes to slot ``rank(v[j])`` with ``v = [(sel & 1) + 1, ((sel >> 2) & 3) + 1,
    ((sel >> 4) & 3) + 1][:nrx]`` for ``nrx > 1``). This matches csiread; CSIKit applies the
    Linux CSI Tool permutation instead, so the two differ on 12 of 383 frames of
    ``rx_by_iwl5300.csi`` (antenna selection 18, 3 rx chains) — we follow the format's own
    parser.
  - QCA9300 (``0x9300``): packed 10-bit signed (imag, real) values, rx fastest, then tx,
    then tone. (CSIKit adds 1 + 1j to every value; the PicoScenes parser and csiread do
    not, nor do we.)
  - AX200/AX210 (``0x2000``/``0x2100``): int16 (real, imag), tone fastest, then tx, then
    rx; the pilot tones are dropped (PicoScenes' default ``skipPilotSubcarriers``), so HT20
    gives the 52 data tones, non-HT 20 MHz the 48 data tones. (CSIKit keeps the pilots.)

Frames: ``data`` complex64 ``(n, n_tones, n_rx, n_tx)``, ``subcarriers`` from the
802.11 tone plan plus the segment's subcarrier offset. A chunk never mixes layouts unless
``pad_to`` is given (then rows are zero-padded to ``(n_rx, n_tx)``). Per-row fields:
``timestamp`` (raw RxSBasic value), ``rssi`` and ``noise_floor`` (dBm), ``rssi_chain``
``(n, 3)`` (dBm), ``seq``, ``mcs``, ``packet_format``, ``cbw`` (MHz), ``carrier_freq``
(Hz), ``Nrx``, ``Ntx``, ``ant_sel``, ``device_type``, ``time_valid``.

Times: for Intel MVM devices (AX200/AX210) the ``muClock`` of the MVMExtra segment (uint32
µs, unwrapped; the RxSBasic timestamp is 0 for 778 of 885 frames of
``picoscenes_ax200_example.csi``); otherwise the RxSBasic ``timestamp`` (µs for IWL5300,
QCA9300 and AX210, ns for AX200), relative to the first frame. Rows whose clock is 0 or
does not advance keep the previous row's time and get ``time_valid`` False.
RSSI: RxSBasic v1/v2 store it relative to the noise floor; it is converted to dBm (as
csiread does); v3 stores dBm. ``seq`` is −1 for frames without a sequence-control field
(control frames).
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np

from sensing.errors import Reject, RejectLog
from sensing.formats.base import FORMATS, CaptureReader
from sensing.formats.intel5300 import (
    SUBCARRIERS_20MHZ,
    SUBCARRIERS_40MHZ,
    bfee_csi_len,
    gather_rows,
    record_blocks,
    unpack_bfee_csi,
)
from sensing.frames import Frames

MAGIC = 0x20150315
MAGIC_BYTES = struct.pack("<I", MAGIC)
BLOCK_BYTES = 1 << 20
MAX_FRAME = 1 << 24

DEVICES = {0x5300: "iwl5300", 0x9300: "qca9300", 0x2000: "ax200", 0x2100: "ax210",
           0x1234: "usrp"}
#: RxSBasic timestamp unit in seconds per device type.
TIMESTAMP_UNIT_S = {0x5300: 1e-6, 0x9300: 1e-6, 0x2100: 1e-6, 0x2000: 1e-9, 0x1234: 1e-9}
PACKET_FORMATS = {0: "NonHT", 1: "HT", 2: "VHT", 3: "HESU"}
#: MVMExtra v1 body offset of ``muClock`` (uint32, µs): a 2-byte header length, then the
#: Intel MVM CSI header, whose ``muClock`` is at byte 88.
MVM_CLOCK_AT = 90


def _span(a: int, b: int, skip: tuple[int, ...] = ()) -> np.ndarray:
    return np.array([k for k in range(a, b + 1) if k not in skip], dtype=np.int16)


#: (packet format, cbw MHz) → (all tone indices, pilot tone indices), 802.11 tone plans.
TONE_PLANS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {
    (0, 20): (_span(-26, 26, (0,)), np.array([-21, -7, 7, 21])),
    (1, 20): (_span(-28, 28, (0,)), np.array([-21, -7, 7, 21])),
    (2, 20): (_span(-28, 28, (0,)), np.array([-21, -7, 7, 21])),
    (1, 40): (_span(-58, 58, (-1, 0, 1)), np.array([-53, -25, -11, 11, 25, 53])),
    (2, 40): (_span(-58, 58, (-1, 0, 1)), np.array([-53, -25, -11, 11, 25, 53])),
    (2, 80): (_span(-122, 122, (-1, 0, 1)),
              np.array([-103, -75, -39, -11, 11, 39, 75, 103])),
    (3, 20): (_span(-122, 122, (-1, 0, 1)), np.array([-116, -90, -48, -22, 22, 48, 90, 116])),
    (3, 40): (_span(-244, 244, (-2, -1, 0, 1, 2)),
              np.array([-238, -212, -170, -144, -104, -78, -36, -10, 10, 36, 78, 104, 144, 170,
                        212, 238])),
    (3, 80): (_span(-500, 500, (-2, -1, 0, 1, 2)),
              np.array([-468, -400, -334, -266, -226, -158, -92, -24, 24, 92, 158, 226, 266,
                        334, 400, 468])),
}

#: (packet format, cbw) → positions of the data (non-pilot) tones in the tone plan.
DATA_TONES = {k: np.flatnonzero(~np.isin(tones, pilots)) for k, (tones, pilots) in TONE_PLANS.items()}

#: RxSBasic body: version → {field: (offset, dtype)}.
RXS_LAYOUT: dict[int, dict[str, tuple[int, str]]] = {
    1: {"device_type": (0, "<u2"), "timestamp": (2, "<u8"), "cbw": (13, "<u2"),
        "mcs": (17, "u1"), "noise_floor": (21, "i1"), "rssi": (22, "i1"),
        "rssi_ctl0": (23, "i1"), "rssi_ctl1": (24, "i1"), "rssi_ctl2": (25, "i1")},
    2: {"device_type": (0, "<u2"), "timestamp": (2, "<u8"), "cbw": (13, "<u2"),
        "mcs": (17, "u1"), "noise_floor": (23, "i1"), "rssi": (24, "i1"),
        "rssi_ctl0": (25, "i1"), "rssi_ctl1": (26, "i1"), "rssi_ctl2": (27, "i1")},
    3: {"device_type": (0, "<u2"), "timestamp": (2, "<u8"), "cbw": (14, "<u2"),
        "mcs": (21, "u1"), "noise_floor": (27, "i1"), "rssi": (28, "i1"),
        "rssi_ctl0": (29, "i1"), "rssi_ctl1": (30, "i1"), "rssi_ctl2": (31, "i1")},
}
RXS_MIN = {1: 26, 2: 28, 3: 32}

#: CSI body: version → {field: (offset, dtype)}; "data" is where the CSI buffer starts.
CSI_LAYOUT: dict[int, dict[str, tuple[int, str]]] = {
    1: {"device_type": (0, "<u2"), "packet_format": (2, "i1"), "cbw": (3, "<u2"),
        "carrier_freq": (5, "<u8"), "num_tone": (25, "<u2"), "num_sts": (27, "u1"),
        "num_rx": (28, "u1"), "num_ess": (29, "u1"), "ant_sel": (30, "u1"),
        "buf_len": (31, "<u4"), "data": (35, "")},
    2: {"device_type": (0, "<u2"), "packet_format": (2, "i1"), "cbw": (3, "<u2"),
        "carrier_freq": (5, "<u8"), "num_tone": (25, "<u2"), "num_sts": (27, "u1"),
        "num_rx": (28, "u1"), "num_ess": (29, "u1"), "ant_sel": (30, "u1"),
        "sc_offset": (31, "<i2"), "buf_len": (33, "<u4"), "data": (37, "")},
    3: {"device_type": (0, "<u2"), "packet_format": (2, "i1"), "cbw": (3, "<u2"),
        "carrier_freq": (5, "<u8"), "num_tone": (25, "<u2"), "num_sts": (27, "u1"),
        "num_rx": (28, "u1"), "num_ess": (29, "u1"), "ant_sel": (32, "u1"),
        "sc_offset": (33, "<i2"), "buf_len": (35, "<u4"), "data": (39, "")},
    4: {"device_type": (0, "<u2"), "packet_format": (3, "i1"), "cbw": (4, "<u2"),
        "carrier_freq": (6, "<u8"), "num_tone": (26, "<u2"), "num_sts": (28, "u1"),
        "num_rx": (29, "u1"), "num_ess": (30, "u1"), "ant_sel": (33, "u1"),
        "sc_offset": (34, "<i2"), "buf_len": (36, "<u4"), "data": (40, "")},
}


class LayoutError(ValueError):
    """A frame whose segment structure is broken: ``args == (expected, got)``."""


def segment_layout(frame: bytes) -> tuple[tuple[str, int, int, int, int], ...]:
    """Segments of one frame: ``(name, version, body_offset, body_length, header_offset)``
    each, ending with ``("MPDU", 0, offset, length, offset)``.

    Raises
    ------
    LayoutError
        With ``(expected, got)`` when the frame header or a segment header is broken.
    """
    b = frame
    if len(b) < 11:
        raise LayoutError("a frame header of 11 bytes", f"{len(b)} bytes")
    if b[4:8] != MAGIC_BYTES:
        raise LayoutError(f"magic 0x{MAGIC:08x}", f"0x{int.from_bytes(b[4:8], 'little'):08x}")
    n_seg = b[10]
    pos = 11
    out = []
    for _ in range(n_seg):
        if pos + 7 > len(b):
            raise LayoutError(f"a segment header at frame byte {pos}", f"{len(b) - pos} bytes")
        seg_len = int.from_bytes(b[pos:pos + 4], "little")
        name_len = b[pos + 4]
        end = pos + 4 + seg_len
        hdr = pos + 5 + name_len + 2
        if end > len(b) or hdr > end:
            raise LayoutError(f"a segment within the frame at frame byte {pos}",
                              f"a segment of {seg_len} bytes in a frame of {len(b)}")
        name = b[pos + 5: pos + 5 + name_len].rstrip(b"\x00").decode("ascii", "replace")
        version = int.from_bytes(b[hdr - 2: hdr], "little")
        out.append((name, version, hdr, end - hdr, pos))
        pos = end
    out.append(("MPDU", 0, pos, len(b) - pos, pos))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def _layout_columns(layout: tuple[tuple[str, int, int, int, int], ...]) -> np.ndarray:
    """Frame bytes that must agree between frames sharing ``layout``: frame version and
    segment count, and every segment header (length, name, version). The frame length
    (bytes 0–3) and the MPDU may differ."""
    cols = [np.arange(4, 11)] + [np.arange(start, body) for _, _, body, _, start in layout[:-1]]
    return np.concatenate(cols)


@functools.lru_cache(maxsize=256)
def _row_dtype(spec: tuple[tuple[str, int, str], ...], width: int) -> np.dtype:
    """Structured dtype of a ``width``-byte frame row with the fields ``(name, offset,
    dtype)``: a view of a uint8 ``(n, width)`` array gives every field without copies."""
    return np.dtype({"names": [f[0] for f in spec], "formats": [f[2] for f in spec],
                     "offsets": [f[1] for f in spec], "itemsize": width})


@functools.lru_cache(maxsize=64)
def _qca_positions(n_tone: int, n_rx: int, n_tx: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte index and bit shift of every 10-bit value, in output order
    ``(tone, rx, tx, re/im)``. The stream holds (imag, real) pairs; value pair ``p`` is
    rx ``p % n_rx``, tx ``(p // n_rx) % n_tx``, tone ``p // (n_rx n_tx)``."""
    tone, rx, tx = np.meshgrid(np.arange(n_tone), np.arange(n_rx), np.arange(n_tx),
                               indexing="ij")
    pair = (tone * n_tx + tx) * n_rx + rx
    value = np.stack([2 * pair + 1, 2 * pair], axis=-1).ravel()  # real, imag
    bit = 10 * value
    return bit // 8, (bit % 8).astype(np.uint16)


def qca9300_unpack(buf: np.ndarray, n_tone: int, n_rx: int, n_tx: int) -> np.ndarray:
    """Decode QCA9300 packed 10-bit CSI: uint8 ``(n, >= 2.5 values)`` → ``(n, tone, rx, tx)``."""
    n = len(buf)
    byte, shift = _qca_positions(n_tone, n_rx, n_tx)
    # 10-bit value v starts at bit 10 v, i.e. shift r = 10 v mod 8 ∈ {0, 2, 4, 6} inside
    # byte k = 10 v // 8: r + 10 ≤ 16, so the 16-bit window of bytes k, k+1 holds it
    lo = np.take(buf, byte, axis=1).astype(np.uint16)
    hi = np.take(buf, byte + 1, axis=1).astype(np.uint16)
    hi <<= 8
    lo |= hi
    lo >>= shift
    lo &= 0x3FF
    vals = lo.view(np.int16)
    vals ^= 0x200  # sign-extend 10 bits: (v ^ 0x200) - 0x200
    vals -= 0x200
    out = np.empty((n, n_tone, n_rx, n_tx), dtype=np.complex64)
    out.view(np.float32).reshape(n, -1)[...] = vals
    return out


@functools.lru_cache(maxsize=64)
def _mvm_columns(n_tone: int, n_rx: int, n_tx: int, keep: tuple[int, ...]) -> np.ndarray:
    """Position (in (re, im) int16 pairs) of every kept tone in output order
    ``(tone, rx, tx)``; the buffer holds tone fastest, then tx, then rx."""
    k = np.asarray(keep)[:, None, None]
    r = np.arange(n_rx)[None, :, None]
    t = np.arange(n_tx)[None, None, :]
    return ((r * n_tx + t) * n_tone + k).ravel()


def mvm_unpack(buf: np.ndarray, n_tone: int, n_rx: int, n_tx: int, keep: np.ndarray) -> np.ndarray:
    """Decode Intel MVM (AX200/AX210) int16 CSI, tone fastest, then tx, then rx; keep the
    tone positions ``keep``. Returns complex64 ``(n, len(keep), rx, tx)`` (C-contiguous).

    Each (re, im) pair is moved as one 4-byte word into output order, then the pairs are
    converted to float in one pass."""
    n = len(buf)
    pairs = buf[:, : 4 * n_tone * n_rx * n_tx]
    if pairs.strides[-1] != 1:
        pairs = np.ascontiguousarray(pairs)
    cols = _mvm_columns(n_tone, n_rx, n_tx, tuple(np.asarray(keep).tolist()))
    words = np.take(pairs.view("<i4"), cols, axis=1)  # C-contiguous (n, len(cols))
    out = np.empty((n, len(keep), n_rx, n_tx), dtype=np.complex64)
    out.view(np.float32).reshape(n, -1)[...] = words.view("<i2")
    return out


def iwl5300_rx_order(ant_sel: int, n_rx: int) -> np.ndarray | None:
    """Output slot order of the rx chains by PicoScenes' rule (see module doc)."""
    if n_rx < 2:
        return None
    v = [(ant_sel & 1) + 1, ((ant_sel >> 2) & 3) + 1, ((ant_sel >> 4) & 3) + 1][:n_rx]
    order = np.argsort(v, kind="stable")
    return None if (order == np.arange(n_rx)).all() else order


@FORMATS.register("picoscenes")
class PicoScenesReader(CaptureReader):
    """Reader for PicoScenes ``.csi`` files (IWL5300, QCA9300, AX200/AX210 CSI).

    Parameters
    ----------
    path, chunk_size, source
        See :class:`~sensing.formats.base.CaptureReader`.
    pad_to : (int, int), optional
        Zero-pad every row to ``(n_rx, n_tx)`` so chunks of one tone layout share a shape.
    """

    name = "picoscenes"
    modality = "wifi_csi"
    extensions = (".csi",)
    description = "PicoScenes .csi frames (RxSBasic + CSI segments; IWL5300, QCA9300, AX200/AX210)"

    def __init__(
        self, path: str | os.PathLike, *, chunk_size: int = 256, source: str | None = None,
        pad_to: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        self.pad_to = pad_to
        self.skipped_frames = 0

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if len(head) < 11 or head[4:8] != MAGIC_BYTES or head[8:10] != b"\x01\x00":
            return False
        size = 4 + int.from_bytes(head[:4], "little")
        if size > len(head):
            return True  # a long first frame: the magic and version are enough
        try:
            segment_layout(head[:size])
        except LayoutError:
            return False
        return True

    def _reject(self, offset: int, reason: str, expected: str, got: str) -> None:
        self.rejects.add(Reject(self.path, f"byte {offset}", reason, expected, got))

    def _decode_group(self, rows: np.ndarray, offs: np.ndarray, layout,
                      seq: np.ndarray) -> list[dict[str, Any]] | None:
        """Decode frames ``rows`` (C-contiguous uint8 ``(n, width)``: every segment) that
        share one segment layout; ``seq`` is their MPDU sequence number (−1: none)."""
        segs = {name: (ver, body, length) for name, ver, body, length, _ in layout}
        if "CSI" not in segs:
            self.skipped_frames += len(rows)
            return None
        out: dict[str, np.ndarray] = {}
        n = len(rows)
        ver, body, length = segs["CSI"]
        if ver not in CSI_LAYOUT:
            for o in offs[: self.rejects.keep]:
                self._reject(int(o), "csi_version", "CSI segment version 1-4", str(ver))
            return None
        lay = CSI_LAYOUT[ver]
        spec = [(k, body + o, d) for k, (o, d) in lay.items() if k != "data"]
        rxs = segs.get("RxSBasic")
        has_rxs = rxs is not None and rxs[0] in RXS_LAYOUT and rxs[2] >= RXS_MIN[rxs[0]]
        if has_rxs:
            spec += [("rx_" + k, rxs[1] + o, d) for k, (o, d) in RXS_LAYOUT[rxs[0]].items()
                     if not k.startswith("rssi_ctl")]
            # the three per-chain RSSI bytes are adjacent: one (n, 3) int8 field
            spec.append(("rx_chains", rxs[1] + RXS_LAYOUT[rxs[0]]["rssi_ctl0"][0], "3i1"))
        mvm = segs.get("MVMExtra")
        has_mvm = mvm is not None and mvm[2] >= MVM_CLOCK_AT + 4
        if has_mvm:
            spec.append(("mvm_clock", mvm[1] + MVM_CLOCK_AT, "<u4"))
        rec = rows.view(_row_dtype(tuple(spec), rows.shape[1]))[:, 0]
        if has_rxs:
            out["timestamp"] = rec["rx_timestamp"]
            chains = rec["rx_chains"]
            noise = rec["rx_noise_floor"]
            if rxs[0] < 3:  # v1/v2 store RSSI relative to the noise floor (dB above it)
                nf = noise.astype(np.int16)
                out["rssi"] = (rec["rx_rssi"] + nf).astype(np.int16)
                out["rssi_chain"] = np.where(chains != 0, chains + nf[:, None], 0).astype(np.int16)
            else:
                out["rssi"] = rec["rx_rssi"].astype(np.int16)
                out["rssi_chain"] = chains.astype(np.int16)
            out["noise_floor"] = noise
            out["mcs"] = rec["rx_mcs"]
        else:
            out["timestamp"] = np.zeros(n, np.uint64)
            out["rssi"] = np.zeros(n, np.int16)
            out["noise_floor"] = np.zeros(n, np.int8)
            out["rssi_chain"] = np.zeros((n, 3), np.int16)
            out["mcs"] = np.zeros(n, np.uint8)
        if has_mvm:
            out["mvm_clock"] = rec["mvm_clock"].astype(np.int64)
        else:
            out["mvm_clock"] = np.full(n, -1, np.int64)
        f = {k: rec[k] for k, _, _ in spec if not k.startswith(("rx_", "mvm_"))}
        if "sc_offset" not in f:
            f["sc_offset"] = np.zeros(n, np.int16)
        data_at = body + lay["data"][0]
        out["seq"] = seq
        room = body + length - data_at
        head = rows[:, body: data_at]
        if bool((head == head[0]).all()):  # identical CSI headers: one set of dimensions
            key = np.array([[int(f[k][0]) for k in (
                "device_type", "packet_format", "cbw", "num_tone", "num_sts", "num_rx", "buf_len",
                "ant_sel", "sc_offset")]])
        else:
            dev = f["device_type"].astype(np.int64)
            key = np.stack([dev, f["packet_format"].astype(np.int64), f["cbw"].astype(np.int64),
                            f["num_tone"].astype(np.int64), f["num_sts"].astype(np.int64),
                            f["num_rx"].astype(np.int64), f["buf_len"].astype(np.int64),
                            f["ant_sel"].astype(np.int64), f["sc_offset"].astype(np.int64)], 1)
        if len(key) == 1 or (key == key[0]).all():  # usually: one device, one set of dimensions
            members = [(tuple(key[0].tolist()), np.arange(n))]
        else:
            found: dict[tuple[int, ...], list[int]] = {}
            for i, k in enumerate(map(tuple, key.tolist())):
                found.setdefault(k, []).append(i)
            members = [(k, np.array(v)) for k, v in found.items()]
        parts = []
        for k, sel in members:
            res = self._decode_csi(rows[sel] if len(members) > 1 else rows, data_at, room,
                                   *k, offs[sel])
            if res is None:
                continue
            csi, sub, nrx, ntx = res
            parts.append((sel, csi, sub, nrx, ntx))
        if not parts:
            return None
        groups = []
        whole = len(parts) == 1 and len(parts[0][0]) == n
        for sel, csi, sub, nrx, ntx in parts:
            # (views into ``rows`` are copied: chunks get compact arrays of their own)
            g = {k: ((v.copy() if v.base is not None else v) if whole else v[sel])
                 for k, v in out.items()}
            g.update(
                csi=csi, offset=offs[sel], subcarriers=sub,
                Nrx=np.full(len(sel), nrx, np.uint8), Ntx=np.full(len(sel), ntx, np.uint8),
                **{k: (f[k].copy() if whole else f[k][sel]) for k in (
                    "packet_format", "cbw", "carrier_freq", "ant_sel", "device_type")},
            )
            groups.append(g)
        return groups

    def _decode_csi(self, rows, data_at, room, dev, fmt, cbw, n_tone, n_sts, n_rx, buf_len,
                    ant_sel, sc_offset, offs):
        """CSI of frames sharing device and dimensions; ``(csi, subcarriers, nrx, ntx)``."""
        def bad(reason: str, expected: str, got: str) -> None:
            for o in offs[: self.rejects.keep]:
                self._reject(int(o), reason, expected, got)
            if len(offs) > self.rejects.keep:
                self.rejects.counts[reason] += len(offs) - self.rejects.keep

        if buf_len > room:
            bad("short_csi", f"{buf_len} CSI bytes inside the segment", f"{room}")
            return None
        buf = rows[:, data_at: data_at + buf_len]
        if not 1 <= n_rx <= 4:
            bad("bad_dimensions", "1..4 rx chains", str(n_rx))
            return None
        if dev == 0x5300:
            ntx = next((t for t in (1, 2, 3) if n_rx <= 3 and bfee_csi_len(n_rx, t) == buf_len),
                       None)
            if ntx is None or n_tone != 30:
                bad("bad_dimensions", "IWL5300 CSI of 30 tones and (30*(16*nrx*ntx+3)+7)//8 "
                    "bytes", f"{n_tone} tones, {buf_len} bytes for {n_rx} rx")
                return None
            csi = unpack_bfee_csi(buf, n_rx, ntx, iwl5300_rx_order(ant_sel, n_rx))
            sub = SUBCARRIERS_40MHZ if cbw == 40 else SUBCARRIERS_20MHZ
            return csi, (sub + sc_offset).astype(np.int16), n_rx, ntx
        if dev == 0x9300:
            ntx = n_sts
            if ntx < 1 or (n_tone * n_rx * ntx // 2) * 5 > buf_len or n_tone * n_rx * ntx % 2:
                bad("bad_dimensions", "QCA9300 CSI of 10-bit values filling the buffer",
                    f"{n_tone} tones x {n_rx} rx x {ntx} tx in {buf_len} bytes")
                return None
            csi = qca9300_unpack(buf, n_tone, n_rx, ntx)
            plan = {20: _span(-28, 28, (0,)), 40: _span(-58, 58, (-1, 0, 1))}.get(cbw)
            sub = plan if plan is not None and len(plan) == n_tone else np.arange(n_tone)
            return csi, (sub + sc_offset).astype(np.int16), n_rx, ntx
        if dev in (0x2000, 0x2100):
            ntx = n_sts
            plan = TONE_PLANS.get((fmt, cbw))
            if ntx < 1 or ntx * n_rx * n_tone * 4 != buf_len or plan is None \
                    or len(plan[0]) != n_tone:
                bad("bad_dimensions", "Intel MVM CSI of tx*rx*tones*4 bytes and a known tone "
                    "plan", f"format {fmt}, {cbw} MHz, {n_tone} tones x {n_rx} rx x {ntx} tx, "
                    f"{buf_len} bytes")
                return None
            tones, _ = plan
            keep = DATA_TONES[(fmt, cbw)]
            csi = mvm_unpack(buf, n_tone, n_rx, ntx, keep)
            return csi, (tones[keep] + sc_offset).astype(np.int16), n_rx, ntx
        bad("unsupported_device", "device type 0x5300, 0x9300, 0x2000 or 0x2100",
            f"0x{dev:04x} ({DEVICES.get(dev, 'unknown')})")
        return None

    def _blocks(self) -> Iterator[list[dict[str, Any]]]:
        for blk in record_blocks(self.path, start=0, block_bytes=BLOCK_BYTES, len_at=0,
                                 len_bytes=4, big_endian=False, overhead=4, min_len=7,
                                 max_len=MAX_FRAME):
            if isinstance(blk, tuple):  # the file ends inside a frame
                at, head, have = blk
                need = 4 + int.from_bytes(head[:4], "little") if have >= 4 else 4
                self._reject(at, "truncated_frame", f"a complete frame of {need} bytes",
                             f"{have} bytes before end of file")
                self.bytes_read = at + have
                continue
            groups = self._decode_block(blk.buf, blk.arr, blk.offsets, blk.sizes, blk.base)
            self.bytes_read = blk.base + int(blk.offsets[-1] + blk.sizes[-1])
            if groups:
                groups.sort(key=lambda g: int(g["offset"][0]))
                yield groups

    def _decode_block(
        self, buf: bytes, arr: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, base: int
    ) -> list[dict[str, Any]]:
        """Group the frames of a block by segment layout and decode each group at once.

        A group is every frame whose segment headers (lengths, names, versions) equal those
        of its first frame, compared on those header bytes only; the frame length (i.e. the
        MPDU length) may differ. Each group's segments are gathered as one row per frame.
        """
        out: list[dict[str, Any]] = []
        n = len(offsets)
        done = np.zeros(n, dtype=bool)
        todo = np.arange(n)
        while len(todo):
            i0 = int(todo[0])
            o0, s0 = int(offsets[i0]), int(sizes[i0])
            try:
                layout = segment_layout(bytes(buf[o0: o0 + s0]))
            except LayoutError as exc:
                self._reject(base + o0, "bad_frame", *exc.args)
                todo = todo[1:]
                continue
            mpdu_at = layout[-1][2]
            cand = todo[sizes[todo] >= mpdu_at] if int(sizes[todo].min()) < mpdu_at else todo
            # likely members: the last segment header (length, name) matches
            key_at, key_end = (layout[-2][4], min(layout[-2][4] + 8, layout[-2][2])) \
                if len(layout) > 1 else (4, 11)
            key = gather_rows(arr, offsets[cand] + key_at, key_end - key_at)
            likely = (key == key[0]).all(axis=1)
            members = cand if bool(likely.all()) else cand[likely]
            # one row per member: every segment, plus the MPDU through its sequence-control
            # field (bytes 22-23) when all have one; then every segment header byte is checked
            width = mpdu_at + 24 if int(sizes[members].min()) >= mpdu_at + 24 else mpdu_at
            rows = gather_rows(arr, offsets[members], width)
            heads = rows[:, _layout_columns(layout)]
            same = (heads == heads[0]).all(axis=1)
            if not bool(same.all()):
                members = members[same]
                rows = rows[same]
            starts = offsets[members]
            with_seq = width == mpdu_at + 24
            if with_seq:
                seq = (rows[:, mpdu_at + 22: mpdu_at + 24].view("<u2")[:, 0] >> 4).astype(np.int32)
            else:
                at = np.minimum(starts + (mpdu_at + 22), len(arr) - 2)
                seq = (arr[at].astype(np.int32) | (arr[at + 1].astype(np.int32) << 8)) >> 4
                seq[sizes[members] < mpdu_at + 24] = -1
            groups = self._decode_group(rows, base + starts, layout, seq)
            if groups:
                out.extend(groups)
            if len(members) == len(todo):
                break
            done[members] = True
            todo = todo[~done[todo]]
        return out

    def chunks(self) -> Iterator[Frames]:
        self.rejects = RejectLog()
        self.skipped_frames = 0
        state: dict[str, Any] = {}
        for groups in self._blocks():
            layouts, row_layout = _merge(groups, self.pad_to)
            _set_times(layouts, row_layout, state)
            yield from self._frames(layouts, row_layout)

    def _frames(self, layouts: list[dict[str, Any]], row_layout: np.ndarray | None
                ) -> Iterator[Frames]:
        """Cut a block into chunks: a new chunk at every change of layout (in file order)
        and every ``chunk_size`` rows. A run of rows of one layout is a contiguous range of
        that layout's arrays, so chunks are views (no copies)."""
        if row_layout is None:
            runs = [(0, len(layouts[0]["times_s"]))]
        else:
            cuts = np.flatnonzero(row_layout[1:] != row_layout[:-1]) + 1
            bounds = [0, *cuts.tolist(), len(row_layout)]
            runs = list(zip(bounds[:-1], bounds[1:], strict=True))
        at = [0] * len(layouts)  # rows of each layout already emitted
        step = self.chunk_size
        name = self.name
        source = self.source
        per_layout = [(d["csi"], d["times_s"], d["subcarriers"], [(f, d[f]) for f in _CHUNK_FIELDS],
                       d["device_type"].tolist(), d["cbw"].tolist(), d["carrier_freq"].tolist(),
                       d["packet_format"].tolist())
                      for d in layouts]
        which = [0] * len(runs) if row_layout is None else row_layout[
            [a for a, _ in runs]].tolist()
        for (a, b), k in zip(runs, which, strict=True):
            csi, times, sub, cols, dev_a, cbw_a, freq_a, fmt_a = per_layout[k]
            lo = at[k]
            end = at[k] = lo + (b - a)
            while lo < end:  # (the per-chunk cost matters: files can alternate layouts)
                hi = lo + step if lo + step < end else end
                rows = slice(lo, hi)
                dev = dev_a[hi - 1]
                yield Frames(
                    data=csi[rows], times_s=times[rows], fs_hz=None,
                    modality="wifi_csi", source=source, subcarriers=sub,
                    fields={f: v[rows] for f, v in cols},
                    meta={"format": name,
                          "chip": DEVICES[dev] if dev in DEVICES else f"0x{dev:04x}",
                          "bandwidth_mhz": cbw_a[hi - 1], "carrier_freq_hz": freq_a[hi - 1],
                          "packet_format": PACKET_FORMATS.get(fmt_a[hi - 1], "other")},
                )
                lo = hi

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["frames_without_csi"] = self.skipped_frames
        return out


#: Per-row fields of every chunk.
_CHUNK_FIELDS = ("timestamp", "rssi", "noise_floor", "rssi_chain", "seq", "mcs", "packet_format",
                 "cbw", "carrier_freq", "Nrx", "Ntx", "ant_sel", "device_type", "time_valid")


def _merge(
    groups: list[dict[str, Any]], pad_to: tuple[int, int] | None
) -> tuple[list[dict[str, Any]], np.ndarray | None]:
    """Gather the decoded groups of a block by chunk layout.

    A chunk layout is the subcarrier list plus, without ``pad_to``, the antenna shape.

    Returns
    -------
    layouts : list of dict
        Per layout: the per-row arrays of its rows in file order (``csi`` C-contiguous,
        zero-padded to ``pad_to`` and to the largest antenna shape of the block when
        ``pad_to`` is given) and its ``subcarriers``.
    row_layout : numpy.ndarray or None
        Layout index of every row of the block in file order (None: a single layout).
    """
    if pad_to:
        r = max(max(g["csi"].shape[2] for g in groups), pad_to[0])
        t = max(max(g["csi"].shape[3] for g in groups), pad_to[1])
    ids: dict[tuple, int] = {}
    members: list[list[dict[str, Any]]] = []
    for g in groups:
        c = g["csi"]
        lk = (tuple(g["subcarriers"].tolist()),) + (() if pad_to else c.shape[2:])
        k = ids.setdefault(lk, len(ids))
        if k == len(members):
            members.append([])
        members[k].append(g)
    layouts: list[dict[str, Any]] = []
    for gs in members:
        c0 = gs[0]["csi"]
        shape = (c0.shape[1], r, t) if pad_to else c0.shape[1:]
        if len(gs) == 1 and c0.shape[1:] == shape:
            d = {k: v for k, v in gs[0].items()}
            d["csi"] = np.ascontiguousarray(c0)
        else:
            m = sum(len(g["offset"]) for g in gs)
            same = all(g["csi"].shape[1:] == shape for g in gs)
            csi = np.empty((m,) + shape, np.complex64) if same else \
                np.zeros((m,) + shape, np.complex64)
            i = 0
            for g in gs:
                c = g["csi"]
                csi[i: i + len(c), :, : c.shape[2], : c.shape[3]] = c
                i += len(c)
            d = {k: np.concatenate([g[k] for g in gs]) for k in gs[0]
                 if k not in ("csi", "subcarriers")}
            d["csi"] = csi
            d["subcarriers"] = gs[0]["subcarriers"]
            offs = d["offset"]
            if not (offs[1:] > offs[:-1]).all():
                order = np.argsort(offs, kind="stable")
                d = {k: (v if k == "subcarriers" else v[order]) for k, v in d.items()}
        layouts.append(d)
    if len(layouts) == 1:
        return layouts, None
    offs = np.concatenate([d["offset"] for d in layouts])
    which = np.repeat(np.arange(len(layouts)), [len(d["offset"]) for d in layouts])
    return layouts, which[np.argsort(offs, kind="stable")]


def _set_times(layouts: list[dict[str, Any]], row_layout: np.ndarray | None,
               state: dict[str, Any]) -> None:
    """Set ``times_s`` and ``time_valid`` of every layout (clocks are read in file order)."""
    if row_layout is None:
        d = layouts[0]
        d["times_s"], d["time_valid"] = _times(d, state)
        return
    where = [row_layout == k for k in range(len(layouts))]
    rows: dict[str, np.ndarray] = {}
    for key in ("timestamp", "mvm_clock", "device_type"):
        col = np.empty(len(row_layout), layouts[0][key].dtype)
        for d, w in zip(layouts, where, strict=True):
            col[w] = d[key]
        rows[key] = col
    times, valid = _times(rows, state)
    for d, w in zip(layouts, where, strict=True):
        d["times_s"], d["time_valid"] = times[w], valid[w]


def _times(rows: dict[str, Any], state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Stream seconds of each row and whether its clock was valid (see module doc)."""
    n = len(rows["timestamp"])
    if not n:
        return np.empty(0), np.empty(0, bool)
    t_prev = state.get("t", 0.0)
    mvm = rows["mvm_clock"]
    if (mvm >= 0).all():  # Intel MVM: 32-bit µs clock, unwrapped
        prev = state.get("mvm_prev")
        first = mvm[:1] if prev is None else np.array([prev], np.int64)
        d = np.diff(np.concatenate([first, mvm])) % (1 << 32)
        valid = (d > 0) & (d < (1 << 31))
        if prev is None:
            valid[0] = True
        step = np.where(valid, d, 0).astype(np.float64) * 1e-6
        times = t_prev + np.cumsum(step)
        state["mvm_prev"] = int(mvm[-1])
        state["t"] = float(times[-1])
        return times, valid
    ts = rows["timestamp"].astype(np.uint64)
    units = [TIMESTAMP_UNIT_S.get(int(d), 1e-6) for d in np.unique(rows["device_type"])]
    unit = min(units)
    ts_last = state.get("ts", 0)
    prev_max = np.maximum.accumulate(
        np.concatenate([np.array([ts_last], np.uint64), ts]))[:-1]
    valid = (ts > 0) & (ts > prev_max)
    if state.get("ts0") is None and valid.any():
        state["ts0"] = int(ts[np.argmax(valid)])
        state["t_offset"] = t_prev
    if valid.any():
        ts0 = np.uint64(state["ts0"])
        rel = np.where(ts >= ts0, ts - ts0, 0).astype(np.float64) * unit + state["t_offset"]
    else:
        rel = np.zeros(n)
    last_valid = np.maximum.accumulate(np.where(valid, np.arange(n), -1))
    times = np.where(last_valid >= 0, rel[np.maximum(last_valid, 0)], t_prev)
    state["t"] = float(times[-1])
    state["ts"] = max(int(prev_max[-1]), int(ts[-1]))
    return times, valid
