"""FMCW sonar front end: microphone samples → leakage-aligned complex range profiles.

A streaming :class:`~sensing.stage.Stage` (:class:`SonarFrontEnd`) that turns the audio
chunks of a recording made while the speaker played an FMCW probe
(:class:`sensing.acoustic.probe.Probe`) into one complex range profile per chirp
(:class:`SonarBlock`), and the shared slow-time helpers of the detectors built on it
(breathing, blinks, cabin occupancy):

1. **Synchronise.** Chirp ``k`` is played at ``start_s + k·period_s`` on the speaker's
   clock. The first chirps are matched-filtered over a wide lag range and the strongest
   peak — the direct speaker→microphone leakage — fixes the cut position of every chirp
   window (``margin`` samples before the leakage).
2. **Dechirp / pulse compression.** Each period-long window is mixed with the transmitted
   chirp in the frequency domain (its spectrum times the conjugate spectrum of the chirp,
   Hann-weighted across the sweep band to lower the range sidelobes to ≈ −31 dB), and the
   one-sided inverse FFT gives the complex (analytic) range profile: lag ``l`` ↔ a path
   ``l·c/fs`` longer than the leakage, i.e. range ``(l·c/fs + d_leak)/2``. Windows start at
   fractional sample positions; the fraction is applied as a linear phase in the spectrum
   (an exact band-limited fractional delay).
3. **Clock offset and drift.** A speaker clock ``ε`` ppm fast makes every period
   ``ε·period`` shorter on the microphone's clock: the leakage peak drifts in fast time
   (40 ppm at 48 kHz, 20 ms periods: 2 samples/s). Per block of ``block_periods`` chirps
   the leakage peak is located (parabolic interpolation of the magnitude), a line fitted
   to its drift, and the cut positions and the period estimate are corrected (a
   second-order tracking loop); the estimate is reported as ``clock_ppm``. The residual
   sub-sample timing error is removed exactly by referencing every profile to the
   leakage's complex value (magnitude and phase): echoes are then relative to the leakage
   (``|z| = 1`` is the leakage's amplitude) and their phases measure path changes only.

The detectors remove the static component per range bin (the centre of the circle a
moving reflector's phasor draws, :func:`circle_centres`), pick their bins, and track the
phase → displacement (``disp_mm = φ·λ/(4π)``, λ = c/f_centre, positive toward the phone).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sensing.frames import Frames
from sensing.params import Params, param

__all__ = ["SonarParams", "SonarFrontEnd", "SonarBlock", "SlowTime", "circle_centres",
           "probe_of", "front_params", "SonarBreathing", "SonarBreathingParams",
           "SOUND_SPEED_M_S"]

SOUND_SPEED_M_S = 343.0  #: speed of sound assumed for ranges and displacements (20 °C)


class SonarParams(Params):
    """Options of the FMCW sonar front end."""

    channel: int = param(0, ge=0, le=63, doc="microphone channel used")
    max_range_m: float = param(2.5, unit="m", gt=0.05, le=20,
                               doc="farthest range kept (limited by period_s − chirp_s)")
    range_step: int = param(2, ge=1, le=16,
                            doc="keep every N-th lag (1 lag = c/(2 fs) ≈ 3.6 mm at 48 kHz)")
    block_periods: int = param(25, ge=4, le=1000,
                               doc="chirps per processing block (clock-tracking update)")
    leak_path_m: float = param(0.1, unit="m", ge=0, le=2,
                               doc="speaker–microphone distance assumed for ranges")
    track_clock: bool = param(True, doc="track the speaker–microphone clock offset")


@dataclass
class SonarBlock:
    """Range profiles of consecutive chirps.

    Attributes
    ----------
    times_s : numpy.ndarray
        ``(K,)`` stream time of each chirp's leakage arrival (s).
    z : numpy.ndarray
        ``(K, L)`` complex64 profiles relative to the leakage (amplitude 1, phase 0).
    range_m : numpy.ndarray
        ``(L,)`` range of each bin (m).
    clock_ppm : float
        Speaker clock offset estimate against the microphone (ppm; positive: fast).
    chirp_rate_hz : float
        Profiles per second (1 / period).
    wavelength_m : float
        Wavelength at the sweep's centre frequency (m), for phase → displacement.
    """

    times_s: np.ndarray
    z: np.ndarray
    range_m: np.ndarray
    clock_ppm: float
    chirp_rate_hz: float
    wavelength_m: float


def front_params(p: Params) -> SonarParams:
    """The front-end options of a detector's options ``p`` (a :class:`SonarParams`
    subclass): its own channel, lag step, block and clock options, and ranges out to at
    least 2.5 m, so that every detector of a stream can share one front end."""
    keys = ("channel", "range_step", "block_periods", "leak_path_m", "track_clock")
    return SonarParams(max_range_m=max(2.5, float(getattr(p, "max_range_m", 2.5))),
                       **{k: getattr(p, k) for k in keys})


def probe_of(frames: Frames) -> Any:
    """The FMCW probe of a chunk (a :class:`~sensing.acoustic.probe.Probe`), None when the
    chunk has no probe or a CW probe."""
    raw = (frames.meta or {}).get("probe")
    if raw is None:
        return None
    from sensing.acoustic.probe import Probe, probe_from_json

    probe = raw if isinstance(raw, Probe) else probe_from_json(raw)
    return probe if probe.type == "fmcw" else None


class SonarFrontEnd:
    """Streaming FMCW sonar front end (see the module docstring).

    ``push(frames)`` returns the :class:`SonarBlock` list its samples completed (one per
    ``block_periods`` chirps), ``flush()`` the last partial block. Blocks depend only on
    stream positions, never on chunk boundaries. Memory: one period plus one block of
    samples.

    Parameters
    ----------
    params : SonarParams, optional
        Options (positional only); keyword options override.
    """

    Params = SonarParams
    MARGIN = 16  #: lags kept before the leakage peak
    SEARCH = 48  #: lag search half-width at synchronisation (samples)

    def __init__(self, params: SonarParams | None = None, /, **options: Any) -> None:
        self.params = SonarParams.build(params, options, where="sonar")
        self.probe: Any = None
        self.fs = 0.0
        self._buf = np.empty(0, np.float64)
        self._base = 0           # absolute sample index of _buf[0]
        self._next: float | None = None  # absolute position of the next window start
        self._rho = 0.0          # period correction (samples per period)
        self._k = 0              # chirps processed
        self.stats: dict[str, Any] = {"chirps": 0, "blocks": 0, "clock_ppm": 0.0,
                                      "leak_level": 0.0, "synced": False}
        self.no_probe = False

    # ---------------------------------------------------------------- configuration
    def _configure(self, frames: Frames) -> bool:
        probe = probe_of(frames)
        if probe is None or not frames.fs_hz:
            self.no_probe = True
            return False
        fs = float(frames.fs_hz)
        self.probe, self.fs = probe, fs
        self.N = float(probe.period_s) * fs           # samples per period (may be fractional)
        self.M = int(np.floor(self.N))                # window length
        self.Nc = int(round(float(probe.chirp_s) * fs))
        max_lag = self.M - self.Nc - self.MARGIN
        want = int(np.ceil(2 * self.params.max_range_m / SOUND_SPEED_M_S * fs))
        self.n_lags = max(8, min(max_lag, want))
        self.nfft = self.M
        t = np.arange(self.Nc) / fs
        k = probe.slope_hz_per_s
        ref = np.exp(2j * np.pi * (probe.f0_hz * t + 0.5 * k * t * t))
        from sensing.acoustic.probe import _chirp_window

        ref = ref * _chirp_window(probe.window, t / float(probe.chirp_s))
        f = np.fft.rfftfreq(self.nfft, 1 / fs)
        S = np.fft.fft(ref, self.nfft)[:len(f)]
        lo, hi = probe.min_hz, probe.max_hz
        w = np.zeros(len(f))
        inb = (f >= lo) & (f <= hi)
        w[inb] = 0.5 - 0.5 * np.cos(2 * np.pi * (f[inb] - lo) / (hi - lo))
        self._filt = (np.conj(S) * w / max(np.sum(np.abs(S) ** 2 * w) / len(f), 1e-30))
        self._f = f
        self._band = np.flatnonzero(w > 0)
        self.fc = 0.5 * (lo + hi)
        self.wavelength = SOUND_SPEED_M_S / self.fc
        step = self.params.range_step
        self._lags = np.arange(self.MARGIN, self.MARGIN + self.n_lags, step)
        self.range_m = ((self._lags - self.MARGIN) / fs * SOUND_SPEED_M_S
                        + self.params.leak_path_m) / 2.0
        self._start = float(probe.start_s) * fs
        return True

    # ---------------------------------------------------------------- streaming
    def push(self, frames: Frames) -> list[SonarBlock]:
        if self.probe is None:
            if self.no_probe or not self._configure(frames):
                return []
        x = np.asarray(frames.data)
        ch = min(self.params.channel, x.shape[1] - 1) if x.ndim == 2 else 0
        x = x[:, ch] if x.ndim == 2 else x
        self._buf = np.concatenate([self._buf, x.astype(np.float64)])
        return self._process(final=False)

    def flush(self) -> list[SonarBlock]:
        if self.probe is None:
            return []
        return self._process(final=True)

    def _available(self) -> int:
        return self._base + len(self._buf)

    def _process(self, final: bool) -> list[SonarBlock]:
        out: list[SonarBlock] = []
        if self._next is None and not self._sync(final):
            return out
        B = self.params.block_periods
        while True:
            assert self._next is not None
            period = self.N + self._rho
            need_k = B
            last = self._next + (need_k - 1) * period
            if int(np.floor(last)) + self.M + 1 > self._available():
                if not final:
                    break
                need_k = int((self._available() - self.M - 1 - self._next) // period) + 1
                if need_k <= 0:
                    break
            out.append(self._block(need_k))
            if need_k < B:
                break
        self._trim()
        return out

    def _trim(self) -> None:
        if self._next is None:
            return
        keep_from = int(np.floor(self._next)) - 2
        cut = keep_from - self._base
        if cut > 0:
            self._buf = self._buf[cut:]
            self._base += cut

    def _windows(self, pos: np.ndarray) -> np.ndarray:
        """Matched-filter outputs ``(K, n_lags_total)`` of windows starting at ``pos``."""
        i0 = np.floor(pos).astype(np.int64)
        frac = pos - i0
        idx = (i0 - self._base)[:, None] + np.arange(self.M)[None, :]
        w = self._buf[idx]
        X = np.fft.rfft(w, self.nfft, axis=1)
        band = self._band
        Y = np.zeros((len(pos), self.nfft), complex)
        Y[:, band] = (X[:, band] * self._filt[band][None, :]
                      * np.exp(2j * np.pi * self._f[band][None, :] * frac[:, None] / self.fs))
        return np.fft.ifft(Y, axis=1)

    def _sync(self, final: bool) -> bool:
        """Find the leakage in the first chirps and set the first cut position."""
        n_sync = 8
        first = self._start - self.SEARCH
        k0 = 0
        while first + k0 * self.N < 0:
            k0 += 1
        pos = first + (k0 + np.arange(n_sync)) * self.N
        if int(np.ceil(pos[-1])) + self.M + 1 > self._available():
            if not final:
                return False
            pos = pos[pos + self.M + 1 <= self._available()]
            if len(pos) == 0:
                return False
        c = self._windows(pos)
        lim = min(2 * self.SEARCH + 40, self.M - self.Nc)
        rows = np.abs(c[:, :lim])
        mag = rows.mean(axis=0)
        peak = int(np.argmax(mag))
        frac = _parabolic(mag, peak)
        if len(pos) >= 3:  # first estimate of the clock offset from the leakage drift
            lo, hi = max(peak - 8, 0), min(peak + 9, lim)
            pk = [lo + int(np.argmax(r[lo:hi])) for r in rows]
            pk = [k + _parabolic(r, k) for k, r in zip(pk, rows, strict=True)]
            slope, icpt = np.polyfit(np.arange(len(pos), dtype=float), pk, 1)
            self._rho = float(slope)
            peak, frac = 0, float(icpt)
        self._next = float(pos[0] + peak + frac - self.MARGIN)
        self._k = k0
        self.stats["synced"] = True
        self.stats["sync_lag"] = round(float(peak + frac - self.SEARCH), 3)
        return True

    def _block(self, K: int) -> SonarBlock:
        assert self._next is not None
        period = self.N + self._rho
        pos = self._next + np.arange(K) * period
        c = self._windows(pos)
        # leakage peak near MARGIN: magnitude, parabolic interpolation
        lo, hi = self.MARGIN - 6, self.MARGIN + 7
        mag = np.abs(c[:, lo:hi])
        pk = np.argmax(mag, axis=1)
        pk = np.clip(pk, 1, mag.shape[1] - 2)
        rows = np.arange(K)
        a, b, cc = mag[rows, pk - 1], mag[rows, pk], mag[rows, pk + 1]
        den = a - 2 * b + cc
        frac = np.where(np.abs(den) > 1e-30, 0.5 * (a - cc) / np.where(den == 0, 1, den), 0.0)
        err = pk + lo + np.clip(frac, -0.5, 0.5) - self.MARGIN  # samples; want 0
        leak = c[:, self.MARGIN]
        ref = np.conj(leak) / np.maximum(np.abs(leak) ** 2, 1e-30)
        z = (c[:, self._lags] * ref[:, None]).astype(np.complex64)
        times = (pos + self.MARGIN) / self.fs
        # tracking loop: fit the leakage drift over the block, correct position and period
        if self.params.track_clock and K >= 2:
            j = np.arange(K, dtype=float)
            slope, icpt = np.polyfit(j, err, 1)
            self._rho += 0.8 * slope
            self._next = float(pos[-1] + icpt + slope * (K - 1) + self.N + self._rho)
        elif self.params.track_clock:
            self._next = float(pos[-1] + err[-1] + self.N + self._rho)
        else:
            self._next = float(pos[-1] + period)
        ppm = -self._rho / self.N * 1e6
        self._k += K
        self.stats["chirps"] += K
        self.stats["blocks"] += 1
        self.stats["clock_ppm"] = round(float(ppm), 3)
        self.stats["leak_level"] = float(np.median(np.abs(leak)))
        return SonarBlock(times, z, self.range_m, float(ppm), self.fs / self.N,
                          self.wavelength)


def _parabolic(y: np.ndarray, k: int) -> float:
    """Sub-sample offset of the peak ``k`` of ``y`` (parabola through 3 points)."""
    if k <= 0 or k >= len(y) - 1:
        return 0.0
    a, b, c = y[k - 1], y[k], y[k + 1]
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den != 0 else 0.0


# ---------------------------------------------------------------------- slow time
class SlowTime:
    """Bounded slow-time buffer of range profiles (the last ``keep_s`` seconds) for a range
    interval.

    Parameters
    ----------
    keep_s : float
        Seconds kept.
    min_range_m, max_range_m : float
        Range interval kept (m).
    """

    def __init__(self, keep_s: float, min_range_m: float, max_range_m: float) -> None:
        self.keep_s = keep_s
        self.lo, self.hi = min_range_m, max_range_m
        self.t = np.empty(0)
        self.z: np.ndarray | None = None
        self.range_m: np.ndarray | None = None
        self.rate_hz = 0.0
        self.wavelength_m = SOUND_SPEED_M_S / 20e3
        self.clock_ppm = 0.0
        self._sel: np.ndarray | None = None

    def add(self, block: SonarBlock) -> None:
        if self._sel is None:
            self._sel = np.flatnonzero((block.range_m >= self.lo) & (block.range_m <= self.hi))
            self.range_m = block.range_m[self._sel]
            self.z = np.empty((0, len(self._sel)), np.complex64)
            self.rate_hz = block.chirp_rate_hz
            self.wavelength_m = block.wavelength_m
        assert self.z is not None
        self.t = np.concatenate([self.t, block.times_s])
        self.z = np.concatenate([self.z, block.z[:, self._sel]])
        self.clock_ppm = block.clock_ppm
        if len(self.t) and self.t[-1] - self.t[0] > self.keep_s:
            i = int(np.searchsorted(self.t, self.t[-1] - self.keep_s))
            self.t, self.z = self.t[i:], self.z[i:]

    @property
    def end_s(self) -> float:
        return float(self.t[-1]) if len(self.t) else float("-inf")

    def window(self, start_s: float, end_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Times and profiles with ``start_s <= t < end_s``."""
        i, j = np.searchsorted(self.t, [start_s, end_s])
        assert self.z is not None
        return self.t[i:j], self.z[i:j]


