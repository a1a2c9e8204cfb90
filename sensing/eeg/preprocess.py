"""Streaming EEG preprocessing: mains notch, band-pass, decimation, sliding windows.

Every stage keeps its state between chunks (filter state, decimation phase, the tail of the
previous chunk), so feeding a recording in chunks of any size gives the same windows as
feeding it at once, and memory is bounded by one window per channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from sensing.dsp import SosStream

#: Analysis band in Hz (upper edge capped at 0.45 × the sampling rate).
BAND_HZ = (0.5, 45.0)
#: Mains frequencies notched (both: a file rarely says where it was recorded).
MAINS_HZ = (50.0, 60.0)
#: Lowest analysis rate kept after decimation, in Hz (must stay > 2 × the band's upper edge).
MIN_ANALYSIS_HZ = 100.0


def design_filter(fs_hz: float, band_hz: tuple[float, float] = BAND_HZ,
                  mains_hz: tuple[float, ...] = MAINS_HZ, notch_q: float = 30.0) -> np.ndarray:
    """Second-order sections: notch at each mains frequency below Nyquist, then band-pass.

    Parameters
    ----------
    fs_hz : float
        Sampling rate in Hz.
    band_hz : (float, float)
        Pass band in Hz; the upper edge is capped at 0.45 × ``fs_hz``.
    mains_hz : tuple of float
        Notch frequencies in Hz (50 and 60 Hz by default).
    notch_q : float
        Quality factor of each notch (−3 dB width = f / Q).
    """
    lo, hi = band_hz
    hi = min(hi, 0.45 * fs_hz)
    sos = [signal.butter(4, [lo, hi], btype="bandpass", fs=fs_hz, output="sos")]
    for f in mains_hz:
        if f < 0.5 * fs_hz * 0.98:
            b, a = signal.iirnotch(f, notch_q, fs=fs_hz)
            sos.append(signal.tf2sos(b, a))
    return np.concatenate(sos, axis=0)


def decimation_factor(fs_hz: float, min_hz: float = MIN_ANALYSIS_HZ) -> int:
    """Largest integer q with ``fs_hz / q >= min_hz`` (1 when fs is already low)."""
    return max(1, int(fs_hz // min_hz))


class StreamFilter:
    """Notch + band-pass + decimation of a multichannel stream, chunk by chunk.

    Parameters
    ----------
    fs_hz : float
        Input sampling rate in Hz.
    n_channels : int
        Number of channels.

    Attributes
    ----------
    out_fs_hz : float
        Rate of the output in Hz (``fs_hz / q``; the band-pass is the anti-alias filter).
    """

    def __init__(self, fs_hz: float, n_channels: int, *,
                 band_hz: tuple[float, float] = BAND_HZ,
                 mains_hz: tuple[float, ...] = MAINS_HZ) -> None:
        self.fs_hz = float(fs_hz)
        self.n_channels = n_channels
        self.sos = design_filter(self.fs_hz, band_hz, mains_hz)
        self.q = decimation_factor(self.fs_hz)
        self.out_fs_hz = self.fs_hz / self.q
        #: The notch + band-pass with its state carried from chunk to chunk; it starts in the
        #: steady state of the first sample (no DC step).
        self._filter = SosStream(self.sos, axis=0)
        self._phase = 0  # input samples to skip before the next kept sample

    @property
    def next_phase(self) -> int:
        """Index, in the next chunk, of the first input sample the decimation keeps."""
        return self._phase

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter ``(n, n_channels)`` µV samples; returns the decimated filtered samples."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(f"expected (n, {self.n_channels}) samples, got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, self.n_channels))
        y = self._filter.push(x)
        out = y[self._phase:: self.q]
        self._phase = (self._phase - len(x)) % self.q
        return out


@dataclass
class WindowBatch:
    """Windows completed by one chunk.

    Attributes
    ----------
    windows : numpy.ndarray
        ``(n_windows, n_channels, n_samples)`` filtered samples (µV); a view, copy to keep.
    end_s : numpy.ndarray
        Stream time of the end of each window in s.
    """

    windows: np.ndarray
    end_s: np.ndarray


class SlidingWindows:
    """Cut a stream into overlapping windows (e.g. 4 s every 1 s), chunk by chunk.

    Parameters
    ----------
    fs_hz : float
        Rate of the incoming samples in Hz.
    n_channels : int
    window_s, hop_s : float
        Window length and hop in s (rounded to whole samples).
    """

    def __init__(self, fs_hz: float, n_channels: int, window_s: float = 4.0,
                 hop_s: float = 1.0) -> None:
        self.fs_hz = float(fs_hz)
        self.n = max(2, int(round(window_s * fs_hz)))
        self.hop = max(1, int(round(hop_s * fs_hz)))
        self.n_channels = n_channels
        self._buf = np.zeros((0, n_channels))
        self._buf_start = 0  # absolute sample index of _buf[0]
        self._next_end = self.n  # absolute index (exclusive) of the next window end

    @property
    def window_s(self) -> float:
        return self.n / self.fs_hz

    def push(self, y: np.ndarray) -> WindowBatch:
        """Append samples ``(n, n_channels)``; return the windows they complete."""
        buf = np.concatenate([self._buf, y], axis=0) if len(self._buf) else np.asarray(y)
        buf_end = self._buf_start + len(buf)
        if buf_end < self._next_end:
            self._buf = buf
            return WindowBatch(np.zeros((0, self.n_channels, self.n)), np.zeros(0))
        n_win = (buf_end - self._next_end) // self.hop + 1
        first = self._next_end - self.n - self._buf_start
        view = sliding_window_view(buf, self.n, axis=0)  # (len-n+1, ch, n)
        wins = view[first: first + (n_win - 1) * self.hop + 1: self.hop]
        ends = (self._next_end + self.hop * np.arange(n_win)) / self.fs_hz
        self._next_end += n_win * self.hop
        keep_from = self._next_end - self.n - self._buf_start
        self._buf = buf[keep_from:].copy()
        self._buf_start += keep_from
        return WindowBatch(wins, ends)
