"""Breathing rate from WiFi CSI, streaming, for any ``wifi_csi`` :class:`Frames`.

Method (details, parameters and references in ``docs/breathing.md``):

1. **Per-packet features** immune to the radio's impairments.
   * ``n_rx ≥ 2`` (Intel 5300, multi-core Nexmon): the CSI ratio between receive antennas
     (FarSense, Zeng et al. 2019) on every used subcarrier — CFO, timing offset and AGC
     cancel. With one receive chain but ≥ 2 spatial streams (Nexmon bcm4339, Intel 5300
     with ``Ntx ≥ 2``) the ratio is taken between the streams, which share the receiver's
     impairments (:func:`ratio_axis`).
   * one antenna pair (ESP32): on the used subcarriers (LLTF ±1…±26; nulls, guards and DC
     dropped), remove the common phase and linear phase slope (CFO, timing offset) and the
     common amplitude (AGC). The common amplitude is kept as a separate "gain" feature,
     with its AGC steps removed, because a chest reflection close to the line of sight
     modulates all subcarriers alike and the per-packet normalisation would erase it.
2. **Uniform grid**: packets are averaged into 0.1 s bins (jitter, loss, any packet rate);
   the within-bin spread of the features is the motion statistic.
3. **Every hop, over the last window**: skip windows with too many empty bins; gate windows
   with body motion (runs of bins whose spread exceeds ``motion_ratio`` × the window's
   median); clip glitches; detrend, high-pass and noise-normalise every real channel; sum
   their periodograms (the GLRT for a sinusoid of unknown amplitude per channel) and find
   the peak in 6–40 breaths/min with a CFAR noise floor, sub-bin interpolation and a
   sub-harmonic check. The subcarrier features and the gain feature are scored separately;
   the more significant wins.
4. **Confidence** = detection strength (peak over floor, against a calibrated noise-only
   level) × concentration (share of the band's excess power in the peak). Below
   ``min_confidence`` nothing is emitted: no breathing → no guess.

Memory is bounded by the window (``window_s × fs_hz`` bins × channels) whatever the
capture length.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal

from sensing.detections import Detection
from sensing.frames import Frames
from sensing.wifi.conditioning import (
    UniformBinner,
    _fill_gaps,
    csi_ratio,
    lltf_data_mask,
    normalize_amplitude,
    null_subcarrier_mask,
    remove_gain_steps,
    sanitize_phase,
)

__all__ = ["BreathingEstimator", "RateEstimate", "breathing_rate", "estimate_rate", "csi_features"]


@dataclass(frozen=True)
class RateEstimate:
    """Result of analysing one window.

    Attributes
    ----------
    bpm : float
        Breathing rate, breaths/min (NaN when no peak in the band).
    confidence : float
        0–1.
    concentration : float
        Fraction of the breathing band's power above the noise floor that lies in the
        peak's main lobe (0–1).
    snr : float
        Peak height over the noise floor of the summed spectrum (linear; ~1–2 for noise).
    """

    bpm: float
    confidence: float
    concentration: float
    snr: float
    extra: dict[str, Any] = field(default_factory=dict)


def used_subcarriers(frames: Frames) -> np.ndarray:
    """Mask of subcarriers worth using: the LLTF data subcarriers of 64-entry ESP32-style
    layouts, otherwise every subcarrier that carries signal and is not DC."""
    sc = frames.subcarriers
    bw = int(frames.meta.get("bandwidth_mhz", 20) or 20)
    if sc is not None and len(sc) == 64 and bw in (20, 40):
        k = np.asarray(sc)
        if (bw == 20 and k.min() == -32 and k.max() == 31) or bw == 40:
            m = lltf_data_mask(k, bw)
            live = null_subcarrier_mask(frames.data, axis=1)
            return m & live if (m & live).sum() >= 8 else m
    m = null_subcarrier_mask(frames.data, axis=1)
    if sc is not None:
        m &= np.asarray(sc) != 0
    return m


def ratio_axis(data: np.ndarray) -> int | None:
    """Antenna axis the CSI ratio is taken along: 2 (receive antennas/cores) when there are
    ≥ 2, else 3 (spatial streams / transmit antennas of one receive chain, e.g. Nexmon
    bcm4339), else ``None`` (one antenna pair: the single-antenna path)."""
    if data.ndim != 4:
        return None
    if data.shape[2] >= 2:
        return 2
    return 3 if data.shape[3] >= 2 else None


def csi_features(
    frames: Frames, mask: np.ndarray, ref_rx: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-packet features of a CSI chunk (see module docstring, step 1).

    Parameters
    ----------
    frames : Frames
        ``wifi_csi`` chunk, data ``(n, n_subcarriers, n_rx, n_tx)``.
    mask : numpy.ndarray of bool
        Subcarriers to use.
    ref_rx : int, optional
        Reference antenna of the CSI ratio (``n_rx ≥ 2``).

    Returns
    -------
    features : numpy.ndarray
        Complex ``(n, n_features)``.
    gain_db : numpy.ndarray or None
        Common amplitude per packet in dB (single antenna only), AGC steps still in.
    """
    data = np.asarray(frames.data)
    if data.ndim == 2:
        data = data[:, :, None, None]
    h = data[:, mask]
    axis = ratio_axis(h)
    if axis is not None:
        r = csi_ratio(h, rx_axis=axis, ref=ref_rx)
        return r.reshape(len(r), -1), None
    x = h.reshape(h.shape[0], h.shape[1], -1)  # (n, K, n_tx)
    sc = frames.subcarriers[mask] if frames.subcarriers is not None else None
    x = sanitize_phase(x, sc, axis=1)
    x, gain = normalize_amplitude(x, axis=1)
    gain_db = 20 * np.log10(np.maximum(gain.mean(axis=-1), 1e-6))
    return x.reshape(len(x), -1), gain_db