def circle_centres(z: np.ndarray) -> np.ndarray:
    """Static component of every column of ``z`` (time along axis 0): the centre of the
    circle its phasor draws (algebraic least-squares fit, Kåsa), or the mean when the
    points do not constrain a circle (a straight arc or noise)."""
    z = np.asarray(z, np.complex128)
    m = z.mean(axis=0)
    d = z - m
    u, v = d.real, d.imag
    suu, svv, suv = (u * u).mean(0), (v * v).mean(0), (u * v).mean(0)
    r2 = u * u + v * v
    bu, bv = 0.5 * (u * r2).mean(0), 0.5 * (v * r2).mean(0)
    det = suu * svv - suv * suv
    ok = det > 1e-12 * np.maximum(suu + svv, 1e-300) ** 2
    det_s = np.where(ok, det, 1.0)
    uc = (bu * svv - bv * suv) / det_s
    vc = (bv * suu - bu * suv) / det_s
    c = uc + 1j * vc
    spread = np.sqrt(suu + svv)
    # a centre far beyond the data is unconstrained: keep the mean
    ok &= np.abs(c) < 20 * np.maximum(spread, 1e-30)
    return np.where(ok, m + c, m)


# ---------------------------------------------------------------------- motion analysis
def motion_scores(z: np.ndarray, decimate: int = 1) -> tuple[np.ndarray, float]:
    """Per-bin motion power over the noise floor, and the floor.

    Motion power: mean ``|z − mean z|²`` of each bin. Noise floor: the median over bins of
    half the mean squared chirp-to-chirp difference (most bins hold only static echoes).
    With ``decimate`` > 1 both are computed on block means of that many chirps (slow
    motion keeps its power, the noise loses a factor ``decimate``).
    """
    if decimate > 1 and len(z) >= 4 * decimate:
        z = decimate_mean(z, decimate)
    d = z - z.mean(axis=0)
    e = (np.abs(d) ** 2).mean(axis=0)
    diff = (np.abs(np.diff(z, axis=0)) ** 2).mean(axis=0) / 2 if len(z) > 1 else e
    floor = float(np.median(diff)) if diff.size else 1.0
    return e / max(floor, 1e-30), floor


