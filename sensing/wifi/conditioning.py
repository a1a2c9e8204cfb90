"""Conditioning of commodity-WiFi CSI: the clean-up every CSI detector needs first.

Commodity NICs report CSI ``H[k]`` corrupted per packet by a random common phase (carrier
frequency offset, CFO), a random linear phase across subcarriers (symbol timing offset,
STO / packet-detection delay), automatic gain control (AGC) steps, null/guard/DC
subcarriers and irregular packet timing with bursty loss. These functions remove or
handle each of these. They follow scipy conventions: array in, array out, ``axis=`` for
the axis they work along, ``fs=`` in Hz, no hidden state (except the explicitly stateful
:class:`UniformBinner`, used for chunk-by-chunk streaming).

Typical single-antenna chain (ESP32)::

    mask = lltf_data_mask(frames.subcarriers)               # 52 data subcarriers
    h = frames.data[:, mask, 0, 0]                          # (n_packets, 52) complex
    h = sanitize_phase(h, frames.subcarriers[mask], axis=1) # CFO + STO removed
    h, gain = normalize_amplitude(h, axis=1)                # AGC removed
    y, t, n = resample_uniform(h, frames.times_s, fs=10.0)  # uniform 10 Hz grid

With two or more receive antennas (Intel 5300, Nexmon on multi-core chips) the CSI ratio
between antennas (:func:`csi_ratio`) cancels CFO, STO and AGC in one step (FarSense).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

__all__ = [
    "lltf_data_mask",
    "null_subcarrier_mask",
    "sanitize_phase",
    "normalize_amplitude",
    "remove_gain_steps",
    "hampel",
    "resample_uniform",
    "UniformBinner",
    "subcarrier_sensitivity",
    "select_subcarriers",
    "csi_ratio",
]


def lltf_data_mask(subcarriers: np.ndarray, bandwidth_mhz: int = 20) -> np.ndarray:
    """Boolean mask of the used (data + pilot) subcarriers of an 802.11 legacy LTF.

    20 MHz legacy OFDM uses subcarriers ``±1 … ±26`` (52 of the 64 reported by an ESP32);
    index 0 (DC) and the guard bands ``-32 … -27`` and ``27 … 31`` carry no energy — on an
    ESP32 they read as zeros or as garbage. At 40 MHz the legacy LTF is duplicated in each
    20 MHz half, centred on ``±32``: used indices are ``6 ≤ |k| ≤ 58`` except ``|k| = 32``.

    Parameters
    ----------
    subcarriers : array_like of int
        Subcarrier indices (as in :attr:`Frames.subcarriers`).
    bandwidth_mhz : {20, 40}
        Channel bandwidth of the indices.

    Returns
    -------
    numpy.ndarray of bool
        Same length as ``subcarriers``.
    """
    k = np.abs(np.asarray(subcarriers, dtype=int))
    if bandwidth_mhz == 20:
        return (k >= 1) & (k <= 26)
    if bandwidth_mhz == 40:
        return (k >= 6) & (k <= 58) & (k != 32)
    raise ValueError(f"bandwidth_mhz must be 20 or 40, got {bandwidth_mhz}")


def null_subcarrier_mask(csi: np.ndarray, *, axis: int = 1, rel_threshold: float = 0.1) -> np.ndarray:
    """Data-driven mask of subcarriers that carry signal (for layouts with unknown nulls).

    Parameters
    ----------
    csi : numpy.ndarray
        Complex CSI with time on axis 0 and subcarriers on ``axis``.
    axis : int
        Subcarrier axis.
    rel_threshold : float
        A subcarrier is kept when its median amplitude is at least this fraction of the
        median amplitude over all subcarriers.

    Returns
    -------
    numpy.ndarray of bool
        One entry per subcarrier; True = carries signal.
    """
    amp = np.abs(np.moveaxis(np.asarray(csi), axis, -1)).reshape(-1, np.shape(csi)[axis])
    med = np.median(amp, axis=0)
    ref = np.median(med)
    if not np.isfinite(ref) or ref <= 0:
        return np.zeros(len(med), dtype=bool)
    return med >= rel_threshold * ref


def _moved(x: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(x, axis, -1)


def sanitize_phase(
    csi: np.ndarray,
    subcarriers: np.ndarray | None = None,
    *,
    axis: int = 1,
    method: str = "conjugate",
) -> np.ndarray:
    """Remove the per-packet common phase (CFO) and linear phase slope (STO).

    Fits ``phase[k] ≈ a + b·k`` over subcarriers ``k`` for every packet and returns
    ``csi · exp(-j(a + b·k))``. What remains is the phase that varies across subcarriers in
    a non-linear way — the multipath structure, including the reflections off a person.

    Parameters
    ----------
    csi : numpy.ndarray
        Complex CSI, any shape; subcarriers along ``axis``.
    subcarriers : array_like of int, optional
        Subcarrier index of each entry along ``axis`` (default ``0 … K-1``). Needed for a
        correct slope when indices are not consecutive (nulls removed, Intel 5300 groups).
    axis : int
        Subcarrier axis.
    method : {"conjugate", "lstsq"}
        ``"conjugate"`` (default, robust): slope from the amplitude-weighted mean of the
        conjugate products of neighbouring subcarriers ``H[k+1]·conj(H[k])`` — no phase
        unwrapping, so deep fades and noisy subcarriers cannot derail it; offset from the
        angle of the de-sloped sum. ``"lstsq"``: classic unwrap-and-least-squares fit
        (Sen et al., *Spot localization*, 2012), fragile when the slope is steep.

    Returns
    -------
    numpy.ndarray
        Complex, same shape and dtype as ``csi``.
    """
    h = _moved(np.asarray(csi), axis)
    n_sc = h.shape[-1]
    k = np.arange(n_sc, dtype=float) if subcarriers is None else np.asarray(subcarriers, float)
    if k.shape != (n_sc,):
        raise ValueError(f"subcarriers has {k.size} entries for {n_sc} subcarriers on axis {axis}")
    if n_sc < 2:
        ph = np.angle(h)
        return np.moveaxis((h * np.exp(-1j * ph)).astype(h.dtype, copy=False), -1, axis)
    if method == "conjugate":
        dk = np.diff(k)
        z = h[..., 1:] * np.conj(h[..., :-1])
        vals, counts = np.unique(dk, return_counts=True)
        step = vals[np.argmax(counts)]
        if counts.max() >= len(dk) // 2 and step != 0:
            # pairs at the usual spacing (skip e.g. the pair straddling DC)
            same = dk == step
            zs = z if same.all() else z[..., same]
            slope = np.angle(zs.sum(axis=-1)) / step
        else:  # bring every pair to a unit step before averaging
            zu = np.abs(z) * np.exp(1j * np.angle(z) / dk)
            slope = np.angle(zu.sum(axis=-1))
        ph = (slope[..., None] * k).astype(np.float32 if h.dtype == np.complex64 else float)
        derot = h * (np.cos(ph) - 1j * np.sin(ph))
        offset = np.angle(derot.sum(axis=-1))
        out = derot * np.exp(-1j * offset)[..., None].astype(derot.dtype)
    elif method == "lstsq":
        ph = np.unwrap(np.angle(h), axis=-1)
        kc = k - k.mean()
        slope = (ph * kc).sum(axis=-1) / (kc**2).sum()
        offset = ph.mean(axis=-1) - slope * k.mean()
        out = h * np.exp(-1j * (offset[..., None] + slope[..., None] * k))
    else:
        raise ValueError(f"method must be 'conjugate' or 'lstsq', got {method!r}")
    return np.moveaxis(out.astype(h.dtype, copy=False), -1, axis)


def normalize_amplitude(
    csi: np.ndarray, *, axis: int = 1, eps: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """Divide every packet by its RMS amplitude over subcarriers (removes AGC gain).

    AGC scales all subcarriers of a packet by the same factor, so the shape across
    subcarriers survives and the gain cancels.

    Parameters
    ----------
    csi : numpy.ndarray
        CSI (complex or amplitude), subcarriers along ``axis``.
    axis : int
        Subcarrier axis.
    eps : float
        Floor of the RMS (all-zero packets stay zero instead of becoming NaN).

    Returns
    -------
    normalised : numpy.ndarray
        Same shape as ``csi``; unit mean power over subcarriers.
    gain : numpy.ndarray
        The removed RMS amplitude per packet (``csi`` shape without ``axis``), in the
        input's units — keep it when the common amplitude carries signal (see
        :func:`remove_gain_steps`).
    """
    x = np.asarray(csi)
    gain = np.sqrt(np.mean(np.abs(x) ** 2, axis=axis))
    out = x / np.expand_dims(np.maximum(gain, eps), axis)
    return out, gain


def remove_gain_steps(
    gain_db: np.ndarray, *, axis: int = 0, n_sigmas: float = 6.0, min_step_db: float = 0.5
) -> np.ndarray:
    """Remove abrupt steps (AGC changes) from a gain series while keeping slow changes.

    Steps show up as outliers of the first difference; those differences are set to zero
    and the series is re-integrated. A breathing chest modulates the gain smoothly, so it
    survives; an AGC jump of a few dB between two packets does not.

    Parameters
    ----------
    gain_db : numpy.ndarray
        Gain in dB (e.g. ``20*log10(gain)`` from :func:`normalize_amplitude`), time along
        ``axis``.
    axis : int
        Time axis.
    n_sigmas : float
        A difference is a step when it exceeds ``n_sigmas`` robust standard deviations
        (1.4826 × median absolute deviation) of all differences …
    min_step_db : float
        … and is larger than this (dB), so tiny quantisation wiggles are never "steps".

    Returns
    -------
    numpy.ndarray
        Step-free gain (dB), same shape, starting at the input's first value.
    """
    g = np.moveaxis(np.asarray(gain_db, dtype=float), axis, 0)
    if g.shape[0] < 2:
        return np.moveaxis(g.copy(), 0, axis)
    d = np.diff(g, axis=0)
    med = np.median(d, axis=0)
    mad = 1.4826 * np.median(np.abs(d - med), axis=0)
    step = (np.abs(d - med) > n_sigmas * mad) & (np.abs(d) > min_step_db)
    # a step between two samples of a binned series is split over two differences:
    # drop the neighbours of every detected step too
    step[1:] |= step[:-1].copy()
    step[:-1] |= step[1:].copy()
    d = np.where(step, 0.0, d)
    out = np.concatenate([g[:1], g[:1] + np.cumsum(d, axis=0)], axis=0)
    return np.moveaxis(out, 0, axis)


def hampel(
    x: np.ndarray, window_size: int = 7, n_sigmas: float = 3.0, *, axis: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Hampel outlier filter: replace samples far from the running median by that median.

    Parameters
    ----------
    x : numpy.ndarray
        Real or complex; complex values are filtered on real and imaginary parts.
    window_size : int
        Length of the running window along ``axis`` (samples, odd is best).
    n_sigmas : float
        Outlier threshold in robust standard deviations (1.4826 × running MAD).
    axis : int
        Axis to filter along.

    Returns
    -------
    filtered : numpy.ndarray
        Same shape and dtype.
    outliers : numpy.ndarray of bool
        Where values were replaced (for complex input: either part).
    """
    x = np.asarray(x)
    if np.iscomplexobj(x):
        re, m_re = hampel(x.real, window_size, n_sigmas, axis=axis)
        im, m_im = hampel(x.imag, window_size, n_sigmas, axis=axis)
        return (re + 1j * im).astype(x.dtype, copy=False), m_re | m_im
    size = [1] * x.ndim
    size[axis] = max(int(window_size), 1)
    med = ndimage.median_filter(x, size=size, mode="nearest")
    mad = 1.4826 * ndimage.median_filter(np.abs(x - med), size=size, mode="nearest")
    # flat stretches have a running MAD of 0: floor it at 1 % of the global robust scale
    glob = 1.4826 * np.median(np.abs(x - np.median(x, axis=axis, keepdims=True)), axis=axis,
                              keepdims=True)
    mad = np.maximum(mad, 0.01 * glob)
    out_mask = (np.abs(x - med) > n_sigmas * mad) & (mad > 0)
    return np.where(out_mask, med, x).astype(x.dtype, copy=False), out_mask


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
        Empty runs longer than this stay NaN instead of being interpolated.

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
    y = _fill_gaps(y, counts > 0, max_gap_bins=None if max_gap_s is None else max_gap_s * fs)
    grid = t0 + np.arange(n_bins) / fs
    y = y.reshape((n_bins,) + xm.shape[1:])
    return np.moveaxis(y, 0, axis), grid, counts


