"""Per-chirp complex amplitude of every channel of a LoRa IQ stream (streaming).

The LoRa sensing pipelines take their chirps from the stream's shared packet receiver
(:func:`sensing.lora.receiver.frame_chirps`); this extractor is their fallback when the
sample rate is not a whole multiple of the bandwidth (the receiver then cannot run), and
:class:`ChirpAmplitudes` is the form both give. A lightweight extractor, independent of
the packet receiver: the stream is cut
into back-to-back blocks of one symbol (``2**sf · fs / bw`` samples, on a grid fixed from
the stream start, so chunk boundaries never change the result), every block of every
channel is multiplied by the conjugate reference up-chirp and Fourier transformed, and the
bin with the largest power summed over the channels is the block's tone. The complex value
of that bin in each channel is the block's **chirp amplitude**.

A LoRa up-chirp (preamble or payload symbol: a cyclically shifted up-chirp) that is not
aligned with the block grid still dechirps to one tone (two at oversampling, split at the
frequency wrap; the larger is taken), at a bin set by the timing and carrier offsets. Both
channels of one receiver share the clock and the oscillator, so they see the same bin and
the same offsets: the **antenna ratio** ``a[:, 1] / a[:, 0]`` of one block cancels the
carrier frequency offset, the timing offset and the phase noise common to both, and leaves
the ratio of the two antennas' channel gains (flat over the LoRa band when the delay
spread is well below ``1 / bw``: 8 µs at 125 kHz). Down-chirps (the SFD) and noise-only
blocks spread over all bins and fail the peak test (``min_peak_db``).

>>> import numpy as np
>>> from sensing.lora.chirp_amplitude import ChirpAmplitudeExtractor, upchirp
>>> ex = ChirpAmplitudeExtractor(sf=7, bw_hz=125e3, fs_hz=125e3)
>>> x = np.tile(upchirp(7, 125e3, 125e3), 4)[:, None] * np.array([[1.0, 0.5j]])
>>> amps = ex.push(x.astype(np.complex64))
>>> np.round(amps.ratio(), 3).tolist()
[0.5j, 0.5j, 0.5j, 0.5j]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["upchirp", "block_length", "ChirpAmplitudes", "ChirpAmplitudeExtractor"]


@functools.lru_cache(maxsize=16)
def upchirp(sf: int, bw_hz: float, fs_hz: float, n: int | None = None) -> np.ndarray:
    """The base LoRa up-chirp at baseband, sampled at ``fs_hz``.

    Parameters
    ----------
    sf : int
        Spreading factor (``2**sf`` chips per symbol).
    bw_hz : float
        LoRa bandwidth (Hz): the chirp sweeps ``-bw/2 … +bw/2`` in ``2**sf / bw`` s.
    fs_hz : float
        Sample rate (Hz), ``>= bw_hz``.
    n : int, optional
        Number of samples (default: one symbol, :func:`block_length`).

    Returns
    -------
    numpy.ndarray
        complex64 ``(n,)``, unit amplitude (read-only, cached).
    """
    t_sym = (1 << sf) / bw_hz
    n = block_length(sf, bw_hz, fs_hz) if n is None else n
    t = np.arange(n) / fs_hz
    phase = 2 * np.pi * (-0.5 * bw_hz * t + 0.5 * bw_hz / t_sym * t * t)
    out = np.exp(1j * phase).astype(np.complex64)
    out.flags.writeable = False
    return out


def block_length(sf: int, bw_hz: float, fs_hz: float) -> int:
    """Samples per symbol: ``round(2**sf · fs / bw)``."""
    return int(round((1 << sf) * fs_hz / bw_hz))


@dataclass
class ChirpAmplitudes:
    """Chirp amplitudes of the blocks that passed the peak test.

    Attributes
    ----------
    times_s : numpy.ndarray
        float64 ``(n,)``: centre of each block (s from the stream start).
    amp : numpy.ndarray
        complex64 ``(n, n_channels)``: value of the peak bin in each channel (the FFT of
        the dechirped block, divided by the block length: the received chirp's complex
        amplitude in the file's units).
    bins : numpy.ndarray
        int ``(n,)``: peak bin (0 … block length − 1).
    peak_db : numpy.ndarray
        float32 ``(n,)``: peak power over the median bin power, summed over channels (dB).
    """

    times_s: np.ndarray
    amp: np.ndarray
    bins: np.ndarray
    peak_db: np.ndarray

    def __len__(self) -> int:
        return len(self.times_s)

    def ratio(self, num: int = 1, den: int = 0) -> np.ndarray:
        """Antenna ratio ``amp[:, num] / amp[:, den]`` (complex128 ``(n,)``)."""
        return self.amp[:, num].astype(complex) / self.amp[:, den]

    @classmethod
    def empty(cls, n_channels: int) -> ChirpAmplitudes:
        return cls(np.zeros(0), np.zeros((0, n_channels), np.complex64),
                   np.zeros(0, int), np.zeros(0, np.float32))

    @classmethod
    def concat(cls, parts: list[ChirpAmplitudes], n_channels: int) -> ChirpAmplitudes:
        if not parts:
            return cls.empty(n_channels)
        return cls(np.concatenate([p.times_s for p in parts]),
                   np.concatenate([p.amp for p in parts]),
                   np.concatenate([p.bins for p in parts]),
                   np.concatenate([p.peak_db for p in parts]))


class ChirpAmplitudeExtractor:
    """Streaming per-chirp complex amplitudes of every channel (see the module doc).

    Parameters
    ----------
    sf : int
        Spreading factor.
    bw_hz : float
        LoRa bandwidth (Hz).
    fs_hz : float
        Sample rate of the stream (Hz).
    min_peak_db : float
        A block counts as a chirp when its peak bin's power (summed over channels) is at
        least this far above the mean power of the other bins (dB). Noise alone reaches
        about 7 dB (the largest of 128 exponential bins over their mean); a chirp at
        in-band SNR ``s`` dB up to about ``s + 10·log10(2**sf)`` dB.
    max_blocks : int
        Blocks transformed at once (bounds the work arrays).
    decimate : bool
        At an integer oversampling ``fs / bw`` = D > 1, average every D samples before
        dechirping (a boxcar low-pass: its droop at the band edges and the noise it folds
        in are the same on both channels, so the ratio is unaffected) and transform
        ``2**sf`` points instead of ``D · 2**sf``: D times less work.
    """

    def __init__(self, sf: int, bw_hz: float, fs_hz: float, *, min_peak_db: float = 15.0,
                 max_blocks: int = 2048, decimate: bool = True) -> None:
        if fs_hz < bw_hz * 0.999:
            raise ValueError(f"sample rate {fs_hz} Hz below the LoRa bandwidth {bw_hz} Hz")
        self.sf, self.bw_hz, self.fs_hz = sf, float(bw_hz), float(fs_hz)
        os_ = fs_hz / bw_hz
        #: Integer decimation before dechirping (sum of ``dec`` consecutive samples).
        self.dec = int(round(os_)) if decimate and abs(os_ - round(os_)) < 1e-9 else 1
        self.n_in = block_length(sf, bw_hz, fs_hz)  # input samples per block
        self.n = self.n_in // self.dec  # FFT length
        self.ref = np.conj(upchirp(sf, bw_hz, fs_hz / self.dec, self.n))
        self.min_peak_db = min_peak_db
        self.max_blocks = max_blocks
        self._carry: np.ndarray | None = None
        self._next_block = 0  # index of the next block on the grid
        self.blocks = 0  # blocks transformed
        self.chirps = 0  # blocks that passed the peak test

    def reset(self) -> None:
        """Forget the carried samples and restart the block grid at 0."""
        self._carry = None
        self._next_block = 0

    def push(self, data: np.ndarray) -> ChirpAmplitudes:
        """Consume the next samples of the stream.

        Parameters
        ----------
        data : numpy.ndarray
            complex ``(n_samples, n_channels)`` (or ``(n_samples,)``), contiguous with the
            previous call's samples.

        Returns
        -------
        ChirpAmplitudes
            The chirps of the blocks the samples completed.
        """
        x = np.asarray(data)
        if x.ndim == 1:
            x = x[:, None]
        if self._carry is not None and len(self._carry):
            x = np.concatenate([self._carry, x])
        n_ch = x.shape[1]
        n_blocks = len(x) // self.n_in
        used = n_blocks * self.n_in
        self._carry = x[used:].copy()
        parts = []
        for b0 in range(0, n_blocks, self.max_blocks):
            b1 = min(n_blocks, b0 + self.max_blocks)
            parts.append(self._blocks(x[b0 * self.n_in: b1 * self.n_in], self._next_block + b0))
        self._next_block += n_blocks
        return ChirpAmplitudes.concat(parts, n_ch)

    def _blocks(self, x: np.ndarray, first: int) -> ChirpAmplitudes:
        nb, n_ch = len(x) // self.n_in, x.shape[1]
        if self.dec > 1:  # boxcar sum (the scale cancels in every ratio and peak test)
            xr = x.reshape(nb * self.n, self.dec * n_ch)
            acc = xr[:, :n_ch].copy()
            for j in range(1, self.dec):
                acc += xr[:, j * n_ch:(j + 1) * n_ch]
            x = acc * np.float32(1.0 / self.dec)
        blk = x.reshape(nb, self.n, n_ch) * self.ref[None, :, None]
        spec = np.fft.fft(blk, axis=1)
        power = (spec.real ** 2 + spec.imag ** 2).sum(axis=2, dtype=np.float64)  # (nb, n)
        k = np.argmax(power, axis=1)
        peak = power[np.arange(nb), k]
        # mean of the other bins (a median costs a partition per block)
        rest = (power.sum(axis=1) - peak) / max(self.n - 1, 1)
        peak_db = 10 * np.log10(np.maximum(peak, 1e-300) / np.maximum(rest, 1e-300))
        ok = peak_db >= self.min_peak_db
        self.blocks += nb
        self.chirps += int(ok.sum())
        idx = np.flatnonzero(ok)
        amp = spec[idx, k[idx], :] / self.n
        times = ((first + idx) * self.n_in + self.n_in / 2) / self.fs_hz
        return ChirpAmplitudes(times.astype(np.float64), amp.astype(np.complex64),
                               k[idx], peak_db[idx].astype(np.float32))
