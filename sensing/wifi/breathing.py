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
5. **Consensus (long integration)** when no single window is confident: the spectra of the
   windows of the last ``consensus_s`` (60 s) are averaged, subcarriers (as z-scores) and
   gain combined, whitened by their running median and the peak's excess measured in
   robust spreads of the band; above a threshold calibrated on simulated empty rooms the
   window is answered with the newest window's peak next to the consensus peak
   (``feature == "consensus"``). Off below ~30 packets/s (:data:`CONSENSUS_MIN_PACKETS_PER_BIN`).

Memory is bounded by the window (``window_s × fs_hz`` bins × channels) whatever the
capture length.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
from pydantic import ValidationInfo, field_validator
from scipy import ndimage

from sensing import dsp
from sensing.detections import Detection
from sensing.dsp import RateEstimate, UniformBinner, fill_gaps, winsorize
from sensing.dsp.rate import rate_from_spectrum, refine_peak, summed_spectrum
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.wifi.conditioning import (
    csi_ratio,
    lltf_data_mask,
    normalize_amplitude,
    null_subcarrier_mask,
    remove_gain_steps,
    sanitize_phase,
)

__all__ = ["BreathingEstimator", "BreathingParams", "breathing_rate", "estimate_rate", "csi_features",
           "candidate_spectra", "best_candidate", "consensus_estimate"]


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