def candidate_bins(score: np.ndarray, min_score: float, n: int) -> list[int]:
    """Up to ``n`` local maxima of ``score`` above ``min_score``, strongest first, at least
    3 bins apart."""
    order = np.argsort(score)[::-1]
    out: list[int] = []
    for b in order:
        if score[b] < min_score or len(out) >= n:
            break
        if all(abs(int(b) - o) >= 3 for o in out):
            out.append(int(b))
    return out


def displacement_mm(zb: np.ndarray, wavelength_m: float) -> np.ndarray:
    """Displacement (mm, toward the phone positive) of the reflector in one bin's slow-time
    series: phase of the bin minus its static component (circle centre), unwrapped."""
    s = circle_centres(zb[:, None])[0]
    ph = np.unwrap(np.angle(zb - s))
    return ph * wavelength_m / (4 * np.pi) * 1e3


def decimate_mean(x: np.ndarray, factor: int) -> np.ndarray:
    """Block means of ``factor`` samples along axis 0 (the tail that does not fill a block
    is dropped)."""
    n = (len(x) // factor) * factor
    return x[:n].reshape(n // factor, factor, *x.shape[1:]).mean(axis=1)


class SonarBreathingParams(SonarParams):
    """Options of the FMCW sonar breathing estimator."""

    window_s: float = param(30.0, unit="s", ge=8, le=300, doc="analysis window")
    hop_s: float = param(5.0, unit="s", gt=0, le=300, doc="time between estimates")
    min_range_m: float = param(0.2, unit="m", ge=0.0, le=10, doc="nearest range searched")
    max_range_m: float = param(1.5, unit="m", gt=0.05, le=20, doc="farthest range searched")
    min_bpm: float = param(5.0, unit="bpm", gt=0, le=60, doc="slowest rate reported")
    max_bpm: float = param(40.0, unit="bpm", gt=1, le=120, doc="fastest rate reported")
    min_score: float = param(30.0, ge=1, doc="motion power over the noise floor (both at "
                                             "~5 profiles/s) a bin needs to be a candidate "
                                             "(linear)")
    min_confidence: float = param(0.3, ge=0, le=1, doc="lowest confidence reported")
    candidates: int = param(3, ge=1, le=20, doc="range bins tried per window")


class SonarBreathing:
    """Breathing rate (breaths/min) and chest displacement from FMCW sonar.

    Every ``hop_s`` over the last ``window_s``: the bins of ``min_range_m … max_range_m``
    with the most motion (:func:`motion_scores`, :func:`candidate_bins`) are turned into
    displacement (:func:`displacement_mm`), averaged to ≈ 10 Hz, and their rate estimated
    with :func:`sensing.dsp.rate.estimate_rate` (band ``min_bpm … max_bpm``, with the
    sub-harmonic check for the asymmetric waveform); the most confident bin wins.

    ``push(frames)`` (audio) or :meth:`push_blocks` (front-end output) return
    ``breathing_rate`` detections with ``extra``: ``range_m``, ``displacement_pp_mm``,
    ``displacement_mm`` (the last hop at 2 Hz, mm), ``clock_ppm``, ``window_s``.
    """

    Params = SonarBreathingParams

    def __init__(self, params: SonarBreathingParams | None = None, /, **options: Any) -> None:
        self.params = SonarBreathingParams.build(params, options, where="sonar_breathing")
        p = self.params
        self.front = SonarFrontEnd(front_params(p))
        self.buf = SlowTime(p.window_s + 1.0, p.min_range_m, p.max_range_m)
        self._next_emit: float | None = None
        self.stats = {"windows": 0, "no_candidate": 0, "low_confidence": 0, "emitted": 0}

    def front_params(self) -> SonarParams:
        return self.front.params

    def push(self, frames: Frames) -> list[Any]:
        return self.push_blocks(self.front.push(frames))

    def flush(self) -> list[Any]:
        return self.push_blocks(self.front.flush()) + self.finish()

    def finish(self) -> list[Any]:
        """End of the block stream (after the last :meth:`push_blocks`): nothing pending."""
        return []

    def push_blocks(self, blocks: list[SonarBlock]) -> list[Any]:
        out: list[Any] = []
        for b in blocks:
            self.buf.add(b)
            if self._next_emit is None:
                self._next_emit = float(b.times_s[0]) + self.params.window_s
            while self.buf.end_s >= self._next_emit:
                det = self._analyse(self._next_emit)
                if det is not None:
                    out.append(det)
                self._next_emit += self.params.hop_s
        return out

    def _analyse(self, end_s: float) -> Any:
        from sensing.detections import Detection
        from sensing.dsp.rate import estimate_rate

        p = self.params
        t, z = self.buf.window(end_s - p.window_s, end_s)
        self.stats["windows"] += 1
        if len(t) < 16 or z.shape[1] == 0:
            self.stats["no_candidate"] += 1
            return None
        score, _floor = motion_scores(z, max(1, int(round(self.buf.rate_hz / 5.0))))
        cands = candidate_bins(score, p.min_score, p.candidates)
        if not cands:
            self.stats["no_candidate"] += 1
            return None
        fac = max(1, int(round(self.buf.rate_hz / 10.0)))
        fs = self.buf.rate_hz / fac
        disps = {}
        for b in cands:
            disps[str(b)] = decimate_mean(displacement_mm(z[:, b], self.buf.wavelength_m), fac)
        band = (p.min_bpm / 60.0 * 0.8, p.max_bpm / 60.0 * 1.1)
        est = estimate_rate(disps, fs, band)
        bpm = est.per_min
        if not np.isfinite(bpm) or est.confidence < p.min_confidence or not (
                p.min_bpm <= bpm <= p.max_bpm):
            self.stats["low_confidence"] += 1
            return None
        b = int(est.candidate)
        d = disps[est.candidate]
        tail = d[-int(p.hop_s * fs):]
        f2 = max(1, int(round(fs / 2.0)))
        wave = decimate_mean(tail - np.median(d), f2)
        assert self.buf.range_m is not None
        self.stats["emitted"] += 1
        return Detection("breathing_rate", round(float(end_s), 3), round(float(bpm), 2), "bpm",
                         float(est.confidence),
                         {"window_s": p.window_s, "range_m": round(float(self.buf.range_m[b]), 3),
                          "displacement_pp_mm": round(float(np.ptp(d)), 2),
                          "displacement_mm": [round(float(v), 2) for v in wave],
                          "clock_ppm": round(self.buf.clock_ppm, 2), "method": "fmcw",
                          "check": est.check})

    def quiet_reason(self) -> str | None:
        if self.stats["emitted"]:
            return None
        if self.front.no_probe:
            return "no FMCW probe in the capture (no ambisense:probe of type fmcw)"
        if self.stats["windows"] == 0:
            return f"capture shorter than the {self.params.window_s:g} s window"
        if self.stats["no_candidate"] == self.stats["windows"]:
            return (f"no moving reflector at {self.params.min_range_m:g}–"
                    f"{self.params.max_range_m:g} m in {self.stats['windows']} windows")
        return (f"no breathing with confidence >= {self.params.min_confidence:g} in "
                f"{self.stats['windows']} windows")
