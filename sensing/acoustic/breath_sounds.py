"""Breathing rate from breath sounds: a microphone (or stethoscope) only, no probe.

Method
------
1. **Sub-band envelopes.** Above ~11 kHz the audio is first low-passed (Chebyshev II,
   60 dB) and decimated to ≈ 4 kHz. It is then split into ``n_bands`` log-spaced bands between
   ``band_lo_hz`` (150 Hz: above most heart-sound energy) and ``band_hi_hz`` (1500 Hz, or
   0.45 × the sample rate when lower), each band-passed (4th-order Butterworth, state
   carried across chunks) and its energy taken over frames of 1/``envelope_hz`` s (0.1 s):
   a log-energy envelope per band at 10 Hz.
2. **Impulse removal.** Each envelope is median-filtered over ``median_s`` (0.5 s): heart
   sounds and taps (< 0.2 s) disappear, breath bursts (≥ 0.5 s) stay.
3. **Spectrum.** Over a sliding ``window_s`` window (30 s, every ``hop_s`` = 5 s) each
   band's envelope is detrended, Hann-windowed and its periodogram normalised by its median
   over 3–120 /min; the band spectra are summed (breath noise is broadband, so the bands
   agree; narrow-band interference does not).
4. **Inhale + exhale: resolving the doubling.** Inhalation and exhalation both make a
   burst, so the envelope often repeats at *twice* the breathing rate; when the two bursts
   differ (duration, loudness, spacing — the inhale is shorter than the exhale) the true
   period still shows as a weaker line at the rate itself (and at 3× it). The rate is
   the fundamental ``f0`` in [``min_bpm``, ``max_bpm``] maximising the log sub-harmonic
   sum ``Σ_h harmonic_weight^(h−1) · log P(h·f0)``, h = 1 … ``harmonics`` (3; Hermes'
   sub-harmonic summation on the log spectrum): a burst train at 2f with any
   inhale/exhale asymmetry scores highest at f (the lines at f, 2f and 3f all count),
   while a true single-burst rhythm at f scores low at f/2 (no line at f/2 or 3f/2). ``extra["burst_rate_bpm"]`` is the strongest envelope line and
   ``extra["bursts_per_breath"]`` (1 or 2) says which case it was.
5. **Octave continuity.** When a window's best fundamental is twice or half the rate
   reported last, the candidate near the last rate is kept unless the jump scores
   ``octave_margin`` (log units) higher: a breath pattern that drifts from two audible
   bursts to one does not make the rate jump by an octave.
6. **Confidence** = the higher of the summed spectrum's lines at ``f0`` and ``2·f0`` over
   its median in [``min_bpm``, 2·``max_bpm``], on a log scale: 0 at the level white noise
   reaches (:data:`NOISE_SNR`), 1 at 5 × that.

On the 30 RRuJO recordings (``benchmarks/eval_breath_sounds.py``) the median of the window
rates has an MAE of 0.26 bpm (see ``docs/acoustic.md``; the defaults were chosen among a
few variants on these recordings, so expect somewhat more on unseen subjects).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from sensing.detections import Detection
from sensing.frames import Frames
from sensing.params import Params, param

#: Line height over the band median that envelopes of noise alone reach (calibrated on
#: white and pink noise, 30 s windows: 99th percentile, with margin).
NOISE_SNR = 6.0

__all__ = ["BreathSoundsParams", "BreathSoundsEstimator", "BreathSoundsRate",
           "breath_sound_rate"]


class BreathSoundsParams(Params):
    """Options of :class:`BreathSoundsEstimator`."""

    window_s: float = param(30.0, unit="s", ge=10, le=600, doc="analysis window")
    hop_s: float = param(5.0, unit="s", gt=0, le=600, doc="time between estimates")
    min_bpm: float = param(6.0, unit="bpm", gt=0, le=60, doc="slowest rate reported")
    max_bpm: float = param(40.0, unit="bpm", gt=0, le=90, doc="fastest rate reported")
    band_lo_hz: float = param(150.0, unit="Hz", gt=0, doc="lowest breath-sound frequency")
    band_hi_hz: float = param(1500.0, unit="Hz", gt=0,
                              doc="highest breath-sound frequency (capped at 0.45 × fs)")
    n_bands: int = param(4, ge=1, le=16, doc="log-spaced sub-bands of the envelope")
    envelope_hz: float = param(10.0, unit="Hz", ge=4, le=50, doc="envelope sample rate")
    median_s: float = param(0.5, unit="s", ge=0, le=2,
                            doc="median filter of the envelope (removes heart sounds, taps)")
    harmonics: int = param(3, ge=1, le=6, doc="terms of the sub-harmonic sum (f0, 2·f0 …)")
    harmonic_weight: float = param(0.8, ge=0, le=2,
                                   doc="weight of the 2·f0 term of the sub-harmonic sum")
    octave_margin: float = param(2.0, ge=0, le=10,
                                 doc="log-score margin an octave jump from the last rate needs "
                                     "(0: no continuity rule)")
    min_confidence: float = param(0.1, ge=0, le=1, doc="estimates below are not reported")


@dataclass(frozen=True)
class BreathSoundsRate:
    """One window's estimate.

    Attributes
    ----------
    rate_bpm : float
        Breathing rate (breaths/min).
    confidence : float
        0–1.
    burst_rate_bpm : float
        Strongest line of the envelope spectrum in [min_bpm, 2·max_bpm] (/min).
    bursts_per_breath : int
        2 when the strongest line is the doubled rate (inhale and exhale bursts), else 1.
    snr : float
        Summed spectrum at the rate over its band median.
    """

    rate_bpm: float
    confidence: float
    burst_rate_bpm: float
    bursts_per_breath: int
    snr: float


def _spectrum(env: np.ndarray, efs: float, median_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies /min, summed median-normalised periodogram) of envelopes ``(n, bands)``."""
    if median_s > 0:
        k = int(median_s * efs) // 2 * 2 + 1
        if k >= 3:
            env = signal.medfilt(env, (k, 1))
    env = signal.detrend(env, axis=0)
    n = len(env)
    nfft = max(4096, 1 << int(np.ceil(np.log2(8 * n))))
    z = np.fft.rfft(env * signal.windows.hann(n)[:, None], nfft, axis=0)
    p = z.real ** 2 + z.imag ** 2
    f = np.fft.rfftfreq(nfft, 1 / efs) * 60.0
    ref = (f > 3) & (f < min(120.0, f[-1]))
    med = np.median(p[ref], axis=0)
    med[med <= 0] = 1.0
    return f, (p / med).sum(axis=1)