def _fill_gaps(y: np.ndarray, valid: np.ndarray, max_gap_bins: float | None = None) -> np.ndarray:
    """Linear interpolation over rows of ``y`` (2-D, time first) where ``valid`` is False."""
    if valid.all() or not valid.any():
        return y
    pos = np.flatnonzero(valid)
    allpos = np.arange(len(valid))
    out = y.copy()
    # interpolation weights between the previous and next valid rows
    nxt = np.searchsorted(pos, allpos)
    prv = np.clip(nxt - 1, 0, len(pos) - 1)
    nxt = np.clip(nxt, 0, len(pos) - 1)
    p, q = pos[prv], pos[nxt]
    span = np.maximum(q - p, 1)
    w = np.clip((allpos - p) / span, 0.0, 1.0)
    fill = ~valid
    out[fill] = (1 - w[fill, None]) * y[p[fill]] + w[fill, None] * y[q[fill]]
    if max_gap_bins is not None:
        out[fill & ((q - p) > max_gap_bins + 1)] = np.nan
    return out


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


def subcarrier_sensitivity(
    x: np.ndarray, fs: float, band_hz: tuple[float, float] = (0.1, 0.67), *, axis: int = 0
) -> np.ndarray:
    """Per-channel sensitivity: in-band power over the mean power density outside it.

    Parameters
    ----------
    x : numpy.ndarray
        Uniformly sampled series (real or complex), time along ``axis``.
    fs : float
        Sample rate in Hz.
    band_hz : (float, float)
        Band of interest in Hz (default: breathing, 6–40 breaths/min).
    axis : int
        Time axis.

    Returns
    -------
    numpy.ndarray
        One score per channel (all other axes), dimensionless, larger = more sensitive.
    """
    xm = np.moveaxis(np.asarray(x), axis, 0)
    n = xm.shape[0]
    f, p = signal.welch(xm, fs=fs, axis=0, nperseg=min(n, 256), return_onesided=False,
                        detrend="linear")
    f = np.abs(f)
    inb = (f >= band_hz[0]) & (f <= band_hz[1])
    outb = f > min(2 * band_hz[1], fs / 2 * 0.9) * 0.999
    if not outb.any():
        outb = ~inb
    noise = p[outb].mean(axis=0)
    return p[inb].mean(axis=0) / np.maximum(noise, np.finfo(float).tiny)


