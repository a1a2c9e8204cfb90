"""Rate of a periodic component (breathing, heartbeat, gait …) in one window of a uniformly
sampled series or of several channels of it.

Method: every real channel is detrended, high-passed below the band, scaled to unit noise
(robust spread of its sample-to-sample differences, which a slow periodic signal hardly
affects) and its Hann-windowed periodogram taken; the periodograms are summed. For a
sinusoid of unknown amplitude and phase in each channel this sum is the generalised
likelihood-ratio statistic, so its peak is the best frequency and the peak's height over
the noise floor (CFAR: the larger of the band median and the median around the peak) a
detection SNR. The peak is interpolated below one bin (parabola on the log power), then
checked:

* **sub-harmonic check** — a significant peak at half the peak's frequency (≥ the
  detection floor and ≥ 20 % of the main peak) means the main peak is the 2nd harmonic
  (asymmetric waveforms, or a reflector near a blind spot, double the frequency); the half
  is reported (``check == "second_harmonic"``);
* **edge check** — a maximum on the band edge that keeps rising outside the band is not a
  peak (``on_edge``; confidence 0).

Confidence = detection strength (peak over floor against the noise-only level of
:func:`detection_floor`, on a log scale saturating at 5×) × concentration (share of the
band's excess power in the peak's main lobe).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import signal

from sensing.dsp.outliers import robust_std

__all__ = ["RateEstimate", "estimate_rate", "detection_floor", "summed_spectrum",
           "rate_from_spectrum", "refine_peak"]


@dataclass(frozen=True)
class RateEstimate:
    """Result of :func:`estimate_rate` for one window.

    Attributes
    ----------
    rate_hz : float
        Rate in Hz (NaN when the band has no usable spectrum).
    confidence : float
        0–1 (3 decimals).
    concentration : float
        Fraction of the band's power above the noise floor that lies in the peak's main
        lobe (0–1, 3 decimals).
    snr : float
        Peak height over the noise floor of the summed spectrum (linear, 2 decimals; ~1–2
        for noise).
    check : str
        Outcome of the harmonic checks: ``"fundamental"`` (the strongest peak is the
        rate), ``"second_harmonic"`` (the strongest peak had a significant peak at half
        its frequency; that half is the rate) or ``"none"`` (no spectrum, NaN rate).
    on_edge : bool
        The maximum lay on the band edge and kept rising outside it (confidence 0).
    candidate : str
        Name of the winning candidate when :func:`estimate_rate` got several, else ``""``.
    """

    rate_hz: float
    confidence: float
    concentration: float
    snr: float
    check: str = "none"
    on_edge: bool = False
    candidate: str = ""

    @property
    def per_min(self) -> float:
        """The rate in cycles per minute (breaths/min, beats/min)."""
        return self.rate_hz * 60.0


def detection_floor(n_channels: int) -> float:
    """Peak/floor ratio that noise alone stays below, for a sum of ``n_channels``
    noise-normalised periodograms (calibrated on simulated empty rooms, with margin).

    Many channels: ``1 + 20/√C`` (the sum's relative spread shrinks as 1/√C; simulated
    empty rooms peak at up to 2.4 for 104 channels, the threshold is 2.96). A single
    channel has a heavy tail (slow drift, gain residue): 40.
    """
    if n_channels <= 1:
        return 40.0
    return 1.0 + 20.0 / np.sqrt(n_channels)


def estimate_rate(
    x: np.ndarray | Mapping[str, np.ndarray],
    fs: float,
    band_hz: tuple[float, float],
    *,
    axis: int = -1,
) -> RateEstimate:
    """Rate of the periodic component of one uniformly sampled window.

    Parameters
    ----------
    x : numpy.ndarray or mapping of str to numpy.ndarray
        The window, time along ``axis``; every other axis is a channel (a 1-D series is
        one channel). Complex channels count as two real ones (real and imaginary parts).
        No NaN. A mapping gives several candidate channel groups (e.g. different
        features of one window), each scored on its own; the most significant wins and
        its name is :attr:`RateEstimate.candidate`.
    fs : float
        Sample rate in Hz.
    band_hz : (float, float)
        Search band in Hz (widen it a little beyond the rates of interest: a rate on the
        edge must still be a peak). The high-pass sits at 0.6 × its lower edge.
    axis : int
        Time axis.

    Returns
    -------
    RateEstimate
        ``rate_hz`` (``per_min``), confidence and the checks' outcome.
    """
    cands = x.items() if isinstance(x, Mapping) else [("", x)]
    lo_hz, hi_hz = band_hz
    best = RateEstimate(float("nan"), 0.0, 0.0, 0.0)
    for name, arr in cands:
        y = _real_channels(arr, axis)
        if y.shape[1] == 0:
            continue
        n = len(y)
        lobe = 2.0 * fs / n  # Hz: main-lobe half width of the Hann window
        spec, freqs = _normalised_spectra(y, fs, lo_hz)
        if spec.shape[1] == 0:
            continue
        s0 = detection_floor(spec.shape[1])
        f_peak, snr, conc, edge, half = _pick_peak(spec.sum(axis=1), freqs, lo_hz, hi_hz, lobe, s0)
        strength = float(np.clip(np.log(max(snr, 1e-12) / s0) / np.log(5.0), 0, 1))
        conf = 0.0 if edge or not np.isfinite(f_peak) else strength * float(np.clip(conc, 0, 1))
        check = ("none" if not np.isfinite(f_peak)
                 else "second_harmonic" if half else "fundamental")
        cand = RateEstimate(float(f_peak), round(conf, 3), round(conc, 3), round(snr, 2),
                            check, edge, name)
        if not np.isfinite(best.rate_hz) or cand.confidence > best.confidence or (
                cand.confidence == best.confidence == 0 and cand.snr / s0 > best.snr):
            best = cand
    return best


def _real_channels(x: np.ndarray, axis: int) -> np.ndarray:
    """``(n_samples, n_real_channels)`` float view of a window (time first)."""
    x = np.moveaxis(np.asarray(x), axis, 0)
    x = x.reshape(len(x), -1)
    return np.concatenate([x.real, x.imag], axis=1) if np.iscomplexobj(x) else x.astype(float)


def _normalised_spectra(
    y: np.ndarray, fs: float, lo_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed periodograms (low sidelobes keep slow drift out of the band) of real
    channels ``y`` (time first), each channel detrended,
    high-passed above ``0.6·lo_hz`` and scaled to unit noise (robust spread of its
    sample-to-sample differences, which slow periodic signals hardly affect)."""
    n = len(y)
    y = _detrend(y)
    d = np.diff(y, axis=0)
    noise = robust_std(d, axis=0) / np.sqrt(2)
    ok = noise > 1e-9 * max(float(np.max(noise, initial=0.0)), 1e-300)
    y = y / noise if ok.all() else y[:, ok] / noise[ok]
    y = signal.sosfiltfilt(_highpass(round(lo_hz * 0.6, 6), fs), y, axis=0)
    nfft = max(1024, 1 << int(np.ceil(np.log2(n * 3))))
    z = np.fft.rfft(y * _hann(n)[:, None], nfft, axis=0)
    spec = z.real**2 + z.imag**2
    return spec, np.fft.rfftfreq(nfft, 1 / fs)


