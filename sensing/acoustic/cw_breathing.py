"""Breathing rate from a CW ultrasonic tone (LLAP-style phase tracking, no range gating).

A CW probe has no range resolution: the microphone hears the direct leakage, the static
echoes and the chest's echo summed, per tone. The chest's echo is a small vector rotating
with the path length, ``φ(t) = −4π·d(t)/λ`` (λ = c/f: 17 mm at 20 kHz, so an 8 mm breath
turns it by almost a full circle), riding on the much larger static vector (leakage and
walls, 40–60 dB stronger). The speaker/microphone clock offset rotates all of it at
``f·ε`` (40 ppm at 20 kHz: 0.8 Hz, inside the breathing band).

Per window (``window_s``, every ``hop_s``) and per tone × channel:

1. the baseband of :class:`~sensing.acoustic.cw.CwDemodulator` (``iq``, static part
   included), averaged to ``rate_hz`` (10 Hz);
2. the clock rotation removed: a quadratic fit to the unwrapped phase of the whole vector
   (the static part dominates it, so the fit follows the clock offset and its drift, not
   the breathing, which a second-order polynomial over 30 s cannot follow);
3. two displacement candidates: the phase around the arc's centre (circle fit,
   :func:`sensing.acoustic.sonar.displacement_mm`: exact for one moving reflector) and the
   projection on the principal axis of the I/Q cloud (robust when several reflectors move
   together, e.g. the face and the chest close to the phone);
4. :func:`sensing.dsp.rate.estimate_rate` over all candidates (harmonic checks against
   sub-harmonic and double-rate lock); the most confident one wins.

Memory is bounded: only ``window_s`` of the 10-Hz baseband is kept.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from sensing.acoustic.cw import SPEED_OF_SOUND_M_S, CwDemodulator
from sensing.acoustic.sonar import circle_centres, decimate_mean, displacement_mm
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.params import Params, param

__all__ = ["CwBreathingParams", "CwBreathing", "derotate", "principal_projection"]


class CwBreathingParams(Params):
    """Options of :class:`CwBreathing` (and the ``acoustic_cw_breathing`` pipeline)."""

    tones_hz: list[float] | None = param(
        None, unit="Hz", doc="tones to demodulate (default: the probe's or the detected tone)")
    window_s: float = param(30.0, unit="s", ge=8, le=300, doc="analysis window")
    hop_s: float = param(5.0, unit="s", gt=0, le=300, doc="time between estimates")
    min_bpm: float = param(5.0, unit="bpm", gt=0, le=60, doc="slowest rate reported")
    max_bpm: float = param(40.0, unit="bpm", gt=1, le=120,
                           doc="fastest rate reported (60 for infants)")
    min_confidence: float = param(0.5, ge=0, le=1, doc="lowest confidence reported")
    rate_hz: float = param(10.0, unit="Hz", ge=4, le=50,
                           doc="rate of the slow-time series analysed")


def derotate(z: np.ndarray, t_s: np.ndarray) -> tuple[np.ndarray, float]:
    """Remove the common rotation of a slow-time baseband series.

    Parameters
    ----------
    z : numpy.ndarray
        ``(n,)`` complex baseband of one tone and channel (static part included).
    t_s : numpy.ndarray
        ``(n,)`` sample times (s).

    Returns
    -------
    z, offset_hz
        The series with the quadratic fit to its unwrapped phase removed, and the fitted
        rotation rate at the window's centre (Hz: the tone's frequency error, clock offset
        included).
    """
    tt = t_s - t_s.mean()
    ph = np.unwrap(np.angle(z))
    c = np.polyfit(tt, ph, 2)
    return z * np.exp(-1j * np.polyval(c, tt)), float(c[1] / (2 * np.pi))


def principal_projection(z: np.ndarray, wavelength_m: float) -> np.ndarray:
    """Projection of the I/Q points on their principal axis, divided by the radius of the
    arc they lie on (circle fit) so that a rotation by ``Δφ`` reads as the displacement
    ``Δφ·λ/(4π)`` (mm): for small motions, the chest's echo moves along a line in the
    I/Q plane."""
    x = np.stack([z.real - z.real.mean(), z.imag - z.imag.mean()])
    _, vec = np.linalg.eigh(x @ x.T)
    proj = vec[:, -1] @ x
    radius = float(np.median(np.abs(z - circle_centres(z[:, None])[0]))) or 1.0
    return proj / radius * wavelength_m / (4 * np.pi) * 1e3


class CwBreathing:
    """Streaming breathing-rate estimator on a CW tone recording (module docstring).

    Parameters
    ----------
    params : CwBreathingParams, optional
        Validated options (positional only).
    tones_hz : sequence of float
        The played tones (Hz); ``params.tones_hz`` overrides them.
    **options
        Option values applied over ``params``.

    ``push(frames)`` (``audio`` chunks) returns ``breathing_rate`` detections (bpm) with
    ``extra``: ``method`` ``"cw"``, ``tone_hz`` and ``channel`` of the winning series,
    ``displacement_pp_mm``, ``displacement_mm`` (the last hop at 2 Hz), ``carrier_offset_hz``,
    ``window_s`` and the rate check.
    """

    Params = CwBreathingParams

    def __init__(self, params: CwBreathingParams | None = None, /, *, tones_hz=(),
                 **options: Any) -> None:
        self.params = CwBreathingParams.build(params, options, where="cw_breathing")
        self.tones_hz = tuple(self.params.tones_hz or tones_hz)
        if not self.tones_hz:
            raise ValueError("CwBreathing needs at least one tone")
        self.demod: CwDemodulator | None = None
        self._fac = 1
        self._skip = 0
        self._pend_t = np.zeros(0)
        self._pend_z: np.ndarray | None = None
        self._t: deque[np.ndarray] = deque()
        self._z: deque[np.ndarray] = deque()
        self._kept = 0
        self._next: float | None = None
        self.stats = {"windows": 0, "low_confidence": 0, "emitted": 0}

    # -- streaming ----------------------------------------------------------------
    def _setup(self, fr: Frames) -> None:
        fs = float(fr.fs_hz or 0.0)
        if fs <= 0:
            raise ValueError("CwBreathing needs audio frames with fs_hz")
        p = self.params
        self.demod = CwDemodulator(fs, self.tones_hz, bandwidth_hz=20.0,
                                   out_rate_hz=p.rate_hz * 10)
        self._fac = max(1, int(round(self.demod.out_rate_hz / p.rate_hz)))
        self.fs_slow = self.demod.out_rate_hz / self._fac
        # the low-pass filter's start-up (its history starts at zero)
        self._skip = int(np.ceil(2 * self.demod.delay_s * self.demod.out_rate_hz))

    def push(self, frames: Frames) -> list[Detection]:
        """Demodulate the next chunk; return the estimates of the hops it completes."""
        if self.demod is None:
            self._setup(frames)
        assert self.demod is not None
        bb = self.demod.push(frames)
        t, z = bb.times_s, bb.iq.reshape(len(bb), -1)
        if self._skip:
            k = min(self._skip, len(t))
            self._skip -= k
            t, z = t[k:], z[k:]
        if self._pend_z is not None:
            t = np.concatenate([self._pend_t, t])
            z = np.concatenate([self._pend_z, z])
        n = (len(t) // self._fac) * self._fac
        self._pend_t, self._pend_z = t[n:], z[n:]
        if not n:
            return []
        self._append(decimate_mean(t[:n], self._fac), decimate_mean(z[:n], self._fac))
        return self._analyse_due()

    def flush(self) -> list[Detection]:
        """End of stream: estimates are made at hop ends only, so nothing is pending."""
        return []

    def _append(self, t: np.ndarray, z: np.ndarray) -> None:
        self._t.append(t)
        self._z.append(z)
        self._kept += len(t)
        if self._next is None:
            self._next = float(t[0]) + self.params.window_s
        keep = int(np.ceil((self.params.window_s + self.params.hop_s) * self.fs_slow)) + 1
        while self._kept - len(self._t[0]) >= keep:
            self._kept -= len(self._t.popleft())
            self._z.popleft()

    def _analyse_due(self) -> list[Detection]:
        out: list[Detection] = []
        end_t = float(self._t[-1][-1])
        while self._next is not None and end_t >= self._next:
            t = np.concatenate(list(self._t))
            z = np.concatenate(list(self._z))
            m = (t >= self._next - self.params.window_s) & (t < self._next)
            det = self._analyse(self._next, t[m], z[m])
            if det is not None:
                out.append(det)
            self._next += self.params.hop_s
        return out

    # -- one window -----------------------------------------------------------------
    def _analyse(self, end_s: float, t: np.ndarray, z: np.ndarray) -> Detection | None:
        from sensing.dsp.rate import estimate_rate

        p = self.params
        self.stats["windows"] += 1
        if len(t) < 0.8 * p.window_s * self.fs_slow:
            self.stats["low_confidence"] += 1
            return None
        n_ch = z.shape[1] // len(self.tones_hz)
        cands: dict[str, np.ndarray] = {}
        info: dict[str, tuple[float, int, float]] = {}
        for col in range(z.shape[1]):
            tone = self.tones_hz[col // n_ch]
            lam = SPEED_OF_SOUND_M_S / tone
            zr, offset_hz = derotate(z[:, col].astype(np.complex128), t)
            for kind, series in (("phase", displacement_mm(zr, lam)),
                                 ("pca", principal_projection(zr, lam))):
                key = f"{kind}:{col}"
                cands[key] = series
                info[key] = (tone, col % n_ch, offset_hz)
        band = (p.min_bpm / 60.0 * 0.8, p.max_bpm / 60.0 * 1.1)
        est = estimate_rate(cands, self.fs_slow, band)
        bpm = est.per_min
        if not np.isfinite(bpm) or est.confidence < p.min_confidence or not (
                p.min_bpm <= bpm <= p.max_bpm):
            self.stats["low_confidence"] += 1
            return None
        d = cands[est.candidate]
        tone, channel, offset_hz = info[est.candidate]
        tail = d[-int(p.hop_s * self.fs_slow):]
        f2 = max(1, int(round(self.fs_slow / 2.0)))
        wave = decimate_mean(tail - np.median(d), f2)
        self.stats["emitted"] += 1
        return Detection("breathing_rate", round(float(end_s), 3), round(float(bpm), 2), "bpm",
                         float(est.confidence),
                         {"window_s": p.window_s, "method": "cw", "tone_hz": tone,
                          "channel": channel, "series": est.candidate.split(":")[0],
                          "displacement_pp_mm": round(float(np.ptp(d)), 2),
                          "displacement_mm": [round(float(v), 2) for v in wave],
                          "carrier_offset_hz": round(offset_hz, 3), "check": est.check})

    def quiet_reason(self) -> str | None:
        if self.stats["emitted"]:
            return None
        if self.stats["windows"] == 0:
            return f"capture shorter than the {self.params.window_s:g} s window"
        return (f"no breathing with confidence >= {self.params.min_confidence:g} in "
                f"{self.stats['windows']} windows")