def breath_sound_rate(env: np.ndarray, efs: float, p: BreathSoundsParams,
                      previous_bpm: float | None = None) -> BreathSoundsRate | None:
    """The rate of one window of log-energy envelopes ``(n_frames, n_bands)`` at ``efs`` Hz
    (steps 2–6 of the module docstring); None when the window is flat. ``previous_bpm``
    (the last reported rate) enables the octave-continuity rule."""
    env = np.asarray(env, float)
    if len(env) < 8 or not np.isfinite(env).all() or np.ptp(env) == 0:
        return None
    f, s = _spectrum(env, efs, p.median_s)
    nb = env.shape[1]
    f0 = np.arange(p.min_bpm, p.max_bpm + 1e-9, 0.05)
    logs = np.log(np.maximum(s, 1e-12) / nb)
    score = sum(p.harmonic_weight ** (h - 1) * np.interp(h * f0, f, logs)
                for h in range(1, p.harmonics + 1))
    k = int(np.argmax(score))
    if previous_bpm is not None and p.octave_margin > 0:
        # an octave jump away from the last rate needs a clear margin
        ratio = f0[k] / previous_bpm
        alt = 0.5 if 1.6 <= ratio <= 2.5 else 2.0 if 0.4 <= ratio <= 0.625 else 0.0
        if alt:  # the octave of the best candidate on the side of the last rate
            near = np.abs(f0 - alt * f0[k]) <= 0.12 * alt * f0[k]
            if near.any():
                j = int(np.flatnonzero(near)[np.argmax(score[near])])
                if score[j] >= score[k] - p.octave_margin:
                    k = j
    rate = float(f0[k])
    if 0 < k < len(score) - 1:  # parabolic refinement on the score
        a, b, c = score[k - 1:k + 2]
        den = a - 2 * b + c
        if den < 0:
            rate += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) * float(f0[1] - f0[0])
    band = (f >= p.min_bpm) & (f <= 2 * p.max_bpm)
    burst = float(f[band][np.argmax(s[band])])
    floor = float(np.median(s[(f >= p.min_bpm) & (f <= p.max_bpm)]))
    peak = max(float(np.interp(rate, f, s)), float(np.interp(2 * rate, f, s)))
    snr = peak / floor if floor > 0 else 0.0
    s0 = NOISE_SNR
    conf = float(np.clip(np.log(max(snr, 1e-12) / s0) / np.log(5.0), 0, 1))
    doubled = 2 if abs(burst - 2 * rate) <= max(1.0, 0.08 * burst) else 1
    return BreathSoundsRate(rate, round(conf, 3), burst, doubled, round(snr, 2))


