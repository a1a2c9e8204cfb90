"""The LoRa physical layer: chirps and the transmit chain, and the inverse steps the
receiver (:mod:`sensing.lora.receiver`) uses.

The chain follows the reverse-engineered LoRa PHY (Robyns et al., "A Multi-Channel
Software Decoder for the LoRa Modulation Scheme", 2018, rpp0/gr-lora) as implemented and
checked against commercial chips by Tapparel et al. ("An Open-Source LoRa Physical Layer
Prototype on GNU Radio", SPAWC 2020, gr-lora_sdr); it reproduces gr-lora_sdr's reference
transmissions symbol for symbol (``tests/test_lora_receiver.py``).

Transmit chain for a payload of ``L`` bytes with spreading factor ``sf``, coding rate
4/(4+``cr``):

1. **Whitening.** Each payload byte is XORed with the LoRa whitening sequence (LFSR
   x^8+x^6+x^5+x^4+1, seed 0xFF) and split into two nibbles, low nibble first.
2. **Explicit header.** Five nibbles before the payload: ``L >> 4``, ``L & 15``,
   ``cr << 1 | has_crc``, then a 5-bit checksum of the first three (bit 4 in the fourth
   nibble, bits 3..0 in the fifth). Not whitened.
3. **CRC.** CRC-16/CCITT (polynomial 0x1021, initial 0) of the first ``L - 2`` bytes,
   XORed with the last two bytes (``b[L-1] ^ b[L-2] << 8``), appended as four nibbles,
   least significant first; not whitened.
4. **Hamming** (4, 4+cr): data bits d0..d3 (LSB first) followed by parity bits
   p0 = d0^d1^d2, p1 = d1^d2^d3, p2 = d0^d1^d3, p3 = d0^d2^d3 (4/5: one parity bit, the
   XOR of the four); the first block (header, ``sf - 2`` nibbles) always uses 4/8.
5. **Diagonal interleaver.** A block of ``sf_app`` codewords of ``4+cr`` bits becomes
   ``4+cr`` symbols of ``sf_app`` bits: bit j (MSB first) of symbol i is bit i of
   codeword (i - j - 1) mod ``sf_app``. ``sf_app = sf - 2`` for the first block and, with
   low data rate optimisation (LDRO), for every block; ``sf`` otherwise.
6. **Gray mapping.** Each ``sf_app``-bit value v is mapped to the symbol
   ``(gray⁻¹(v) << (sf - sf_app)) + 1`` (mod 2**sf): the reduced-rate symbols are
   multiples of 4 so that they survive a ±1 bin error.
7. **Modulation.** ``preamble_len`` up-chirps, two sync-word up-chirps of values
   ``(sync_word >> 4) * 8`` and ``(sync_word & 15) * 8``, 2.25 down-chirps, then one
   up-chirp per symbol, cyclically shifted by its value.

All functions are vectorised with numpy; nothing here holds state.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "chirp", "whitening_sequence", "crc16", "header_nibbles", "header_checksum",
    "hamming_encode", "hamming_decode", "interleave", "deinterleave", "gray", "gray_inverse",
    "encode_symbols", "modulate", "frame_iq", "n_payload_symbols", "sync_symbols",
    "Decoded", "decode_symbols", "decode_header", "frame_at_times", "frame_symbols",
]


# ----------------------------------------------------------------------------- chirps


def chirp(sf: int, os: int = 1, symbol: int = 0, *, down: bool = False) -> np.ndarray:
    """One LoRa chirp of ``2**sf`` chips at ``os`` samples per chip.

    The instantaneous frequency of an up-chirp of value ``symbol`` starts at
    ``(symbol / 2**sf - 1/2) * bw`` and rises by ``bw`` over the symbol, wrapping from
    ``+bw/2`` to ``-bw/2``; the phase is continuous. A down-chirp is the conjugate of the
    up-chirp of value 0.

    Returns
    -------
    numpy.ndarray
        complex64 ``(2**sf * os,)``.
    """
    n_chips = 1 << sf
    t = np.arange(n_chips * os) / os  # time in chips
    s = symbol % n_chips
    phase = t * t / (2 * n_chips) + (s / n_chips - 0.5) * t
    phase = phase - np.where(t >= n_chips - s, t, 0.0)  # the wrap (integer at the fold)
    out = np.exp(2j * np.pi * phase)
    return (np.conj(out) if down else out).astype(np.complex64)


def sync_symbols(sync_word: int) -> tuple[int, int]:
    """The two sync-word symbol values: each nibble of ``sync_word`` times 8."""
    return ((sync_word >> 4) & 15) * 8, (sync_word & 15) * 8


# ------------------------------------------------------------------- coding pieces


def whitening_sequence(n: int) -> np.ndarray:
    """The first ``n`` bytes of the LoRa whitening sequence (LFSR x^8+x^6+x^5+x^4+1,
    seed 0xFF; the sequence repeats every 255 bytes)."""
    out = np.empty(max(n, 0), np.uint8)
    state = 0xFF
    for i in range(len(out)):
        out[i] = state
        fb = ((state >> 7) ^ (state >> 5) ^ (state >> 4) ^ (state >> 3)) & 1
        state = ((state << 1) | fb) & 0xFF
    return out


_WHITEN = whitening_sequence(255)


def _whiten(data: np.ndarray) -> np.ndarray:
    reps = -(-len(data) // 255) or 1
    return np.asarray(data, np.uint8) ^ np.tile(_WHITEN, reps)[: len(data)]


def _crc_table() -> np.ndarray:
    table = np.zeros(256, np.uint16)
    for b in range(256):
        c = b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        table[b] = c & 0xFFFF
    return table


_CRC_TABLE = _crc_table()


def crc16(payload: bytes | np.ndarray) -> int:
    """The LoRa payload CRC: CRC-16/CCITT (0x1021, init 0, no reflection) of all but the
    last two bytes, XORed with the last two bytes (``b[-1] ^ b[-2] << 8``)."""
    data = bytes(payload)
    crc = 0
    for b in data[:-2]:
        crc = ((crc << 8) & 0xFFFF) ^ int(_CRC_TABLE[((crc >> 8) ^ b) & 0xFF])
    if len(data) >= 1:
        crc ^= data[-1]
    if len(data) >= 2:
        crc ^= data[-2] << 8
    return crc & 0xFFFF


def header_checksum(n0: int, n1: int, n2: int) -> int:
    """5-bit checksum of the three explicit-header nibbles (length high, length low,
    ``cr << 1 | has_crc``)."""
    def b(x: int, i: int) -> int:
        return (x >> i) & 1

    c4 = b(n0, 3) ^ b(n0, 2) ^ b(n0, 1) ^ b(n0, 0)
    c3 = b(n0, 3) ^ b(n1, 3) ^ b(n1, 2) ^ b(n1, 1) ^ b(n2, 0)
    c2 = b(n0, 2) ^ b(n1, 3) ^ b(n1, 0) ^ b(n2, 3) ^ b(n2, 1)
    c1 = b(n0, 1) ^ b(n1, 2) ^ b(n1, 0) ^ b(n2, 2) ^ b(n2, 1) ^ b(n2, 0)
    c0 = b(n0, 0) ^ b(n1, 1) ^ b(n2, 3) ^ b(n2, 2) ^ b(n2, 1) ^ b(n2, 0)
    return c4 << 4 | c3 << 3 | c2 << 2 | c1 << 1 | c0


def header_nibbles(payload_len: int, cr: int, has_crc: bool) -> np.ndarray:
    """The five explicit-header nibbles."""
    n0, n1, n2 = (payload_len >> 4) & 15, payload_len & 15, (cr << 1 | int(has_crc)) & 15
    chk = header_checksum(n0, n1, n2)
    return np.array([n0, n1, n2, chk >> 4, chk & 15], np.uint8)


def _parity_bits(d: np.ndarray) -> np.ndarray:
    """(..., 4) data bits d0..d3 → (..., 4) parity bits p0..p3."""
    d0, d1, d2, d3 = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    return np.stack([d0 ^ d1 ^ d2, d1 ^ d2 ^ d3, d0 ^ d1 ^ d3, d0 ^ d2 ^ d3], axis=-1)


def hamming_encode(nibbles: np.ndarray, cr: int) -> np.ndarray:
    """Codewords of ``4 + cr`` bits, as (n, 4+cr) uint8 bit arrays (d0..d3, parity)."""
    nib = np.asarray(nibbles, np.uint8)
    d = (nib[:, None] >> np.arange(4)) & 1
    if cr == 1:
        par = (d.sum(axis=1, keepdims=True) & 1).astype(np.uint8)
    else:
        par = _parity_bits(d)[:, :cr]
    return np.concatenate([d, par], axis=1).astype(np.uint8)


def _codebook(cr: int) -> np.ndarray:
    return hamming_encode(np.arange(16), cr)  # (16, 4+cr)


_CODEBOOKS = {cr: _codebook(cr) for cr in (1, 2, 3, 4)}


def hamming_decode(bits: np.ndarray, cr: int) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-codeword decoding of (n, 4+cr) bit arrays.

    Returns
    -------
    nibbles : numpy.ndarray
        uint8 (n,).
    distance : numpy.ndarray
        Hamming distance of each word to its codeword (0: no error seen; for 4/5 and 4/6
        a non-zero distance is an error detected, not necessarily corrected).
    """
    book = _CODEBOOKS[cr]
    bits = np.asarray(bits, np.uint8)
    dist = (bits[:, None, :] != book[None, :, :]).sum(axis=2)  # (n, 16)
    if cr <= 2:
        # 4/5 and 4/6 detect but cannot correct: keep the data bits as received
        nib = (bits[:, :4] << np.arange(4)).sum(axis=1).astype(np.uint8)
        return nib, dist[np.arange(len(bits)), nib]
    best = dist.argmin(axis=1)
    return best.astype(np.uint8), dist[np.arange(len(bits)), best]


