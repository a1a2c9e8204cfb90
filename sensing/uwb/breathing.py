"""Breathing rate from the chest's range bin: UWB CIRs and pulsed-radar frames.

Method, per window of ``window_s`` every ``hop_s``:

1. **Conditioning.** CIRs (``uwb_cir``) are normalised by RXPACC and aligned on the first
   path (:class:`~sensing.uwb.conditioning.CirAligner`), then de-rotated by the phase of
   the first-path tap (a DW1000/DW3000 accumulator has an arbitrary carrier phase per frame;
   the direct path is the phase reference, so what remains is the phase of each
   reflection relative to it). Radar frames (``radar``) are coherent and used as they are.
   Wide frames are decimated in range to at most ``max_bins`` columns (every k-th point:
   averaging adjacent points would cancel the phase of a 60 GHz radar).
2. **Slow time.** The window's frames are interpolated onto a uniform grid at the frame
   rate (at most ``max_rate_hz``; irregular CIR logs are fine).
3. **Chest bin.** The phase of every range bin (unwrapped over slow time, i.e. the
   radial displacement ``d = phase * wavelength / (4 pi)``) is scored with the shared
   rate estimator (:func:`sensing.dsp.rate.estimate_rate`: detrended, high-passed,
   periodogram peak over a CFAR floor, sub-harmonic and band-edge checks); the bin whose
   phase has the **strongest periodic component in the band** (highest confidence, then
   peak-to-floor ratio) is the chest bin, and its rate is reported. Bins at the noise
   level (mean magnitude < 2 × the frame-to-frame noise floor) are skipped. (A vectorised
   pre-score of every bin picks the 3 candidates the full estimator then scores.)

A ``breathing_rate`` detection (bpm) is emitted per window whose confidence reaches
``min_confidence``, with ``extra``: ``range_m`` (the chest bin), ``bin``, ``window_s``,
``snr``, ``check`` (harmonic check outcome), ``modality``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import ValidationInfo, field_validator

from sensing.detections import Detection
from sensing.dsp.rate import RateEstimate, estimate_rate
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.uwb.conditioning import CirAligner, frame_rate, range_axis

__all__ = ["UwbBreathingParams", "RangeBinBreathing", "SlowTimeWindow", "SlowTimeConditioner",
           "shared_conditioner", "derotate", "bin_phases"]


class UwbBreathingParams(Params):
    """Options of :class:`RangeBinBreathing` (and of the ``uwb_breathing`` pipeline)."""

    window_s: float = param(20.0, unit="s", gt=2, le=300, doc="analysis window")
    hop_s: float = param(5.0, unit="s", gt=0, le=300, doc="time between estimates")
    min_bpm: float = param(6.0, unit="bpm", gt=0, le=100, doc="slowest rate reported")
    max_bpm: float = param(40.0, unit="bpm", gt=0, le=120, doc="fastest rate reported")
    min_confidence: float = param(0.3, ge=0, le=1, doc="estimates below it are not emitted")
    min_range_m: float = param(0.0, unit="m", ge=-10, le=100,
                               doc="nearest range bin searched for the chest")
    max_range_m: float = param(10.0, unit="m", gt=-10, le=100,
                               doc="farthest range bin searched for the chest")
    max_bins: int = param(64, ge=1, le=2048, doc="range bins analysed at most (decimation)")
    max_rate_hz: float = param(20.0, unit="Hz", gt=0.5, le=1000,
                               doc="slow-time rate of the analysis (frames are resampled)")
    cir_before: int = param(4, ge=0, le=128, doc="CIR taps kept before the first path")
    cir_after: int = param(60, ge=2, le=1000, doc="CIR taps kept from the first path on")
    min_coverage: float = param(0.6, gt=0, le=1,
                                doc="fraction of the window that must hold frames")

    @field_validator("max_bpm")
    @classmethod
    def _band(cls, v: float, info: ValidationInfo) -> float:
        lo = info.data.get("min_bpm")
        if lo is not None and v <= lo:
            raise ValueError(f"max_bpm ({v}) must exceed min_bpm ({lo})")
        return v


def derotate(cir: np.ndarray, column: int) -> np.ndarray:
    """Multiply each aligned CIR by the conjugate phase of its tap ``column`` (the first
    path): removes the per-frame carrier phase of the accumulator."""
    ref = cir[:, column]
    mag = np.abs(ref)
    rot = np.where(mag > 0, np.conj(ref) / np.maximum(mag, 1e-20), 1.0)
    return cir * rot[:, None].astype(np.complex64)


def bin_phases(slow: np.ndarray) -> np.ndarray:
    """Unwrapped phase (rad) of every column of a slow-time window ``(n, bins)``."""
    return np.unwrap(np.angle(slow), axis=0)


class SlowTimeConditioner:
    """Conditioning of a chunk for slow-time analysis: ``push(frames)`` returns the rows
    ``(n, bins)`` complex64 and their range (m); ``uwb_cir`` aligned on the first path,
    normalised and de-rotated (:class:`~sensing.uwb.conditioning.CirAligner` with
    ``before``/``after`` taps), radar frames as they are (flattened to 2-D). Stateless per
    row; the last chunk's result is kept, so that the windows of a chunk and several
    consumers of one stream (:func:`shared_conditioner`) condition it once."""

    def __init__(self, before: int, after: int) -> None:
        self.before = int(before)
        self.aligner = CirAligner(before=before, after=after)
        self._frames: Frames | None = None
        self._result: tuple[np.ndarray, np.ndarray] | None = None

    def push(self, frames: Frames) -> tuple[np.ndarray, np.ndarray]:
        if frames is not self._frames or self._result is None:
            self._frames, self._result = None, None
            self._result = self._condition(frames)
            self._frames = frames
        return self._result

    def _condition(self, frames: Frames) -> tuple[np.ndarray, np.ndarray]:
        if frames.modality == "uwb_cir":
            fr = self.aligner.push(frames)  # aligned, normalised and de-rotated
            x = np.asarray(fr.data, np.complex64)
            if not fr.meta.get("derotated"):
                x = derotate(x, int(fr.meta.get("first_path_column", self.before)))
            rng = range_axis(fr)
        else:
            x = np.asarray(frames.data, np.complex64)
            if x.ndim > 2:
                x = x.reshape(len(x), -1)
            rng = range_axis(frames)
            if len(rng) != x.shape[1]:
                rng = np.arange(x.shape[1], dtype=np.float64)
        return x, rng


def shared_conditioner(shared: Any, p: UwbBreathingParams) -> SlowTimeConditioner:
    """The stream's :class:`SlowTimeConditioner` for ``p``'s alignment, from a pipeline's
    :class:`agent.pipelines.shared.SharedStages` (``uwb_breathing`` and ``uwb_presence``
    then align every chunk once; results are identical to conditioning separately)."""
    key = ("uwb_slow_time", p.cir_before, p.cir_after)
    return shared.get(key, lambda: SlowTimeConditioner(p.cir_before, p.cir_after)).analysis


class SlowTimeWindow:
    """Bounded slow-time history of conditioned frames, resampled on demand.

    Conditioning (per chunk): CIRs aligned + de-rotated, columns restricted to
    ``[min_range_m, max_range_m]`` and decimated to ``max_bins``. Keeps at most
    ``window_s`` (+ one hop) of rows, in one array appended in place (whole chunks are
    dropped when older than that, compacted when full); a window is a slice of it found
    by binary search (by a mask when times are out of order).
    """

    def __init__(self, p: UwbBreathingParams, keep_s: float | None = None) -> None:
        self.p = p
        self.keep_s = float(keep_s if keep_s is not None else p.window_s + p.hop_s)
        self._own = SlowTimeConditioner(p.cir_before, p.cir_after)
        #: Conditioning stage shared with the stream's other consumers (None: its own).
        self.conditioner: SlowTimeConditioner | None = None
        # rows kept: _x[_lo:_hi] and their times _t[_lo:_hi], contiguous (appended in
        # place, compacted when full); _starts: where each chunk pushed begins
        self._x = np.zeros((0, 0), np.complex64)
        self._t = np.zeros(0)
        self._lo = self._hi = 0
        self._starts: list[int] = []
        self.range_m: np.ndarray | None = None
        self.columns: np.ndarray | None = None
        self.rate_hz: float | None = None
        self.modality = ""

    def reset(self) -> None:
        self._x = np.zeros((0, 0), np.complex64)
        self._t = np.zeros(0)
        self._lo = self._hi = 0
        self._starts = []
        self.range_m = self.columns = None

    def condition(self, frames: Frames) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's conditioned rows ``(n, bins)`` and their range (m): from
        :attr:`conditioner` (a stage shared with other consumers of the stream, see
        :func:`shared_conditioner`) or its own, once per chunk (the result is shared
        between the windows: not to be modified)."""
        if self.conditioner is not None:
            return self.conditioner.push(frames)
        return self._own.push(frames)

    def push(self, frames: Frames) -> None:
        if not len(frames):
            return
        x, rng = self.condition(frames)
        self.push_conditioned(frames, x, rng)

    def push_hops(self, frames: Frames, next_s: float, hop_s: float,
                  analyse: Callable[[float], Any]) -> tuple[list[Any], float]:
        """Push ``frames``, calling ``analyse(end_s)`` at every window end ``next_s``,
        ``next_s + hop_s`` … that falls inside them, with exactly the rows up to that end
        pushed (so chunking does not change what a window sees).

        Returns
        -------
        results, next_s
            The non-None results of ``analyse`` in order, and the next window end.
        """
        out: list[Any] = []
        t = frames.times_s
        start = 0
        while True:
            k = int(np.searchsorted(t, next_s, side="right"))
            if k >= len(t) and t[-1] < next_s - 1e-9:
                break
            self.push_rows(frames, start, min(k, len(t)))
            start = k
            res = analyse(next_s)
            if res is not None:
                out.append(res)
            next_s += hop_s
        if start < len(t):
            self.push_rows(frames, start, len(t))
        return out, next_s

    def push_rows(self, frames: Frames, a: int, b: int) -> None:
        """Push rows ``a:b`` of a chunk (conditioned with the whole chunk, once)."""
        if b <= a:
            return
        x, rng = self.condition(frames)
        if a == 0 and b >= len(frames):
            self.push_conditioned(frames, x, rng)
        else:
            self.push_conditioned(_rows(frames, a, b), x[a:b], rng)

    def push_conditioned(self, frames: Frames, x: np.ndarray, rng: np.ndarray) -> None:
        """Push a chunk's rows already conditioned (``x``: :meth:`condition` of them)."""
        if self.range_m is None or len(rng) != len(self.range_m) or frames.modality != self.modality:
            self.reset()
            self.modality = frames.modality
            cols = np.flatnonzero((rng >= self.p.min_range_m) & (rng <= self.p.max_range_m))
            if cols.size == 0:
                cols = np.arange(len(rng))
            step = int(np.ceil(cols.size / self.p.max_bins))
            self.columns = cols[::step]
            self.range_m = rng
        rate = frame_rate(frames)
        if rate:
            self.rate_hz = rate
        rows = x[:, self.columns]
        k = len(rows)
        self._reserve(k, rows.shape[1])
        a = self._hi
        self._x[a:a + k] = rows
        self._t[a:a + k] = frames.times_s
        self._starts.append(a)
        self._hi = a + k
        # drop whole chunks that end before the history kept (as a list of chunks would)
        t_end = float(frames.times_s[-1])
        while len(self._starts) > 1 and self._t[self._starts[1]] < t_end - self.keep_s:
            self._starts.pop(0)
        self._lo = self._starts[0]

    def _reserve(self, k: int, bins: int) -> None:
        """Room for ``k`` more rows of ``bins`` columns after ``_hi``."""
        if self._x.shape[1] != bins:
            self._x = np.zeros((0, bins), np.complex64)
            self._t = np.zeros(0)
            self._lo = self._hi = 0
            self._starts = []
        if self._hi + k <= len(self._x):
            return
        lo, hi = self._lo, self._hi
        need = hi - lo + k
        if need > len(self._x) // 2:  # grow (amortised), else compact in place
            x = np.empty((max(2 * need, 1024), bins), np.complex64)
            t = np.empty(len(x))
        else:
            x, t = self._x, self._t
        x[: hi - lo] = self._x[lo:hi]
        t[: hi - lo] = self._t[lo:hi]
        self._x, self._t = x, t
        self._starts = [s - lo for s in self._starts]
        self._lo, self._hi = 0, hi - lo

    @property
    def end_s(self) -> float | None:
        return float(self._t[self._hi - 1]) if self._hi > self._lo else None

    def window(self, end_s: float, length_s: float) -> tuple[np.ndarray, np.ndarray, float] | None:
        """Uniformly resampled rows of ``[end_s - length_s, end_s]``: ``(slow (n, bins),
        range_m (bins,), fs_hz)``, or None when the window is not covered well enough."""
        if self._hi <= self._lo:
            return None
        t = self._t[self._lo:self._hi]
        x = self._x[self._lo:self._hi]
        lo_t, hi_t = end_s - length_s - 1e-9, end_s + 1e-9
        if len(t) < 2 or bool(np.all(t[1:] >= t[:-1])):
            a = int(np.searchsorted(t, lo_t, side="left"))
            b = int(np.searchsorted(t, hi_t, side="right"))
            t, x = t[a:b], x[a:b]
        else:  # times out of order: select by mask
            sel = (t >= lo_t) & (t <= hi_t)
            t, x = t[sel], x[sel]
        if len(t) < 16:
            return None
        span = t[-1] - t[0]
        if span < self.p.min_coverage * length_s:
            return None
        rate = self.rate_hz
        if not rate:
            dt = float(np.median(np.diff(t)))
            rate = 1.0 / dt if dt > 0 else None
        if not rate:
            return None
        fs = min(rate, self.p.max_rate_hz)
        n = max(int(np.floor(span * fs)) + 1, 8)
        grid = t[0] + np.arange(n) / fs
        grid = grid[grid <= t[-1] + 1e-9]
        # largest gap must stay below half a breath at the fastest rate
        if np.max(np.diff(t), initial=0.0) > 30.0 / self.p.max_bpm:
            return None
        if len(grid) == len(t) and np.allclose(grid, t, atol=0.25 / fs):
            slow = x.copy()
        else:
            slow = _interp_complex(grid, t, x)
        return slow, self.range_m[self.columns], fs


