"""Intel 5300 ``.dat`` logs of the Linux 802.11n CSI Tool (``log_to_file``).

File layout (``read_bf_file.m`` / ``read_bfee.c`` of dhalperi/linux-80211n-csitool-supplementary):
a sequence of records ``[uint16 big-endian field_len][uint8 code][field_len - 1 bytes]``.
Records with ``code == 0xBB`` (187) are beamforming feedback reports ("bfee"); other codes
(e.g. ``0xC1`` notifications) are skipped and counted in ``meta["other_records"]``.

A bfee payload holds ``timestamp_low`` (uint32 LE, µs, NIC clock), ``bfee_count`` (uint16
LE), ``Nrx``, ``Ntx``, ``rssi_a/b/c`` (uint8, dB), ``noise`` (int8, dBm), ``agc`` (uint8, dB),
``antenna_sel`` (2 bits per rx chain → ``perm``), ``len`` (uint16 LE), ``fake_rate_n_flags``
(uint16 LE) and, from byte 20, the CSI: 30 subcarrier groups, each a 3-bit gap followed by
``Nrx × Ntx`` int8 (real, imag) pairs in a bit stream that is not byte aligned. ``len`` must
equal ``(30 (16 Nrx Ntx + 3) + 7) // 8``; records that disagree are counted rejects.

Frames: ``data`` complex64 ``(n, 30, n_rx, n_tx)`` — the raw (unscaled) CSI, with the
antenna permutation applied exactly as MATLAB's ``read_bf_file`` does: only when
``Nrx > 1`` and ``sum(perm) == Nrx (Nrx + 1) / 2`` (1-based, all three entries); otherwise the
raw order is kept (csiread applies invalid permutations too, CSIKit and MATLAB do not — we
follow MATLAB). A chunk never mixes antenna layouts unless ``pad_to`` is given, in which case
every row is zero-padded to that ``(n_rx, n_tx)`` and ``fields["Nrx"]``/``["Ntx"]`` tell which
entries are real. Use :func:`scaled_csi` (``get_scaled_csi.m``) for CSI in SNR units.

Writing: :class:`Intel5300Writer` writes bfee records that this reader (and csiread,
CSIKit, MATLAB) reads back, so that simulated captures (``ambisense simulate csi-breathing
--file-format intel5300``) go through the same parsing code as real ones.

Times: ``timestamp_low`` is unwrapped (32-bit µs counter, wraps every 71.6 min). A record
whose ``timestamp_low`` does not advance (equal to the previous one, as in
``log.all_csi.6.7.6`` where every record says 4) or jumps backwards by more than half the
wrap period has an invalid clock: its time is the previous row's time plus
``1 / fallback_rate_hz`` when that option is given, else the previous row's time (so the
stream never goes backwards), and ``fields["time_valid"]`` is False for it.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from sensing.errors import CaptureFormatError, Reject, RejectLog, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames

BFEE_CODE = 0xBB
#: Bytes of the fixed bfee header before the CSI bit stream.
BFEE_HEADER = 20
N_GROUPS = 30
_WRAP = 1 << 32
#: Bytes read from the file per block (bounded memory; a record is at most 65 537 bytes).
BLOCK_BYTES = 1 << 20

#: Subcarrier index of each of the 30 groups (802.11n Ng=2 at 20 MHz, Ng=4 at 40 MHz).
SUBCARRIERS_20MHZ = np.r_[np.arange(-28, -1, 2), -1, np.arange(1, 28, 2), 28]
SUBCARRIERS_40MHZ = np.r_[np.arange(-58, -1, 4), np.arange(2, 59, 4)]
#: ``fake_rate_n_flags`` bits (iwlwifi ``RATE_MCS_HT_MSK`` / ``RATE_MCS_HT40_MSK``).
RATE_HT = 1 << 8
RATE_HT40 = 1 << 11


def bfee_csi_len(n_rx: np.ndarray | int, n_tx: np.ndarray | int) -> np.ndarray | int:
    """Bytes of the CSI bit stream for ``n_rx × n_tx`` antennas (``calc_len`` of read_bfee.c)."""
    return (N_GROUPS * (16 * np.asarray(n_rx) * np.asarray(n_tx) + 3) + 7) // 8


def bfee_bit_positions(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte index and bit shift of each real and imaginary int8, in ``(group, rx·tx)`` order."""
    i = np.arange(N_GROUPS)[:, None]
    j = np.arange(m)[None, :]
    bit_re = (i * (16 * m + 3) + 3 + 16 * j).ravel()
    bits = np.stack([bit_re, bit_re + 8], axis=-1).ravel()  # re, im, re, im …
    return bits // 8, (bits % 8).astype(np.uint8)


_POSITIONS = {m: bfee_bit_positions(m) for m in range(1, 10)}


