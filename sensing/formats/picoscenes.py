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
import operator
import os
import struct
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from sensing.errors import Reject, RejectLog, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.formats.intel5300 import (
    SUBCARRIERS_20MHZ,
    SUBCARRIERS_40MHZ,
    bfee_csi_len,
    gather_rows,
    record_blocks,
    unpack_bfee_csi,
    unpack_bfee_rows,
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
def _layout_columns(layout: tuple[tuple[str, int, int, int, int], ...],
                    free_last: bool = False) -> np.ndarray:
    """Frame bytes that must agree between frames sharing ``layout``: frame version and
    segment count, and every segment header (length, name, version). The frame length
    (bytes 0–3) and the MPDU may differ; with ``free_last``, so may the length of the last
    segment (its 4 length bytes are left out)."""
    cols = [np.arange(4, 11)] + [np.arange(start, body) for _, _, body, _, start in layout[:-1]]
    if free_last and len(layout) > 1:
        cols[-1] = cols[-1][4:]
    return np.concatenate(cols)


@functools.lru_cache(maxsize=64)
def _layout_words(layout: tuple[tuple[str, int, int, int, int], ...], free_last: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The :func:`_layout_columns` as 8-byte words: the index of every (little-endian
    uint64) word of a frame holding such bytes, and the mask of those bytes in it."""
    cols = _layout_columns(layout, free_last)
    words, which = np.unique(cols // 8, return_inverse=True)
    masks = np.zeros((len(words), 8), np.uint8)
    masks[which, cols % 8] = 0xFF
    return words, masks.view("<u8")[:, 0]


def _header_values(rows: np.ndarray, layout: tuple[tuple[str, int, int, int, int], ...],
                   free_last: bool = False) -> np.ndarray:
    """The :func:`_layout_columns` bytes of the frames ``rows`` (uint8 ``(n, width)``,
    C-contiguous) as wide unsigned integers ``(n, k)``: masked 8-byte words when ``width``
    allows, else the gathered bytes (:func:`_widest`)."""
    if rows.shape[1] % 8 == 0:  # a word at a time
        words, masks = _layout_words(layout, free_last)
        h = np.take(rows.view("<u8"), words, axis=1)
        h &= masks
        return h
    return _widest(np.take(rows, _layout_columns(layout, free_last), axis=1))


def _same_headers(rows: np.ndarray, layout: tuple[tuple[str, int, int, int, int], ...],
                  free_last: bool = False) -> np.ndarray:
    """Which of the frames ``rows`` have the segment headers of the first."""
    h = _header_values(rows, layout, free_last)
    return _all_columns(h == h[0])


def _headers_agree(rows: np.ndarray, layout: tuple[tuple[str, int, int, int, int], ...],
                   free_last: bool = False) -> bool:
    """Whether all the frames ``rows`` have the segment headers of the first (all of
    :func:`_same_headers` true, without the per-row reduction)."""
    h = _header_values(rows, layout, free_last)
    return bool((h == h[0]).all())


def _widest(b: np.ndarray) -> np.ndarray:
    """A uint8 ``(n, width)`` array (last axis contiguous) viewed as the widest unsigned
    integers that divide ``width`` (fewer, cheaper comparisons)."""
    for size in (8, 4, 2):
        if b.shape[1] % size == 0:
            return b.view(f"<u{size}")
    return b


def _equal_to_first(b: np.ndarray) -> np.ndarray:
    """Whether each row of a uint8 ``(n, width)`` array (last axis contiguous) equals the
    first row."""
    b = _widest(b)
    return _all_columns(b == b[0])


def _all_equal_to_first(b: np.ndarray) -> bool:
    """Whether every row of a uint8 ``(n, width)`` array (last axis contiguous) equals the
    first row."""
    b = _widest(b)
    return bool((b == b[0]).all())


def _row_sets(key: np.ndarray) -> list[tuple[int, np.ndarray | None]]:
    """The sets of equal rows of a C-contiguous uint8 ``(n, width)`` array, in order of
    first appearance (each row compared as one ``void`` scalar: its bytes).

    Returns
    -------
    list of (int, numpy.ndarray or None)
        ``(first row, rows)`` of each set; rows None: all rows (a single set).
    """
    rows = key.view(np.dtype((np.void, key.shape[1])))[:, 0]
    hit = rows == rows[0]
    if bool(hit.all()):  # usual
        return [(0, None)]
    sets = [(0, np.flatnonzero(hit))]
    todo = np.flatnonzero(~hit)
    while len(todo):
        k = rows[todo]
        hit = k == k[0]
        sets.append((int(todo[0]), todo[hit]))
        todo = todo[~hit]
    return sets


def _all_columns(eq: np.ndarray) -> np.ndarray:
    """``eq.all(axis=1)`` of a boolean ``(n, k)`` array, fast when all are true (usual)."""
    if eq.shape[1] == 1:
        return eq[:, 0]
    if eq.all():  # (one pass; a reduction along a short axis is much slower)
        return np.ones(len(eq), bool)
    return eq.all(axis=1)


class _GroupPlan(NamedTuple):
    """How the frames of one segment layout are decoded (see :func:`_group_plan`)."""

    csi_version: int
    csi_body: int  # frame offset of the CSI segment body
    data_at: int  # frame offset of the CSI buffer
    room: int  # bytes of the CSI segment from the buffer on
    rxs_version: int  # RxSBasic version, 0: no usable RxSBasic segment
    has_mvm: bool  # an MVMExtra segment with the muClock
    spec: tuple[tuple[str, int, str], ...]  # row fields (name, frame offset, dtype)
    csi_fields: tuple[str, ...]  # names of the CSI header fields in ``spec``


@functools.lru_cache(maxsize=64)
def _group_plan(layout: tuple[tuple[str, int, int, int, int], ...]) -> _GroupPlan | None:
    """Row fields of the frames of ``layout``: CSI header, RxSBasic, MVMExtra muClock (the
    last segment of each name counts). None without a CSI segment; with an unknown CSI
    version, only ``csi_version`` is meaningful."""
    segs = {name: (ver, body, length) for name, ver, body, length, _ in layout}
    if "CSI" not in segs:
        return None
    ver, body, length = segs["CSI"]
    if ver not in CSI_LAYOUT:
        return _GroupPlan(ver, body, body, 0, 0, False, (), ())
    lay = CSI_LAYOUT[ver]
    spec = [(k, body + o, d) for k, (o, d) in lay.items() if k != "data"]
    csi_fields = tuple(k for k, _, _ in spec)
    rxs = segs.get("RxSBasic")
    rxs_version = rxs[0] if rxs is not None and rxs[0] in RXS_LAYOUT \
        and rxs[2] >= RXS_MIN[rxs[0]] else 0
    if rxs_version:
        spec += [("rx_" + k, rxs[1] + o, d) for k, (o, d) in RXS_LAYOUT[rxs_version].items()
                 if not k.startswith("rssi_ctl")]
        # the three per-chain RSSI bytes are adjacent: one (n, 3) int8 field
        spec.append(("rx_chains", rxs[1] + RXS_LAYOUT[rxs_version]["rssi_ctl0"][0], "3i1"))
    mvm = segs.get("MVMExtra")
    has_mvm = mvm is not None and mvm[2] >= MVM_CLOCK_AT + 4
    if has_mvm:
        spec.append(("mvm_clock", mvm[1] + MVM_CLOCK_AT, "<u4"))
    data_at = body + lay["data"][0]
    return _GroupPlan(ver, body, data_at, body + length - data_at, rxs_version, has_mvm,
                      tuple(spec), csi_fields)


@functools.lru_cache(maxsize=64)
def _csi_data_at(layout: tuple[tuple[str, int, int, int, int], ...]) -> int | None:
    """Frame offset of the CSI buffer when the CSI segment is the last one (so the segment
    headers and fields all lie before it) and holds its whole header; else None."""
    if len(layout) < 2 or layout[-2][0] != "CSI" or layout[-2][1] not in CSI_LAYOUT:
        return None
    _, version, body, length, _ = layout[-2]
    head = CSI_LAYOUT[version]["data"][0]
    return body + head if length >= head else None


class _UniformPlan(NamedTuple):
    """How the blocks of :meth:`PicoScenesReader._decode_uniform` are read, for the
    segment layout of their first frame (see :func:`_uniform_plan`)."""

    plan: _GroupPlan
    data_at: int  # frame offset of the CSI buffer
    width: int  # ``data_at`` rounded up to whole 8-byte words
    csi_at: int  # frame offset of the CSI segment (its uint32 length first)
    #: structured dtypes of rows of ``width`` and of ``data_at`` bytes (:func:`_row_dtype`):
    #: ``plan.spec`` and the CSI segment length ``csi_len``
    row_dtypes: tuple[np.dtype, np.dtype]
    key_columns: np.ndarray  # :func:`_key_columns` of ``plan.spec``
    #: ``(*row values in row dtype order, 0)`` → the :data:`_DECODE_KEY` values (0: absent)
    decode_key: Callable[[tuple[int, ...]], tuple[int, ...]]


@functools.lru_cache(maxsize=64)
def _uniform_plan(layout: tuple[tuple[str, int, int, int, int], ...]) -> _UniformPlan | None:
    """The :class:`_UniformPlan` of frames of ``layout``; None unless its last segment is
    a CSI segment holding its whole header (:func:`_csi_data_at`)."""
    data_at = _csi_data_at(layout)
    if data_at is None:
        return None
    plan = _group_plan(layout)
    csi_at = layout[-2][4]
    spec = plan.spec + (("csi_len", csi_at, "<u4"),)
    names = [name for name, _, _ in spec]
    at = [names.index(k) if k in names else len(names) for k in _DECODE_KEY]
    width = -(-data_at // 8) * 8
    return _UniformPlan(plan, data_at, width, csi_at,
                        (_row_dtype(spec, width), _row_dtype(spec, data_at)),
                        _key_columns(plan.spec), operator.itemgetter(*at))


@functools.lru_cache(maxsize=256)
def _row_dtype(spec: tuple[tuple[str, int, str], ...], width: int) -> np.dtype:
    """Structured dtype of a ``width``-byte frame row with the fields ``(name, offset,
    dtype)``: a view of a uint8 ``(n, width)`` array gives every field without copies."""
    return np.dtype({"names": [f[0] for f in spec], "formats": [f[2] for f in spec],
                     "offsets": [f[1] for f in spec], "itemsize": width})


def _row_fields(rec: np.ndarray, plan: _GroupPlan) -> dict[str, np.ndarray]:
    """RxSBasic and MVMExtra per-row fields of frames viewed as ``rec`` (the structured
    view of their rows with ``plan.spec``): ``timestamp``, ``rssi``, ``noise_floor``,
    ``rssi_chain``, ``mcs`` and ``mvm_clock`` (−1 without MVMExtra). Fields without a
    conversion are views of ``rec``."""
    n = len(rec)
    out: dict[str, np.ndarray] = {}
    if plan.rxs_version:
        out["timestamp"] = rec["rx_timestamp"]
        chains = rec["rx_chains"]
        noise = rec["rx_noise_floor"]
        if plan.rxs_version < 3:  # v1/v2 store RSSI relative to the noise floor (dB above it)
            nf = noise.astype(np.int16)
            out["rssi"] = rec["rx_rssi"] + nf  # (int16)
            chain = chains + nf[:, None]
            chain *= chains != 0  # (a chain without RSSI stays 0)
            out["rssi_chain"] = chain
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
    if plan.has_mvm:
        out["mvm_clock"] = rec["mvm_clock"].astype(np.int64)
    else:
        out["mvm_clock"] = np.full(n, -1, np.int64)
    return out


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
def _mvm_columns(n_tone: int, n_rx: int, n_tx: int, keep: bytes) -> np.ndarray:
    """Position (in (re, im) int16 pairs) of every kept tone (int64 positions ``keep``, as
    bytes: a cheap cache key) in output order ``(tone, rx, tx)``; the buffer holds tone
    fastest, then tx, then rx."""
    k = np.frombuffer(keep, np.int64)[:, None, None]
    r = np.arange(n_rx)[None, :, None]
    t = np.arange(n_tx)[None, None, :]
    return ((r * n_tx + t) * n_tone + k).ravel()


#: Bytes of CSI decoded per batch by :func:`mvm_unpack`: its temporaries stay small
#: (cache-resident, reused heap memory) instead of file-sized arrays of fresh pages.
MVM_BATCH_BYTES = 1 << 16


def mvm_unpack(buf: np.ndarray, n_tone: int, n_rx: int, n_tx: int, keep: np.ndarray,
               starts: np.ndarray | None = None) -> np.ndarray:
    """Decode Intel MVM (AX200/AX210) int16 CSI, tone fastest, then tx, then rx; keep the
    tone positions ``keep``. Returns complex64 ``(n, len(keep), rx, tx)`` (C-contiguous).

    Parameters
    ----------
    buf : numpy.ndarray
        uint8 ``(n, >= 4 n_tone n_rx n_tx)``, one CSI buffer per row; or, with ``starts``,
        a flat uint8 array holding the buffer of row ``i`` at ``starts[i]``.
    n_tone, n_rx, n_tx : int
        Dimensions of the buffer.
    keep : numpy.ndarray
        Tone positions to keep, in output order.
    starts : numpy.ndarray, optional
        Offsets of the buffers in a flat ``buf``.

    Each (re, im) pair is moved as one 4-byte word into output order, then the pairs are
    converted to float, a batch of rows at a time."""
    nbytes = 4 * n_tone * n_rx * n_tx
    n = len(buf) if starts is None else len(starts)
    cols = _mvm_columns(n_tone, n_rx, n_tx, np.asarray(keep, np.int64).tobytes())
    out = np.empty((n, len(keep), n_rx, n_tx), dtype=np.complex64)
    flat = out.view(np.float32).reshape(n, -1)
    step = max(1, MVM_BATCH_BYTES // nbytes)
    for lo in range(0, n, step):
        if starts is None:
            pairs = buf[lo: lo + step, :nbytes]
            if pairs.strides[-1] != 1:
                pairs = np.ascontiguousarray(pairs)
        else:
            pairs = gather_rows(buf, starts[lo: lo + step], nbytes)
        words = np.take(pairs.view("<i4"), cols, axis=1)  # C-contiguous (rows, len(cols))
        flat[lo: lo + step] = words.view("<i2")
    return out


@functools.lru_cache(maxsize=256)
def _iwl5300_ntx(n_rx: int, buf_len: int) -> int | None:
    """Tx antennas of an IWL5300 CSI buffer of ``buf_len`` bytes for ``n_rx`` rx chains."""
    return next((t for t in (1, 2, 3) if n_rx <= 3 and bfee_csi_len(n_rx, t) == buf_len), None)


def _csi_problem(dev: int, fmt: int, cbw: int, n_tone: int, n_sts: int, n_rx: int,
                 buf_len: int) -> tuple[RejectReason, str, str] | None:
    """Why CSI buffers of these header values cannot be decoded, as ``(reason, expected,
    got)`` of a reject; None when they can (see :func:`_decode_buffers`)."""
    if not 1 <= n_rx <= 4:
        return RejectReason.BAD_DIMENSIONS, "1..4 rx chains", str(n_rx)
    if dev == 0x5300:
        if _iwl5300_ntx(n_rx, buf_len) is None or n_tone != 30:
            return (RejectReason.BAD_DIMENSIONS, "IWL5300 CSI of 30 tones and (30*(16*nrx*ntx+3)+7)//8 "
                    "bytes", f"{n_tone} tones, {buf_len} bytes for {n_rx} rx")
        return None
    if dev == 0x9300:
        ntx = n_sts
        if ntx < 1 or (n_tone * n_rx * ntx // 2) * 5 > buf_len or n_tone * n_rx * ntx % 2:
            return (RejectReason.BAD_DIMENSIONS, "QCA9300 CSI of 10-bit values filling the buffer",
                    f"{n_tone} tones x {n_rx} rx x {ntx} tx in {buf_len} bytes")
        return None
    if dev in (0x2000, 0x2100):
        ntx = n_sts
        plan = TONE_PLANS.get((fmt, cbw))
        if ntx < 1 or ntx * n_rx * n_tone * 4 != buf_len or plan is None \
                or len(plan[0]) != n_tone:
            return (RejectReason.BAD_DIMENSIONS, "Intel MVM CSI of tx*rx*tones*4 bytes and a known tone "
                    "plan", f"format {fmt}, {cbw} MHz, {n_tone} tones x {n_rx} rx x {ntx} tx, "
                    f"{buf_len} bytes")
        return None
    return (RejectReason.UNSUPPORTED_DEVICE, "device type 0x5300, 0x9300, 0x2000 or 0x2100",
            f"0x{dev:04x} ({DEVICES.get(dev, 'unknown')})")


def _decode_buffers(arr: np.ndarray, at: np.ndarray, dev: int, fmt: int, cbw: int,
                    n_tone: int, n_sts: int, n_rx: int, buf_len: int,
                    ant_sel: int | np.ndarray, sc_offset: int
                    ) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Decode CSI buffers whose header values passed :func:`_csi_problem`.

    Parameters
    ----------
    arr : numpy.ndarray
        The block (uint8).
    at : numpy.ndarray
        Offset of each frame's CSI buffer in ``arr``.
    dev, fmt, cbw, n_tone, n_sts, n_rx, buf_len, sc_offset : int
        The frames' CSI header values.
    ant_sel : int or numpy.ndarray
        Antenna selection of all frames, or of each (IWL5300 rx chain order).

    Returns
    -------
    csi : numpy.ndarray
        complex64 ``(n, tones, n_rx, n_tx)``.
    subcarriers : numpy.ndarray
        int16 subcarrier index of each tone (a new array).
    n_rx, n_tx : int
    """
    if dev == 0x5300:
        ntx = _iwl5300_ntx(n_rx, buf_len)
        if not isinstance(ant_sel, np.ndarray):
            orders = {_iwl5300_order(ant_sel, n_rx)}
        elif n_rx == 1 or bool((ant_sel == ant_sel[0]).all()):
            orders = {_iwl5300_order(int(ant_sel[0]), n_rx)}
        else:  # the rx order of every selection present
            orders = {_iwl5300_order(s, n_rx)
                      for s in np.flatnonzero(np.bincount(ant_sel)).tolist()}
        if len(orders) == 1:
            csi = unpack_bfee_csi(gather_rows(arr, at, buf_len), n_rx, ntx, orders.pop())
        else:
            csi = unpack_bfee_rows(gather_rows(arr, at, buf_len), n_rx, ntx, ant_sel,
                                   iwl5300_rx_order)
        sub = SUBCARRIERS_40MHZ if cbw == 40 else SUBCARRIERS_20MHZ
        return csi, np.add(sub, sc_offset, dtype=np.int16), n_rx, ntx
    if dev == 0x9300:
        csi = qca9300_unpack(gather_rows(arr, at, buf_len), n_tone, n_rx, n_sts)
        plan = {20: _span(-28, 28, (0,)), 40: _span(-58, 58, (-1, 0, 1))}.get(cbw)
        sub = plan if plan is not None and len(plan) == n_tone else np.arange(n_tone)
        return csi, (sub + sc_offset).astype(np.int16), n_rx, n_sts
    tones, _ = TONE_PLANS[(fmt, cbw)]  # Intel MVM
    keep = DATA_TONES[(fmt, cbw)]
    csi = mvm_unpack(arr, n_tone, n_rx, n_sts, keep, starts=at)
    return csi, (tones[keep] + sc_offset).astype(np.int16), n_rx, n_sts


def iwl5300_rx_order(ant_sel: int, n_rx: int) -> np.ndarray | None:
    """Output slot order of the rx chains by PicoScenes' rule (see module doc)."""
    if n_rx < 2:
        return None
    v = [(ant_sel & 1) + 1, ((ant_sel >> 2) & 3) + 1, ((ant_sel >> 4) & 3) + 1][:n_rx]
    order = np.argsort(v, kind="stable")
    return None if (order == np.arange(n_rx)).all() else order


@functools.lru_cache(maxsize=256)
def _iwl5300_order(ant_sel: int, n_rx: int) -> tuple[int, ...] | None:
    """:func:`iwl5300_rx_order` as a tuple (cached)."""
    order = iwl5300_rx_order(ant_sel, n_rx)
    return None if order is None else tuple(order.tolist())


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

    def _reject(self, offset: int, reason: RejectReason, expected: str, got: str) -> None:
        self.rejects.add(Reject(self.path, f"byte {offset}", reason, expected, got))

    def _reject_all(self, offsets: np.ndarray, problem: tuple[RejectReason, str, str]) -> None:
        """Reject every frame at ``offsets`` for one ``(reason, expected, got)``: each is
        counted, the first ones (while the log has room) are described."""
        described = offsets[: self.rejects.room]
        for o in described:
            self._reject(int(o), *problem)
        self.rejects.add(problem[0], len(offsets) - len(described))

    def _decode_group(self, rows: np.ndarray, arr: np.ndarray, starts: np.ndarray, base: int,
                      layout, seq: np.ndarray) -> list[dict[str, Any]] | None:
        """Decode frames that share one segment layout.

        Parameters
        ----------
        rows : numpy.ndarray
            C-contiguous uint8 ``(n, width)``: the frames' segments (up to the CSI buffer at
            least).
        arr, starts, base
            The block (uint8), the frames' offsets in it and its file offset: the CSI
            buffers are read from there.
        layout
            The frames' :func:`segment_layout`.
        seq : numpy.ndarray
            MPDU sequence number of every frame (−1: none).
        """
        offs = base + starts
        plan = _group_plan(layout)
        if plan is None:
            self.skipped_frames += len(rows)
            return None
        n = len(rows)
        if plan.csi_version not in CSI_LAYOUT:
            self._reject_all(offs, (RejectReason.CSI_VERSION, "CSI segment version 1-4",
                                    str(plan.csi_version)))
            return None
        rec = rows.view(_row_dtype(plan.spec, rows.shape[1]))[:, 0]
        out = _row_fields(rec, plan)
        out["seq"] = seq
        data_at, room = plan.data_at, plan.room
        members: list[tuple[tuple[int, ...], np.ndarray | None]]  # (key, rows; None: all)
        if _all_equal_to_first(rows[:, plan.csi_body: data_at]):
            # identical CSI headers (usual): one device, one set of dimensions
            first = dict(zip(plan.csi_fields, rec[:1].tolist()[0][:len(plan.csi_fields)],
                             strict=True))
            members = [(tuple(first.get(k, 0) for k in _CSI_KEY), None)]
        else:
            key = np.stack([rec[k].astype(np.int64) if k in plan.csi_fields
                            else np.zeros(n, np.int64) for k in _CSI_KEY], 1)
            members = []  # the rows of each distinct key, in order of first appearance
            todo = np.arange(n)
            while len(todo):
                k0 = key[todo[0]]
                hit = (key[todo] == k0).all(axis=1)
                members.append((tuple(k0.tolist()), None if len(todo) == n and hit.all()
                                else todo[hit]))
                todo = todo[~hit]
        parts = []
        for k, sel in members:
            at, o = (starts, offs) if sel is None else (starts[sel], offs[sel])
            res = self._decode_csi(arr, at + data_at, room, *k, o)
            if res is not None:
                parts.append((sel, o, *res))
        groups = []
        for sel, o, csi, sub, nrx, ntx in parts:
            # (views into ``rows`` are copied: chunks get compact arrays of their own)
            g = {k: ((v.copy() if v.base is not None else v) if sel is None else v[sel])
                 for k, v in out.items()}
            g.update({k: rec[k].copy() if sel is None else rec[k][sel] for k in (
                "packet_format", "cbw", "carrier_freq", "ant_sel", "device_type")})
            m = len(o)
            g.update(csi=csi, offset=o, subcarriers=sub, Nrx=np.full(m, nrx, np.uint8),
                     Ntx=np.full(m, ntx, np.uint8))
            groups.append(g)
        return groups or None

    def _decode_csi(self, arr, at, room, dev, fmt, cbw, n_tone, n_sts, n_rx, buf_len,
                    ant_sel, sc_offset, offs):
        """CSI of frames sharing device and dimensions, whose buffers start at offsets ``at``
        of the block ``arr``; ``(csi, subcarriers, nrx, ntx)``."""
        if buf_len > room:
            problem = (RejectReason.SHORT_CSI, f"{buf_len} CSI bytes inside the segment",
                       f"{room}")
        else:
            problem = _csi_problem(dev, fmt, cbw, n_tone, n_sts, n_rx, buf_len)
        if problem is not None:
            self._reject_all(offs, problem)
            return None
        return _decode_buffers(arr, at, dev, fmt, cbw, n_tone, n_sts, n_rx, buf_len, ant_sel,
                               sc_offset)

    def _blocks(self) -> Iterator[_Decoded]:
        """The decoded frames of every file block, in file order."""
        for blk in record_blocks(self.path, start=0, block_bytes=BLOCK_BYTES, len_at=0,
                                 len_bytes=4, big_endian=False, overhead=4, min_len=7,
                                 max_len=MAX_FRAME, read_below=BLOCK_BYTES):
            if isinstance(blk, tuple):  # the file ends inside a frame
                at, head, have = blk
                need = 4 + int.from_bytes(head[:4], "little") if have >= 4 else 4
                self._reject(at, RejectReason.TRUNCATED_FRAME, f"a complete frame of {need} bytes",
                             f"{have} bytes before end of file")
                self.bytes_read = at + have
                continue
            dec = self._decode_uniform(blk.buf, blk.arr, blk.offsets, blk.sizes)
            if dec is None:  # the general case: by segment layout, with rejects
                groups = self._decode_block(blk.buf, blk.arr, blk.offsets, blk.sizes, blk.base)
                if groups:
                    groups.sort(key=lambda g: int(g["offset"][0]))
                    dec = _file_order(*_merge(groups, self.pad_to))
            self.bytes_read = blk.base + int(blk.offsets[-1] + blk.sizes[-1])
            if dec is not None:
                yield dec

    def _decode_uniform(self, buf: bytes, arr: np.ndarray, offsets: np.ndarray,
                        sizes: np.ndarray) -> _Decoded | None:
        """Decode a block whose frames all share one segment layout ending with the CSI
        segment, except for that segment's length (so its buffer may differ in size), and
        are all decodable (the usual capture: one device). None otherwise (nothing is
        recorded then: :meth:`_decode_block` handles the block, rejects included).

        Every per-row field is read from one row per frame (its segments up to the CSI
        buffer) in one pass; the CSI is decoded once per set of CSI dimensions (IWL5300
        antenna selections are applied per row); the rows stay in file order.
        """
        o0, s0 = int(offsets[0]), int(sizes[0])
        try:
            layout = segment_layout(bytes(buf[o0: o0 + s0]))
        except LayoutError:
            return None
        up = _uniform_plan(layout)
        shortest = int(sizes.min())
        if up is None or up.data_at > shortest:
            return None
        data_at = up.data_at
        wide = up.width <= shortest
        rows = gather_rows(arr, offsets, up.width if wide else data_at)
        if not _headers_agree(rows, layout, free_last=True):
            return None
        plan = up.plan
        rec = rows.view(up.row_dtypes[0 if wide else 1])[:, 0]
        mpdu = rec["csi_len"].astype(np.int64)
        mpdu += up.csi_at + 4
        # a CSI segment without its header, beyond its frame or without room for its buffer
        if int(mpdu.min()) < data_at or bool((mpdu > sizes).any()) \
                or bool((rec["buf_len"] > mpdu - data_at).any()):
            return None
        n = len(rows)
        fields = {k: (v.copy() if v.base is not None else v)
                  for k, v in _row_fields(rec, plan).items()}
        # sequence control: a uint16 at every byte offset of the block
        u16 = np.ndarray((len(arr) - 1,), "<u2", buffer=arr, strides=(1,))
        mpdu += offsets
        no_seq = mpdu + 24 > offsets + sizes  # (mpdu: now the MPDU's offset in the block)
        if no_seq.any():
            seq = (u16[np.minimum(mpdu + 22, len(arr) - 2)] >> 4).astype(np.int32)
            seq[no_seq] = -1
        else:
            mpdu += 22
            seq = (u16[mpdu] >> 4).astype(np.int32)
        fields["seq"] = seq
        for k in ("packet_format", "cbw", "carrier_freq", "ant_sel", "device_type"):
            fields[k] = rec[k].copy()
        # frames sharing the CSI header values that set the decoding
        sets = _row_sets(np.take(rows, up.key_columns, axis=1))
        keys = [up.decode_key((*rec[i0: i0 + 1].tolist()[0], 0)) for i0, _ in sets]
        if any(_csi_problem(*key[:-1]) is not None for key in keys):
            return None
        at = offsets + data_at
        ant_sel = fields["ant_sel"]
        decoded = [(sel, *_decode_buffers(arr, at if sel is None else at[sel], *key[:-1],
                                          ant_sel if sel is None else ant_sel[sel], key[-1]))
                   for (_, sel), key in zip(sets, keys, strict=True)]
        if len(decoded) == 1:
            fields["Nrx"] = np.full(n, decoded[0][3], np.uint8)
            fields["Ntx"] = np.full(n, decoded[0][4], np.uint8)
        else:
            fields["Nrx"], fields["Ntx"] = np.empty(n, np.uint8), np.empty(n, np.uint8)
            for sel, _, _, nrx, ntx in decoded:
                fields["Nrx"][sel] = nrx
                fields["Ntx"][sel] = ntx
        freq = fields["carrier_freq"]  # (the other meta keys are decoding parameters)
        meta_key = None
        if len({key[:3] for key in keys}) == 1 and bool((freq == freq[0]).all()):
            dev, fmt, cbw = keys[0][:3]
            meta_key = (dev, cbw, int(freq[0]), fmt)
        return _assemble(fields, decoded, self.pad_to, meta_key)

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
                self._reject(base + o0, RejectReason.BAD_FRAME, *exc.args)
                todo = todo[1:]
                continue
            mpdu_at = layout[-1][2]
            cand = todo[sizes[todo] >= mpdu_at] if int(sizes[todo].min()) < mpdu_at else todo
            # likely members: the last segment header (length, name) matches
            key_at, key_end = (layout[-2][4], min(layout[-2][4] + 8, layout[-2][2])) \
                if len(layout) > 1 else (4, 11)
            likely = _equal_to_first(gather_rows(arr, offsets[cand] + key_at, key_end - key_at))
            members = cand if bool(likely.all()) else cand[likely]
            # one row per member: every segment, plus the MPDU through its sequence-control
            # field (bytes 22-23) when all have one; then every segment header byte is checked.
            # A last CSI segment ends the rows before its buffer (gathered when decoded).
            # (Rounded up to whole 8-byte words when the frames are long enough: the header
            # bytes are then compared a word at a time.)
            shortest = int(sizes[members].min())
            width = _csi_data_at(layout) or (mpdu_at + 24 if shortest >= mpdu_at + 24 else mpdu_at)
            with_seq = width == mpdu_at + 24
            if -(-width // 8) * 8 <= shortest:
                width = -(-width // 8) * 8
            rows = gather_rows(arr, offsets[members], width)
            same = _same_headers(rows, layout)
            if not bool(same.all()):
                members = members[same]
                rows = rows[same]
            starts = offsets[members]
            if with_seq:
                seq = (rows[:, mpdu_at + 22: mpdu_at + 24].view("<u2")[:, 0] >> 4).astype(np.int32)
            else:  # (a uint16 at every byte offset of the block)
                u16 = np.ndarray((len(arr) - 1,), "<u2", buffer=arr, strides=(1,))
                seq = (u16[np.minimum(starts + (mpdu_at + 22), len(arr) - 2)] >> 4).astype(np.int32)
                if shortest < mpdu_at + 24:
                    seq[sizes[members] < mpdu_at + 24] = -1
            groups = self._decode_group(rows, arr, starts, base, layout, seq)
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
        for dec in self._blocks():
            rows = dec.rows
            rows["times_s"], rows["time_valid"] = _times(rows, state)
            yield from self._frames(dec)

    def _frames(self, dec: _Decoded) -> Iterator[Frames]:
        """Cut a block into chunks: a new chunk at every change of layout (in file order)
        and every ``chunk_size`` rows. The chunks' arrays are views (no copies): the per-row
        fields are slices of the block's rows (file order), the CSI a slice of its layout's.

        The per-chunk cost matters (files can alternate layouts every few frames): what the
        chunks share is prepared once, and the :class:`Frames` are built with
        :meth:`Frames.prevalidated` (no ``__post_init__`` checks): they pass them by
        construction (every per-row array of a chunk is a slice of the same rows).
        """
        rows = dec.rows
        times = rows["times_s"]
        shared = [{"fs_hz": None, "modality": self.modality, "source": self.source,
                   "subcarriers": sub} for sub in dec.subcarriers]
        cols = [(f, rows[f]) for f in _CHUNK_FIELDS]
        per_row = None  # (the meta keys of every row, for layouts without one meta)
        if dec.meta_key is not None:  # usual: one meta for every row
            metas = [self._meta(*dec.meta_key)] * len(dec.csi)
        else:
            keys = [rows[k] for k in ("device_type", "cbw", "carrier_freq", "packet_format")]
            metas = self._layout_metas(keys, dec.row_layout, len(dec.csi))
            if any(m is None for m in metas):
                per_row = [v.tolist() for v in keys]
        build = Frames.prevalidated
        csi_of = dec.csi
        for lo, hi, k, at in _chunk_bounds(dec.row_layout, len(times), self.chunk_size):
            part = slice(lo, hi)
            meta = metas[k]
            yield build(shared[k], data=csi_of[k][at: at + hi - lo], times_s=times[part],
                        fields={f: v[part] for f, v in cols},
                        meta=meta.copy() if meta is not None
                        else self._meta(*(v[hi - 1] for v in per_row)))

    def _layout_metas(self, keys: list[np.ndarray], row_layout: np.ndarray | None,
                      n_layouts: int) -> list[dict[str, Any] | None]:
        """The chunk ``meta`` of each chunk layout whose rows all have the same device
        type, bandwidth, carrier frequency and packet format (``keys``); None for the others
        (a chunk's meta is then its last row's)."""
        if all(bool((v == v[0]).all()) for v in keys):  # usual: one meta for every row
            meta = self._meta(*(int(v[0]) for v in keys))
            return [meta] * n_layouts
        out: list[dict[str, Any] | None] = []
        for k in range(n_layouts):
            mine = [v[row_layout == k] for v in keys] if row_layout is not None else keys
            same = all(bool((v == v[0]).all()) for v in mine)
            out.append(self._meta(*(int(v[0]) for v in mine)) if same else None)
        return out

    def _meta(self, dev: int, cbw: int, freq: int, fmt: int) -> dict[str, Any]:
        """Chunk ``meta`` of a device type, bandwidth, carrier frequency and packet format."""
        return {"format": self.name, "chip": DEVICES[dev] if dev in DEVICES else f"0x{dev:04x}",
                "bandwidth_mhz": cbw, "carrier_freq_hz": freq,
                "packet_format": PACKET_FORMATS.get(fmt, "other")}

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["frames_without_csi"] = self.skipped_frames
        return out


#: CSI header fields that set how the CSI buffer is decoded (frames are decoded in groups
#: agreeing on all of them).
_CSI_KEY = ("device_type", "packet_format", "cbw", "num_tone", "num_sts", "num_rx", "buf_len",
            "ant_sel", "sc_offset")

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
    order : numpy.ndarray or None
        The block's rows in file order, as positions in the concatenation of the layouts'
        rows (None: a single layout).
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
    return layouts, np.argsort(offs, kind="stable")


class _Decoded(NamedTuple):
    """The decoded frames of a block, in file order."""

    rows: dict[str, np.ndarray]  # per-row fields (file order)
    csi: list[np.ndarray]  # per chunk layout: the CSI of its rows (file order)
    subcarriers: list[np.ndarray]  # per chunk layout
    row_layout: np.ndarray | None  # chunk layout of every row (None: all the first)
    #: (device type, bandwidth, carrier frequency, packet format) of every row, when known to
    #: be the same for all (None: see the rows)
    meta_key: tuple[int, int, int, int] | None = None


#: Per-row fields a :class:`_Decoded` holds (besides ``times_s`` and ``time_valid``).
_ROW_FIELDS = tuple(f for f in _CHUNK_FIELDS if f != "time_valid") + ("mvm_clock",)


def _file_order(layouts: list[dict[str, Any]], order: np.ndarray | None) -> _Decoded:
    """A :class:`_Decoded` of the ``layouts`` and ``order`` of :func:`_merge`."""
    if order is None:
        d = layouts[0]
        return _Decoded(d, [d["csi"]], [d["subcarriers"]], None)
    rows = {k: np.concatenate([d[k] for d in layouts])[order] for k in _ROW_FIELDS}
    row_layout = np.repeat(np.arange(len(layouts)), [len(d["offset"]) for d in layouts])
    return _Decoded(rows, [d["csi"] for d in layouts], [d["subcarriers"] for d in layouts],
                    row_layout[order])


def _assemble(rows: dict[str, np.ndarray],
              decoded: list[tuple[np.ndarray | None, np.ndarray, np.ndarray, int, int]],
              pad_to: tuple[int, int] | None,
              meta_key: tuple[int, int, int, int] | None = None) -> _Decoded:
    """Gather CSI decoded in sets of rows by chunk layout (as :func:`_merge` does).

    Parameters
    ----------
    rows : dict
        The block's per-row fields, file order.
    decoded : list
        ``(rows, csi, subcarriers, n_rx, n_tx)`` of each set of rows (increasing row
        numbers; None: all rows), the sets disjoint and covering the block.
    pad_to : (int, int) or None
        As :class:`PicoScenesReader`.
    meta_key : tuple, optional
        As :class:`_Decoded`.
    """
    if pad_to:
        r = max(max(c.shape[2] for _, c, *_ in decoded), pad_to[0])
        t = max(max(c.shape[3] for _, c, *_ in decoded), pad_to[1])
    ids: dict[tuple, int] = {}
    which = []  # chunk layout of each set
    for _, c, sub, _, _ in decoded:
        lk = (sub.tobytes(),) + (() if pad_to else c.shape[2:])  # (int16 subcarriers)
        which.append(ids.setdefault(lk, len(ids)))
    n = len(rows["seq"])
    row_layout = None
    if len(ids) > 1:
        row_layout = np.empty(n, np.intp)
        for (sel, *_), k in zip(decoded, which, strict=True):
            row_layout[sel] = k
    csi_of, subs = [], []
    for k in range(len(ids)):
        mine = [d for d, w in zip(decoded, which, strict=True) if w == k]
        c0 = mine[0][1]
        shape = (c0.shape[1], r, t) if pad_to else c0.shape[1:]
        if len(mine) == 1 and c0.shape[1:] == shape:
            csi = c0
        else:
            at = np.arange(n) if row_layout is None else np.flatnonzero(row_layout == k)
            same = all(c.shape[1:] == shape for _, c, *_ in mine)
            csi = (np.empty if same else np.zeros)((len(at),) + shape, np.complex64)
            for sel, c, *_ in mine:
                pos = slice(None) if sel is None else np.searchsorted(at, sel)
                csi[pos, :, : c.shape[2], : c.shape[3]] = c
        csi_of.append(csi)
        subs.append(mine[0][2])
    return _Decoded(rows, csi_of, subs, row_layout, meta_key)


#: CSI header fields that set how the CSI buffer is decoded (IWL5300 antenna selections
#: are applied per frame), in the argument order of :func:`_decode_buffers`.
_DECODE_KEY = ("device_type", "packet_format", "cbw", "num_tone", "num_sts", "num_rx",
               "buf_len", "sc_offset")


@functools.lru_cache(maxsize=64)
def _key_columns(spec: tuple[tuple[str, int, str], ...]) -> np.ndarray:
    """Row bytes of the :data:`_DECODE_KEY` fields of ``spec`` (a :class:`_GroupPlan`
    spec), padded to whole 8-byte words by repeating the first (frames agree on the
    decoding when they agree on these bytes)."""
    cols = [np.arange(at, at + np.dtype(dt).itemsize) for name, at, dt in spec
            if name in _DECODE_KEY]
    c = np.concatenate(cols)
    return np.concatenate([c, np.full(-len(c) % 8, c[0])])


def _chunk_bounds(row_layout: np.ndarray | None, n: int, step: int
                  ) -> list[tuple[int, int, int, int]]:
    """Chunks of a block of ``n`` rows: a new chunk at every change of chunk layout
    (``row_layout``, None: a single one) and every ``step`` rows.

    Returns
    -------
    list of (int, int, int, int)
        ``(first row, end row, layout, first row within the layout's rows)`` of each chunk.
    """
    if row_layout is None:
        return [(lo, min(lo + step, n), 0, lo) for lo in range(0, n, step)]
    lay = row_layout.tolist()
    done = [0] * (max(lay) + 1)  # rows of each layout emitted so far
    out = []
    a, k = 0, lay[0]
    for b in (np.flatnonzero(row_layout[1:] != row_layout[:-1]) + 1).tolist() + [n]:
        at = done[k]  # the run ``a:b`` is rows ``at:at + b - a`` of layout ``k``
        done[k] += b - a
        if b - a <= step:  # usual
            out.append((a, b, k, at))
        else:
            out.extend((lo, min(lo + step, b), k, at + lo - a) for lo in range(a, b, step))
        if b < n:
            a, k = b, lay[b]
    return out


def _times(rows: dict[str, Any], state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Stream seconds of each row and whether its clock was valid (see module doc)."""
    n = len(rows["timestamp"])
    if not n:
        return np.empty(0), np.empty(0, bool)
    t_prev = state.get("t", 0.0)
    mvm = rows["mvm_clock"]
    if mvm[0] >= 0 and (mvm >= 0).all():  # Intel MVM: 32-bit µs clock, unwrapped
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
    ts = np.asarray(rows["timestamp"], np.uint64)  # (read only: no copy)
    dev = rows["device_type"]
    unit = TIMESTAMP_UNIT_S.get(int(dev[0]), 1e-6) if bool((dev == dev[0]).all()) else min(
        TIMESTAMP_UNIT_S.get(int(d), 1e-6) for d in np.unique(dev))
    ts_last = state.get("ts", 0)
    if int(ts[0]) > ts_last and (n == 1 or bool((ts[1:] > ts[:-1]).all())):
        # usual: the clock advances at every row, so every row is valid (the result
        # equals that of the general computation below)
        if state.get("ts0") is None:
            state["ts0"] = int(ts[0])
            state["t_offset"] = t_prev
        times = (ts - np.uint64(state["ts0"])).astype(np.float64)
        times *= unit
        times += state["t_offset"]
        state["t"] = float(times[-1])
        state["ts"] = int(ts[-1])
        return times, np.ones(n, bool)
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
