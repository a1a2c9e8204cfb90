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


def _col(rows: np.ndarray, off: int, dtype: str) -> np.ndarray:
    """Little-endian field of each row of a uint8 ``(n, width)`` array at byte ``off``."""
    dt = np.dtype(dtype)
    return np.ascontiguousarray(rows[:, off: off + dt.itemsize]).view(dt)[:, 0]


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


def _layout_mask(layout: tuple[tuple[str, int, int, int, int], ...], size: int) -> np.ndarray:
    """Bytes that must agree between frames sharing ``layout``: the frame header and every
    segment header (length, name, version)."""
    mask = np.zeros(size, dtype=bool)
    mask[:11] = True
    for _, _, body, _, start in layout[:-1]:
        mask[start:body] = True
    return mask


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


def mvm_unpack(buf: np.ndarray, n_tone: int, n_rx: int, n_tx: int, keep: np.ndarray) -> np.ndarray:
    """Decode Intel MVM (AX200/AX210) int16 CSI, tone fastest, then tx, then rx; keep the
    tone positions ``keep``. Returns ``(n, len(keep), rx, tx)``."""
    n = len(buf)
    iq = np.ascontiguousarray(buf[:, : 4 * n_tone * n_rx * n_tx]).view("<i2").astype(np.float32)
    csi = iq.view(np.complex64).reshape(n, n_rx, n_tx, n_tone)[..., keep]
    return csi.transpose(0, 3, 1, 2)


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

    def _decode_group(self, rows: np.ndarray, offs: np.ndarray, layout) -> dict | None:
        """Decode frames ``rows`` (uint8 ``(n, size)``) that share one segment layout."""
        segs = {name: (ver, body, length) for name, ver, body, length, _ in layout}
        if "CSI" not in segs:
            self.skipped_frames += len(rows)
            return None
        out: dict[str, np.ndarray] = {}
        n = len(rows)
        if "RxSBasic" in segs and segs["RxSBasic"][0] in RXS_LAYOUT \
                and segs["RxSBasic"][2] >= RXS_MIN[segs["RxSBasic"][0]]:
            ver, body, _ = segs["RxSBasic"]
            rx = {k: _col(rows, body + o, d) for k, (o, d) in RXS_LAYOUT[ver].items()}
            out["timestamp"] = rx["timestamp"]
            chains = np.stack([rx["rssi_ctl0"], rx["rssi_ctl1"], rx["rssi_ctl2"]], 1)
            if ver < 3:  # v1/v2 store RSSI relative to the noise floor (dB above it)
                nf = rx["noise_floor"].astype(np.int16)
                out["rssi"] = (rx["rssi"] + nf).astype(np.int16)
                out["rssi_chain"] = np.where(chains != 0, chains + nf[:, None], 0).astype(np.int16)
            else:
                out["rssi"] = rx["rssi"].astype(np.int16)
                out["rssi_chain"] = chains.astype(np.int16)
            out["noise_floor"] = rx["noise_floor"]
            out["mcs"] = rx["mcs"]
        else:
            out["timestamp"] = np.zeros(n, np.uint64)
            out["rssi"] = np.zeros(n, np.int16)
            out["noise_floor"] = np.zeros(n, np.int8)
            out["rssi_chain"] = np.zeros((n, 3), np.int16)
            out["mcs"] = np.zeros(n, np.uint8)
        mvm = segs.get("MVMExtra")
        if mvm is not None and mvm[2] >= MVM_CLOCK_AT + 4:
            out["mvm_clock"] = _col(rows, mvm[1] + MVM_CLOCK_AT, "<u4").astype(np.int64)
        else:
            out["mvm_clock"] = np.full(n, -1, np.int64)
        ver, body, length = segs["CSI"]
        if ver not in CSI_LAYOUT:
            for o in offs[: self.rejects.keep]:
                self._reject(int(o), "csi_version", "CSI segment version 1-4", str(ver))
            return None
        lay = CSI_LAYOUT[ver]
        f = {k: _col(rows, body + o, d) for k, (o, d) in lay.items() if k != "data"}
        if "sc_offset" not in f:
            f["sc_offset"] = np.zeros(n, np.int16)
        data_at = body + lay["data"][0]
        mpdu = segs["MPDU"]
        if mpdu[2] >= 24:
            out["seq"] = (_col(rows, mpdu[1] + 22, "<u2") >> 4).astype(np.int32)
        else:
            out["seq"] = np.full(n, -1, np.int32)
        room = body + length - data_at
        dev = f["device_type"].astype(np.int64)
        key = np.stack([dev, f["packet_format"].astype(np.int64), f["cbw"].astype(np.int64),
                        f["num_tone"].astype(np.int64), f["num_sts"].astype(np.int64),
                        f["num_rx"].astype(np.int64), f["buf_len"].astype(np.int64),
                        f["ant_sel"].astype(np.int64), f["sc_offset"].astype(np.int64)], 1)
        if (key == key[0]).all():  # the usual case: one device, one set of dimensions
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
        for sel, csi, sub, nrx, ntx in parts:
            g = {k: v[sel] for k, v in out.items()}
            g.update(
                csi=csi, offset=offs[sel], subcarriers=sub,
                Nrx=np.full(len(sel), nrx, np.uint8), Ntx=np.full(len(sel), ntx, np.uint8),
                packet_format=f["packet_format"][sel], cbw=f["cbw"][sel],
                carrier_freq=f["carrier_freq"][sel], ant_sel=f["ant_sel"][sel],
                device_type=f["device_type"][sel],
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
        of its first frame; only the bytes up to the MPDU sequence-control field are
        gathered (one row per frame), so frames whose MPDU lengths differ share a group.
        """
        out: list[dict[str, Any]] = []
        todo = np.arange(len(offsets))
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
            width = min(s0, mpdu_at + 24)  # through the sequence-control field
            layout = layout[:-1] + (("MPDU", 0, mpdu_at, width - mpdu_at, mpdu_at),)
            cand = todo[sizes[todo] >= width]
            rows = np.lib.stride_tricks.sliding_window_view(arr, width)[offsets[cand]]
            mask = _layout_mask(layout, width)
            same = (rows[:, mask] == rows[0, mask]).all(axis=1)
            members = cand[same]
            groups = self._decode_group(rows if same.all() else rows[same],
                                        base + offsets[members], layout)
            if groups:
                out.extend(groups)
            todo = todo[~np.isin(todo, members)] if len(members) < len(todo) else todo[:0]
        return out

    def chunks(self) -> Iterator[Frames]:
        self.rejects = RejectLog()
        self.skipped_frames = 0
        state: dict[str, Any] = {}
        for groups in self._blocks():
            rows = _merge(groups, self.pad_to)
            rows["times_s"], rows["time_valid"] = _times(rows, state)
            yield from self._frames(rows)

    def _frames(self, rows: dict[str, Any]) -> Iterator[Frames]:
        n = len(rows["times_s"])
        keys = rows["layout_key"]
        cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        bounds = np.concatenate([[0], cuts, [n]]).astype(int)
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            for lo in range(a, b, self.chunk_size):
                hi = min(lo + self.chunk_size, b)
                csi = rows["csi"][lo:hi]
                if self.pad_to is None:
                    csi = csi[:, :, : int(rows["Nrx"][lo]), : int(rows["Ntx"][lo])]
                sub = rows["layouts"][int(keys[lo])]
                csi = csi[:, : len(sub)]
                fields = {k: rows[k][lo:hi] for k in (
                    "timestamp", "rssi", "noise_floor", "rssi_chain", "seq", "mcs",
                    "packet_format", "cbw", "carrier_freq", "Nrx", "Ntx", "ant_sel",
                    "device_type", "time_valid")}
                dev = int(rows["device_type"][hi - 1])
                yield Frames(
                    data=np.ascontiguousarray(csi), times_s=rows["times_s"][lo:hi], fs_hz=None,
                    modality="wifi_csi", source=self.source, subcarriers=sub, fields=fields,
                    meta={"format": self.name, "chip": DEVICES.get(dev, f"0x{dev:04x}"),
                          "bandwidth_mhz": int(rows["cbw"][hi - 1]),
                          "carrier_freq_hz": int(rows["carrier_freq"][hi - 1]),
                          "packet_format": PACKET_FORMATS.get(int(rows["packet_format"][hi - 1]),
                                                              "other")},
                )

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["frames_without_csi"] = self.skipped_frames
        return out


def _merge(groups: list[dict[str, Any]], pad_to: tuple[int, int] | None) -> dict[str, Any]:
    """Concatenate decoded groups into file order.

    Returns the per-row arrays plus ``layout_key`` (int per row) and ``layouts`` (the
    subcarrier array of each key); CSI is zero-padded to the largest shape.
    """
    tones = max(g["csi"].shape[1] for g in groups)
    r = max(max(g["csi"].shape[2] for g in groups), pad_to[0] if pad_to else 0)
    t = max(max(g["csi"].shape[3] for g in groups), pad_to[1] if pad_to else 0)
    n = sum(len(g["offset"]) for g in groups)
    same_shape = all(g["csi"].shape[1:] == (tones, r, t) for g in groups)
    csi = np.empty((n, tones, r, t), np.complex64) if same_shape else \
        np.zeros((n, tones, r, t), np.complex64)
    i = 0
    layout_ids: dict[tuple, int] = {}
    layouts: list[np.ndarray] = []
    keys = np.empty(n, np.int64)
    for g in groups:
        c = g["csi"]
        csi[i: i + len(c), : c.shape[1], : c.shape[2], : c.shape[3]] = c
        sub = g["subcarriers"]
        lk = (tuple(sub.tolist()),) + (() if pad_to else (c.shape[2], c.shape[3]))
        if lk not in layout_ids:
            layout_ids[lk] = len(layouts)
            layouts.append(sub)
        keys[i: i + len(c)] = layout_ids[lk]
        i += len(c)
    out: dict[str, Any] = {"csi": csi, "layout_key": keys}
    for k in groups[0]:
        if k not in ("csi", "subcarriers"):
            out[k] = np.concatenate([g[k] for g in groups])
    if not (out["offset"][1:] > out["offset"][:-1]).all():
        order = np.argsort(out["offset"], kind="stable")
        out = {k: v[order] for k, v in out.items()}
    out["layouts"] = layouts
    return out


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
