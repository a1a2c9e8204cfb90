"""Presence from UWB CIRs and pulsed-radar frames, including a still, breathing person.

Per window of ``window_s`` every ``hop_s``, on the conditioned slow time of every range
bin (:class:`sensing.uwb.breathing.SlowTimeWindow`: CIRs aligned on the first path,
normalised and de-rotated; radar frames as they are):

* the window mean (the static scene: walls, furniture, the direct path) is removed;
* each bin's **white-noise level** is the robust spread of its frame-to-frame differences
  (a slow reflector hardly changes between frames; receiver noise and the per-frame phase
  noise of the reference do), so a static bin scores ~1 whatever its strength;
* the Hann periodogram of the remaining slow time, in units of that noise level, is
  averaged in the **breathing/sway band** (``low_band_hz``, 0.1–1 Hz) and the **motion
  band** (1 Hz to 0.45 × the frame rate; absent when the frame rate is below 2.4 Hz);
* ``low = max over bins`` and ``high = max over bins`` of those averages (dB).

The motion band starts at the Doppler of the fastest still-person movement,
``2 * still_speed_m_s / wavelength`` (1.3 Hz at UWB channel 5, 12 Hz at 60 GHz: a
breathing chest moves the phase of a 60 GHz radar by radians), and **range migration**
(the strongest dynamic bin moving over ``move_m`` within the window) also counts as motion.

State: ``moving`` when ``high ≥ motion_db`` or the migration ≥ ``move_m``; ``still`` when ``low ≥ still_db`` or the
chest-bin breathing estimate (:func:`~sensing.uwb.breathing.chest_bin_rate` over the last
20 s, computed at most every 10 s and only when the band levels alone do not show a
person) is confident;
else ``empty``. A state must hold ``confirm`` windows before it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sensing.dsp.outliers import MAD_TO_STD, robust_std
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.uwb.breathing import SlowTimeWindow, UwbBreathingParams, chest_bin_rate
from sensing.uwb.conditioning import wavelength_m

#: The breathing evidence is re-estimated at most this often (s); in between the last
#: estimate holds.
BREATH_EVERY_S = 10.0

__all__ = ["UwbPresenceParams", "PresenceState", "PresenceDetector", "activity_scores"]


class UwbPresenceParams(Params):
    """Options of :class:`PresenceDetector` (and of the ``uwb_presence`` pipeline)."""

    window_s: float = param(10.0, unit="s", gt=2, le=120, doc="analysis window")
    hop_s: float = param(2.0, unit="s", gt=0, le=60, doc="time between decisions")
    still_db: float = param(15.0, unit="dB", ge=0, le=60,
                            doc="breathing/sway-band level over noise for a still person")
    motion_db: float = param(12.0, unit="dB", ge=0, le=60,
                             doc="motion-band level over noise for a moving person")
    breathing: bool = param(True, doc="use a confident breathing rate as evidence of a "
                            "still person (estimated when the band levels are low)")
    breath_min_confidence: float = param(0.3, ge=0, le=1,
                                         doc="breathing confidence that counts as evidence")
    confirm: int = param(2, ge=1, le=100, doc="windows a new state must hold")
    min_range_m: float = param(0.0, unit="m", ge=-10, le=100, doc="nearest range bin used")
    max_range_m: float = param(10.0, unit="m", gt=-10, le=100, doc="farthest range bin used")
    max_bins: int = param(64, ge=1, le=2048, doc="range bins analysed at most")
    still_speed_m_s: float = param(0.03, unit="m/s", gt=0, le=1,
                                   doc="fastest radial speed of a still person (breathing); "
                                   "the motion band starts at its Doppler 2 v / wavelength")
    move_m: float = param(3.0, unit="m", gt=0, le=20,
                          doc="range migration of the strongest moving reflector within "
                          "a window that counts as moving")


@dataclass(frozen=True)
class PresenceState:
    """One window's decision: ``state`` (``empty``/``still``/``moving``), ``evidence``
    (``motion``/``sway``/``breathing``/``none``), ``low_db``/``high_db`` (band levels over
    noise), ``range_m`` of the most active bin, ``breathing_bpm`` (NaN if none),
    ``end_s``."""

    end_s: float
    state: str
    evidence: str
    low_db: float
    high_db: float
    range_m: float
    breathing_bpm: float = float("nan")


def activity_scores(slow: np.ndarray, fs: float, low_band_hz: tuple[float, float] = (0.1, 1.0),
                    motion_from_hz: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin breathing/sway-band and motion-band levels over white noise (linear).

    Parameters
    ----------
    slow : numpy.ndarray
        Complex ``(n, bins)`` uniformly sampled slow time.
    fs : float
        Its rate (Hz).
    low_band_hz : (float, float)
        Breathing/sway band (Hz).
    motion_from_hz : float
        Lower edge of the motion band (Hz): the Doppler of the fastest still-person
        movement, ``2 v / wavelength``.

    Returns
    -------
    low, high : numpy.ndarray
        ``(bins,)``; ``high`` is all-NaN when the motion band above ``motion_from_hz``
        up to ``0.45 fs`` is narrower than 0.2 Hz.
    """
    x = slow - slow.mean(axis=0)
    # robust (median) spread of the differences: a moving person makes large differences
    # in some frames, which must not raise the noise level the motion is compared with
    d = np.diff(x, axis=0)
    if np.iscomplexobj(d):
        rs_re, rs_im = _robust_std_cols(d.real), _robust_std_cols(d.imag)
    else:
        rs_re, rs_im = _robust_std_cols(d), _robust_std_cols(np.zeros_like(d))
    noise = (rs_re ** 2 + rs_im ** 2) / 2.0
    noise = np.maximum(noise, 1e-30)
    n = len(x)
    win = np.hanning(n)
    spec = np.abs(np.fft.fft(x * win[:, None], axis=0)) ** 2 / np.sum(win ** 2)
    f = np.abs(np.fft.fftfreq(n, 1 / fs))
    lo = (f >= low_band_hz[0]) & (f <= low_band_hz[1])
    low = spec[lo].mean(axis=0) / noise if lo.any() else np.zeros(x.shape[1])
    top = 0.45 * fs
    edge = max(low_band_hz[1], motion_from_hz)
    hi = (f > edge) & (f <= top)
    if top - edge >= 0.2 and hi.any():
        high = spec[hi].mean(axis=0) / noise
    else:
        high = np.full(x.shape[1], np.nan)
    return low, high


