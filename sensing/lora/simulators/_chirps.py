"""Periodic LoRa packets for the sensing simulators (``lora-breathing``, ``lora-soil``).

A sensing transmitter sends short packets at a fixed interval (jittered): ``preamble_len``
up-chirps, the two sync-word symbols (the sync word's nibbles × 8, as SX127x), 2.25
down-chirps (SFD) and ``payload_symbols`` random symbols (cyclically shifted up-chirps; not
an encoded payload: the sensing extractor needs only chirps). The transmitter's carrier
frequency offset drifts from packet to packet and every packet starts with a new random
phase; the receiver's oscillator adds Wiener phase noise. All of that is common to the
receiver's antennas (one clock) and is applied by :func:`common_waveform` before the
per-antenna channel.
"""

from __future__ import annotations

import numpy as np

from sensing.lora.chirp_amplitude import block_length, upchirp
from sensing.simulate import radio


def symbol(sf: int, bw_hz: float, fs_hz: float, value: int) -> np.ndarray:
    """Up-chirp of symbol ``value`` (cyclic shift by ``value`` chips)."""
    base = upchirp(sf, bw_hz, fs_hz)
    os_ = block_length(sf, bw_hz, fs_hz) / (1 << sf)
    return np.roll(base, -int(round(value * os_)))


def packet(sf: int, bw_hz: float, fs_hz: float, rng: np.random.Generator, *,
           preamble_len: int = 8, payload_symbols: int = 8, sync_word: int = 0x12,
           payload: bytes | None = None) -> np.ndarray:
    """One packet at baseband (complex64, unit amplitude).

    With ``payload`` (and an integer oversampling ``fs / bw``) a real LoRa frame
    (explicit header, CR 4/5, CRC) from :func:`sensing.lora.modem.frame_iq`, which the
    ``lora_packet`` pipeline decodes; otherwise the preamble, sync word, SFD and
    ``payload_symbols`` random symbols (drawn from ``rng``)."""
    n = block_length(sf, bw_hz, fs_hz)
    os_ = fs_hz / bw_hz
    if payload is not None and abs(os_ - round(os_)) < 1e-9:
        from sensing.lora.modem import frame_iq

        return frame_iq(payload, sf, 1, os=int(round(os_)), sync_word=sync_word,
                        preamble_len=preamble_len).astype(np.complex64)
    up = upchirp(sf, bw_hz, fs_hz)
    down = np.conj(up)
    parts = [np.tile(up, preamble_len),
             symbol(sf, bw_hz, fs_hz, ((sync_word >> 4) & 0xF) * 8),
             symbol(sf, bw_hz, fs_hz, (sync_word & 0xF) * 8),
             down, down, down[: n // 4]]
    parts += [symbol(sf, bw_hz, fs_hz, int(v))
              for v in rng.integers(0, 1 << sf, payload_symbols)]
    return np.concatenate(parts).astype(np.complex64)


def packet_starts(rng: np.random.Generator, duration_s: float, interval_s: float,
                  fs_hz: float, packet_len: int, *, jitter_s: float = 0.005) -> np.ndarray:
    """Start samples of the packets of a capture: one every ``interval_s`` ± ``jitter_s``
    (uniform), the first at a random offset within one interval; each packet fits."""
    n_total = int(round(duration_s * fs_hz))
    t = rng.uniform(0, interval_s) + np.arange(int(duration_s / interval_s) + 1) * interval_s
    t = t + rng.uniform(-jitter_s, jitter_s, len(t))
    s = np.round(t * fs_hz).astype(np.int64)
    return s[(s >= 0) & (s + packet_len <= n_total)]


def common_waveform(rng: np.random.Generator, n_total: int, fs_hz: float,
                    starts: np.ndarray, pkts: list[np.ndarray], *, cfo_hz: float,
                    cfo_drift_hz: float, linewidth_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """The transmitted packets as received before the per-antenna channel.

    Draw order: the per-packet CFO random walk (``len(starts)`` normals), the per-packet
    start phases (uniforms), then the receiver phase noise (``n_total`` normals).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        complex64 ``(n_total,)`` waveform (zero between packets) and the per-packet CFO (Hz).
    """
    cfo = cfo_hz + np.cumsum(rng.normal(0, cfo_drift_hz, len(starts)))
    phase0 = radio.common_phase(rng, len(starts))
    pn = radio.phase_noise(rng, n_total, linewidth_hz, fs_hz)
    out = np.zeros(n_total, np.complex64)
    for s, p, f, ph in zip(starts, pkts, cfo, phase0, strict=True):
        idx = np.arange(s, s + len(p))
        rot = np.exp(1j * (2 * np.pi * f * (idx / fs_hz) + ph + pn[idx]))
        out[idx] = p * rot
    return out, cfo