def _normalised_spectra(
    y: np.ndarray, fs: float, lo_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Hann-windowed periodograms (low sidelobes keep slow drift out of the band) of real
    channels ``y`` (time first), each channel detrended,
    high-passed above ``0.6·lo_hz`` and scaled to unit noise (robust spread of its
    sample-to-sample differences, which slow breathing hardly affects)."""
    n = len(y)
    y = _detrend(y)
    d = np.diff(y, axis=0)
    noise = 1.4826 * np.median(np.abs(d - np.median(d, axis=0)), axis=0) / np.sqrt(2)
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


def _winsorize(x: np.ndarray, n_sigmas: float = 5.0) -> np.ndarray:
    """Clip every column of ``x`` (real/imaginary parts separately) to its median ±
    ``n_sigmas`` robust standard deviations: isolated glitches cannot dominate a window."""
    if np.iscomplexobj(x):
        k = x.shape[1]
        r = _winsorize(np.concatenate([x.real, x.imag], axis=1), n_sigmas)
        return r[:, :k] + 1j * r[:, k:]
    med = np.median(x, axis=0)
    mad = 1.4826 * np.median(np.abs(x - med), axis=0)
    return np.clip(x, med - n_sigmas * mad, med + n_sigmas * mad)


def _pick_peak(
    spec: np.ndarray, freqs: np.ndarray, lo_hz: float, hi_hz: float, lobe: float,
    significant: float = 2.0,
) -> tuple[float, float, float, bool]:
    """Peak of a summed spectrum in ``[lo_hz, hi_hz]``: (frequency Hz, peak/floor,
    concentration, on_edge). A peak at half the frequency that is itself ``significant``
    (× floor) and ≥ 20 % of the main peak is taken as the fundamental (a chest reflection
    seen near a blind spot doubles the frequency of the amplitude)."""
    inb = (freqs >= lo_hz) & (freqs <= hi_hz)
    idx = np.flatnonzero(inb)
    floor = float(np.median(spec[idx]))
    if floor <= 0 or not np.isfinite(floor):
        return float("nan"), 0.0, 0.0, True
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
    if half >= lo_hz:
        near = np.flatnonzero(np.abs(freqs - half) <= lobe / 2)
        if near.size and spec[near].max() >= max(0.2 * spec[k], significant * floor):
            k = int(near[np.argmax(spec[near])])
            f_peak = _refine(spec, freqs, k)
    in_lobe = (np.abs(freqs - f_peak) <= lobe) & inb
    excess = (spec[inb] - floor).clip(0).sum()
    conc = float((spec[in_lobe] - floor).clip(0).sum() / excess) if excess > 0 else 0.0
    return f_peak, float(spec[k] / floor), conc, edge


def _detection_floor(n_channels: int) -> float:
    """Peak/floor ratio that noise alone stays below, for a sum of ``n_channels``
    normalised periodograms (calibrated on simulated empty rooms, with margin).

    Many channels: ``1 + 20/√C`` (the sum's relative spread shrinks as 1/√C; simulated
    empty rooms peak at up to 2.4 for 104 channels, the threshold is 2.96). A single
    channel (the common gain) has a heavy tail (slow drift, AGC residue): 40.
    """
    if n_channels <= 1:
        return 40.0
    return 1.0 + 20.0 / np.sqrt(n_channels)


def estimate_rate(
    x: np.ndarray,
    fs: float,
    *,
    min_bpm: float = 6.0,
    max_bpm: float = 40.0,
    extra_real: np.ndarray | None = None,
) -> RateEstimate:
    """Breathing rate of one uniformly sampled window of CSI features.

    Every real channel (real and imaginary parts of ``x``) is detrended, high-passed,
    scaled by its own noise level and its periodogram taken; the periodograms are summed.
    For a sinusoid of unknown amplitude and phase in each channel this sum is the
    generalised likelihood-ratio statistic, so its peak is the best frequency and the
    peak's height over the noise floor (median across the band) a detection SNR. The
    ``extra_real`` channels (the common gain of a single antenna, which carries the
    breathing when the chest reflection changes all subcarriers alike) are analysed as a
    second candidate; the more significant candidate wins.

    Parameters
    ----------
    x : numpy.ndarray
        Complex or real ``(n_samples, n_channels)`` on a uniform grid (no NaN).
    fs : float
        Grid rate in Hz.
    min_bpm, max_bpm : float
        Search band in breaths/min (searched with a 10 % margin so that a rate on the
        edge is still a peak).
    extra_real : numpy.ndarray, optional
        More real channels ``(n_samples, m)``.

    Returns
    -------
    RateEstimate
        ``extra["feature"]`` says which candidate won (``"subcarriers"`` or ``"gain"``).
    """
    x = np.asarray(x)
    n = len(x)
    lo_hz, hi_hz = 0.9 * min_bpm / 60.0, 1.1 * max_bpm / 60.0
    lobe = 2.0 * fs / n  # Hz: main-lobe half width of the Hann window
    groups = [("subcarriers", np.concatenate([x.real, x.imag], axis=1)
               if np.iscomplexobj(x) else x.astype(float))]
    if extra_real is not None:
        groups.append(("gain", np.asarray(extra_real, float).reshape(n, -1)))
    best = RateEstimate(float("nan"), 0.0, 0.0, 0.0)
    for name, y in groups:
        if y.shape[1] == 0:
            continue
        spec, freqs = _normalised_spectra(y, fs, lo_hz)
        if spec.shape[1] == 0:
            continue
        s0 = _detection_floor(spec.shape[1])
        f_peak, snr, conc, edge = _pick_peak(spec.sum(axis=1), freqs, lo_hz, hi_hz, lobe, s0)
        strength = float(np.clip(np.log(max(snr, 1e-12) / s0) / np.log(5.0), 0, 1))
        conf = 0.0 if edge or not np.isfinite(f_peak) else strength * float(np.clip(conc, 0, 1))
        cand = RateEstimate(float(f_peak * 60.0), round(conf, 3), round(conc, 3),
                            round(snr, 2), {"feature": name})
        if not np.isfinite(best.bpm) or cand.confidence > best.confidence or (
                cand.confidence == best.confidence == 0 and cand.snr / s0 > best.snr):
            best = cand
    return best


def _refine(spec: np.ndarray, freqs: np.ndarray, k: int) -> float:
    """Parabolic interpolation of a spectral peak on the log power (Hz)."""
    if 0 < k < len(spec) - 1:
        a, b, c = np.log(np.maximum(spec[k - 1 : k + 2], 1e-300))
        den = a - 2 * b + c
        delta = 0.5 * (a - c) / den if den < 0 else 0.0
        return float(freqs[k] + np.clip(delta, -0.5, 0.5) * (freqs[1] - freqs[0]))
    return float(freqs[k])


class BreathingEstimator:
    """Streaming breathing-rate estimator (bounded memory, same code live and replay).

    Feed chunks of one stream in order with :meth:`update`; every ``hop_s`` of stream
    time, once ``window_s`` of data is in, the last window is analysed and a
    ``breathing_rate`` :class:`Detection` is returned when it passes the gates.

    Parameters
    ----------
    window_s : float
        Analysis window (s). 30 s holds 3 cycles at the slowest rate (6 breaths/min) and
        gives 2 breaths/min spectral resolution before interpolation — the usual trade-off
        of clinical respiration monitors (30–60 s averages).
    hop_s : float
        Time between estimates (s); 5 s follows a changing rate without flooding the bus.
    fs_hz : float
        Uniform grid rate (Hz); 10 Hz is far above the breathing band and below any
        usable packet rate.
    min_bpm, max_bpm : float
        Rate search band (breaths/min).
    min_confidence : float
        Windows below this confidence emit nothing (0–1).
    motion_ratio : float
        A grid bin is "motion" when its within-bin CSI spread (below ~20 packets/s: the
        change from the previous bin) exceeds this multiple of the window's median, in
        runs of at least 3 bins.
    max_motion_fraction : float
        Windows with more motion bins than this fraction are gated (no estimate).
    min_coverage : float
        Windows with fewer non-empty bins than this fraction (packet loss) are skipped.
    max_gap_s : float
        A gap in the stream longer than this restarts the window.
    """

    def __init__(
        self,
        *,
        window_s: float = 30.0,
        hop_s: float = 5.0,
        fs_hz: float = 10.0,
        min_bpm: float = 6.0,
        max_bpm: float = 40.0,
        min_confidence: float = 0.2,
        motion_ratio: float = 6.0,
        max_motion_fraction: float = 0.02,
        min_coverage: float = 0.6,
        max_gap_s: float = 10.0,
    ) -> None:
        if window_s * min_bpm / 60.0 < 2.0:
            raise ValueError(
                f"window_s={window_s} s holds fewer than 2 cycles at min_bpm={min_bpm}")
        if hop_s <= 0 or fs_hz <= 2 * max_bpm / 60.0:
            raise ValueError(f"need hop_s > 0 and fs_hz > 2·max_bpm/60, got {hop_s}, {fs_hz}")
        self.window_s, self.hop_s, self.fs_hz = float(window_s), float(hop_s), float(fs_hz)
        self.min_bpm, self.max_bpm = float(min_bpm), float(max_bpm)
        self.min_confidence = float(min_confidence)
        self.motion_ratio = float(motion_ratio)
        self.max_motion_fraction = float(max_motion_fraction)
        self.min_coverage = float(min_coverage)
        self.max_gap_s = float(max_gap_s)
        self.n_win = int(round(window_s * fs_hz))
        self.n_hop = max(1, int(round(hop_s * fs_hz)))
        #: Counters: windows analysed, emitted, and gated by reason.
        self.stats: Counter = Counter()
        #: The last window's analysis (for diagnostics), or None.
        self.last: dict[str, Any] | None = None
        self.reset()

    def settings(self) -> dict[str, float]:
        """The constructor arguments of this estimator (``BreathingEstimator(**settings)``
        builds an identical one)."""
        return {"window_s": self.window_s, "hop_s": self.hop_s, "fs_hz": self.fs_hz,
                "min_bpm": self.min_bpm, "max_bpm": self.max_bpm,
                "min_confidence": self.min_confidence, "motion_ratio": self.motion_ratio,
                "max_motion_fraction": self.max_motion_fraction,
                "min_coverage": self.min_coverage, "max_gap_s": self.max_gap_s}

    def reset(self) -> None:
        """Forget the stream (new layout, long gap)."""
        self._layout: tuple | None = None
        self._mask: np.ndarray | None = None
        self._ref: int | None = None
        self._binner: UniformBinner | None = None
        self._gbinner: UniformBinner | None = None
        self._buf: np.ndarray | None = None
        self._gbuf = np.empty(0)
        self._cnt = np.empty(0, np.int64)
        self._spread = np.empty(0)
        self._gspread = np.empty(0)
        self._first_bin: int | None = None
        self._total = 0  # bins appended since the (re)start
        self._next = self.n_win

    def _setup(self, frames: Frames) -> None:
        self._layout = (frames.data.shape[1:], None if frames.subcarriers is None
                        else tuple(np.asarray(frames.subcarriers).tolist()))
        self._mask = used_subcarriers(frames)
        axis = ratio_axis(frames.data)
        if axis is not None:
            h = frames.data[:, self._mask]
            other = tuple(a for a in (0, 1, 2, 3) if a != axis)
            self._ref = int(np.argmax(np.mean(np.abs(h), axis=other)))
        feats, gain = csi_features(frames, self._mask, self._ref)
        self._nf = feats.shape[1]
        self._binner = UniformBinner(self.fs_hz, self._nf)
        self._gbinner = UniformBinner(self.fs_hz, 1) if gain is not None else None
        self._buf = np.empty((0, self._nf), np.complex64)

    def update(self, frames: Frames) -> list[Detection]:
        """Consume one chunk; return the detections of the windows it completed."""
        if frames.modality != "wifi_csi":
            raise ValueError(f"BreathingEstimator needs wifi_csi frames, got {frames.modality!r}")
        if not len(frames):
            return []
        layout = (frames.data.shape[1:], None if frames.subcarriers is None
                  else tuple(np.asarray(frames.subcarriers).tolist()))
        if self._layout is not None and layout != self._layout:
            self.stats["layout_change"] += 1
            self.reset()
        if self._layout is None:
            self._setup(frames)
        feats, gain = csi_features(frames, self._mask, self._ref)
        first, means, cnts, spread = self._binner.add(feats, frames.times_s)
        if self._gbinner is not None:
            _, gmeans, _, gspread = self._gbinner.add(gain[:, None], frames.times_s)
            gmeans = gmeans[:, 0].real
        else:
            gmeans = np.zeros(len(means))
            gspread = np.full(len(means), np.nan)
        if self._first_bin is None and len(means):
            self._first_bin = first
        out: list[Detection] = []
        max_gap = self.max_gap_s * self.fs_hz
        i = 0
        while i < len(means):
            if cnts[i] == 0:  # a long run of empty bins restarts the window
                j = i
                while j < len(means) and cnts[j] == 0:
                    j += 1
                if j - i > max_gap:
                    self.stats["gap_restart"] += 1
                    self._restart(first + j)
                    i = j
                    continue
            take = min(len(means) - i, self._next - self._total)
            sl = slice(i, i + take)
            self._append(means[sl], gmeans[sl], cnts[sl], spread[sl], gspread[sl])
            i += take
            if self._total >= self._next:
                self._next += self.n_hop
                det = self._analyse()
                if det is not None:
                    out.append(det)
        return out

    def _restart(self, first_bin: int) -> None:
        self._buf = self._buf[:0]
        self._gbuf = self._gbuf[:0]
        self._cnt = self._cnt[:0]
        self._spread = self._spread[:0]
        self._gspread = self._gspread[:0]
        self._first_bin = first_bin
        self._total = 0
        self._next = self.n_win

    def _append(
        self, m: np.ndarray, g: np.ndarray, c: np.ndarray, s: np.ndarray, gs: np.ndarray
    ) -> None:
        keep = self.n_win
        self._gspread = np.concatenate([self._gspread, gs])[-keep:]
        self._buf = np.concatenate([self._buf, m.astype(np.complex64)])[-keep:]
        self._gbuf = np.concatenate([self._gbuf, g])[-keep:]
        self._cnt = np.concatenate([self._cnt, c])[-keep:]
        self._spread = np.concatenate([self._spread, s])[-keep:]
        self._total += len(m)

    def _motion(self, spread: np.ndarray, means: np.ndarray, valid: np.ndarray
                ) -> np.ndarray | None:
        """Motion bins: runs of >= 3 bins whose fast-change statistic exceeds
        ``motion_ratio`` × its window median; None when it cannot be measured."""
        stat = spread
        if np.isfinite(stat).mean() < 0.5:
            # under ~20 packets/s most bins hold one packet: use the change between
            # consecutive non-empty bins instead of the within-bin spread
            stat = np.full(len(valid), np.nan)
            idx = np.flatnonzero(valid)
            d = np.abs(np.diff(means[idx], axis=0)) ** 2
            stat[idx[1:]] = d.mean(axis=1)
        fin = np.isfinite(stat)
        if fin.sum() < 10:
            return None
        floor = float(np.median(stat[fin]))
        return _runs_at_least(fin & (stat > self.motion_ratio * floor), 3)

    def _analyse(self) -> Detection | None:
        self.stats["windows"] += 1
        end_s = (self._first_bin + self._total) / self.fs_hz
        valid = self._cnt > 0
        info: dict[str, Any] = {"offset_s": end_s}
        self.last = info
        coverage = float(valid.mean())
        info["coverage"] = coverage
        if coverage < self.min_coverage:
            self.stats["gated_gaps"] += 1
            info["gate"] = "gaps"
            return None
        # motion: fast change of the subcarrier features and (one antenna) of the common
        # gain — a moving body near the line of sight changes mostly the latter
        motion = self._motion(self._spread, self._buf, valid)
        if motion is None:
            self.stats["gated_gaps"] += 1
            info["gate"] = "gaps"
            return None
        if self._gbinner is not None:
            gm = self._motion(self._gspread, self._gbuf[:, None], valid)
            if gm is not None:
                motion |= gm
        motion_frac = float(motion.mean())
        info["motion_fraction"] = motion_frac
        if motion_frac > self.max_motion_fraction:
            self.stats["gated_motion"] += 1
            info["gate"] = "motion"
            return None
        x = _fill_gaps(self._buf.astype(complex), valid)
        x = _winsorize(x)
        extra = None
        if self._gbinner is not None:
            g = _fill_gaps(self._gbuf[:, None], valid)[:, 0]
            extra = remove_gain_steps(g)[:, None]
        est = estimate_rate(x, self.fs_hz, min_bpm=self.min_bpm, max_bpm=self.max_bpm,
                            extra_real=extra)
        info.update(bpm=est.bpm, confidence=est.confidence, concentration=est.concentration,
                    snr=est.snr)
        if not math.isfinite(est.bpm) or est.confidence < self.min_confidence:
            self.stats["gated_confidence"] += 1
            info["gate"] = "confidence"
            return None
        self.stats["emitted"] += 1
        return Detection(
            type="breathing_rate", offset_s=round(end_s, 3), value=round(est.bpm, 2), unit="bpm",
            confidence=est.confidence,
            extra={"window_s": self.window_s, "coverage": round(coverage, 3),
                   "concentration": est.concentration, "snr": est.snr, **est.extra},
        )


def _runs_at_least(mask: np.ndarray, n: int) -> np.ndarray:
    """Keep only the runs of True in ``mask`` that are at least ``n`` long."""
    if n <= 1 or not mask.any():
        return mask
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = np.zeros_like(mask)
    for a, b in zip(starts, stops, strict=True):
        if b - a >= n:
            out[a:b] = True
    return out


def breathing_rate(
    csi: np.ndarray,
    times_s: np.ndarray,
    subcarriers: np.ndarray | None = None,
    *,
    bandwidth_mhz: int = 20,
    chunk: int = 1024,
    **options: Any,
) -> list[Detection]:
    """Breathing rate over a whole recording (notebook helper around
    :class:`BreathingEstimator`).

    Parameters
    ----------
    csi : numpy.ndarray
        Complex ``(n_packets, n_subcarriers)`` (single antenna) or
        ``(n_packets, n_subcarriers, n_rx, n_tx)``.
    times_s : numpy.ndarray
        Packet times (s).
    subcarriers : numpy.ndarray, optional
        Subcarrier indices (``-32 … 31`` for ESP32 LLTF).
    bandwidth_mhz : int
        Channel bandwidth (Hz / 1e6).
    chunk : int
        Packets per internal chunk (the result does not depend on it).
    **options
        :class:`BreathingEstimator` parameters (``window_s``, ``hop_s`` …).

    Returns
    -------
    list of Detection
        One per emitted window: ``value`` in breaths/min, ``offset_s`` = window end.
    """
    data = np.asarray(csi)
    if data.ndim == 2:
        data = data[:, :, None, None]
    est = BreathingEstimator(**options)
    out: list[Detection] = []
    t = np.asarray(times_s, float)
    for a in range(0, len(data), chunk):
        fr = Frames(data=data[a : a + chunk], times_s=t[a : a + chunk], fs_hz=None,
                    modality="wifi_csi", source="array", subcarriers=subcarriers,
                    meta={"bandwidth_mhz": bandwidth_mhz})
        out.extend(est.update(fr))
    return out