def _robust_std_cols(y: np.ndarray) -> np.ndarray:
    """:func:`~sensing.dsp.outliers.robust_std` of every column of ``y`` (the same
    numbers): one selection per median on contiguous columns instead of
    :func:`numpy.median` along the strided first axis (NaN columns: ``robust_std``)."""
    if y.ndim != 2 or len(y) < 2 or not np.isfinite(y).all():
        return robust_std(y, axis=0)
    c = np.ascontiguousarray(y.T)
    med = _median_rows(c)
    return MAD_TO_STD * _median_rows(np.abs(c - med[:, None]))


def _median_rows(c: np.ndarray) -> np.ndarray:
    """:func:`numpy.median` of every row of finite ``c`` (``axis=-1``), bit for bit: the
    middle element, or the mean of the two middle ones (the lower is the largest element
    left of the upper after partitioning at it)."""
    n = c.shape[-1]
    h = n // 2
    part = np.partition(c, h, axis=-1)
    if n % 2:
        return part[:, h]
    return (part[:, :h].max(axis=-1) + part[:, h]) / 2


def migration_m(slow: np.ndarray, rng: np.ndarray, fs: float, step_s: float = 1.0) -> float:
    """Spread (max - min, m) over the window of the range of the strongest dynamic bin
    per ``step_s`` sub-window: a walking person moves across range bins, a still one
    does not."""
    x = np.abs(slow - slow.mean(axis=0)) ** 2
    m = max(int(round(step_s * fs)), 1)
    k = len(x) // m
    if k < 2:
        return 0.0
    prof = x[: k * m].reshape(k, m, -1).mean(axis=1)
    where = rng[np.argmax(prof, axis=1)]
    return float(np.max(where) - np.min(where))