@functools.lru_cache(maxsize=8)
def _hann(n: int) -> np.ndarray:
    return signal.windows.hann(n)


def _detrend(y: np.ndarray) -> np.ndarray:
    """Remove the least-squares line from every column (closed form, no LAPACK: tiny
    LAPACK calls are slow when a multi-threaded BLAS competes for busy cores)."""
    n = len(y)
    t = np.arange(n) - (n - 1) / 2.0
    mean = y.mean(axis=0)
    slope = (t @ y) / (t @ t) if n > 1 else np.zeros(y.shape[1:])
    return y - mean - t[:, None] * slope


@functools.lru_cache(maxsize=16)
def _highpass(cut_hz: float, fs: float) -> np.ndarray:
    return signal.butter(2, cut_hz, btype="highpass", fs=fs, output="sos")


def _pick_peak(
    spec: np.ndarray, freqs: np.ndarray, lo_hz: float, hi_hz: float, lobe: float,
    significant: float = 2.0,
) -> tuple[float, float, float, bool, bool]:
    """Peak of a summed spectrum in ``[lo_hz, hi_hz]``: (frequency Hz, peak/floor,
    concentration, on_edge, halved). A peak at half the frequency that is itself
    ``significant`` (× floor) and ≥ 20 % of the main peak is taken as the fundamental
    (``halved``)."""
    inb = (freqs >= lo_hz) & (freqs <= hi_hz)
    idx = np.flatnonzero(inb)
    floor = float(np.median(spec[idx]))
    if floor <= 0 or not np.isfinite(floor):
        return float("nan"), 0.0, 0.0, True, False
    k = int(idx[np.argmax(spec[idx])])
    # CFAR: coloured noise (slow drift) raises the floor near the peak; use the larger
    # of the band median and the median around the peak (main lobe excluded)
    dist = np.abs(freqs - freqs[k])
    ring = (dist > 1.5 * lobe) & (dist <= 5 * lobe) & (freqs >= 0.5 * lo_hz)
    if ring.sum() >= 8:
        floor = max(floor, float(np.median(spec[ring])))
    # a maximum on the band edge that keeps rising outside the band is not a peak
    edge = bool((k == idx[0] and spec[k - 1] > spec[k]) or
                (k == idx[-1] and k + 1 < len(spec) and spec[k + 1] > spec[k]))
    f_peak = _refine(spec, freqs, k)
    # sub-harmonic check: a significant peak at half the frequency is the fundamental
    half = f_peak / 2
    halved = False
    if half >= lo_hz:
        near = np.flatnonzero(np.abs(freqs - half) <= lobe / 2)
        if near.size and spec[near].max() >= max(0.2 * spec[k], significant * floor):
            k = int(near[np.argmax(spec[near])])
            f_peak = _refine(spec, freqs, k)
            halved = True
    in_lobe = (np.abs(freqs - f_peak) <= lobe) & inb
    excess = (spec[inb] - floor).clip(0).sum()
    conc = float((spec[in_lobe] - floor).clip(0).sum() / excess) if excess > 0 else 0.0
    return f_peak, float(spec[k] / floor), conc, edge, halved


