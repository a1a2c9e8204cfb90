"""Per-channel window features light enough for a Raspberry Pi, vectorised over windows.

All features are defined in physical units (µV, Hz, per second) rather than per sample, so the
same model applies at any sampling rate (Bonn 173.61 Hz, scalp 256 Hz decimated to 128 Hz).
Spectral features use one Hann-windowed FFT per window; Hjorth parameters are computed from
the spectral moments (exact, rate-independent) rather than from finite differences.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft

#: Frequency bands in Hz.
BANDS_HZ: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}

#: Feature names, in column order.
FEATURE_NAMES: tuple[str, ...] = (
    "log_line_length",      # log10 of mean |dx/dt| in µV/s
    "log_variance",         # log10 µV²
    "hjorth_mobility_hz",   # sqrt(m2/m0) of the power spectrum, Hz
    "hjorth_complexity",    # mobility of the derivative / mobility
    *(f"log_abs_{b}" for b in BANDS_HZ),  # log10 band power, µV²
    *(f"rel_{b}" for b in BANDS_HZ),      # band power / 0.5–45 Hz power
    "zero_cross_hz",        # zero crossings per second
    "skewness",
    "kurtosis",             # excess kurtosis
    "rhythmicity",          # fraction of 1–25 Hz power within ±1 Hz of the spectral peak
    "peak_freq_hz",         # frequency of the 1–25 Hz spectral peak, Hz
    "spectral_entropy",     # normalised Shannon entropy of the 0.5–45 Hz spectrum, 0–1
)
N_FEATURES = len(FEATURE_NAMES)

_EPS = 1e-12


def window_features(windows: np.ndarray, fs_hz: float) -> np.ndarray:
    """Features of each channel window.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(..., n_samples)`` band-passed EEG in µV (any leading shape, e.g. windows × channels).
    fs_hz : float
        Sampling rate of the windows in Hz.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., N_FEATURES)``, columns as in :data:`FEATURE_NAMES`.
    """
    lead = windows.shape[:-1]
    n = windows.shape[-1]
    x = np.array(windows, dtype=np.float32).reshape(-1, n)
    x -= x.mean(axis=1, keepdims=True)
    dur = n / fs_hz
    out = np.empty((len(x), N_FEATURES), dtype=np.float32)
    bank = _bank(n, fs_hz)

    x2 = x * x
    var = x2.mean(axis=1)
    m3 = np.einsum("ij,ij->i", x2, x) / n
    m4t = np.einsum("ij,ij->i", x2, x2) / n
    skew = m3 / (var + _EPS) ** 1.5
    kurt = m4t / (var * var + _EPS) - 3.0
    ll = np.abs(np.diff(x, axis=1)).mean(axis=1) * fs_hz
    sign = np.signbit(x)
    zc = np.count_nonzero(sign[:, 1:] != sign[:, :-1], axis=1) / dur

    spec = sp_fft.rfft(x * bank.taper, axis=1)[:, bank.sel]
    p = (spec.real**2 + spec.imag**2) * bank.scale          # µV² per bin, 0.5–45 Hz
    mom = p @ bank.matrix                                   # total, m2, m4, 5 bands
    total = mom[:, 0] + _EPS
    m2, m4 = mom[:, 1], mom[:, 2]
    band_p = mom[:, 3:]
    mob = np.sqrt(m2 / total)
    comp = np.sqrt(m4 / (m2 + _EPS)) / (mob + _EPS)

    out[:, 0] = np.log10(ll + _EPS)
    out[:, 1] = np.log10(var + _EPS)
    out[:, 2] = mob
    out[:, 3] = comp
    out[:, 4:9] = np.log10(band_p + _EPS)
    out[:, 9:14] = band_p / total[:, None]
    pr = p[:, bank.rsel]
    k = np.argmax(pr, axis=1)
    cs = np.concatenate([np.zeros((len(pr), 1), np.float32), np.cumsum(pr, axis=1)], axis=1)
    lo = np.clip(k - bank.half, 0, pr.shape[1])
    hi = np.clip(k + bank.half + 1, 0, pr.shape[1])
    rows = np.arange(len(pr))
    rhythm = (cs[rows, hi] - cs[rows, lo]) / (cs[:, -1] + _EPS)
    pn = p / total[:, None]
    ent = -np.einsum("ij,ij->i", pn, np.log(pn + _EPS)) / np.log(p.shape[1])
    out[:, 14] = zc
    out[:, 15] = skew
    out[:, 16] = kurt
    out[:, 17] = rhythm
    out[:, 18] = bank.rfreq[k]
    out[:, 19] = ent
    return out.reshape(*lead, N_FEATURES)


class _Bank:
    """Precomputed taper and band matrix for one window length and rate."""

    def __init__(self, n: int, fs_hz: float) -> None:
        self.taper = np.hanning(n).astype(np.float32)
        f = np.fft.rfftfreq(n, 1.0 / fs_hz)
        self.sel = np.flatnonzero((f >= 0.5) & (f <= 45.0))
        fb = f[self.sel]
        df = f[1] - f[0]
        self.scale = np.float32(2.0 / (fs_hz * np.sum(self.taper.astype(np.float64) ** 2)) * df)
        cols = [np.ones_like(fb), fb**2, fb**4]
        cols += [((fb >= lo) & (fb < hi)).astype(float) for lo, hi in BANDS_HZ.values()]
        self.matrix = np.stack(cols, axis=1).astype(np.float32)
        self.rsel = np.flatnonzero((fb >= 1.0) & (fb <= 25.0))
        self.rfreq = fb[self.rsel].astype(np.float32)
        self.half = max(1, int(round(1.0 / df)))


@lru_cache(maxsize=8)
def _bank(n: int, fs_hz: float) -> _Bank:
    return _Bank(n, fs_hz)