class PresenceDetector:
    """Streaming presence on ``uwb_cir`` or ``radar`` frames: ``push`` returns the
    :class:`PresenceState` of every window the chunk completed (before confirmation);
    :attr:`state` is the confirmed state."""

    Params = UwbPresenceParams

    def __init__(self, params: UwbPresenceParams | None = None, /, **options: Any) -> None:
        self.params = p = UwbPresenceParams.build(params, options, where="uwb_presence")
        bp = UwbBreathingParams(min_range_m=p.min_range_m, max_range_m=p.max_range_m,
                                max_bins=p.max_bins, min_confidence=p.breath_min_confidence)
        self.breath_params = bp
        self.buffer = SlowTimeWindow(bp, keep_s=max(p.window_s, bp.window_s) + p.hop_s)
        self._next: float | None = None
        self.state: str | None = None
        self._candidate: str | None = None
        self._count = 0
        self.windows = 0
        self._wl: float | None = None
        self._breath: tuple[float, float] | None = None

    def push(self, frames: Frames) -> list[PresenceState]:
        if not len(frames):
            return []
        p = self.params
        if self._wl is None:
            self._wl = wavelength_m(frames)
        if self._next is None:
            self._next = float(frames.times_s[0]) + p.window_s
        out, self._next = self.buffer.push_hops(frames, self._next, p.hop_s, self._decide)
        return out

    def _decide(self, end_s: float) -> PresenceState | None:
        p = self.params
        win = self.buffer.window(end_s, p.window_s)
        if win is None:
            return None
        self.windows += 1
        slow, rng, fs = win
        low, high = activity_scores(slow, fs, motion_from_hz=2 * p.still_speed_m_s / self._wl)
        k = int(np.nanargmax(low)) if np.isfinite(low).any() else 0
        low_db = float(10 * np.log10(max(float(np.nanmax(low)), 1e-12)))
        high_db = (float(10 * np.log10(max(float(np.nanmax(high)), 1e-12)))
                   if np.isfinite(high).any() else float("-inf"))
        bpm = float("nan")
        if p.breathing and high_db < p.motion_db and low_db < p.still_db:
            # not clearly present: look for a breathing rate over the breathing window
            bpm = self._breathing(end_s)
        present = low_db >= p.still_db or np.isfinite(bpm) or high_db >= p.motion_db
        spread = migration_m(slow, rng, fs) if present else 0.0
        if high_db >= p.motion_db or spread >= p.move_m:
            state, evidence = "moving", "motion"
        elif np.isfinite(bpm):
            state, evidence = "still", "breathing"
        elif low_db >= p.still_db:
            state, evidence = "still", "sway"
        else:
            state, evidence = "empty", "none"
        st = PresenceState(round(end_s, 3), state, evidence, round(low_db, 2),
                           round(high_db, 2) if np.isfinite(high_db) else float("nan"),
                           round(float(rng[k]), 4), bpm)
        if state == self._candidate:
            self._count += 1
        else:
            self._candidate, self._count = state, 1
        return st

    def _breathing(self, end_s: float) -> float:
        """A confident breathing rate (bpm) over the breathing window ending at ``end_s``,
        else NaN."""
        bp = self.breath_params
        if self._breath is not None and end_s - self._breath[0] < BREATH_EVERY_S - 1e-6:
            return self._breath[1]  # estimated less than BREATH_EVERY_S ago
        win = self.buffer.window(end_s, bp.window_s)
        if win is None:
            return float("nan")
        slow, _, fs = win
        band = (bp.min_bpm / 60 * 0.9, min(max(bp.max_bpm / 60 * 1.1, 1.5), fs / 2 * 0.95))
        k, est = chest_bin_rate(slow, fs, band, candidates=2)
        bpm = float(est.per_min)
        if k < 0 or est.confidence < self.params.breath_min_confidence \
                or not bp.min_bpm <= bpm <= bp.max_bpm:
            bpm = float("nan")
        self._breath = (end_s, bpm)
        return bpm

    @property
    def confirmed(self) -> bool:
        """The latest window's state has held ``confirm`` windows."""
        return self._candidate is not None and self._count >= self.params.confirm

    def flush(self) -> list[PresenceState]:
        return []


def _slice(frames: Frames, a: int, b: int) -> Frames:
    if a == 0 and b >= len(frames):
        return frames
    return Frames.prevalidated(
        {"fs_hz": frames.fs_hz, "modality": frames.modality, "source": frames.source,
         "meta": frames.meta, "t0": frames.t0},
        data=frames.data[a:b], times_s=frames.times_s[a:b],
        fields={k: v[a:b] for k, v in frames.fields.items()})