def _interp_cols(grid: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Linear interpolation of every column of ``y`` (vectorised over columns)."""
    idx = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 2)
    t0, t1 = t[idx], t[idx + 1]
    w = np.where(t1 > t0, (grid - t0) / np.where(t1 > t0, t1 - t0, 1.0), 0.0)
    return y[idx] * (1 - w)[:, None] + y[idx + 1] * w[:, None]


def _interp_complex(grid: np.ndarray, t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`_interp_cols` of the real and the imaginary parts of complex ``x`` (the same
    numbers, complex64), with one search and one gather of the rows."""
    idx = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 2)
    t0, t1 = t[idx], t[idx + 1]
    w = np.where(t1 > t0, (grid - t0) / np.where(t1 > t0, t1 - t0, 1.0), 0.0)
    xa, xb = x[idx], x[idx + 1]
    wa, wb = (1 - w)[:, None], w[:, None]
    slow = np.empty((len(grid), x.shape[1]), np.complex64)
    slow.real = xa.real * wa + xb.real * wb
    slow.imag = xa.imag * wa + xb.imag * wb
    return slow


def diff_noise(x: np.ndarray) -> np.ndarray:
    """White-noise standard deviation of every column of ``x`` (time first; complex:
    per real component) from its frame-to-frame differences: mean absolute difference
    × sqrt(pi/2) / sqrt 2 (Gaussian-consistent, a slow signal hardly changes it; the mean
    rather than the median keeps it cheap on every window)."""
    d = np.abs(np.diff(x, axis=0))
    if np.iscomplexobj(x):
        # |complex difference| of circular Gaussian noise: mean = sigma_c * sqrt(pi) / 2
        return d.mean(axis=0) * (2.0 / np.sqrt(np.pi)) / np.sqrt(2.0) / np.sqrt(2.0)
    return d.mean(axis=0) * np.sqrt(np.pi / 2.0) / np.sqrt(2.0)