class BreathSoundsEstimator:
    """Streaming breath-sound breathing rate (a :class:`sensing.stage.Stage`).

    Push ``audio`` :class:`~sensing.frames.Frames` of any chunk size (any sample rate
    from 2 kHz, any channel count: the channels' band energies are summed); every
    ``hop_s`` once ``window_s`` of audio has been seen, a ``breathing_rate`` detection
    (bpm) is returned when its confidence reaches ``min_confidence``.

    Parameters
    ----------
    params : BreathSoundsParams, optional
        Options (positional only).
    **options
        Option values applied over ``params``.

    Attributes
    ----------
    stats : dict
        ``windows`` analysed, ``emitted``, ``low_confidence``.
    """

    Params = BreathSoundsParams

    def __init__(self, params: BreathSoundsParams | None = None, /, **options: Any) -> None:
        self.params = BreathSoundsParams.build(params, options, where="breath_sounds")
        if self.params.max_bpm <= self.params.min_bpm:
            raise ValueError(f"breath_sounds: max_bpm ({self.params.max_bpm:g}) must exceed "
                             f"min_bpm ({self.params.min_bpm:g})")
        self.fs: float | None = None
        self._sos: list[np.ndarray] = []
        self._zi: list[np.ndarray] = []
        self._frame = 0
        self._efs = 0.0
        self._acc = np.zeros(0)
        self._acc_n = 0
        self._env: list[np.ndarray] = []  # log-energy rows
        self._n_frames = 0  # frames produced since the start
        self._next_at = 0
        self._t0 = 0.0
        self.stats = {"windows": 0, "emitted": 0, "low_confidence": 0}
        self.last: BreathSoundsRate | None = None

    # ------------------------------------------------------------------ setup
    def _setup(self, fr: Frames) -> None:
        p = self.params
        fs = float(fr.fs_hz or 0.0)
        if fs <= 0:
            raise ValueError(f"{fr.source}: breath sounds need a sample rate (fs_hz)")
        self.fs = fs
        n_ch = fr.data.shape[1] if fr.data.ndim == 2 else 1
        # high sample rates: anti-alias and decimate first (the bands end at 1.5 kHz)
        q = int(fs // (2.5 * p.band_hi_hz))
        self._q = q if q >= 3 else 1
        self._dec_at = 0  # index in the next chunk of the next kept sample
        if self._q > 1:
            self._aa = signal.cheby2(10, 60, 0.5 * fs / self._q, fs=fs, output="sos")
            self._aa_zi = np.zeros((self._aa.shape[0], 2, n_ch))
        fs = fs / self._q
        self._fs_band = fs
        hi = min(p.band_hi_hz, 0.45 * fs)
        lo = min(p.band_lo_hz, hi / 2)
        edges = np.geomspace(lo, hi, p.n_bands + 1)
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            sos = signal.butter(4, [a, b], btype="bandpass", fs=fs, output="sos")
            self._sos.append(sos)
            self._zi.append(np.zeros((sos.shape[0], 2, n_ch)))
        self._frame = max(1, int(round(fs / p.envelope_hz)))
        self._efs = fs / self._frame
        self._acc = np.zeros((p.n_bands,))
        self._acc_n = 0
        self._win = int(round(p.window_s * self._efs))
        self._hop = max(1, int(round(p.hop_s * self._efs)))
        self._next_at = self._win
        self._t0 = float(fr.times_s[0]) if len(fr.times_s) else 0.0

    @property
    def envelope_fs_hz(self) -> float:
        """Envelope sample rate (Hz), once the first chunk was seen."""
        return self._efs

    # ------------------------------------------------------------------ streaming
    def push(self, frames: Frames) -> list[Detection]:
        """Consume one chunk of audio; return the estimates it completed."""
        if not len(frames):
            return []
        if self.fs is None:
            self._setup(frames)
        x = np.asarray(frames.data, np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if self._q > 1:
            y, self._aa_zi = signal.sosfilt(self._aa, x, axis=0, zi=self._aa_zi)
            x = y[self._dec_at::self._q]
            self._dec_at = (self._dec_at - len(y)) % self._q
        energies = np.empty((len(x), len(self._sos)))
        for i, sos in enumerate(self._sos):
            y, self._zi[i] = signal.sosfilt(sos, x, axis=0, zi=self._zi[i])
            energies[:, i] = (y * y).sum(axis=1)
        return self._add_energy(energies)

    def _add_energy(self, e: np.ndarray) -> list[Detection]:
        out: list[Detection] = []
        fl = self._frame
        pos = 0
        n = len(e)
        while pos < n:
            take = min(fl - self._acc_n, n - pos)
            self._acc += e[pos:pos + take].sum(axis=0)
            self._acc_n += take
            pos += take
            if self._acc_n == fl:
                self._env.append(np.log(self._acc / fl + 1e-20))
                self._acc = np.zeros_like(self._acc)
                self._acc_n = 0
                self._n_frames += 1
                if len(self._env) > self._win:
                    del self._env[0]
                if self._n_frames >= self._next_at:
                    self._next_at += self._hop
                    d = self._estimate()
                    if d is not None:
                        out.append(d)
        return out

    def _estimate(self) -> Detection | None:
        p = self.params
        self.stats["windows"] += 1
        prev = self.last.rate_bpm if self.last is not None else None
        est = breath_sound_rate(np.array(self._env), self._efs, p, prev)
        if est is None or est.confidence < p.min_confidence:
            self.stats["low_confidence"] += 1
            return None
        self.last = est
        self.stats["emitted"] += 1
        end_s = self._t0 + self._n_frames * self._frame / self._fs_band
        return Detection("breathing_rate", round(end_s, 3), round(est.rate_bpm, 2), "bpm",
                         est.confidence,
                         {"window_s": p.window_s, "method": "breath_sounds",
                          "burst_rate_bpm": round(est.burst_rate_bpm, 2),
                          "bursts_per_breath": est.bursts_per_breath, "snr": est.snr})

    def flush(self) -> list[Detection]:
        """End of stream: nothing pending (estimates come only from whole windows)."""
        return []

    def quiet_reason(self) -> str | None:
        """Why nothing was emitted (None once a rate was)."""
        if self.stats["emitted"]:
            return None
        if self.fs is None:
            return "no audio"
        if self.stats["windows"] == 0:
            seen = self._n_frames / self._efs if self._efs else 0.0
            return (f"capture ({seen:.1f} s) shorter than the {self.params.window_s:g} s "
                    "window")
        return (f"no breathing rhythm with confidence >= {self.params.min_confidence:g} in "
                f"{self.stats['windows']} windows")