def _pair_positions(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte pairs ``(k, k + 1)`` (interleaved) and uint16 shifts of each int8 of
    :func:`bfee_bit_positions`: the value is the low byte of ``uint16 LE at k >> shift``."""
    byte, shift = _POSITIONS[m]
    return np.stack([byte, byte + 1], axis=-1).ravel(), shift.astype(np.uint16)


_PAIRS = {m: _pair_positions(m) for m in range(1, 10)}


@functools.lru_cache(maxsize=256)
def _value_positions(n_rx: int, n_tx: int, rx_order: tuple[int, ...] | None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_pair_positions` of ``n_rx × n_tx`` streams in output order (rx slot ``q``
    takes chain ``rx_order[q]``; None: stream order); cached, read-only."""
    pair, shift = _PAIRS[n_rx * n_tx]
    if rx_order is not None:
        cols = _rx_columns(n_rx, n_tx, np.asarray(rx_order))
        pair, shift = pair.reshape(-1, 2)[cols].ravel(), shift[cols]
    pair.flags.writeable = shift.flags.writeable = False
    return pair, shift


def _unpack_int8(payload: np.ndarray, n_rx: int, n_tx: int,
                 rx_order: tuple[int, ...] | None = None) -> np.ndarray:
    """int8 ``(n, 60 n_rx n_tx)`` values of bfee bit streams in ``(group, rx·tx, re/im)``
    order (rx re-ordered by ``rx_order``).

    One gather of both bytes of every value (read as a little-endian uint16), one shift and
    a truncating cast.
    """
    pair, shift = _value_positions(n_rx, n_tx, rx_order)
    words = np.take(payload, pair, axis=1).view("<u2")
    words >>= shift
    return words.astype(np.int8)


def _rx_columns(n_rx: int, n_tx: int, rx_order: np.ndarray) -> np.ndarray:
    """Value columns in output order when output rx slot ``q`` takes chain ``rx_order[q]``."""
    return np.arange(N_GROUPS * n_rx * n_tx * 2).reshape(N_GROUPS, n_rx, n_tx, 2)[
        :, rx_order].ravel()


def _to_complex(vals: np.ndarray, n_rx: int, n_tx: int) -> np.ndarray:
    """complex64 ``(n, 30, n_rx, n_tx)`` from int8 (re, im) values."""
    n = len(vals)
    out = np.empty((n, N_GROUPS, n_rx, n_tx), dtype=np.complex64)
    out.view(np.float32).reshape(n, -1)[...] = vals
    return out


def unpack_bfee_csi(
    payload: np.ndarray, n_rx: int, n_tx: int,
    rx_order: np.ndarray | tuple[int, ...] | None = None,
) -> np.ndarray:
    """Unpack the CSI bit streams of bfee records that share one antenna layout.

    Parameters
    ----------
    payload : numpy.ndarray
        uint8 ``(n, >= bfee_csi_len(n_rx, n_tx))``: the bytes from offset 20 of each bfee.
    n_rx, n_tx : int
        Receive and transmit antennas (1..3).
    rx_order : numpy.ndarray or tuple of int, optional
        Output rx slot ``q`` takes the stream's rx chain ``rx_order[q]`` (an inverse
        antenna permutation); default: stream order. The value positions are cached per
        antenna layout and order.

    Returns
    -------
    numpy.ndarray
        complex64 ``(n, 30, n_rx, n_tx)`` raw CSI (int8 real/imag values).
    """
    order = None if rx_order is None else tuple(int(q) for q in rx_order)
    return _to_complex(_unpack_int8(payload, n_rx, n_tx, order), n_rx, n_tx)


def unpack_bfee_rows(
    payload: np.ndarray, n_rx: int, n_tx: int, antenna_sel: np.ndarray,
    rx_order: Callable[[int, int], np.ndarray | None],
) -> np.ndarray:
    """:func:`unpack_bfee_csi` with a per-row antenna permutation.

    Parameters
    ----------
    payload : numpy.ndarray
        uint8 ``(n, >= bfee_csi_len(n_rx, n_tx))`` bit streams of one antenna layout.
    n_rx, n_tx : int
        Receive and transmit antennas.
    antenna_sel : numpy.ndarray
        ``(n,)`` antenna-selection byte of each row.
    rx_order : callable
        ``rx_order(antenna_sel, n_rx)``: the rx order of a selection (None: stream order),
        e.g. :func:`matlab_rx_order`.

    Returns
    -------
    numpy.ndarray
        complex64 ``(n, 30, n_rx, n_tx)``; equal to unpacking each group of rows sharing an
        antenna selection with :func:`unpack_bfee_csi` and its order. The bits are unpacked
        once in stream order; only rows with a non-trivial order are re-ordered (int8).
    """
    vals = _unpack_int8(payload, n_rx, n_tx)
    if n_rx > 1 and len(vals):
        sel = np.asarray(antenna_sel, dtype=np.int64)
        present = np.flatnonzero(np.bincount(sel, minlength=1))
        for s in present.tolist():
            order = rx_order(s, n_rx)
            if order is None:
                continue
            cols = _rx_columns(n_rx, n_tx, order)
            if len(present) == 1:
                vals = vals[:, cols]
            else:
                rows = np.flatnonzero(sel == s)
                vals[rows] = vals[rows][:, cols]
    return _to_complex(vals, n_rx, n_tx)


#: 10^(r/10) of every uint8 RSSI value (0 dB → 0: an unused chain), as in total_rss_dbm.
_R8 = np.arange(256, dtype=np.float64)
_RSS_POWER = np.where(_R8 != 0, 10.0 ** (_R8 / 10.0), 0.0)
del _R8


def total_rss_dbm(
    rssi_a: np.ndarray, rssi_b: np.ndarray, rssi_c: np.ndarray, agc: np.ndarray
) -> np.ndarray:
    """Total received signal strength in dBm (``get_total_rss.m``).

    Sums the non-zero per-chain RSSI values (dB) in linear power, then subtracts 44 dB and
    the AGC gain (dB).
    """
    if all(isinstance(r, np.ndarray) and r.dtype == np.uint8 for r in (rssi_a, rssi_b, rssi_c)):
        # table of the same per-value powers (0 + a + b + c, summed in the same order)
        mag = _RSS_POWER[rssi_a] + _RSS_POWER[rssi_b] + _RSS_POWER[rssi_c]
    else:
        mag = np.zeros(np.shape(rssi_a), dtype=np.float64)
        for r in (rssi_a, rssi_b, rssi_c):
            r = np.asarray(r, dtype=np.float64)
            mag += np.where(r != 0, 10.0 ** (r / 10.0), 0.0)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(mag) - 44.0 - np.asarray(agc, dtype=np.float64)


def scaled_csi(
    csi: np.ndarray,
    rssi_a: np.ndarray,
    rssi_b: np.ndarray,
    rssi_c: np.ndarray,
    noise: np.ndarray,
    agc: np.ndarray,
    n_rx: np.ndarray,
    n_tx: np.ndarray,
) -> np.ndarray:
    """CSI scaled to SNR units, vectorised ``get_scaled_csi.m`` (Linux 802.11n CSI Tool).

    Parameters
    ----------
    csi : numpy.ndarray
        complex ``(n, 30, R, T)`` raw CSI (zero padding beyond ``n_rx``/``n_tx`` is harmless).
    rssi_a, rssi_b, rssi_c : numpy.ndarray
        Per-chain RSSI in dB, ``(n,)``.
    noise : numpy.ndarray
        Noise floor in dBm, ``(n,)``; ``-127`` (not measured) is taken as −92 dBm.
    agc : numpy.ndarray
        AGC gain in dB, ``(n,)``.
    n_rx, n_tx : numpy.ndarray
        Antenna counts, ``(n,)``.

    Returns
    -------
    numpy.ndarray
        complex128, same shape as ``csi``: ``csi · sqrt(scale / (thermal + quantisation
        noise power))`` with the 802.11n transmit-power correction for 2 (+3 dB) and 3
        (+4.5 dB) streams. Rows whose CSI is all zero stay zero.
    """
    csi = np.asarray(csi)
    n = len(csi)
    csi_pwr = np.sum((csi.real.astype(np.float64) ** 2 + csi.imag.astype(np.float64) ** 2)
                     .reshape(n, -1), axis=1)
    rssi_pwr = 10.0 ** (total_rss_dbm(rssi_a, rssi_b, rssi_c, agc) / 10.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = rssi_pwr / (csi_pwr / N_GROUPS)
    noise_db = np.where(np.asarray(noise) == -127, -92.0, np.asarray(noise, dtype=np.float64))
    thermal = 10.0 ** (noise_db / 10.0)
    quant = scale * np.asarray(n_rx, np.float64) * np.asarray(n_tx, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.sqrt(scale / (thermal + quant))
    n_tx = np.asarray(n_tx)
    factor = factor * np.where(n_tx == 2, np.sqrt(2.0),
                               np.where(n_tx == 3, np.sqrt(10.0 ** 0.45), 1.0))
    factor = np.where(np.isfinite(factor) & (csi_pwr > 0), factor, 0.0)
    return csi.astype(np.complex128) * factor.reshape((n,) + (1,) * (csi.ndim - 1))


def matlab_rx_order(antenna_sel: int, n_rx: int) -> np.ndarray | None:
    """Rx slot order of MATLAB ``read_bf_file`` for one ``antenna_sel`` byte.

    ``perm = [sel & 3, (sel >> 2) & 3, (sel >> 4) & 3]`` (0-based); chain ``r`` goes to slot
    ``perm[r]``, but only when ``Nrx > 1`` and ``sum(perm + 1) == Nrx (Nrx + 1) / 2`` (and,
    here, ``perm[:Nrx]`` is a permutation of ``0..Nrx-1``). Returns the chain feeding each
    slot, or None when the order stays as received.
    """
    perm = [antenna_sel & 3, (antenna_sel >> 2) & 3, (antenna_sel >> 4) & 3]
    if n_rx < 2 or sum(perm) + 3 != n_rx * (n_rx + 1) // 2 or sorted(perm[:n_rx]) != list(
            range(n_rx)):
        return None
    order = np.argsort(perm[:n_rx])
    return None if (order == np.arange(n_rx)).all() else order


def scaled_csi_frames(frames: Frames) -> np.ndarray:
    """:func:`scaled_csi` of an Intel 5300 chunk, using its per-row fields."""
    f = frames.fields
    return scaled_csi(frames.data, f["rssi_a"], f["rssi_b"], f["rssi_c"], f["noise"], f["agc"],
                      f["Nrx"], f["Ntx"])


#: (length field bytes, big-endian) → (``unpack_from`` of the field, its numpy dtype).
_LENGTH_FIELDS = {(size, big): (struct.Struct((">" if big else "<") + code).unpack_from,
                                np.dtype((">" if big else "<") + f"u{size}"))
                  for size, code in ((2, "H"), (4, "I")) for big in (False, True)}


def _walked_offsets(walked: list[int], len_at: int) -> np.ndarray:
    """int64 record offsets of the length-field offsets ``walked``."""
    offs = np.array(walked, dtype=np.int64)
    if len_at:
        offs -= len_at
    return offs


def record_offsets(
    buf: bytes, *, len_at: int, len_bytes: int, big_endian: bool, overhead: int,
    path: str, base: int, min_len: int, max_len: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Walk a buffer of length-prefixed records.

    Record ``k`` starting at ``p`` is ``overhead + L`` bytes long, where ``L`` is the
    unsigned integer of ``len_bytes`` bytes at ``p + len_at``. Regular stretches (one
    record size, or two sizes alternating as in Intel 5300 logs) are found by speculation:
    the next records are assumed to repeat the pattern and all their length fields are
    checked at once (one strided numpy view per field), in windows that double while the
    guess holds. Irregular stretches fall back to a tight Python loop (one ``unpack_from``
    per record).

    Returns
    -------
    offsets, sizes : numpy.ndarray
        int64 start offset (in ``buf``) and size in bytes of every complete record.
    end : int
        Offset just past the last complete record (the rest is carried over).

    Raises
    ------
    CaptureFormatError
        A length outside ``[min_len, max_len]`` (framing is lost).
    """
    n = len(buf)
    unpack, field_dt = _LENGTH_FIELDS[len_bytes, big_endian]
    max_size = overhead + max_len
    min_size = max(overhead + min_len, 1)
    pieces: list[np.ndarray] = []
    walked: list[int] = []
    add = walked.append
    any_walked = False
    stop = n - len_at - len_bytes
    q_end = n + len_at - overhead
    pos = 0
    window = 64  # speculation window (records), doubles while guesses hold
    walk = 16  # records walked in Python after a failed guess, doubles while they fail
    bad_at = -1
    while pos <= stop:
        s1 = overhead + unpack(buf, pos + len_at)[0]
        if not min_size <= s1 <= max_size:
            bad_at = pos
            break
        # -- speculate: the pattern [s1] or [s1, s2] repeats --------------------------
        run = 0
        pattern: tuple[int, ...] = (s1,)
        if pos + s1 <= stop:
            s2 = overhead + unpack(buf, pos + s1 + len_at)[0]
            for pat in ((s1,), (s1, s2)) if s2 != s1 else ((s1,),):
                period = s1 if len(pat) == 1 else s1 + s2
                k = min(window, (n - pos) // period)
                # every length field read below must lie inside the buffer
                while k and pos + (k - 1) * period + period - pat[-1] + len_at + len_bytes > n:
                    k -= 1
                if k < 8:
                    continue
                # two cheap probes (middle and end of the window) before checking them all
                if any(overhead + unpack(buf, pos + j * period + len_at)[0] != s1
                       for j in (k // 2, k - 1)):
                    continue
                wrong = None
                cum = 0
                for size in pat:
                    field = np.ndarray((k,), field_dt, buffer=buf, offset=pos + cum + len_at,
                                       strides=(period,))
                    diff = field != size - overhead
                    wrong = diff if wrong is None else wrong | diff
                    cum += size
                first = int(wrong.argmax())
                r = first if wrong[first] else k
                if r * len(pat) > run * len(pattern):
                    run, pattern = r, pat
        if run * len(pattern) >= 32 and min(pattern) >= min_size and max(pattern) <= max_size:
            if walked:
                pieces.append(_walked_offsets(walked, len_at))
                walked.clear()
            period = sum(pattern)
            starts = np.arange(pos, pos + run * period, period, dtype=np.int64)
            if len(pattern) == 2:
                both = np.empty((run, 2), np.int64)
                both[:, 0] = starts
                np.add(starts, pattern[0], out=both[:, 1])
                starts = both.reshape(-1)
            pieces.append(starts)
            pos += run * period
            window = min(window * 2, 1 << 16) if run == window else 64
            walk = 16
            continue
        # -- walk: a tight loop over the length fields --------------------------------
        # (q: offset of the length field; sizes are validated in bulk below)
        any_walked = True
        q = pos + len_at
        ended = True
        try:
            for _ in range(walk):
                nq = q + unpack(buf, q)[0]  # (struct.error: the length field is cut)
                if nq > q_end:  # the record runs past the buffer
                    break
                add(q)
                q = nq + overhead
            else:
                ended = False
        except struct.error:
            pass
        pos = q - len_at
        if ended:
            break
        walk = min(walk * 2, 1 << 14)
    if walked:
        pieces.append(_walked_offsets(walked, len_at))
    if not pieces:
        offs = np.empty(0, np.int64)
        sizes = offs
    else:
        offs = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        sizes = np.empty(len(offs), np.int64)
        np.subtract(offs[1:], offs[:-1], out=sizes[:-1])
        sizes[-1] = pos - int(offs[-1])
    if any_walked and len(sizes) and (int(sizes.min()) < min_size or int(sizes.max()) > max_size):
        bad = (sizes < min_size) | (sizes > max_size)
        bad_at = int(offs[np.argmax(bad)])
    elif bad_at < 0 and pos <= stop:  # the record that ended the walk: cut, or bogus?
        size = overhead + unpack(buf, pos + len_at)[0]
        if not min_size <= size <= max_size:
            bad_at = pos
    if bad_at >= 0:
        size = overhead + unpack(buf, bad_at + len_at)[0]
        raise CaptureFormatError(
            path, f"byte {base + bad_at}", f"a record length field in {min_len}..{max_len}",
            f"{size - overhead}",
        )
    return offs, sizes, pos


def gather_rows(arr: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Copy ``width`` bytes at each offset ``starts`` of a contiguous uint8 array into a
    C-contiguous uint8 ``(len(starts), width)`` array (every ``start + width <= len(arr)``).

    The windows are indexed as one-element ``void`` records of a byte-strided view: one
    ``memcpy``-like copy per row, faster than fancy-indexing ``sliding_window_view``.
    """
    windows = np.ndarray((len(arr) - width + 1,), _void(width), buffer=arr, strides=(1,))
    return windows[starts].view(np.uint8).reshape(len(starts), width)


@functools.lru_cache(maxsize=256)
def _void(width: int) -> np.dtype:
    """The ``void`` dtype of ``width`` bytes (cached: building one costs more than a small
    gather)."""
    return np.dtype((np.void, width))


def record_groups(
    arr: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, base: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(records, file_offsets)``: uint8 ``(m, size)`` arrays of equally sized records.

    Records of one size that lie at a constant stride (all of them in a regular log, or
    every other one when two record types alternate) are a strided view of ``arr`` (no
    copy); others are copied row by row out of a sliding-window view.
    """
    if not len(sizes):
        return
    uniq = [int(sizes[0])] if (sizes == sizes[0]).all() else sorted(set(sizes.tolist()))
    for size in uniq:
        offs = offsets if len(uniq) == 1 else offsets[sizes == size]
        steps = np.diff(offs)
        if len(offs) == 1 or (steps == steps[0]).all():
            stride = int(steps[0]) if len(offs) > 1 else size
            rows = np.lib.stride_tricks.as_strided(
                arr[int(offs[0]):], shape=(len(offs), size), strides=(stride, 1),
                writeable=False)
        else:
            rows = gather_rows(arr, offs, size)
        yield rows, base + offs


@dataclass
class Block:
    """A run of complete records of a capture file (see :func:`record_blocks`).

    ``buf`` is a read-only buffer (memoryview of a memory map, or bytes) starting at file
    offset ``base``; ``offsets``/``sizes`` locate the complete records in it; ``arr`` is
    ``buf`` as uint8.
    """

    buf: Any
    arr: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    base: int


def record_blocks(
    path: str, *, start: int, block_bytes: int, len_at: int, len_bytes: int,
    big_endian: bool, overhead: int, min_len: int, max_len: int, read_below: int = 0,
) -> Iterator[Block | tuple[int, bytes, int]]:
    """Stream a file of length-prefixed records in blocks of whole records.

    The file is memory-mapped (no read copies; the pages of consumed blocks are released
    with ``MADV_DONTNEED`` so resident memory does not grow with the file) or, when that is
    impossible or the file holds at most ``read_below`` bytes from ``start`` on, read in
    ``block_bytes`` pieces (for a small file, one read costs less than mapping it). A
    record longer than a block widens the window (up to ``overhead + max_len`` bytes).

    Yields
    ------
    Block
        For every block, in file order; the consumer must finish with it before asking
        for the next one.
    (offset, head, length) : tuple
        Last, when the file ends inside a record: its file offset, its first bytes and the
        number of bytes present.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) \
                if size - start > read_below else None
        except (OSError, ValueError):
            mm = None
        if mm is None:  # small, or not mappable: read piecewise
            fh.seek(start)
            yield from _read_blocks(fh, start, block_bytes, len_at, len_bytes, big_endian,
                                    overhead, min_len, max_len, path)
            return
    view = memoryview(mm)
    base = start
    window = block_bytes
    released = 0
    page = mmap.PAGESIZE
    while base < size:
        chunk = view[base: base + window]
        offsets, sizes, end = record_offsets(
            chunk, len_at=len_at, len_bytes=len_bytes, big_endian=big_endian,
            overhead=overhead, path=path, base=base, min_len=min_len, max_len=max_len)
        if end == 0:
            if base + len(chunk) >= size:
                break
            window *= 2  # one record larger than the window
            continue
        yield Block(chunk, np.frombuffer(chunk, dtype=np.uint8), offsets, sizes, base)
        base += end
        window = block_bytes
        cut = (base // page) * page
        # (after the last block the mapping is simply dropped: no need to release pages)
        if base < size and cut - released >= 16 * page and hasattr(mmap, "MADV_DONTNEED"):
            mm.madvise(mmap.MADV_DONTNEED, released, cut - released)
            released = cut
    if base < size:
        yield (base, bytes(view[base: base + 16]), size - base)


def _read_blocks(fh, start, block_bytes, len_at, len_bytes, big_endian, overhead, min_len,
                 max_len, path) -> Iterator[Block | tuple[int, bytes, int]]:
    """:func:`record_blocks` without a memory map (pipes, special files)."""
    carry = b""
    base = start
    while True:
        data = fh.read(block_bytes)
        buf = carry + data if carry else data
        if not buf:  # the end of the file, after a whole record
            break
        offsets, sizes, end = record_offsets(
            buf, len_at=len_at, len_bytes=len_bytes, big_endian=big_endian, overhead=overhead,
            path=path, base=base, min_len=min_len, max_len=max_len)
        if end:
            yield Block(buf, np.frombuffer(buf, dtype=np.uint8), offsets, sizes, base)
        carry = buf[end:]
        base += end
        if not data:
            break
    if carry:
        yield (base, carry[:16], len(carry))


@FORMATS.register("intel5300")
class Intel5300Reader(CaptureReader):
    """Reader for Intel 5300 Linux 802.11n CSI Tool ``.dat`` logs.

    Parameters
    ----------
    path, chunk_size, source
        See :class:`~sensing.formats.base.CaptureReader`.
    pad_to : (int, int), optional
        Zero-pad every row to ``(n_rx, n_tx)`` (e.g. ``(3, 3)``) so that all chunks share one
        shape. By default a chunk is closed whenever the antenna layout changes.
    fallback_rate_hz : float, optional
        Packet rate assumed for records whose ``timestamp_low`` is invalid (see module doc).

    Per-row fields: ``timestamp_low`` (µs), ``bfee_count``, ``Nrx``, ``Ntx``, ``rssi_a``,
    ``rssi_b``, ``rssi_c`` (dB), ``noise`` (dBm), ``agc`` (dB), ``perm`` ``(n, 3)`` (0-based),
    ``rate`` (``fake_rate_n_flags``), ``rssi`` (total, dBm, :func:`total_rss_dbm`),
    ``time_valid``.
    """

    name = "intel5300"
    modality = "wifi_csi"
    extensions = (".dat",)
    description = "Intel 5300 Linux 802.11n CSI Tool log (0xBB bfee records)"

    def __init__(
        self, path: str | os.PathLike, *, chunk_size: int = 256, source: str | None = None,
        pad_to: tuple[int, int] | None = None, fallback_rate_hz: float | None = None,
    ) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        if pad_to is not None and not (1 <= pad_to[0] <= 3 and 1 <= pad_to[1] <= 3):
            raise ValueError(f"pad_to must be (1..3, 1..3), got {pad_to}")
        if fallback_rate_hz is not None and not fallback_rate_hz > 0:
            raise ValueError(f"fallback_rate_hz must be > 0, got {fallback_rate_hz}")
        self.pad_to = pad_to
        self.fallback_rate_hz = fallback_rate_hz
        self.other_records = 0
        self.invalid_times = 0

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        """Walk the records in ``head``: all must be framed and one must be a sane bfee."""
        pos, seen_bfee = 0, False
        while pos + 3 <= len(head):
            length = int.from_bytes(head[pos:pos + 2], "big")
            if length == 0:
                return False
            rec = head[pos + 3: pos + 2 + length]
            if head[pos + 2] == BFEE_CODE and len(rec) >= BFEE_HEADER:
                n_rx, n_tx = rec[8], rec[9]
                if not (1 <= n_rx <= 3 and 1 <= n_tx <= 3):
                    return False
                csi_len = int.from_bytes(rec[16:18], "little")
                if csi_len != bfee_csi_len(n_rx, n_tx) or length - 1 < BFEE_HEADER + csi_len:
                    return False
                seen_bfee = True
            pos += 2 + length
        return seen_bfee

    # -- decoding ---------------------------------------------------------------------
    def _decode(self, rec: np.ndarray, offsets: np.ndarray) -> dict[str, np.ndarray] | None:
        """Decode equally sized records ``rec`` (uint8 ``(n, step)``) at file ``offsets``."""
        step = rec.shape[1]
        is_bfee = rec[:, 2] == BFEE_CODE
        if step - 3 < BFEE_HEADER:
            is_bfee[:] = False
        self.other_records += int(np.count_nonzero(~is_bfee))
        if not is_bfee.all():
            rec, offsets = rec[is_bfee], offsets[is_bfee]
        if not len(rec):
            return None
        p = rec[:, 3:]
        n_rx = p[:, 8].astype(np.int64)
        n_tx = p[:, 9].astype(np.int64)
        csi_len = p[:, 16].astype(np.int64) | (p[:, 17].astype(np.int64) << 8)
        ok = (n_rx >= 1) & (n_rx <= 3) & (n_tx >= 1) & (n_tx <= 3)
        ok &= csi_len == bfee_csi_len(n_rx, n_tx)
        ok &= BFEE_HEADER + csi_len <= step - 3
        if not ok.all():
            bad = np.flatnonzero(~ok)
            described = bad[: self.rejects.room]  # the rest are only counted
            for i in described:
                self.rejects.add(Reject(
                    self.path, f"byte {int(offsets[i])}", RejectReason.BAD_BFEE,
                    "Nrx, Ntx in 1..3 and len == (30*(16*Nrx*Ntx+3)+7)//8 within the record",
                    f"Nrx={n_rx[i]} Ntx={n_tx[i]} len={csi_len[i]} record={step} bytes",
                ))
            self.rejects.add(RejectReason.BAD_BFEE, len(bad) - len(described))
            p, offsets, n_rx, n_tx = p[ok], offsets[ok], n_rx[ok], n_tx[ok]
        n = len(p)
        if not n:
            return None
        u32 = (p[:, 0].astype(np.uint32) | (p[:, 1].astype(np.uint32) << 8)
               | (p[:, 2].astype(np.uint32) << 16) | (p[:, 3].astype(np.uint32) << 24))
        ant = p[:, 15]
        perm = np.stack([ant & 3, (ant >> 2) & 3, (ant >> 4) & 3], axis=1).astype(np.int8)
        out = {
            "offset": offsets,
            "timestamp_low": u32,
            "bfee_count": (p[:, 4].astype(np.uint16) | (p[:, 5].astype(np.uint16) << 8)),
            "Nrx": n_rx.astype(np.uint8),
            "Ntx": n_tx.astype(np.uint8),
            "rssi_a": p[:, 10].copy(),
            "rssi_b": p[:, 11].copy(),
            "rssi_c": p[:, 12].copy(),
            "noise": p[:, 13].view(np.int8).copy(),
            "agc": p[:, 14].copy(),
            "perm": perm,
            "rate": (p[:, 18].astype(np.uint16) | (p[:, 19].astype(np.uint16) << 8)),
        }
        r_max, t_max = self.pad_to or (int(n_rx.max()), int(n_tx.max()))
        r_max, t_max = max(r_max, int(n_rx.max())), max(t_max, int(n_tx.max()))
        # one group per antenna layout (usually one); antenna selections within a layout
        # are applied after unpacking (unpack_bfee_rows)
        lay = n_rx * 4 + n_tx
        single = bool((lay == lay[0]).all())
        layouts = [int(lay[0])] if single else np.flatnonzero(np.bincount(lay)).tolist()
        csi = None
        for k in layouts:
            nr, nt = k // 4, k % 4
            rows = None if single else np.flatnonzero(lay == k)
            raw = unpack_bfee_rows(p[:, BFEE_HEADER:] if rows is None else p[rows, BFEE_HEADER:],
                                   nr, nt, ant if rows is None else ant[rows], matlab_rx_order)
            if single and (nr, nt) == (r_max, t_max):
                csi = raw
                break
            if csi is None:
                csi = np.zeros((n, N_GROUPS, r_max, t_max), dtype=np.complex64)
            if rows is None:
                csi[:, :, :nr, :nt] = raw
            else:
                csi[rows, :, :nr, :nt] = raw
        out["csi"] = csi
        return out

    def _times(self, ts: np.ndarray, state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Unwrap ``timestamp_low`` into stream seconds, carrying ``state`` across blocks."""
        ts = ts.astype(np.int64)
        prev = state.get("prev")
        first = ts[:1] if prev is None else np.array([prev], dtype=np.int64)
        d = np.diff(np.concatenate([first, ts])) % _WRAP
        valid = (d > 0) & (d < _WRAP // 2)
        if prev is None:
            valid[0] = True  # the first record defines t = 0
        gap = 1e6 / self.fallback_rate_hz if self.fallback_rate_hz else 0.0
        step_us = np.where(valid, d.astype(np.float64), gap)
        if prev is None:
            step_us[0] = 0.0
        t_us = state.get("t_us", 0.0) + np.cumsum(step_us)
        state["prev"] = int(ts[-1])
        state["t_us"] = float(t_us[-1])
        self.invalid_times += int(np.count_nonzero(~valid))
        return t_us * 1e-6, valid

    def _frames(self, rows: dict[str, np.ndarray], lo: int, hi: int) -> Frames:
        n_rx = rows["Nrx"][lo:hi]
        n_tx = rows["Ntx"][lo:hi]
        csi = rows["csi"][lo:hi]
        if self.pad_to is None:
            csi = csi[:, :, : int(n_rx[0]), : int(n_tx[0])]
        elif csi.shape[2:] != tuple(self.pad_to):
            padded = np.zeros(csi.shape[:2] + tuple(self.pad_to), np.complex64)
            padded[:, :, : csi.shape[2], : csi.shape[3]] = csi
            csi = padded
        rate = rows["rate"][lo:hi]
        ht40 = bool(rate[-1] & RATE_HT40)
        fields = {k: rows[k][lo:hi] for k in (
            "timestamp_low", "bfee_count", "Nrx", "Ntx", "rssi_a", "rssi_b", "rssi_c", "noise",
            "agc", "perm", "rate", "rssi", "time_valid")}
        return Frames(
            data=np.ascontiguousarray(csi), times_s=rows["times_s"][lo:hi], fs_hz=None,
            modality="wifi_csi", source=self.source,
            subcarriers=SUBCARRIERS_40MHZ if ht40 else SUBCARRIERS_20MHZ,
            fields=fields,
            meta={"format": self.name, "chip": "iwl5300", "bandwidth_mhz": 40 if ht40 else 20,
                  "timestamps_valid": self.invalid_times == 0},
        )

    def _blocks(self) -> Iterator[dict[str, np.ndarray]]:
        """Decoded records, one dict of arrays per file block, in file order."""
        for blk in record_blocks(self.path, start=0, block_bytes=BLOCK_BYTES, len_at=0,
                                 len_bytes=2, big_endian=True, overhead=2, min_len=1,
                                 max_len=0xFFFF):
            if isinstance(blk, tuple):  # the file ends inside a record
                at, head, have = blk
                need = 2 + int.from_bytes(head[:2], "big") if have >= 2 else 2
                self.rejects.add(Reject(
                    self.path, f"byte {at}", RejectReason.TRUNCATED_RECORD,
                    f"a complete record of {need} bytes (field_len {need - 2})",
                    f"{have} bytes before end of file",
                ))
                self.bytes_read = at + have
                continue
            parts = [self._decode(rec, offs) for rec, offs
                     in record_groups(blk.arr, blk.offsets, blk.sizes, blk.base)]
            parts = [d for d in parts if d is not None]
            self.bytes_read = blk.base + int(blk.offsets[-1] + blk.sizes[-1])
            if parts:
                yield _merge(parts)

    def chunks(self) -> Iterator[Frames]:
        self.rejects = RejectLog()
        self.other_records = 0
        self.invalid_times = 0
        state: dict[str, Any] = {}
        for rows in self._blocks():
            rows["times_s"], rows["time_valid"] = self._times(rows["timestamp_low"], state)
            rows["rssi"] = total_rss_dbm(rows["rssi_a"], rows["rssi_b"], rows["rssi_c"],
                                         rows["agc"]).astype(np.float32)
            n = len(rows["times_s"])
            if self.pad_to is None:
                lay = rows["Nrx"].astype(np.int16) * 4 + rows["Ntx"]
                cuts = np.flatnonzero(np.diff(lay)) + 1
            else:
                cuts = np.empty(0, dtype=np.int64)
            bounds = np.concatenate([[0], cuts, [n]])
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                for lo in range(int(a), int(b), self.chunk_size):
                    yield self._frames(rows, lo, min(lo + self.chunk_size, int(b)))

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["other_records"] = self.other_records
        out["invalid_timestamps"] = self.invalid_times
        if self.invalid_times:
            out["time_source"] = (
                "timestamp_low invalid for some records; "
                + (f"{self.fallback_rate_hz} Hz assumed" if self.fallback_rate_hz
                   else "time held (pass fallback_rate_hz)")
            )
        else:
            out["time_source"] = "timestamp_low (us, unwrapped)"
        return out


def _merge(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate decoded groups and put the rows back into file order."""
    if len(parts) == 1:
        return parts[0]
    parts = sorted(parts, key=lambda d: int(d["offset"][0]))
    disjoint = all(int(a["offset"][-1]) < int(b["offset"][0]) for a, b in zip(parts[:-1], parts[1:], strict=True))
    r = max(d["csi"].shape[2] for d in parts)
    t = max(d["csi"].shape[3] for d in parts)
    out: dict[str, np.ndarray] = {}
    for k in parts[0]:
        if k == "csi":
            csi = np.zeros((sum(len(d[k]) for d in parts), N_GROUPS, r, t), np.complex64)
            i = 0
            for d in parts:
                c = d[k]
                csi[i: i + len(c), :, : c.shape[2], : c.shape[3]] = c
                i += len(c)
            out[k] = csi
        else:
            out[k] = np.concatenate([d[k] for d in parts])
    if not disjoint:
        order = np.argsort(out["offset"], kind="stable")
        out = {k: v[order] for k, v in out.items()}
    return out


# -- writer ------------------------------------------------------------------------------

#: ``antenna_sel`` of the identity permutation (rx chain q → slot q), 2 bits per chain.
IDENTITY_ANTENNA_SEL = 0 | (1 << 2) | (2 << 4)


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