def prescore_bins(ph: np.ndarray, fs: float, band_hz: tuple[float, float]) -> np.ndarray:
    """Cheap periodicity score of every column of ``ph`` (time first): the largest
    periodogram value in ``band_hz`` over the band's median, after removing the line and
    scaling each column to its robust frame-to-frame noise (vectorised over columns)."""
    n = len(ph)
    t = np.arange(n) - (n - 1) / 2.0
    y = ph - ph.mean(axis=0) - np.outer(t, (t @ ph) / (t @ t))
    noise = diff_noise(y)
    y = y / np.maximum(noise, 1e-12)
    nfft = max(512, 1 << int(np.ceil(np.log2(2 * n))))
    spec = np.abs(np.fft.rfft(y * np.hanning(n)[:, None], nfft, axis=0)) ** 2
    f = np.fft.rfftfreq(nfft, 1 / fs)
    band = (f >= band_hz[0]) & (f <= band_hz[1])
    if not band.any():
        return np.zeros(ph.shape[1])
    sb = spec[band]
    return sb.max(axis=0) / np.maximum(np.median(sb, axis=0), 1e-30)


def bin_snr(slow: np.ndarray) -> np.ndarray:
    """Mean magnitude of every bin over the window's white-noise level: the lower
    quartile over bins of each bin's frame-to-frame noise (robust spread of its
    differences / sqrt 2; receiver noise is the same in every bin, while a moving or
    breathing reflector raises its own bins' differences). ~0.9 for a bin holding only
    noise, whose phase is meaningless (unwrapping it gives a random walk)."""
    sd = np.sqrt(2.0) * diff_noise(slow)  # spread of the differences, per component
    floor = float(np.percentile(sd, 25)) if sd.size else 0.0
    return np.abs(slow).mean(axis=0) / max(floor, 1e-30)