def candidate_spectra(
    x: np.ndarray,
    fs: float,
    *,
    min_bpm: float = 6.0,
    extra_real: np.ndarray | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """Summed noise-normalised periodograms of the candidates of one window
    (:func:`sensing.dsp.rate.summed_spectrum`): ``"subcarriers"`` (real and imaginary
    parts of ``x``) and, when given, ``"gain"`` (``extra_real``).

    Returns
    -------
    dict
        ``name -> (spectrum, freqs_hz, n_real_channels)``.
    """
    x = np.asarray(x)
    cands = {"subcarriers": x}
    if extra_real is not None:
        cands["gain"] = np.asarray(extra_real, float).reshape(len(x), -1)
    lo_hz = 0.9 * min_bpm / 60.0
    return {name: summed_spectrum(arr, fs, lo_hz, axis=0) for name, arr in cands.items()}


def _band_hz(min_bpm: float, max_bpm: float) -> tuple[float, float]:
    return 0.9 * min_bpm / 60.0, 1.1 * max_bpm / 60.0


def best_candidate(
    spectra: dict[str, tuple[np.ndarray, np.ndarray, int]],
    n_samples: int,
    fs: float,
    *,
    min_bpm: float = 6.0,
    max_bpm: float = 40.0,
) -> RateEstimate:
    """:func:`sensing.dsp.estimate_rate`'s verdict on :func:`candidate_spectra` (each
    candidate scored on its own, the more significant wins)."""
    band = _band_hz(min_bpm, max_bpm)
    lobe = 2.0 * fs / n_samples
    best = RateEstimate(float("nan"), 0.0, 0.0, 0.0)
    for name, (spec, freqs, n_ch) in spectra.items():
        if n_ch == 0:
            continue
        s0 = dsp.detection_floor(n_ch)
        cand = rate_from_spectrum(spec, freqs, band, lobe, s0, name)
        if not math.isfinite(best.rate_hz) or cand.confidence > best.confidence or (
                cand.confidence == best.confidence == 0 and cand.snr / s0 > best.snr):
            best = cand
    return best


def estimate_rate(
    x: np.ndarray,
    fs: float,
    *,
    min_bpm: float = 6.0,
    max_bpm: float = 40.0,
    extra_real: np.ndarray | None = None,
) -> RateEstimate:
    """Breathing rate of one uniformly sampled window of CSI features.

    :func:`sensing.dsp.estimate_rate` on two candidates: the subcarrier features ``x``
    (real and imaginary parts) and the ``extra_real`` channels (the common gain of a
    single antenna, which carries the breathing when the chest reflection changes all
    subcarriers alike); the more significant candidate wins.

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
    sensing.dsp.RateEstimate
        ``per_min`` in breaths/min; ``candidate`` says which candidate won
        (``"subcarriers"`` or ``"gain"``).
    """
    spectra = candidate_spectra(x, fs, min_bpm=min_bpm, extra_real=extra_real)
    return best_candidate(spectra, len(x), fs, min_bpm=min_bpm, max_bpm=max_bpm)


#: Weight of the gain spectrum in the consensus (relative to the subcarriers' z-scores).
CONSENSUS_GAIN_WEIGHT = 2.0
#: Below this rate (breaths/min) the gain's weight falls linearly to
#: :data:`CONSENSUS_GAIN_LOW_WEIGHT` at ``min_bpm``: slow gain wander (AGC residue, the
#: environment) has a red spectrum there.
CONSENSUS_GAIN_KNEE_BPM = 10.0
CONSENSUS_GAIN_LOW_WEIGHT = 0.3
#: Excess of the consensus spectrum's peak over its floor, in robust spreads of the band,
#: that simulated empty rooms stay below (calibrated, see ``docs/breathing.md``); at it the
#: confidence is 0.2.
CONSENSUS_THRESHOLD = 15.0
#: A window at least this confident on its own is answered from itself, not the consensus
#: (the default ``min_confidence``).
SINGLE_WINDOW_RELIABLE = 0.2
#: The consensus answers only when the grid bins hold at least this many packets (median):
#: below ~30 packets/s most bins hold one or two and interpolated gaps give the averaged
#: spectrum slow structure that simulated empty rooms turned into lines at 8 breaths/min.
CONSENSUS_MIN_PACKETS_PER_BIN = 3
#: Fewest windows the consensus averages (3: 40 s of data at the default window and hop).
CONSENSUS_MIN_WINDOWS = 3
#: A consensus peak whose main lobe holds less of the band's excess than this does not
#: answer.
CONSENSUS_MIN_CONCENTRATION = 0.3


def consensus_estimate(
    history: list[dict[str, tuple[np.ndarray, np.ndarray, int]]],
    n_samples: int,
    fs: float,
    *,
    min_bpm: float = 6.0,
    max_bpm: float = 40.0,
    threshold: float = CONSENSUS_THRESHOLD,
) -> tuple[RateEstimate, float]:
    """Rate from the spectra of the last windows averaged (long integration while the
    rate is stable), the subcarrier and gain candidates combined.

    The averaged subcarrier spectrum becomes z-scores ``√C·(S/median − 1)`` (C summed
    real channels: the sum's relative noise spread is ``1/√C``); the averaged gain
    spectrum ``S/median − 1`` is added with weight :data:`CONSENSUS_GAIN_WEIGHT`
    (reduced below :data:`CONSENSUS_GAIN_KNEE_BPM`). The peak of the sum in the band is
    the rate; its excess over the CFAR floor in robust spreads of the band (1.4826 × the
    median absolute deviation of the combined spectrum in the band: measured, because
    averaged overlapping windows, interpolated gaps and AGC residue make the spread differ
    from the white-noise one), against ``threshold``, gives the confidence (0.2 at the
    threshold, 1 at 5×; 0 below the threshold, on the band edge, or when the peak holds
    less than :data:`CONSENSUS_MIN_CONCENTRATION` of the band's excess).

    Parameters
    ----------
    history : list of dict
        :func:`candidate_spectra` of the windows to combine (same window length).
    n_samples, fs : int, float
        Window length (samples) and grid rate (Hz).
    min_bpm, max_bpm : float
        Search band (breaths/min).
    threshold : float
        Excess (robust spreads) at which the confidence reaches 0.2.

    Returns
    -------
    estimate : RateEstimate
        ``candidate == "consensus"``; ``snr`` is the peak's excess in robust spreads.
    excess : float
        The same excess, unrounded.
    """
    none = RateEstimate(float("nan"), 0.0, 0.0, 0.0, candidate="consensus")
    if not history:
        return none, 0.0
    band = _band_hz(min_bpm, max_bpm)
    freqs = history[-1]["subcarriers"][1]
    inb = (freqs >= band[0]) & (freqs <= band[1])
    total = _combined(history, freqs, inb, min_bpm)
    if total is None:
        return none, 0.0
    # whiten: divide by the local floor (running median over ±5 main lobes), so that the
    # red low-frequency part of the spectrum (gain wander, AGC residue) is judged against
    # its own level; then the excess of the peak in robust spreads of the whitened band
    # (measured, because averaged overlapping windows and interpolated gaps make the spread
    # differ from the white-noise one)
    lobe_bins = max(1, int(round(2.0 * fs / n_samples / (freqs[1] - freqs[0]))))
    local = ndimage.median_filter(total, size=10 * lobe_bins + 1, mode="nearest")
    if not np.all(local[inb] > 0):
        return none, 0.0
    total = total / np.maximum(local, 1e-300)
    med = float(np.median(total[inb]))
    spread = 1.4826 * float(np.median(np.abs(total[inb] - med)))
    if not (med > 0 and spread > 0):
        return none, 0.0
    # halving needs a peak at half the rate at least half as significant as a detection
    s0 = 1.0 + 0.5 * threshold * spread / med
    est = rate_from_spectrum(total, freqs, band, 2.0 * fs / n_samples, s0, "consensus")
    if not math.isfinite(est.rate_hz):
        return none, 0.0
    excess = (est.snr - 1.0) * med / spread
    rate_hz = est.rate_hz
    last = _combined(history[-1:], freqs, inb, min_bpm)
    if last is not None:  # the newest window's peak near the consensus one (drifting rate)
        near = np.flatnonzero(np.abs(freqs - rate_hz) <= fs / n_samples)
        if near.size:
            k = int(near[np.argmax(last[near])])
            if 0 < k < len(last) - 1 and last[k] >= last[k - 1] and last[k] >= last[k + 1]:
                rate_hz = refine_peak(last, freqs, k)
    # all or nothing below the threshold: consumers with a lower confidence bar (presence
    # uses 0.1) must not get consensus windows that simulated empty rooms reach
    conf = 0.0
    if (not est.on_edge and excess >= threshold
            and est.concentration >= CONSENSUS_MIN_CONCENTRATION):
        conf = min(1.0, 0.2 * (1.0 + 4.0 * math.log(excess / threshold) / math.log(5.0)))
    return (RateEstimate(rate_hz, round(conf, 3), est.concentration, round(excess, 2),
                         est.check, est.on_edge, "consensus"), excess)


def _combined(
    history: list[dict[str, tuple[np.ndarray, np.ndarray, int]]],
    freqs: np.ndarray,
    inb: np.ndarray,
    min_bpm: float,
) -> np.ndarray | None:
    """The candidates' spectra averaged over ``history`` and combined (see
    :func:`consensus_estimate`); None when no candidate is usable."""
    total = np.zeros(len(freqs))
    used = False
    for name in history[-1]:
        n_ch = history[-1][name][2]
        if n_ch == 0 or any(h[name][2] != n_ch for h in history):
            continue
        mean = np.mean([h[name][0] for h in history], axis=0)
        med = float(np.median(mean[inb]))
        if not med > 0:
            continue
        if name == "gain":
            w = np.interp(freqs * 60.0, [min_bpm, CONSENSUS_GAIN_KNEE_BPM],
                          [CONSENSUS_GAIN_LOW_WEIGHT, 1.0])
            total += CONSENSUS_GAIN_WEIGHT * w * mean / med
        else:
            total += np.sqrt(n_ch) * mean / med
        used = True
    return total if used else None


class BreathingParams(Params):
    """Options of :class:`BreathingEstimator` (and of the ``wifi_breathing`` pipeline).

    Besides the per-option ranges, the window must hold at least 2 cycles at ``min_bpm``,
    ``max_bpm`` must exceed ``min_bpm`` and the grid must sample ``max_bpm`` above Nyquist.
    """

    window_s: float = param(
        30.0, unit="s", gt=0, le=3600,
        doc="analysis window (30 s: 3 cycles at 6 breaths/min, 2 breaths/min resolution)")
    hop_s: float = param(5.0, unit="s", gt=0, le=3600, doc="time between estimates")
    fs_hz: float = param(10.0, unit="Hz", gt=0, le=1000,
                         doc="rate of the uniform grid the packets are averaged onto")
    min_bpm: float = param(6.0, unit="bpm", gt=0, doc="lowest breathing rate searched")
    max_bpm: float = param(40.0, unit="bpm", gt=0, doc="highest breathing rate searched")
    min_confidence: float = param(0.2, ge=0, le=1,
                                  doc="windows below this confidence emit nothing")
    motion_ratio: float = param(
        6.0, gt=0, doc="a bin is motion when its CSI spread exceeds this multiple of the "
                       "window median (in runs of >= 3 bins)")
    max_motion_fraction: float = param(
        0.02, ge=0, le=1, doc="windows with a larger fraction of motion bins are skipped")
    min_coverage: float = param(
        0.6, ge=0, le=1, doc="windows with a smaller fraction of non-empty bins are skipped")
    max_gap_s: float = param(10.0, unit="s", ge=0,
                             doc="a gap in the stream longer than this restarts the window")
    consensus_s: float = param(
        60.0, unit="s", ge=0, le=3600,
        doc="long integration: the spectra of the windows within this span are averaged "
            "(subcarriers and gain combined) and answer when a single window is too weak; "
            "0 turns it off")

    @field_validator("min_bpm")
    @classmethod
    def _two_cycles(cls, v: float, info: ValidationInfo) -> float:
        window_s = info.data.get("window_s")
        if window_s is not None and window_s * v / 60.0 < 2.0:
            raise ValueError(f"window_s={window_s:g} s holds fewer than 2 cycles at "
                             f"min_bpm={v:g}")
        return v

    @field_validator("max_bpm")
    @classmethod
    def _band(cls, v: float, info: ValidationInfo) -> float:
        lo, fs = info.data.get("min_bpm"), info.data.get("fs_hz")
        if lo is not None and v <= lo:
            raise ValueError(f"max_bpm={v:g} must exceed min_bpm={lo:g}")
        if fs is not None and fs <= 2 * v / 60.0:
            raise ValueError(f"fs_hz={fs:g} Hz must exceed 2·max_bpm/60 ({2 * v / 60.0:g} Hz)")
        return v


class BreathingEstimator:
    """Streaming breathing-rate estimator (bounded memory, same code live and replay).

    A :class:`sensing.stage.Stage`: :meth:`push` the chunks of one stream in order; every
    ``hop_s`` of stream time, once ``window_s`` of data is in, the last window is analysed
    and a ``breathing_rate`` :class:`Detection` (``value`` in breaths/min, ``offset_s`` =
    window end in s) is returned when it passes the gates.

    Parameters
    ----------
    params : BreathingParams, optional
        The options (positional only); default ``BreathingParams()``.
    **options
        Option values applied over ``params`` (see :class:`BreathingParams`):

        window_s : float
            Analysis window (s). 30 s holds 3 cycles at the slowest rate (6 breaths/min)
            and gives 2 breaths/min spectral resolution before interpolation — the usual
            trade-off of clinical respiration monitors (30–60 s averages).
        hop_s : float
            Time between estimates (s); 5 s follows a changing rate without flooding the
            bus.
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
            A gap in the stream longer than this (s) restarts the window.
        consensus_s : float
            Span (s) of the windows whose spectra are averaged when no single window is
            confident (:func:`consensus_estimate`); 0 turns the consensus off.

    Raises
    ------
    sensing.params.OptionError
        An unknown option or a bad value.
    """

    Params = BreathingParams

    def __init__(self, params: BreathingParams | None = None, /, **options: Any) -> None:
        self.params = p = BreathingParams.build(params, options, where="BreathingEstimator")
        self.window_s, self.hop_s, self.fs_hz = p.window_s, p.hop_s, p.fs_hz
        self.min_bpm, self.max_bpm = p.min_bpm, p.max_bpm
        self.min_confidence = p.min_confidence
        self.motion_ratio = p.motion_ratio
        self.max_motion_fraction = p.max_motion_fraction
        self.min_coverage = p.min_coverage
        self.max_gap_s = p.max_gap_s
        self.consensus_s = p.consensus_s
        #: windows averaged by the consensus: those ending within consensus_s - window_s
        self.n_consensus = (0 if p.consensus_s <= 0 else
                            1 + max(0, int(math.floor((p.consensus_s - p.window_s) / p.hop_s
                                                      + 1e-9))))
        self.n_win = int(round(p.window_s * p.fs_hz))
        self.n_hop = max(1, int(round(p.hop_s * p.fs_hz)))
        #: Counters: windows analysed, emitted, and gated by reason.
        self.stats: Counter = Counter()
        #: The last window's analysis (for diagnostics), or None.
        self.last: dict[str, Any] | None = None
        #: Set to a list to collect every analysed window's ``last`` (calibration).
        self.trace: list[dict[str, Any]] | None = None
        self.reset()

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
        self._history: list[tuple[int, dict]] = []  # (window end bin, candidate spectra)

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

    def push(self, frames: Frames) -> list[Detection]:
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

    def flush(self) -> list[Detection]:
        """End of stream: nothing is pending (a window is analysed as soon as it is
        complete), so always ``[]``."""
        return []

    def quiet_reason(self) -> str | None:
        """Why no window has been emitted so far, in a few words (None once one was)."""
        st = self.stats
        if st["emitted"]:
            return None
        if not st["windows"]:
            if st["gap_restart"]:
                return (f"no {self.window_s:g} s stretch without a gap longer than "
                        f"{self.max_gap_s:g} s")
            return f"capture shorter than the {self.window_s:g} s window"
        gated = {"motion": st["gated_motion"], "packet loss": st["gated_gaps"]}
        why = ", ".join(f"{n} by {k}" for k, n in gated.items() if n)
        return (f"no breathing found in {st['windows']} windows"
                + (f" ({why})" if why else ""))

    def _restart(self, first_bin: int) -> None:
        self._buf = self._buf[:0]
        self._gbuf = self._gbuf[:0]
        self._cnt = self._cnt[:0]
        self._spread = self._spread[:0]
        self._gspread = self._gspread[:0]
        self._first_bin = first_bin
        self._total = 0
        self._next = self.n_win
        self._history = []

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
        x = fill_gaps(self._buf.astype(complex), valid)
        x = winsorize(x, axis=0)
        extra = None
        if self._gbinner is not None:
            g = fill_gaps(self._gbuf[:, None], valid)[:, 0]
            extra = remove_gain_steps(g)[:, None]
        spectra = candidate_spectra(x, self.fs_hz, min_bpm=self.min_bpm, extra_real=extra)
        est = best_candidate(spectra, len(x), self.fs_hz, min_bpm=self.min_bpm,
                             max_bpm=self.max_bpm)
        info.update(single_bpm=est.per_min, single_confidence=est.confidence)
        packets = self._cnt[valid]
        if (self.n_consensus >= 2 and packets.size
                and float(np.median(packets)) >= CONSENSUS_MIN_PACKETS_PER_BIN):
            end_bin = self._first_bin + self._total
            span = (self.n_consensus - 1) * self.n_hop
            self._history = [h for h in self._history if h[0] >= end_bin - span]
            self._history.append((end_bin, spectra))
            if len(self._history) >= CONSENSUS_MIN_WINDOWS:
                long, excess = consensus_estimate(
                    [h[1] for h in self._history], len(x), self.fs_hz,
                    min_bpm=self.min_bpm, max_bpm=self.max_bpm)
                info.update(consensus_bpm=long.per_min, consensus_excess=excess,
                            consensus_confidence=long.confidence,
                            consensus_windows=len(self._history))
                # a window confident on its own keeps its own (more local) answer
                if est.confidence < SINGLE_WINDOW_RELIABLE and long.confidence > est.confidence:
                    est = long
        info.update(bpm=est.per_min, confidence=est.confidence,
                    concentration=est.concentration, snr=est.snr)
        if self.trace is not None:
            self.trace.append(info)
        if not math.isfinite(est.per_min) or est.confidence < self.min_confidence:
            self.stats["gated_confidence"] += 1
            info["gate"] = "confidence"
            return None
        self.stats["emitted"] += 1
        return Detection(
            type="breathing_rate", offset_s=round(end_s, 3), value=round(est.per_min, 2), unit="bpm",
            confidence=est.confidence,
            extra={"window_s": self.window_s, "coverage": round(coverage, 3),
                   "concentration": est.concentration, "snr": est.snr,
                   "feature": est.candidate},
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
        out.extend(est.push(fr))
    out.extend(est.flush())
    return out