def select_subcarriers(
    x: np.ndarray,
    fs: float,
    n: int,
    band_hz: tuple[float, float] = (0.1, 0.67),
    *,
    axis: int = 0,
    channel_axis: int = 1,
) -> np.ndarray:
    """Indices (along ``channel_axis``) of the ``n`` most sensitive channels, best first.

    Multipath makes some subcarriers nearly blind to a given movement; keeping the most
    sensitive ones (ranked by :func:`subcarrier_sensitivity`) improves SNR.
    """
    xm = np.moveaxis(np.asarray(x), (axis, channel_axis), (0, 1))
    score = subcarrier_sensitivity(xm.reshape(xm.shape[0], xm.shape[1], -1), fs, band_hz)
    score = score.max(axis=1) if score.ndim > 1 else score
    return np.argsort(score)[::-1][: int(n)]


def csi_ratio(
    csi: np.ndarray, *, rx_axis: int = 2, ref: int | None = None, eps: float = 1e-9
) -> np.ndarray:
    """CSI ratio between receive antennas (FarSense, Zeng et al., MobiCom 2019).

    Antennas of one NIC share the oscillator and the sampling clock, so CFO, STO and AGC
    multiply all of them alike and cancel in ``H_rx / H_ref``; the ratio also turns the
    tiny phase change of a chest reflection into a much larger, noise-free change.

    Parameters
    ----------
    csi : numpy.ndarray
        Complex CSI, e.g. ``(n, n_subcarriers, n_rx, n_tx)``.
    rx_axis : int
        Receive-antenna axis (needs at least 2 antennas).
    ref : int, optional
        Reference antenna; default the one with the largest mean amplitude (a weak
        reference makes the ratio noisy).
    eps : float
        Regularisation: ``H·conj(R)/(|R|² + eps·mean|R|²)``.

    Returns
    -------
    numpy.ndarray
        Complex, the input shape with ``n_rx - 1`` entries along ``rx_axis`` (the
        reference removed).
    """
    h = np.asarray(csi)
    n_rx = h.shape[rx_axis]
    if n_rx < 2:
        raise ValueError(f"csi_ratio needs >= 2 receive antennas on axis {rx_axis}, got {n_rx}")
    if ref is None:
        other = tuple(i for i in range(h.ndim) if i != rx_axis % h.ndim)
        ref = int(np.argmax(np.mean(np.abs(h), axis=other)))
    r = np.take(h, [ref], axis=rx_axis)
    rest = np.delete(h, ref, axis=rx_axis)
    p = np.abs(r) ** 2
    reg = eps * np.mean(p) if np.mean(p) > 0 else eps
    return (rest * np.conj(r) / (p + reg)).astype(np.result_type(h.dtype, np.complex64))