def chest_bin_rate(slow: np.ndarray, fs: float, band_hz: tuple[float, float],
                   candidates: int = 3, min_snr: float = 2.0, min_prescore: float = 6.0
                   ) -> tuple[int, RateEstimate]:
    """The bin whose unwrapped phase has the strongest periodic component in ``band_hz``
    and its rate estimate: the ``candidates`` best bins by :func:`prescore_bins` are
    scored with :func:`~sensing.dsp.rate.estimate_rate` (harmonic and edge checks) and the
    highest confidence (then peak-to-floor ratio) wins. Bins whose :func:`bin_snr` is
    below ``min_snr`` (noise: their phase is meaningless), or whose pre-score (band peak
    over band median) is below ``min_prescore`` (no periodic component: noise alone peaks
    at ~4-5 over a few dozen bins), are not considered."""
    ph = bin_phases(slow)
    ok = np.isfinite(ph).all(axis=0) & (np.ptp(ph, axis=0) > 0) & (bin_snr(slow) >= min_snr)
    score = np.where(ok, prescore_bins(np.where(ok, ph, 0.0), fs, band_hz), -1.0)
    order = [int(k) for k in np.argsort(-score)[:candidates] if score[k] >= min_prescore]
    best_k, best = -1, RateEstimate(float("nan"), 0.0, 0.0, 0.0)
    for k in order:
        est = estimate_rate(ph[:, k], fs, band_hz, axis=0)
        if not np.isfinite(est.rate_hz):
            continue
        if (best_k < 0 or est.confidence > best.confidence
                or (est.confidence == best.confidence and est.snr > best.snr)):
            best_k, best = k, est
    return best_k, best


