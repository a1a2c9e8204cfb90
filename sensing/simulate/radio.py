"""Impairments of commodity radios, shared by the simulators.

Everything here works on plain arrays: packet or sample times (s), complex samples
(channel estimates per packet × frequency bin, or IQ samples), gains (dB). Nothing assumes
a CSI layout, so the WiFi CSI simulators (:mod:`~sensing.simulate.csi_breathing`,
:mod:`~sensing.simulate.csi_activity`) and coming LoRa (IQ: CFO, sampling clock offset,
phase noise) and UWB (first-path index jitter) simulators draw from one set of models.

Every random function takes a :class:`numpy.random.Generator` and draws from it in a fixed,
documented order, so a simulator that calls them in a fixed order stays reproducible
sample for sample from its seed.

=================================  ==========================================================
impairment                         functions
=================================  ==========================================================
carrier frequency offset           :func:`common_phase` (random phase per packet),
                                   :func:`cfo_rotate` (a frequency offset over time)
timing offset (phase slope)        :func:`timing_offsets`, :func:`timing_phase`,
                                   :func:`timing_ramp`
AGC                                :func:`agc_steps` + :func:`step_gain_db` (precomputed
                                   steps), :class:`AgcDrift` (streaming random walk + steps),
                                   :func:`gain_jitter_db`, :func:`db_to_amplitude`
thermal noise                      :func:`noise_sd`, :func:`awgn`
quantisation                       :func:`quantise` (int8 / int16, clipping)
packet timing                      :func:`normal_intervals`, :func:`gamma_intervals`
packet loss                        :func:`gilbert_elliott_keep` (bursty two-state chain),
                                   :func:`bernoulli_burst_keep` (independent + fixed bursts)
clocks                             :func:`drift_times` (ppm), :func:`sample_times`,
                                   :func:`counter_timestamps`
oscillator phase noise             :func:`phase_noise`
first-path (UWB) index jitter      :func:`index_jitter`
=================================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "common_phase", "cfo_rotate", "timing_offsets", "timing_phase", "timing_ramp",
    "agc_steps", "step_gain_db", "AgcDrift", "gain_jitter_db", "db_to_amplitude",
    "noise_sd", "awgn", "quantise", "normal_intervals", "gamma_intervals",
    "gilbert_elliott_keep", "bernoulli_burst_keep", "drift_times", "sample_times",
    "counter_timestamps", "phase_noise", "index_jitter",
]

Rng = np.random.Generator


# ----------------------------------------------------------------------------- phase


def common_phase(rng: Rng, n: int, low: float = -np.pi, high: float = np.pi) -> np.ndarray:
    """Random common phase per packet: what an uncorrected carrier frequency offset (and
    the receiver's random PLL phase) leaves on each packet's channel estimate.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws ``n`` uniforms.
    n : int
        Packets.
    low, high : float
        Range of the phase (rad); ``[-π, π)`` by default.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` phases in rad; multiply samples by ``exp(1j * phase)``.
    """
    return rng.uniform(low, high, n)


def cfo_rotate(samples: np.ndarray, times_s: np.ndarray, cfo_hz: float,
               phase0_rad: float = 0.0) -> np.ndarray:
    """Samples seen through a carrier frequency offset: ``x · exp(j(2π f t + φ₀))``.

    Parameters
    ----------
    samples : numpy.ndarray
        Complex samples, time along axis 0 (``(n,)`` IQ or ``(n, …)``).
    times_s : numpy.ndarray
        ``(n,)`` sample times (s).
    cfo_hz : float
        Frequency offset (Hz) of the receiver's oscillator relative to the transmitter's.
    phase0_rad : float
        Phase at ``t = 0`` (rad).

    Returns
    -------
    numpy.ndarray
        Rotated samples (complex, same shape).
    """
    rot = np.exp(1j * (2 * np.pi * cfo_hz * np.asarray(times_s, float) + phase0_rad))
    x = np.asarray(samples)
    return x * rot.reshape((-1,) + (1,) * (x.ndim - 1))


def timing_offsets(rng: Rng, n: int, max_s: float = 50e-9) -> np.ndarray:
    """Random timing (symbol-boundary) offset per packet, uniform in ``±max_s``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws ``n`` uniforms.
    n : int
        Packets.
    max_s : float
        Largest offset (s); ±50 ns is typical of WiFi packet detection.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` offsets (s).
    """
    return rng.uniform(-max_s, max_s, n)


def timing_phase(offsets_s: np.ndarray, bins: np.ndarray, spacing_hz: float) -> np.ndarray:
    """Phase slope across frequency of a timing offset: ``2π · k · Δf · τ`` (rad).

    Parameters
    ----------
    offsets_s : numpy.ndarray
        ``(n,)`` timing offsets τ (s), one per packet.
    bins : numpy.ndarray
        ``(m,)`` frequency-bin indices ``k`` (subcarrier numbers, FFT bins).
    spacing_hz : float
        Bin spacing Δf (Hz): 312.5 kHz for 20 MHz WiFi.

    Returns
    -------
    numpy.ndarray
        ``(n, m)`` phase (rad); a delay τ multiplies bin ``k`` by ``exp(-1j * phase)``.
    """
    return 2 * np.pi * np.asarray(bins)[None, :] * spacing_hz * np.asarray(offsets_s)[:, None]


def timing_ramp(offsets_s: np.ndarray, bins: np.ndarray, spacing_hz: float) -> np.ndarray:
    """``exp(-j 2π k Δf τ)``: the complex factor of :func:`timing_phase`, ``(n, m)``."""
    return np.exp(-2j * np.pi * np.asarray(bins)[None, :] * spacing_hz
                  * np.asarray(offsets_s)[:, None])


# ----------------------------------------------------------------------------- gain


def agc_steps(rng: Rng, duration_s: float, steps_per_min: float, *,
              size_db: tuple[float, float] = (1.0, 6.0),
              range_db: tuple[float, float] = (-8.0, 4.0)) -> list[tuple[float, float]]:
    """Automatic-gain-control steps of a whole capture, drawn up front.

    The number of steps is Poisson (``steps_per_min`` per minute), their times uniform over
    the capture; each step moves the gain up or down (equally likely) by a uniform
    ``size_db`` amount, the level kept within ``range_db``.

    Draw order: the Poisson count, the ``count`` times, then per step (in time order) the
    sign and the size.

    Parameters
    ----------
    rng : numpy.random.Generator
    duration_s : float
        Capture length (s).
    steps_per_min : float
        Mean steps per minute.
    size_db : (float, float)
        Range of one step's size (dB).
    range_db : (float, float)
        Range of the gain level (dB) relative to the start (0 dB).

    Returns
    -------
    list of (float, float)
        ``(time_s, level_db)`` of each step, in time order: the gain is ``level_db`` from
        ``time_s`` on (see :func:`step_gain_db`).
    """
    steps = []
    level = 0.0
    n_steps = rng.poisson(steps_per_min * duration_s / 60.0)
    for tj in np.sort(rng.uniform(0, duration_s, n_steps)):
        level = float(np.clip(level + rng.choice([-1, 1]) * rng.uniform(*size_db), *range_db))
        steps.append((float(tj), level))
    return steps


def step_gain_db(times_s: np.ndarray, steps: Sequence[tuple[float, float]]) -> np.ndarray:
    """Gain (dB) at ``times_s`` (s) of a piecewise-constant AGC: 0 dB until the first step,
    then each step's ``level_db`` from its ``time_s`` on (steps in time order, as from
    :func:`agc_steps`)."""
    out = np.zeros(len(times_s))
    for tj, level in steps:
        out[times_s >= tj] = level
    return out


class AgcDrift:
    """Streaming AGC: a slow random walk of the gain with occasional steps, for simulators
    that produce packets chunk by chunk.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws the first step time (one uniform) at construction.
    locked : bool
        A receiver with a fixed gain: always 0 dB, nothing drawn.
    walk_db : float
        Standard deviation of the per-packet random-walk increment (dB).
    step_db : (float, float)
        Range of a step's size (dB); its sign is random.
    interval_s : (float, float)
        Range of the time from one step to the next (s).
    range_db : (float, float)
        The gain is clipped to this range (dB).

    Notes
    -----
    :meth:`gains_db` applies at most one step per call (the first due in the chunk).
    """

    def __init__(self, rng: Rng, *, locked: bool = False, walk_db: float = 0.01,
                 step_db: tuple[float, float] = (1.0, 3.0),
                 interval_s: tuple[float, float] = (5.0, 30.0),
                 range_db: tuple[float, float] = (-6.0, 6.0)) -> None:
        self.rng = rng
        self.locked = locked
        self.walk_db, self.step_db = walk_db, step_db
        self.interval_s, self.range_db = interval_s, range_db
        self.gain_db = 0.0
        self.next_step_s = float(rng.uniform(*interval_s))

    def gains_db(self, times_s: np.ndarray) -> np.ndarray:
        """Gain (dB) at the packet times ``times_s`` (s, increasing, after the previous
        call's). Draw order: the walk increments, then (if a step is due) its sign, size and
        the time to the next step."""
        t = times_s
        if self.locked or not len(t):
            return np.zeros(len(t))
        g = self.gain_db + np.cumsum(self.rng.normal(0, self.walk_db, len(t)))
        for i in np.flatnonzero(t >= self.next_step_s)[:1]:
            g[i:] += self.rng.choice([-1, 1]) * self.rng.uniform(*self.step_db)
            self.next_step_s = float(t[i] + self.rng.uniform(*self.interval_s))
        g = np.clip(g, *self.range_db)
        self.gain_db = float(g[-1])
        return g


def gain_jitter_db(rng: Rng, n: int, sd_db: float = 0.2) -> np.ndarray:
    """Packet-to-packet gain jitter (dB): ``n`` Gaussian draws of ``sd_db``."""
    return sd_db * rng.standard_normal(n)


def db_to_amplitude(db: np.ndarray | float) -> np.ndarray | float:
    """Amplitude factor of a gain in dB: ``10 ** (db / 20)``."""
    return 10 ** (db / 20)


# ----------------------------------------------------------------------------- noise


def noise_sd(snr_db: float, *, power: float | None = None,
             amplitude: float | None = None) -> float:
    """Standard deviation of each of the real and imaginary parts of complex Gaussian noise
    at ``snr_db`` (dB) relative to a signal of mean ``power`` (|x|², e.g. counts²) or mean
    ``amplitude`` (|x|). Give exactly one of them."""
    if (power is None) == (amplitude is None):
        raise ValueError("noise_sd: give exactly one of power= and amplitude=")
    if power is not None:
        return float(np.sqrt(power / 10 ** (snr_db / 10) / 2))
    return float(amplitude * 10 ** (-snr_db / 20) / np.sqrt(2))


def awgn(rng: Rng, shape: int | tuple[int, ...], sd: float) -> np.ndarray:
    """Complex white Gaussian noise, ``sd`` per real/imaginary part (:func:`noise_sd`).

    Draw order: all real parts, then all imaginary parts (``shape`` standard normals each).
    """
    return sd * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))


def quantise(x: np.ndarray, dtype: Literal["int8", "int16"] = "int8") -> np.ndarray:
    """Round real and imaginary parts to integers and clip them to the range of ``dtype``
    (int8: −128…127, int16: −32768…32767), as an ADC or a fixed-point channel estimate does.

    Parameters
    ----------
    x : numpy.ndarray
        Complex (or real) values in counts of the integer type.
    dtype : {"int8", "int16"}

    Returns
    -------
    numpy.ndarray
        Complex values with integer, clipped parts (``complex128``; cast as needed).
    """
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    return np.clip(np.rint(x.real), lo, hi) + 1j * np.clip(np.rint(x.imag), lo, hi)


# ----------------------------------------------------------------------------- packet timing


def normal_intervals(rng: Rng, n: int, rate_hz: float, jitter: float, *,
                     min_fraction: float = 0.1) -> np.ndarray:
    """``n`` packet intervals (s) around the nominal period ``1 / rate_hz`` with Gaussian
    jitter of relative standard deviation ``jitter``, no interval shorter than
    ``min_fraction`` of the period. Draws ``n`` standard normals."""
    period = 1.0 / rate_hz
    return period * np.clip(1.0 + jitter * rng.standard_normal(n), min_fraction, None)


def gamma_intervals(rng: Rng, n: int, rate_hz: float, shape: float = 8.0) -> np.ndarray:
    """``n`` gamma-distributed packet intervals (s) of mean ``1 / rate_hz`` (relative
    standard deviation ``1/√shape``: 0.35 for the default 8). Draws ``n`` gammas."""
    return rng.gamma(shape, 1.0 / (shape * rate_hz), n)


# ----------------------------------------------------------------------------- packet loss


def gilbert_elliott_keep(rng: Rng, n: int, loss: float, mean_burst: float, *,
                         bad_loss: float = 0.9, max_bad: float = 0.95) -> np.ndarray:
    """Bursty packet loss from a two-state (Gilbert–Elliott) chain.

    The chain starts in the good state (no loss) and alternates runs of geometric length:
    bad runs average ``mean_burst`` packets, in which each packet is lost with probability
    ``bad_loss``; good runs are as long as needed for a bad-state share of
    ``min(loss / bad_loss, max_bad)``, so about ``loss`` of all packets are lost.

    Draw order: per run, its length (one geometric), then in a bad run one uniform per
    packet. ``loss <= 0`` draws nothing.

    Parameters
    ----------
    rng : numpy.random.Generator
    n : int
        Packets.
    loss : float
        Target fraction of lost packets (0–1).
    mean_burst : float
        Mean bad-run length (packets).
    bad_loss : float
        Loss probability within a bad run.
    max_bad : float
        Upper bound of the bad-state share.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` bool, True for packets received.
    """
    keep = np.ones(n, bool)
    if loss <= 0:
        return keep
    pi_bad = min(loss / bad_loss, max_bad)
    p_gb = pi_bad / (1 - pi_bad) / mean_burst
    i = 0
    bad = False
    while i < n:
        run = int(rng.geometric(1 / mean_burst if bad else max(p_gb, 1e-9)))
        if bad:
            keep[i : i + run] = rng.random(min(run, n - i)) > bad_loss
        i += run
        bad = not bad
    return keep


def bernoulli_burst_keep(rng: Rng, n: int, loss: float, *, single: float = 0.7,
                         burst_start: float = 0.03, burst_len: int = 10) -> np.ndarray:
    """Independent packet loss plus fixed-length bursts.

    Each packet is lost with probability ``loss · single``; a burst of ``burst_len`` lost
    packets starts at each packet with probability ``loss · burst_start`` (the defaults
    lose about ``loss`` overall: 70 % single losses, 30 % in bursts of 10).

    Draw order: ``n`` uniforms for single losses, then ``n`` for burst starts (always, even
    for ``loss = 0``).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` bool, True for packets received.
    """
    keep = rng.random(n) >= loss * single
    for b in np.flatnonzero(rng.random(n) < loss * burst_start):
        keep[b:b + burst_len] = False
    return keep


# ----------------------------------------------------------------------------- clocks


def drift_times(times_s: np.ndarray, ppm: float, t_ref_s: float = 0.0) -> np.ndarray:
    """Times (s) as read on a clock running ``ppm`` parts per million fast (negative: slow),
    agreeing with true time at ``t_ref_s``: ``t_ref + (t − t_ref)(1 + ppm·10⁻⁶)``.

    Also the sampling clock offset of an IQ receiver: evaluate the waveform at
    ``drift_times(sample_times(n, fs), ppm)`` (or use :func:`sample_times` with ``ppm``).
    """
    t = np.asarray(times_s, float)
    return t_ref_s + (t - t_ref_s) * (1.0 + ppm * 1e-6)


def sample_times(n: int, fs_hz: float, *, ppm: float = 0.0, t0_s: float = 0.0) -> np.ndarray:
    """True times (s) of ``n`` samples of an ADC clocked at nominal ``fs_hz`` (Hz) whose
    clock is ``ppm`` parts per million fast: its sample period is ``1 / (fs (1 + ppm·10⁻⁶))``.
    """
    return t0_s + np.arange(n) / (fs_hz * (1.0 + ppm * 1e-6))


def counter_timestamps(rng: Rng, times_s: np.ndarray, *, tick_hz: float = 1e6,
                       bits: int = 32, ppm: float = 0.0) -> np.ndarray:
    """A device's free-running timestamp counter at packet times ``times_s`` (s).

    The counter's value at ``t = 0`` is uniform in ``[0, 2**bits)`` (one integer drawn);
    it counts ``tick_hz`` ticks per second (``ppm`` fast) and is not wrapped (readers and
    writers wrap as their format does).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` int64 counter values (ticks).
    """
    t0 = int(rng.integers(0, 2**bits))
    t = np.asarray(times_s, float)
    if ppm:
        t = drift_times(t, ppm)
    return t0 + np.round(t * tick_hz).astype(np.int64)


def phase_noise(rng: Rng, n: int, linewidth_hz: float, fs_hz: float,
                phase0_rad: float = 0.0) -> np.ndarray:
    """Oscillator phase noise as a Wiener process (Lorentzian line of 3-dB width
    ``linewidth_hz``): increments of variance ``2π · linewidth / fs`` per sample.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws ``n`` standard normals.
    n : int
        Samples.
    linewidth_hz : float
        Oscillator linewidth (Hz).
    fs_hz : float
        Sample rate (Hz).
    phase0_rad : float
        Phase before the first sample (rad).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` phase (rad); multiply IQ samples by ``exp(1j * phase)``.
    """
    sd = np.sqrt(2 * np.pi * linewidth_hz / fs_hz)
    return phase0_rad + np.cumsum(sd * rng.standard_normal(n))


def index_jitter(rng: Rng, n: int, sd_samples: float, *, resolution: float | None = None,
                 max_samples: float | None = None) -> np.ndarray:
    """Jitter of a detected first-path index (UWB channel impulse responses): Gaussian, in
    samples of the CIR.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws ``n`` standard normals.
    n : int
        Measurements.
    sd_samples : float
        Standard deviation (CIR samples; ~1 ns each on a DW1000).
    resolution : float, optional
        Report in steps of this many samples (a DW1000's FP_INDEX has 1/64).
    max_samples : float, optional
        Clip the jitter to ``±max_samples``.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` index offsets (samples) to add to the true first-path index.
    """
    j = sd_samples * rng.standard_normal(n)
    if max_samples is not None:
        j = np.clip(j, -max_samples, max_samples)
    if resolution:
        j = np.round(j / resolution) * resolution
    return j