def _refine(spec: np.ndarray, freqs: np.ndarray, k: int) -> float:
    """Parabolic interpolation of a spectral peak on the log power (Hz)."""
    if 0 < k < len(spec) - 1:
        a, b, c = np.log(np.maximum(spec[k - 1 : k + 2], 1e-300))
        den = a - 2 * b + c
        delta = 0.5 * (a - c) / den if den < 0 else 0.0
        return float(freqs[k] + np.clip(delta, -0.5, 0.5) * (freqs[1] - freqs[0]))
    return float(freqs[k])


def summed_spectrum(
    x: np.ndarray, fs: float, lo_hz: float, *, axis: int = -1
) -> tuple[np.ndarray, np.ndarray, int]:
    """Sum of the noise-normalised periodograms of one window, as :func:`estimate_rate`
    computes it (for callers that keep spectra, e.g. to average them over windows).

    Parameters
    ----------
    x : numpy.ndarray
        The window, time along ``axis``; every other axis is a channel (complex channels
        count as two real ones). No NaN.
    fs : float
        Sample rate in Hz.
    lo_hz : float
        Lower edge of the search band (Hz); the high-pass sits at 0.6 × it.
    axis : int
        Time axis.

    Returns
    -------
    spectrum : numpy.ndarray
        Summed periodogram (each real channel scaled to unit noise), ``(n_freqs,)``.
    freqs : numpy.ndarray
        Its frequencies (Hz).
    n_channels : int
        Real channels summed (0: nothing usable; ``spectrum`` is then all zeros).
    """
    y = _real_channels(x, axis)
    if y.shape[1] == 0:
        nfft = max(1024, 1 << int(np.ceil(np.log2(len(y) * 3))))
        return np.zeros(nfft // 2 + 1), np.fft.rfftfreq(nfft, 1 / fs), 0
    spec, freqs = _normalised_spectra(y, fs, lo_hz)
    return spec.sum(axis=1), freqs, int(spec.shape[1])


def rate_from_spectrum(
    spectrum: np.ndarray,
    freqs: np.ndarray,
    band_hz: tuple[float, float],
    lobe_hz: float,
    floor_level: float,
    name: str = "",
) -> RateEstimate:
    """:func:`estimate_rate`'s peak picking, checks and confidence on a given summed
    spectrum (one window's, from :func:`summed_spectrum`, or an average of several).

    Parameters
    ----------
    spectrum, freqs : numpy.ndarray
        Power spectrum and its frequencies (Hz).
    band_hz : (float, float)
        Search band in Hz.
    lobe_hz : float
        Main-lobe half width (Hz): ``2·fs/n`` for a Hann window of ``n`` samples.
    floor_level : float
        Peak/floor ratio noise alone stays below (:func:`detection_floor` of the channel
        count for one window).
    name : str
        :attr:`RateEstimate.candidate`.

    Returns
    -------
    RateEstimate
    """
    lo_hz, hi_hz = band_hz
    s0 = float(floor_level)
    f_peak, snr, conc, edge, half = _pick_peak(spectrum, freqs, lo_hz, hi_hz, lobe_hz, s0)
    strength = float(np.clip(np.log(max(snr, 1e-12) / s0) / np.log(5.0), 0, 1))
    conf = 0.0 if edge or not np.isfinite(f_peak) else strength * float(np.clip(conc, 0, 1))
    check = ("none" if not np.isfinite(f_peak)
             else "second_harmonic" if half else "fundamental")
    return RateEstimate(float(f_peak), round(conf, 3), round(conc, 3), round(snr, 2),
                        check, edge, name)


def refine_peak(spectrum: np.ndarray, freqs: np.ndarray, k: int) -> float:
    """Frequency (Hz) of the spectral peak at bin ``k``, refined below one bin by a
    parabola on the log power (as :func:`estimate_rate` does)."""
    return _refine(np.maximum(np.asarray(spectrum, float), 1e-300), freqs, int(k))