class RangeBinBreathing:
    """Streaming breathing-rate estimator on ``uwb_cir`` or ``radar`` frames.

    ``push(frames)`` returns the ``breathing_rate`` detections the chunk completed
    (one per ``hop_s`` once ``window_s`` is covered, confident ones only); ``flush()``
    nothing more. ``last`` holds the latest window's full result (emitted or not) for
    presence (:mod:`sensing.uwb.presence`): ``(end_s, rate_bpm, confidence, range_m)``.
    Chunk boundaries do not change the results.
    """

    Params = UwbBreathingParams

    def __init__(self, params: UwbBreathingParams | None = None, /, **options: Any) -> None:
        self.params = UwbBreathingParams.build(params, options, where="uwb_breathing")
        self.buffer = SlowTimeWindow(self.params)
        self._next: float | None = None
        self._t0: float | None = None
        self.stats = {"windows": 0, "emitted": 0, "uncovered": 0}
        self.last: tuple[float, float, float, float] | None = None

    def push(self, frames: Frames) -> list[Detection]:
        if not len(frames):
            return []
        p = self.params
        if self._t0 is None:
            self._t0 = float(frames.times_s[0])
            self._next = self._t0 + p.window_s
        out, self._next = self.buffer.push_hops(frames, self._next, p.hop_s, self._analyse)
        return out

    def flush(self) -> list[Detection]:
        return []

    def _analyse(self, end_s: float) -> Detection | None:
        p = self.params
        self.stats["windows"] += 1
        win = self.buffer.window(end_s, p.window_s)
        if win is None:
            self.stats["uncovered"] += 1
            return None
        slow, rng, fs = win
        # a wide analysis band keeps the noise floor (CFAR) below the breathing peak and
        # its harmonics; rates outside [min_bpm, max_bpm] are then not reported
        band = (p.min_bpm / 60 * 0.9, min(max(p.max_bpm / 60 * 1.1, 1.5), fs / 2 * 0.95))
        k, est = chest_bin_rate(slow, fs, band)
        if k < 0:
            return None
        self.last = (end_s, est.per_min, est.confidence, float(rng[k]))
        if est.confidence < p.min_confidence or not p.min_bpm <= est.per_min <= p.max_bpm:
            return None
        self.stats["emitted"] += 1
        return Detection("breathing_rate", round(end_s, 3), round(est.per_min, 2), "bpm",
                         float(est.confidence),
                         {"range_m": round(float(rng[k]), 4), "bin": int(k),
                          "window_s": p.window_s, "snr": est.snr, "check": est.check,
                          "modality": self.buffer.modality})

    def quiet_reason(self) -> str | None:
        s = self.stats
        if s["emitted"]:
            return None
        if s["windows"] == 0:
            return f"capture shorter than the {self.params.window_s:g} s window"
        return (f"no breathing with confidence >= {self.params.min_confidence:g} in "
                f"{s['windows']} windows ({s['uncovered']} not covered by frames)")


def _rows(frames: Frames, a: int, b: int) -> Frames:
    """Rows ``a:b`` of a chunk (fields sliced, meta shared)."""
    return Frames.prevalidated(
        {"fs_hz": frames.fs_hz, "modality": frames.modality, "source": frames.source,
         "meta": frames.meta, "subcarriers": frames.subcarriers,
         "channel_names": frames.channel_names, "t0": frames.t0},
        data=frames.data[a:b], times_s=frames.times_s[a:b],
        fields={k: v[a:b] for k, v in frames.fields.items()})
