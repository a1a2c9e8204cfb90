"""Physics of the simulated acoustic sonar: reflectors, clocks, noise and the received signal.

The microphone signal is a sum of delayed, attenuated copies of the played probe plus
noise, evaluated sample by sample at the audio rate (vectorised over paths)::

    y(t) = H_mic{ Σ_p a_p(t) · G_spk(f) · (f/f_ref)^(-α_p) · x(θ(t) − τ_p(t)) } + n(t)

* ``x`` is the probe as the speaker's clock plays it (:meth:`Probe.waveform`'s model:
  chirps ``f0 → f1`` of ``chirp_s`` every ``period_s``, optional window; or CW tones);
  ``θ(t) = t + ε₀ t + ½ ε₁ t²`` is the speaker's clock against the microphone's
  (offset ``ε₀`` tens of ppm, drift ``ε₁``).
* ``τ_p(t) = (L_p + ΔL_p(t)) / c(t)``: path length of reflector ``p`` (speaker → reflector
  → microphone) with its motion ``ΔL_p(t)`` (chest, face, eyelid, head), over the speed of
  sound ``c = 331.3 √(1 + T/273.15)`` m/s at the air temperature ``T(t)`` (a drift of the
  cabin temperature slowly stretches every path).
* ``a_p``: direct leakage ``a_leak`` at the speaker–microphone distance ``d_leak``;
  a point reflector of acoustic cross-section σ at distances ``d1, d2``
  ``a = a_leak d_leak √(σ/4π)/(d1 d2)`` (the radar equation in amplitude); a wall (image
  source) ``a = a_leak d_leak β / L``. ``α_p`` makes the reflection loss grow with
  frequency (absorption); it is applied at the chirp's instantaneous frequency, as is the
  speaker's roll-off ``G_spk(f) = 1/√(1 + (f/f_roll)^8)``.
* ``H_mic``: the microphone's 4th-order Butterworth low-pass at ``f_roll`` (roll-off above
  20 kHz) and a 20 Hz high-pass, applied to echoes and acoustic noise alike.
* ``n(t)``: white self-noise at ``leak_db`` below the leakage (in the probe band), plus
  optional engine (firing frequency 20–200 Hz and harmonics), road (low-passed pink) and
  speech (band 100–8000 Hz in syllabic bursts) noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sensing.acoustic.probe import Probe, _chirp_window

#: Slow-time grid of the motion tracks (Hz): motions are interpolated from it per sample.
MOTION_FS = 500.0
#: Audio samples rendered at a time (bounds memory for long captures).
BLOCK = 24_000
_ENV_N = 4096  #: points of the per-path chirp envelope table


def sound_speed(temp_c: float | np.ndarray) -> float | np.ndarray:
    """Speed of sound in dry air (m/s) at ``temp_c`` (°C)."""
    return 331.3 * np.sqrt(1.0 + np.asarray(temp_c) / 273.15)


@dataclass
class Reflector:
    """One propagation path.

    Attributes
    ----------
    amp : float
        Amplitude at the microphone relative to the played signal (linear).
    path_m : float
        Path length speaker → reflector → microphone at rest (m).
    alpha : float
        Frequency exponent of the reflection loss: gain ``(f / 20 kHz)^-alpha``.
    name : str
        What it is (``leak``, ``wall``, ``chest`` …).
    motion : numpy.ndarray or None
        Extra path length (m) on the :data:`MOTION_FS` grid from t = 0.
    gain : numpy.ndarray or None
        Amplitude factor on the same grid (eyelid reflectivity, presence 0/1).
    """

    amp: float
    path_m: float
    alpha: float = 0.0
    name: str = ""
    motion: np.ndarray | None = None
    gain: np.ndarray | None = None


def point_amp(a_leak: float, d_leak: float, rcs_m2: float, d1: float, d2: float) -> float:
    """Echo amplitude of a point reflector of cross-section ``rcs_m2`` (m²) at distances
    ``d1`` (from the speaker) and ``d2`` (to the microphone), relative to the played signal
    (the leakage ``a_leak`` at ``d_leak`` sets the scale)."""
    return float(a_leak * d_leak * np.sqrt(rcs_m2 / (4 * np.pi)) / (d1 * d2))


class Clock:
    """Speaker clock against the microphone's: ``θ(t) = t + ε₀ t + ½ ε₁ t²``.

    Parameters
    ----------
    ppm : float
        Offset ε₀ (parts per million; positive: the speaker runs fast).
    drift_ppm_per_min : float
        Linear change of the offset (ppm per minute).
    """

    def __init__(self, ppm: float, drift_ppm_per_min: float) -> None:
        self.e0 = ppm * 1e-6
        self.e1 = drift_ppm_per_min * 1e-6 / 60.0

    def speaker_time(self, t: np.ndarray) -> np.ndarray:
        return t + self.e0 * t + 0.5 * self.e1 * t * t

    def ppm_at(self, t: float) -> float:
        """Offset at time ``t`` (ppm)."""
        return (self.e0 + self.e1 * t) * 1e6


class NoiseGen:
    """Streaming noise: white self-noise plus optional engine, road and speech noise.

    Parameters
    ----------
    rng : numpy.random.Generator
        Random source (its own stream).
    fs : float
        Sample rate (Hz).
    white_rms : float
        RMS of the white self-noise (full scale).
    engine_dbfs, road_dbfs, speech_dbfs : float or None
        RMS level of each noise (dB full scale), None: off.
    """

    def __init__(self, rng: np.random.Generator, fs: float, white_rms: float, *,
                 engine_dbfs: float | None = None, road_dbfs: float | None = None,
                 speech_dbfs: float | None = None) -> None:
        from scipy import signal  # imported here: `ambisense simulate --help` stays fast
        self.rng, self.fs, self.white_rms = rng, fs, white_rms
        self.engine = None if engine_dbfs is None else 10 ** (engine_dbfs / 20)
        self.road = None if road_dbfs is None else 10 ** (road_dbfs / 20)
        self.speech = None if speech_dbfs is None else 10 ** (speech_dbfs / 20)
        self._road_sos = signal.butter(2, [30, 500], "bandpass", fs=fs, output="sos")
        self._road_zi = np.zeros((self._road_sos.shape[0], 2))
        self._sp_sos = signal.butter(2, [150, 7000], "bandpass", fs=fs, output="sos")
        self._sp_zi = np.zeros((self._sp_sos.shape[0], 2))
        self._fire_hz = float(rng.uniform(20.0, 60.0))  # idle firing frequency
        self._eng_phase = rng.uniform(0, 2 * np.pi, 8)
        self._eng_amp = 1.0 / np.arange(1, 9) ** 0.7
        self._eng_amp *= np.sqrt(2) / np.sqrt(np.sum(self._eng_amp ** 2))
        self._speech_on = False
        self._syll_phase = 0.0

    def block(self, t: np.ndarray) -> np.ndarray:
        from scipy import signal  # imported here: `ambisense simulate --help` stays fast
        n = len(t)
        out = self.white_rms * self.rng.standard_normal(n)
        if self.road is not None:
            r, self._road_zi = signal.sosfilt(self._road_sos, self.rng.standard_normal(n),
                                              zi=self._road_zi)
            out += self.road * r / 0.35
        if self.engine is not None:
            # firing frequency wanders slowly (idle control); harmonics up to 8x
            f = self._fire_hz * (1 + 0.02 * np.sin(2 * np.pi * 0.07 * t))
            ph = 2 * np.pi * np.cumsum(f) / self.fs
            for h in range(8):
                out += self.engine * self._eng_amp[h] * np.cos((h + 1) * ph + self._eng_phase[h])
            self._eng_phase = (self._eng_phase + np.arange(1, 9) * ph[-1]) % (2 * np.pi)
        if self.speech is not None:
            s, self._sp_zi = signal.sosfilt(self._sp_sos, self.rng.standard_normal(n),
                                            zi=self._sp_zi)
            # talk spurts: on/off decided per block; syllabic 4 Hz envelope
            if self.rng.random() < 0.3:
                self._speech_on = not self._speech_on
            env = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t + self._syll_phase)) ** 2
            out += self.speech * self._speech_on * env * s / 0.5
        return out


class Renderer:
    """Received microphone signal of a scene, block by block.

    Parameters
    ----------
    probe : Probe
        What the speaker plays.
    fs : float
        Microphone sample rate (Hz).
    reflectors : list of Reflector
        Every path (leakage first).
    clock : Clock
        Speaker vs microphone clock.
    noise : NoiseGen
        Noise source.
    rolloff_hz : float
        Speaker and microphone roll-off frequency (Hz).
    temp_c : callable
        Air temperature (°C) as a function of time (s), vectorised.
    """

    def __init__(self, probe: Probe, fs: float, reflectors: list[Reflector], clock: Clock,
                 noise: NoiseGen, rolloff_hz: float, temp_c: Callable[[np.ndarray], np.ndarray]
                 ) -> None:
        from scipy import signal  # imported here: `ambisense simulate --help` stays fast
        self.probe, self.fs, self.refl, self.clock, self.noise = (probe, fs, reflectors,
                                                                  clock, noise)
        self.rolloff_hz, self.temp_c = rolloff_hz, temp_c
        lp = signal.butter(4, min(rolloff_hz, 0.49 * fs), "lowpass", fs=fs, output="sos")
        hp = signal.butter(2, 20.0, "highpass", fs=fs, output="sos")
        self._mic_sos = np.vstack([lp, hp])
        self._mic_zi = np.zeros((self._mic_sos.shape[0], 2))
        self._amp = np.array([r.amp for r in reflectors])[:, None]
        self._len = np.array([r.path_m for r in reflectors])[:, None]
        self._alpha = np.array([r.alpha for r in reflectors])[:, None]
        self._env: np.ndarray | None = None

    def _tx(self, u: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Played signal at speaker times ``u`` (s, any shape), with each row's
        frequency-dependent reflection loss ``alpha`` and the speaker roll-off."""
        p = self.probe
        u = u - p.start_s
        roll = self.rolloff_hz
        if p.type == "cw":
            out = np.zeros(u.shape)
            for f in p.tones_hz:  # type: ignore[union-attr]
                g = (f / 20e3) ** (-alpha) / np.sqrt(1 + (f / roll) ** 8)
                out += g * np.cos(2 * np.pi * ((f * u) % 1.0))
            out *= p.amplitude / len(p.tones_hz)  # type: ignore[arg-type]
            out[u < 0] = 0.0
            return out
        period, chirp = float(p.period_s), float(p.chirp_s)  # type: ignore[arg-type]
        tau = np.mod(u, period)
        inside = (u >= 0) & (tau < chirp)
        rows, cols = np.nonzero(inside)
        tt = tau[rows, cols]
        k = p.slope_hz_per_s
        ph = (p.f0_hz * tt + 0.5 * k * tt * tt) % 1.0  # type: ignore[operator]
        # window × speaker roll-off × reflection loss: a function of the time in the chirp
        env = self._envelopes(alpha)
        j = np.minimum((tt * (_ENV_N / chirp)).astype(np.int64), _ENV_N - 1)
        out = np.zeros(u.shape)
        out[rows, cols] = env[rows, j] * np.cos((2 * np.pi) * ph.astype(np.float32))
        return out

    def _envelopes(self, alpha: np.ndarray) -> np.ndarray:
        """Per path, the chirp's amplitude at :data:`_ENV_N` points of the sweep."""
        if self._env is None:
            p = self.probe
            chirp = float(p.chirp_s)  # type: ignore[arg-type]
            tt = (np.arange(_ENV_N) + 0.5) / _ENV_N * chirp
            f = p.f0_hz + p.slope_hz_per_s * tt  # type: ignore[operator]
            w = _chirp_window(p.window, tt / chirp)
            g = 1 / np.sqrt(1 + (f / self.rolloff_hz) ** 8)
            self._env = p.amplitude * w * g * (f[None, :] / 20e3) ** (-alpha)
        return self._env

    def block(self, n0: int, n: int) -> np.ndarray:
        """Microphone samples ``n0 … n0 + n − 1`` (float64, full scale)."""
        from scipy import signal  # imported here: `ambisense simulate --help` stays fast
        t = (n0 + np.arange(n)) / self.fs
        theta = self.clock.speaker_time(t)
        c = sound_speed(self.temp_c(t))
        gi = t * MOTION_FS
        i0 = np.clip(np.floor(gi).astype(np.int64), 0, None)
        fr = gi - i0
        path = np.repeat(self._len, n, axis=1)
        amp = np.repeat(self._amp, n, axis=1)
        for k, r in enumerate(self.refl):
            if r.motion is not None:
                path[k] += _lerp(r.motion, i0, fr)
            if r.gain is not None:
                amp[k] *= _lerp(r.gain, i0, fr)
        u = theta[None, :] - path / c[None, :]
        y = np.sum(amp * self._tx(u, self._alpha), axis=0)
        y += self.noise.block(t)
        y, self._mic_zi = signal.sosfilt(self._mic_sos, y, zi=self._mic_zi)
        return y


def _lerp(track: np.ndarray, i0: np.ndarray, fr: np.ndarray) -> np.ndarray:
    i = np.minimum(i0, len(track) - 2)
    return track[i] * (1 - fr) + track[i + 1] * fr
