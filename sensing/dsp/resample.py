"""Irregularly timed samples (packets) onto a uniform time grid, with gap handling.

:func:`resample_uniform` bins a whole series at once; :class:`UniformBinner` gives the same
bins chunk by chunk (bounded memory, for streams); :func:`fill_gaps` interpolates the empty
bins. As ``scipy.signal.resample``, time runs along ``axis=0`` by default (one row per
packet).
"""

from __future__ import annotations

import numpy as np

__all__ = ["resample_uniform", "fill_gaps", "UniformBinner"]


def resample_uniform(
    x: np.ndarray,
    times_s: np.ndarray,
    fs: float,
    *,
    axis: int = 0,
    t_start: float | None = None,
    t_stop: float | None = None,
    max_gap_s: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample irregularly timed packets onto a uniform grid of rate ``fs``.

    Packets are averaged into bins of ``1/fs`` seconds (a box anti-alias filter that also
    absorbs timing jitter); empty bins (loss) are filled by linear interpolation between
    the nearest non-empty bins.

    Parameters
    ----------
    x : numpy.ndarray
        Samples (real or complex), time along ``axis``.
    times_s : numpy.ndarray
        Packet times in seconds, one per sample along ``axis`` (any order).
    fs : float
        Output rate in Hz; should be below the mean packet rate.
    axis : int
        Time axis of ``x``.
    t_start, t_stop : float, optional
        Grid span in seconds (default: first and last packet time).
    max_gap_s : float, optional
        Empty runs longer than this (s) stay NaN instead of being interpolated.

    Returns
    -------
    y : numpy.ndarray
        Resampled data, time along ``axis`` with ``len(t)`` rows.
    t : numpy.ndarray
        Bin start times in seconds (bins are ``[t, t + 1/fs)``).
    counts : numpy.ndarray of int
        Packets that fell into each bin (0 = interpolated).
    """
    if fs <= 0:
        raise ValueError(f"fs must be > 0 Hz, got {fs}")
    xm = np.moveaxis(np.asarray(x), axis, 0)
    t = np.asarray(times_s, dtype=float)
    if len(t) != xm.shape[0]:
        raise ValueError(f"times_s has {len(t)} entries for {xm.shape[0]} samples on axis {axis}")
    t0 = float(np.min(t)) if t_start is None else float(t_start)
    t1 = float(np.max(t)) if t_stop is None else float(t_stop)
    n_bins = int(np.floor((t1 - t0) * fs)) + 1
    idx = np.floor((t - t0) * fs).astype(np.int64)
    keep = (idx >= 0) & (idx < n_bins)
    idx, xk = idx[keep], xm[keep]
    flat = xk.reshape(len(idx), -1)
    counts = np.bincount(idx, minlength=n_bins)
    sums = np.zeros((n_bins, flat.shape[1]), dtype=np.result_type(flat.dtype, np.float64))
    np.add.at(sums, idx, flat)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = sums / counts[:, None]
    y = fill_gaps(y, counts > 0, max_gap_samples=None if max_gap_s is None else max_gap_s * fs)
    grid = t0 + np.arange(n_bins) / fs
    y = y.reshape((n_bins,) + xm.shape[1:])
    return np.moveaxis(y, 0, axis), grid, counts


def fill_gaps(
    y: np.ndarray, valid: np.ndarray, *, max_gap_samples: float | None = None, axis: int = 0
) -> np.ndarray:
    """Linear interpolation over the samples of ``y`` where ``valid`` is False.

    Parameters
    ----------
    y : numpy.ndarray
        Uniformly sampled series (real or complex), time along ``axis``.
    valid : numpy.ndarray of bool
        One entry per sample: True where ``y`` holds data.
    max_gap_samples : float, optional
        Gaps of more than this many missing samples are set to NaN instead.
    axis : int
        Time axis of ``y``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``y`` (``y`` itself when there is nothing to fill). Samples before
        the first (after the last) valid one take its value.
    """
    valid = np.asarray(valid, bool)
    if valid.all() or not valid.any():
        return y
    ym = np.moveaxis(np.asarray(y), axis, 0)
    flat = ym.reshape(len(ym), -1)
    pos = np.flatnonzero(valid)
    allpos = np.arange(len(valid))
    out = flat.copy()
    # interpolation weights between the previous and next valid rows
    nxt = np.searchsorted(pos, allpos)
    prv = np.clip(nxt - 1, 0, len(pos) - 1)
    nxt = np.clip(nxt, 0, len(pos) - 1)
    p, q = pos[prv], pos[nxt]
    span = np.maximum(q - p, 1)
    w = np.clip((allpos - p) / span, 0.0, 1.0)
    fill = ~valid
    out[fill] = (1 - w[fill, None]) * flat[p[fill]] + w[fill, None] * flat[q[fill]]
    if max_gap_samples is not None:
        out[fill & ((q - p) > max_gap_samples + 1)] = np.nan
    return np.moveaxis(out.reshape(ym.shape), 0, axis)


class UniformBinner:
    """Streaming version of :func:`resample_uniform`'s binning (bounded memory).

    Feed packets chunk by chunk with :meth:`add`; it returns the bins that are complete
    (a bin is complete once a packet of a later bin arrives). Gives the same bins as
    binning the whole capture at once. Packets older than the open bin are dropped
    (counted in :attr:`dropped`).

    Parameters
    ----------
    fs : float
        Bin rate in Hz (bins ``[b/fs, (b+1)/fs)`` of stream time).
    n_features : int
        Feature columns per packet.
    """

    def __init__(self, fs: float, n_features: int) -> None:
        if fs <= 0:
            raise ValueError(f"fs must be > 0 Hz, got {fs}")
        self.fs = float(fs)
        self.n_features = int(n_features)
        self.dropped = 0
        self._bin: int | None = None  # index of the open bin
        self._sum = np.zeros(self.n_features, complex)
        self._pow = 0.0
        self._n = 0

    @property
    def next_bin(self) -> int | None:
        """Index of the bin still open (None before the first packet)."""
        return self._bin

    def add(
        self, x: np.ndarray, times_s: np.ndarray
    ) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """Add packets ``x`` (``(n, n_features)``) taken at ``times_s`` (s).

        Returns
        -------
        first_bin : int
            Index of the first returned bin (bins are consecutive, gaps included).
        means : numpy.ndarray
            ``(m, n_features)`` complex mean per completed bin (NaN for empty bins).
        counts : numpy.ndarray of int
            Packets per completed bin.
        spread : numpy.ndarray
            Within-bin variance per completed bin, averaged over features (NaN when a
            bin has fewer than two packets) — a fast-change (motion) statistic.
        """
        x = np.asarray(x).reshape(len(x), self.n_features)
        b = np.floor(np.asarray(times_s, float) * self.fs).astype(np.int64)
        if self._bin is not None:
            ok = b >= self._bin
            self.dropped += int((~ok).sum())
            x, b = x[ok], b[ok]
        # keep times monotonic (out-of-order packets inside the chunk are dropped too)
        if len(b) > 1:
            mono = b >= np.maximum.accumulate(b)
            self.dropped += int((~mono).sum())
            x, b = x[mono], b[mono]
        empty = (
            self._bin if self._bin is not None else 0,
            np.empty((0, self.n_features), complex), np.empty(0, int), np.empty(0),
        )
        if len(b) == 0:
            return empty
        if self._bin is None:
            self._bin = int(b[0])
        first = self._bin
        last = int(b[-1])
        n_bins = last - first + 1
        starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
        rel = b[starts] - first
        sums = np.zeros((n_bins, self.n_features), complex)
        pows = np.zeros(n_bins)
        cnts = np.zeros(n_bins, dtype=np.int64)
        sums[rel] = np.add.reduceat(x, starts, axis=0)
        pows[rel] = np.add.reduceat((np.abs(x) ** 2).sum(axis=1), starts)
        cnts[rel] = np.diff(np.r_[starts, len(b)])
        sums[0] += self._sum
        pows[0] += self._pow
        cnts[0] += self._n
        # the last bin stays open
        self._sum, self._pow, self._n, self._bin = sums[-1].copy(), float(pows[-1]), int(cnts[-1]), last
        sums, pows, cnts = sums[:-1], pows[:-1], cnts[:-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = sums / cnts[:, None]
            spread = (pows - (np.abs(sums) ** 2).sum(axis=1) / cnts) / (cnts - 1) / self.n_features
        spread[cnts < 2] = np.nan
        return first, means, cnts, spread