def interleave(codewords: np.ndarray, sf_app: int) -> np.ndarray:
    """One block: (sf_app, cw_len) codeword bits → (cw_len,) symbol values of sf_app bits.

    Bit j (MSB first) of symbol i is bit i of codeword (i - j - 1) mod sf_app.
    """
    cw = np.asarray(codewords, np.uint8)
    cw_len = cw.shape[1]
    i = np.arange(cw_len)[:, None]
    j = np.arange(sf_app)[None, :]
    bits = cw[(i - j - 1) % sf_app, i]  # (cw_len, sf_app), j = 0 is the MSB
    weights = 1 << np.arange(sf_app - 1, -1, -1)
    return (bits.astype(np.int64) * weights).sum(axis=1)


@functools.lru_cache(maxsize=64)
def _deinterleave_index(sf_app: int, cw_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bit shifts and the (row, column) destination of every bit of a block."""
    i = np.arange(cw_len)[:, None]
    j = np.arange(sf_app)[None, :]
    return (np.arange(sf_app - 1, -1, -1), (i - j - 1) % sf_app,
            np.broadcast_to(i, (cw_len, sf_app)))


def deinterleave(values: np.ndarray, sf_app: int) -> np.ndarray:
    """Inverse of :func:`interleave` for a batch: (..., cw_len) symbol values →
    (..., sf_app, cw_len) codeword bits."""
    v = np.asarray(values, np.int64)
    cw_len = v.shape[-1]
    shifts, rows, cols = _deinterleave_index(sf_app, cw_len)
    bits = ((v[..., :, None] >> shifts) & 1).astype(np.uint8)  # (..., cw_len, sf_app)
    out = np.zeros(v.shape[:-1] + (sf_app, cw_len), np.uint8)
    out[..., rows, cols] = bits
    return out


def gray(x: np.ndarray) -> np.ndarray:
    """Binary-reflected Gray code of ``x``."""
    x = np.asarray(x, np.int64)
    return x ^ (x >> 1)


def gray_inverse(g: np.ndarray, bits: int = 12) -> np.ndarray:
    """Inverse of :func:`gray` for values of up to ``bits`` bits."""
    x = np.asarray(g, np.int64).copy()
    shift = 1
    while shift < bits:
        x ^= x >> shift
        shift <<= 1
    return x


def n_payload_symbols(payload_len: int, sf: int, cr: int, *, has_crc: bool = True,
                      implicit_header: bool = False, ldro: bool = False) -> int:
    """Symbols after the preamble (header block + payload blocks), Semtech's formula."""
    num = 8 * payload_len - 4 * sf + 28 + 16 * int(has_crc) - 20 * int(implicit_header)
    den = 4 * (sf - 2 * int(ldro))
    return 8 + max(-(-num // den), 0) * (cr + 4)


# ------------------------------------------------------------------------ encoder


def encode_symbols(payload: bytes, sf: int, cr: int, *, has_crc: bool = True,
                   implicit_header: bool = False, ldro: bool = False) -> np.ndarray:
    """Symbol values (0 … 2**sf − 1) of a frame's header and payload.

    Parameters
    ----------
    payload : bytes
        0 … 255 bytes.
    sf, cr : int
        Spreading factor 7 … 12, coding rate 1 … 4 (4/5 … 4/8).
    has_crc, implicit_header, ldro : bool
        Payload CRC, no explicit header, low data rate optimisation.
    """
    payload = bytes(payload)
    if not 0 <= len(payload) <= 255:
        raise ValueError(f"payload must be 0..255 bytes, got {len(payload)}")
    if not 7 <= sf <= 12 or not 1 <= cr <= 4:
        raise ValueError(f"sf must be 7..12 and cr 1..4, got sf={sf}, cr={cr}")
    data = _whiten(np.frombuffer(payload, np.uint8))
    nib = np.stack([data & 15, data >> 4], axis=1).reshape(-1)
    parts = [] if implicit_header else [header_nibbles(len(payload), cr, has_crc)]
    parts.append(nib)
    if has_crc:
        c = crc16(payload)
        parts.append(np.array([c & 15, (c >> 4) & 15, (c >> 8) & 15, c >> 12], np.uint8))
    nibbles = np.concatenate(parts).astype(np.uint8)
    n_sym = n_payload_symbols(len(payload), sf, cr, has_crc=has_crc,
                              implicit_header=implicit_header, ldro=ldro)
    sf_pay = sf - 2 if ldro else sf
    n_nib = (sf - 2) + (n_sym - 8) // (4 + cr) * sf_pay
    nibbles = np.concatenate([nibbles, np.zeros(max(n_nib - len(nibbles), 0), np.uint8)])
    symbols = []
    pos = 0
    first = True
    while pos < n_nib:
        sf_app = sf - 2 if (first or ldro) else sf
        rate = 4 if first else cr
        block = nibbles[pos: pos + sf_app]
        vals = interleave(hamming_encode(block, rate), sf_app)
        syms = (gray_inverse(vals) << (sf - sf_app)) + 1
        symbols.append(syms % (1 << sf))
        pos += sf_app
        first = False
    return np.concatenate(symbols).astype(np.int64)


def modulate(symbols: Sequence[int] | np.ndarray, sf: int, *, os: int = 1,
             sync_word: int = 0x12, preamble_len: int = 8) -> np.ndarray:
    """Baseband IQ of a frame: preamble, sync word, 2.25 down-chirps, ``symbols``.

    Returns
    -------
    numpy.ndarray
        complex64, ``(preamble_len + 4.25 + len(symbols)) * 2**sf * os`` samples at
        ``os`` samples per chip, |x| = 1.
    """
    n = (1 << sf) * os
    base = chirp(sf, os)
    # a cyclic shift by s chips of the base up-chirp is the up-chirp of value s (the
    # phase at the fold is a whole number of turns)
    s1, s2 = sync_symbols(sync_word)
    up_syms = np.concatenate([np.zeros(preamble_len, np.int64), [s1, s2]])
    down = chirp(sf, os, down=True)
    data = np.asarray(symbols, np.int64)
    idx = (np.arange(n)[None, :] + (up_syms[:, None] * os)) % n
    start = np.exp(-2j * np.pi * (up_syms * up_syms / (2 << sf) - up_syms / 2))
    head = (base[idx] * start[:, None]).reshape(-1)
    idx = (np.arange(n)[None, :] + (data[:, None] * os)) % n
    # every symbol starts at phase 0 (as chirp(sf, os, s)): undo the shifted start phase
    n_chips = 1 << sf
    start = np.exp(-2j * np.pi * (data * data / (2 * n_chips) - data / 2))
    body = (base[idx] * start[:, None]).reshape(-1)
    return np.concatenate([head, down, down, down[: n // 4], body]).astype(np.complex64)


def frame_iq(payload: bytes, sf: int, cr: int = 1, *, os: int = 1, sync_word: int = 0x12,
             preamble_len: int = 8, has_crc: bool = True, implicit_header: bool = False,
             ldro: bool | None = None) -> np.ndarray:
    """Baseband IQ of a whole LoRa frame carrying ``payload`` (see :func:`modulate`).

    ``ldro`` None: on when a symbol lasts more than 16 ms at 125 kHz (SF11, SF12).
    """
    if ldro is None:
        ldro = sf >= 11
    syms = encode_symbols(payload, sf, cr, has_crc=has_crc, implicit_header=implicit_header,
                          ldro=ldro)
    return modulate(syms, sf, os=os, sync_word=sync_word, preamble_len=preamble_len)


def frame_symbols(payload: bytes, sf: int, cr: int = 1, *, sync_word: int = 0x12,
                  preamble_len: int = 8, has_crc: bool = True, implicit_header: bool = False,
                  ldro: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The chirp sequence of a frame: ``(values, kinds)`` with kind 0 = up-chirp of that
    value, 1 = down-chirp (the last one a quarter); ``values`` int64, one per chirp."""
    if ldro is None:
        ldro = sf >= 11
    data = encode_symbols(payload, sf, cr, has_crc=has_crc, implicit_header=implicit_header,
                          ldro=ldro)
    s1, s2 = sync_symbols(sync_word)
    values = np.concatenate([np.zeros(preamble_len, np.int64), [s1, s2, 0, 0, 0], data])
    kinds = np.zeros(len(values), np.int64)
    kinds[preamble_len + 2: preamble_len + 5] = 1
    return values.astype(np.int64), kinds


def frame_at_times(chips: np.ndarray, values: np.ndarray, kinds: np.ndarray, sf: int
                   ) -> np.ndarray:
    """The frame's baseband waveform at arbitrary times given in chips since its start
    (continuous time: fractional timing and sampling clock offsets are exact).

    Parameters
    ----------
    chips : numpy.ndarray
        float64 times in chips (``(t − t_start) · bw · (1 + ppm·1e-6)`` for a transmitter
        clock ``ppm`` fast); outside the frame the waveform is 0.
    values, kinds : numpy.ndarray
        From :func:`frame_symbols` (the quarter down-chirp is the chirp after the second
        full one and lasts 2**sf / 4 chips).

    Returns
    -------
    numpy.ndarray
        complex128, same shape as ``chips``.
    """
    n_chips = 1 << sf
    n_down_full = 2
    first_down = int(np.flatnonzero(kinds == 1)[0]) if (kinds == 1).any() else len(kinds)
    # chirp start times (chips): the quarter down-chirp shortens what follows it
    dur = np.full(len(values), float(n_chips))
    if (kinds == 1).sum() > n_down_full:
        dur[first_down + n_down_full] = n_chips / 4
    starts = np.concatenate([[0.0], np.cumsum(dur)])
    t = np.asarray(chips, float)
    i = np.searchsorted(starts, t, side="right") - 1
    inside = (i >= 0) & (i < len(values))
    ic = np.clip(i, 0, len(values) - 1)
    u = t - starts[ic]
    s = np.where(kinds[ic] == 1, 0, values[ic] % n_chips)
    phase = u * u / (2 * n_chips) + (s / n_chips - 0.5) * u
    phase = phase - np.where(u >= n_chips - s, u, 0.0)
    phase = np.where(kinds[ic] == 1, -phase, phase)
    return np.where(inside, np.exp(2j * np.pi * phase), 0.0)


# ------------------------------------------------------------------------ decoder


@dataclass
class Decoded:
    """Result of :func:`decode_symbols`.

    Attributes
    ----------
    payload : bytes
        Dewhitened payload (possibly wrong when ``crc_ok`` is False).
    crc_ok : bool or None
        Payload CRC matches; None when the frame has no CRC.
    header_ok : bool
        Explicit header checksum matches (True for implicit header frames).
    cr : int
        Coding rate used for the payload.
    has_crc : bool
        Whether the frame carries a CRC.
    n_symbols : int
        Symbols the frame occupies after the preamble.
    corrected : int
        Codewords that differed from a valid codeword (errors seen).
    """

    payload: bytes
    crc_ok: bool | None
    header_ok: bool
    cr: int
    has_crc: bool
    n_symbols: int
    corrected: int


def _values(symbols: np.ndarray, sf: int, sf_app: int) -> np.ndarray:
    """Received symbol values (FFT bins) → interleaved sf_app-bit values."""
    n = 1 << sf
    s = (np.asarray(symbols, np.int64) - 1) % n
    if sf_app < sf:  # reduced rate: nearest multiple of 4 (tolerates ±1 bin)
        s = ((s + (1 << (sf - sf_app - 1))) >> (sf - sf_app)) % (1 << sf_app)
    return gray(s)


def _block_nibbles(symbols: np.ndarray, sf: int, sf_app: int, rate: int
                   ) -> tuple[np.ndarray, int]:
    vals = _values(symbols, sf, sf_app)
    bits = deinterleave(vals, sf_app)  # (sf_app, cw_len)
    nib, dist = hamming_decode(bits, rate)
    return nib, int((dist > 0).sum())


def decode_header(symbols: np.ndarray, sf: int) -> tuple[int, int, bool, bool, np.ndarray]:
    """Decode the first block (8 symbols): ``(payload_len, cr, has_crc, header_ok,
    nibbles)`` with ``nibbles`` all ``sf - 2`` nibbles of the block."""
    nib, _ = _block_nibbles(np.asarray(symbols[:8]), sf, sf - 2, 4)
    n0, n1, n2 = int(nib[0]), int(nib[1]), int(nib[2])
    chk = int(nib[3]) << 4 | int(nib[4])
    length = n0 << 4 | n1
    cr = n2 >> 1
    has_crc = bool(n2 & 1)
    ok = (chk & 0x1F) == header_checksum(n0, n1, n2) and 1 <= cr <= 4
    return length, cr, has_crc, ok, nib


def decode_symbols(symbols: np.ndarray, sf: int, *, implicit_header: bool = False,
                   payload_len: int = 0, cr: int = 1, has_crc: bool = True,
                   ldro: bool = False) -> Decoded | None:
    """Decode received symbol values (header block first) into a payload.

    Returns None when the explicit header is invalid or more symbols are needed than
    given (then the caller may wait for more).
    """
    symbols = np.asarray(symbols, np.int64)
    if len(symbols) < 8:
        return None
    corrected = 0
    if implicit_header:
        nib0, corrected = _block_nibbles(symbols[:8], sf, sf - 2, 4)
        length, header_ok = payload_len, True
        first = nib0
    else:
        length, cr, has_crc, header_ok, nib0 = decode_header(symbols, sf)
        if not header_ok:
            return None
        first = nib0[5:]
    n_sym = n_payload_symbols(length, sf, cr, has_crc=has_crc,
                              implicit_header=implicit_header, ldro=ldro)
    if len(symbols) < n_sym:
        return None
    sf_pay = sf - 2 if ldro else sf
    cw_len = 4 + cr
    n_blocks = (n_sym - 8) // cw_len
    parts = [first]
    if n_blocks:
        blocks = symbols[8:n_sym].reshape(n_blocks, cw_len)
        vals = _values(blocks, sf, sf_pay)
        bits = deinterleave(vals, sf_pay).reshape(-1, cw_len)  # (n_blocks*sf_pay, cw_len)
        nib, dist = hamming_decode(bits, cr)
        corrected += int((dist > 0).sum())
        parts.append(nib)
    nibbles = np.concatenate(parts).astype(np.uint8)
    need = 2 * length + (4 if has_crc else 0)
    if len(nibbles) < need:
        return None
    data = nibbles[: 2 * length].reshape(-1, 2)
    raw = (data[:, 0] | (data[:, 1] << 4)).astype(np.uint8)
    payload = bytes(_whiten(raw)) if length else b""
    crc_ok: bool | None = None
    if has_crc:
        c = nibbles[2 * length: 2 * length + 4].astype(np.int64)
        got = int(c[0] | c[1] << 4 | c[2] << 8 | c[3] << 12)
        crc_ok = got == crc16(payload)
    return Decoded(payload=payload, crc_ok=crc_ok, header_ok=header_ok, cr=cr,
                   has_crc=has_crc, n_symbols=n_sym, corrected=corrected)
