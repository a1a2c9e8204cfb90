"""Breathing rate, chest displacement and presence from the antenna ratio of LoRa chirps.

Method
------
1. **Antenna ratio.** Every chirp's complex amplitude on the two antennas of one receiver
   (the stream's shared packet receiver, :func:`sensing.lora.receiver.frame_chirps`: the
   preamble chirps of every synchronised frame, the header and payload chirps of every
   decoded one; :mod:`sensing.lora.chirp_amplitude` when the sample rate is not a whole
   multiple of the bandwidth); their ratio ``q = a1 / a0`` cancels the carrier
   frequency offset, the timing offset, the packet start phase and the phase noise, which
   both antennas share (one clock, one oscillator), and the transmit power. What is left
   is ``(s1 + d1 e^{jφ(t)}) / (s0 + d0 e^{jφ(t)})``: static paths ``s`` plus the chest's
   path whose phase ``φ = 2π ΔL / λ`` follows the breathing (Zhang et al., IMWUT 2020).
2. **Series.** The ratios are averaged in cells of ``1 / series_hz`` (one packet each at the
   default 10 packets/s); the scatter inside a cell measures the noise of the ratio.
3. **Motion.** The part of the series above the breathing band (above 1.5 Hz, by a
   zero-phase low-pass) against the noise expected from the within-cell scatter: a
   ``motion_score`` ≫ 1 means something moves faster than breathing (walking people).
   In such a window the moments of fast motion are cut out (:data:`STILL_GUARD_S` either
   side), each still stretch loses its own mean and trend, and the rate comes from those
   when they fill :data:`STILL_FRACTION` of the window; otherwise the window gives no rate.
4. **Rate**: :func:`sensing.dsp.rate.estimate_rate` on the normalised complex series
   (``q / mean(q) − 1``) and on its projection on the principal axis; the more significant
   wins; confidence from the peak's strength and concentration.
5. **Displacement.** The ratio moves on a circle (a Möbius image of the chest path's
   circle); an algebraic circle fit (Kåsa) of the low-passed series gives the angle swept,
   ``Δφ``, and the displacement ``λ Δφ / (4π)`` (the path changes by about twice the chest's
   motion when the transmitter and the receiver are on the same side). Reported only when
   the fit is sound.
6. **Presence**: ``moving`` while motion is on, ``still`` while credible breathing
   (confidence ≥ ``presence_confidence``; ``presence_confirm`` consecutive windows from
   ``empty``) was seen within ``presence_hold_s``, else ``empty``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from sensing.dsp.rate import estimate_rate
from sensing.frames import Frames
from sensing.lora.chirp_amplitude import ChirpAmplitudeExtractor, ChirpAmplitudes
from sensing.params import Params, param

__all__ = ["LoraBreathingParams", "BreathingWindow", "LoraBreathingEstimator", "circle_fit"]

C0 = 299_792_458.0
#: Share of a window that must be free of fast motion for a rate while others move.
STILL_FRACTION = 0.4
#: Time cut on each side of a moment of fast motion (s).
STILL_GUARD_S = 0.5


def _principal(dz: np.ndarray) -> np.ndarray:
    """Projection of a complex series on its principal axis (real)."""
    cov = np.cov(np.stack([dz.real, dz.imag]))
    _, v = np.linalg.eigh(cov)
    return dz.real * v[0, -1] + dz.imag * v[1, -1]


class LoraBreathingParams(Params):
    """Options of the ``lora_breathing`` pipeline."""

    window_s: float = param(30.0, unit="s", ge=10, le=300, doc="analysis window")
    hop_s: float = param(5.0, unit="s", gt=0, le=300, doc="time between windows")
    series_hz: float = param(10.0, unit="Hz", ge=2, le=100,
                             doc="rate of the ratio series (about the packet rate)")
    min_bpm: float = param(6.0, unit="bpm", gt=0, le=60, doc="slowest rate reported")
    max_bpm: float = param(40.0, unit="bpm", gt=0, le=120, doc="fastest rate reported")
    min_confidence: float = param(0.2, ge=0, le=1, doc="confidence a rate needs")
    min_coverage: float = param(0.6, ge=0, le=1,
                                doc="fraction of the window's cells that need a chirp")
    min_peak_db: float = param(15.0, unit="dB", ge=3, le=80,
                               doc="dechirped peak over the median bin for a chirp")
    motion_threshold: float = param(6.0, gt=1, le=1e6,
                                    doc="motion score (fast change over noise) for motion")
    presence_confidence: float = param(0.1, ge=0, le=1,
                                       doc="breathing confidence that counts as presence")
    presence_confirm: int = param(2, ge=1, le=20,
                                  doc="breathing windows in a row to go from empty to still")
    presence_hold_s: float = param(30.0, unit="s", ge=0, le=3600,
                                   doc="presence kept this long after the last evidence")
    sf: int | None = param(None, ge=7, le=12, doc="spreading factor if not in the recording")
    bw_hz: int | None = param(None, unit="Hz", ge=7800, le=500000,
                              doc="LoRa bandwidth if not in the recording")
    freq_hz: float | None = param(None, unit="Hz", gt=1e6, le=1e10,
                                  doc="carrier if not in the recording (for displacement)")
    link: str = param("", doc="name of the link in the events (default: source ch1/ch0)")


@dataclass(frozen=True)
class BreathingWindow:
    """Analysis of one window.

    Attributes
    ----------
    end_s : float
        Window end (s).
    rate_bpm : float
        Breathing rate (NaN when there is no usable series).
    confidence : float
        0–1 (0 while moving).
    coverage : float
        Fraction of the window's cells with at least one chirp.
    motion_score : float
        Fast change over the noise (≈ 1 when static).
    moving : bool
        ``motion_score >= motion_threshold`` (something moved fast in the window; the rate
        then comes from the still moments, if they fill 40 % of the window).
    snr : float
        Breathing peak over the spectral floor (linear).
    displacement_mm : float or None
        Peak-to-peak chest displacement (5–95 %), when the circle fit is sound.
    chirps : int
        Chirps in the window.
    candidate : str
        Which series won: ``"ratio"``, ``"axis"`` (its principal axis), ``"still"`` /
        ``"still_axis"`` (the same with the moments of fast motion cut out).
    """

    end_s: float
    rate_bpm: float
    confidence: float
    coverage: float
    motion_score: float
    moving: bool
    snr: float
    displacement_mm: float | None
    chirps: int
    candidate: str = ""


def circle_fit(z: np.ndarray) -> tuple[complex, float, float]:
    """Algebraic (Kåsa) circle fit of complex points: (centre, radius, rms residual)."""
    x, y = z.real, z.imag
    a = np.stack([x, y, np.ones_like(x)], 1)
    b = -(x * x + y * y)
    (d, e, f), *_ = np.linalg.lstsq(a, b, rcond=None)
    c = complex(-d / 2, -e / 2)
    r2 = abs(c) ** 2 - f
    if not r2 > 0:
        return c, float("nan"), float("nan")
    r = math.sqrt(r2)
    return c, r, float(np.sqrt(np.mean((np.abs(z - c) - r) ** 2)))


class LoraBreathingEstimator:
    """Streaming breathing windows from ``lora_iq`` frames with two channels.

    Parameters
    ----------
    params : LoraBreathingParams
    sf, bw_hz, fs_hz : int, float, float
        LoRa spreading factor, bandwidth (Hz) and the stream's sample rate (Hz).
    freq_hz : float
        Carrier (Hz), for the displacement.
    extractor : bool
        Find the chirps with a :class:`~sensing.lora.chirp_amplitude.ChirpAmplitudeExtractor`
        of its own (``push(frames)``); False: the caller gives them
        (``push(frames, chirps, horizon_s)``, from the packet receiver).
    """

    def __init__(self, params: LoraBreathingParams, sf: int, bw_hz: float, fs_hz: float,
                 freq_hz: float = 868.1e6, *, extractor: bool = True) -> None:
        self.p = params
        self.extractor = (ChirpAmplitudeExtractor(sf, bw_hz, fs_hz,
                                                  min_peak_db=params.min_peak_db)
                          if extractor else None)
        self.chirps = 0
        self._covered = -math.inf
        self.lam = C0 / freq_hz
        self._t: deque[np.ndarray] = deque()
        self._q: deque[np.ndarray] = deque()
        self._start: float | None = None
        self._next_end: float | None = None
        self.windows = 0
        self.gated = 0
        self.sparse = 0
        lo, hi = params.min_bpm / 60, params.max_bpm / 60
        self.band = (lo * 0.9, hi * 1.1)
        self._lp = signal.butter(4, min(1.5, 0.45 * params.series_hz), fs=params.series_hz,
                                 output="sos")

    def push(self, frames: Frames, chirps: ChirpAmplitudes | None = None,
             horizon_s: float = math.inf) -> list[BreathingWindow]:
        """Consume a chunk; return the windows it completed.

        Parameters
        ----------
        frames : Frames
            The chunk (its chirps found by the estimator's own extractor when it has one).
        chirps : ChirpAmplitudes, optional
            The chirps the caller found (required without an extractor).
        horizon_s : float
            Time before which every chirp has been given (windows ending later wait).
        """
        if not len(frames):
            return []
        if self._start is None:
            self._start = frames.start_s
            self._next_end = self._start + self.p.window_s
        if self.extractor is not None:
            chirps = self.extractor.push(frames.data[:, :2])
        self._add(chirps)
        self._covered = frames.end_s + (1.0 / frames.fs_hz if frames.fs_hz else 0.0)
        return self._windows(min(self._covered, horizon_s))

    def flush(self, chirps: ChirpAmplitudes | None = None) -> list[BreathingWindow]:
        """End of stream: the last chirps, then every window the stream covered."""
        if self._start is None:
            return []
        self._add(chirps)
        return self._windows(self._covered)

    def _add(self, amps: ChirpAmplitudes | None) -> None:
        if amps is None or not len(amps):
            return
        ok = np.abs(amps.amp[:, 0]) > 0
        self.chirps += int(ok.sum())
        self._t.append(amps.times_s[ok])
        self._q.append(amps.ratio()[ok])

    def _windows(self, covered: float) -> list[BreathingWindow]:
        out = []
        assert self._next_end is not None
        while covered >= self._next_end - 1e-9:
            out.append(self._analyse(self._next_end))
            self._next_end += self.p.hop_s
            self._trim(self._next_end - self.p.window_s)
        return out

    def _trim(self, start: float) -> None:
        while self._t and (not len(self._t[0]) or self._t[0][-1] < start):
            self._t.popleft()
            self._q.popleft()

    def _analyse(self, end: float) -> BreathingWindow:
        self.windows += 1
        p = self.p
        start = end - p.window_s
        t = np.concatenate(list(self._t)) if self._t else np.zeros(0)
        q = np.concatenate(list(self._q)) if self._q else np.zeros(0, complex)
        sel = (t >= start) & (t < end)
        t, q = t[sel], q[sel]
        n_cells = int(round(p.window_s * p.series_hz))
        nan = BreathingWindow(end, float("nan"), 0.0, 0.0, float("nan"), False, 0.0, None, len(t))
        if len(t) < 8:
            self.sparse += 1
            return nan
        idx = np.minimum(((t - start) * p.series_hz).astype(int), n_cells - 1)
        cnt = np.bincount(idx, minlength=n_cells)
        coverage = float(np.mean(cnt > 0))
        if coverage < p.min_coverage:
            self.sparse += 1
            return BreathingWindow(end, float("nan"), 0.0, coverage, float("nan"), False, 0.0,
                                   None, len(t))
        ref = complex(np.mean(q))
        qn = q / ref
        sums = np.bincount(idx, qn.real, n_cells) + 1j * np.bincount(idx, qn.imag, n_cells)
        sq = np.bincount(idx, np.abs(qn) ** 2, n_cells)
        has = cnt > 0
        z = np.zeros(n_cells, complex)
        z[has] = sums[has] / cnt[has]
        multi = cnt >= 2
        if multi.any():
            var_cell = (sq[multi] - np.abs(sums[multi]) ** 2 / cnt[multi]) / (cnt[multi] - 1)
            noise_var = float(np.median(var_cell))  # per chirp, complex
        else:
            noise_var = float(np.var(np.diff(z[has]))) / 2
        cells = np.arange(n_cells)
        z = (np.interp(cells, cells[has], z[has].real)
             + 1j * np.interp(cells, cells[has], z[has].imag))
        mean_cnt = float(np.mean(cnt[has]))
        low = signal.sosfiltfilt(self._lp, z.real) + 1j * signal.sosfiltfilt(self._lp, z.imag)
        resid = z - low
        frac_high = max(1 - 1.5 / (p.series_hz / 2), 0.05)
        expected = max(noise_var / mean_cnt * frac_high, 1e-30)
        # cells filled by interpolation carry no noise: judge the real ones
        motion = float(np.mean(np.abs(resid[has]) ** 2) / expected)
        moving = motion >= p.motion_threshold
        dz = z - np.mean(z)
        cands = {"ratio": dz, "axis": _principal(dz)}
        partial = False
        if moving:
            still = self._still_only(z, resid, has, expected)
            if still is not None:
                cands = {"still": still, "still_axis": _principal(still)}
                moving, partial = False, True
        est = estimate_rate(cands, p.series_hz, self.band)
        conf = 0.0 if moving else est.confidence  # moving: too little still time
        disp = None if moving or partial else self._displacement(low, noise_var / mean_cnt)
        if moving:
            self.gated += 1
        return BreathingWindow(end, round(est.per_min, 3), round(conf, 3), round(coverage, 3),
                               round(motion, 2), moving or partial, est.snr, disp, len(t),
                               est.candidate)

    def _still_only(self, z: np.ndarray, resid: np.ndarray, has: np.ndarray,
                    expected: float) -> np.ndarray | None:
        """The window with the moments of fast motion (other people walking) cut out:
        cells whose fast change (1 s average) exceeds the motion threshold, widened by
        ``STILL_GUARD_S`` on each side, are zeroed; each still stretch (≥ 3 s) loses its own
        mean and trend (a person who stopped elsewhere leaves another static path). None
        when less than ``STILL_FRACTION`` of the window is still."""
        fs = self.p.series_hz
        k = max(1, int(round(fs)))
        e = np.convolve(np.where(has, np.abs(resid) ** 2, 0.0), np.ones(k) / k, "same")
        bad = e >= self.p.motion_threshold * expected
        guard = max(1, int(round(STILL_GUARD_S * fs)))
        bad = np.convolve(bad.astype(float), np.ones(2 * guard + 1), "same") > 0
        out = np.zeros_like(z)
        good = ~bad
        edges = np.flatnonzero(np.diff(np.concatenate([[0], good.astype(int), [0]])))
        kept = 0
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if b - a < 3 * fs:
                continue
            seg = z[a:b]
            tt = np.arange(b - a) - (b - a - 1) / 2
            slope = (tt @ seg) / (tt @ tt)
            out[a:b] = seg - seg.mean() - slope * tt
            kept += b - a
        if kept < STILL_FRACTION * len(z):
            return None
        return out

    def _displacement(self, low: np.ndarray, cell_var: float) -> float | None:
        c, r, rms = circle_fit(low)
        if not np.isfinite(r) or r <= 0:
            return None
        ang = np.unwrap(np.angle(low - c))
        span = float(np.percentile(ang, 95) - np.percentile(ang, 5))
        noise = math.sqrt(max(cell_var, 0.0))
        # a sound fit: points near the circle, a real arc (not noise), and not a full turn
        if rms > 0.1 * r * max(span, 1e-9) or span * r < 20 * noise or span > math.pi:
            return None
        return round(self.lam * span / (4 * math.pi) * 1000.0, 2)

    def quiet_reason(self) -> str | None:
        if not self.windows:
            return f"capture shorter than the {self.p.window_s:g} s window"
        if self.sparse == self.windows:
            return (f"too few chirps (coverage below {self.p.min_coverage:g}) in all "
                    f"{self.windows} windows")
        return (f"no breathing with confidence >= {self.p.min_confidence:g} in "
                f"{self.windows} windows ({self.gated} gated by motion)")

    def stats(self) -> dict[str, Any]:
        out = {"windows": self.windows, "gated": self.gated, "sparse": self.sparse,
               "chirps": self.chirps}
        if self.extractor is not None:
            out["blocks"] = self.extractor.blocks
        return out
