"""Conditioning of UWB CIRs and pulsed-radar frames: streaming stages with bounded state.

Every stage takes :class:`~sensing.frames.Frames` of modality ``uwb_cir`` (DW1000/DW3000
accumulators, ``(n, n_taps)`` complex) or ``radar`` (baseband frames, ``(n, n_points)``
complex) and returns Frames (or arrays), chunk by chunk; chunk boundaries do not change
the results. Typical chain (what :mod:`sensing.uwb.breathing` and the fall detector use)::

    align = CirAligner(before=8, after=56)       # uwb_cir: first path at tap 8, 64 taps kept
    clutter = ClutterRemover(time_constant_s=8)  # moving-average background subtracted
    rt = RangeTimeMap(window_s=20)               # |x| per range bin, last 20 s
    for fr in reader:
        fr = clutter.push(align.push(fr))
        rt.push(fr)
    times, ranges, mag = rt.map()

Range axis: ``range_axis(frames)`` (m). Radar frames carry ``meta["range_m"]`` per point
(monostatic: distance to the reflector). For CIRs the axis is the **excess path**
``(k - ref) * tap_s * c / 2`` after alignment (``ref`` = the aligned first-path tap): half
the extra path length of a reflection relative to the direct path, which is the distance
behind the receiver for a co-located transmitter, and a proxy otherwise.

Functions (stateless, vectorised over frames): :func:`normalise_cir`,
:func:`detect_first_path`, :func:`fractional_shift`, :func:`doppler_spectrogram`.
Stages: :class:`CirAligner`, :class:`ClutterRemover`, :class:`RangeTimeMap`,
:class:`MicroDoppler`, :class:`RangeTracker`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from sensing.frames import Frames
from sensing.params import Params, param

#: Speed of light, m/s.
C_M_S = 299_792_458.0
#: DW1000/DW3000 tap spacing (s).
TAP_S = 1.0 / 998.4e6

__all__ = [
    "C_M_S", "TAP_S", "normalise_cir", "detect_first_path", "fractional_shift", "range_axis",
    "AlignParams", "CirAligner", "ClutterParams", "ClutterRemover", "RangeTimeMap",
    "doppler_spectrogram", "MicroDoppler", "RangeTracker", "frame_rate", "wavelength_m",
    "UWB_CHANNEL_MHZ",
]


def frame_rate(frames: Frames) -> float | None:
    """The frame rate of a chunk (Hz): ``fs_hz``, else ``meta["frame_rate_hz"]``, else the
    median spacing of its times (None with fewer than 3 rows)."""
    if frames.fs_hz:
        return float(frames.fs_hz)
    rate = frames.meta.get("frame_rate_hz")
    if rate:
        return float(rate)
    if len(frames) >= 3:
        dt = float(np.median(np.diff(frames.times_s)))
        return 1.0 / dt if dt > 0 else None
    return None


#: Centre frequency of the IEEE 802.15.4a/z UWB channels the DW1000/DW3000 use (MHz).
UWB_CHANNEL_MHZ = {1: 3494.4, 2: 3993.6, 3: 4492.8, 4: 3993.6, 5: 6489.6, 7: 6489.6,
                   9: 7987.2}


def wavelength_m(frames: Frames) -> float:
    """Carrier wavelength of a stream (m): ``meta["wavelength_m"]`` (radar), else from the
    UWB ``meta["channel"]`` (default channel 5, 46.2 mm)."""
    wl = frames.meta.get("wavelength_m")
    if wl:
        return float(wl)
    ch = frames.meta.get("channel", 5)
    return C_M_S / (UWB_CHANNEL_MHZ.get(int(ch) if str(ch).isdigit() else 5, 6489.6) * 1e6)


def normalise_cir(cir: np.ndarray, rxpacc: np.ndarray | None) -> np.ndarray:
    """Divide each CIR by its preamble accumulation count (RXPACC), so that CIRs of
    different accumulation lengths compare (the DW1000 user manual's normalisation of the
    first-path and receive-power estimates). ``rxpacc`` ≤ 0 or None leaves rows as they are.

    Parameters
    ----------
    cir : numpy.ndarray
        Complex ``(n, n_taps)``.
    rxpacc : numpy.ndarray or None
        ``(n,)`` accumulated preamble symbols.
    """
    cir = np.asarray(cir, np.complex64)
    if rxpacc is None:
        return cir
    acc = np.asarray(rxpacc, np.float32)
    scale = np.where(acc > 0, 1.0 / np.maximum(acc, 1), 1.0).astype(np.float32)
    return cir * scale[:, None]


def detect_first_path(
    cir: np.ndarray, *, noise_taps: slice | None = None, threshold_db: float = 12.0,
    peak_fraction_db: float = -20.0, search_before_peak: int = 60,
) -> np.ndarray:
    """Leading-edge first-path index (fractional taps) of each CIR.

    The noise level is the RMS magnitude of ``noise_taps`` (default: the first 60 % of the
    taps before the strongest tap, or the first half); the first path is the first tap
    within ``search_before_peak`` taps before the peak whose magnitude exceeds both
    ``threshold_db`` over the noise and ``peak_fraction_db`` relative to the peak, refined
    by linear interpolation of the magnitude crossing.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float64 first-path index in taps (NaN for an all-zero CIR).
    """
    mag = np.abs(np.asarray(cir))
    n, m = mag.shape
    peak = mag.argmax(axis=1)
    out = np.full(n, np.nan)
    for i in range(n):
        p = int(peak[i])
        if mag[i, p] <= 0:
            continue
        if noise_taps is not None:
            noise = mag[i, noise_taps]
        else:
            stop = max(int(0.6 * max(p - search_before_peak, 0)), 8)
            noise = mag[i, :min(stop, m // 2)]
        floor = float(np.sqrt(np.mean(noise ** 2))) if noise.size else 0.0
        thr = max(floor * 10 ** (threshold_db / 20), mag[i, p] * 10 ** (peak_fraction_db / 20))
        lo = max(p - search_before_peak, 0)
        seg = mag[i, lo:p + 1]
        above = np.flatnonzero(seg >= thr)
        k = lo + int(above[0]) if above.size else p
        if k > 0 and mag[i, k - 1] < thr <= mag[i, k]:
            frac = (thr - mag[i, k - 1]) / (mag[i, k] - mag[i, k - 1])
            out[i] = k - 1 + frac
        else:
            out[i] = float(k)
    return out


#: Half length of the windowed-sinc fractional-delay filter (taps each side).
_FD_HALF = 6


def fractional_shift(x: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Delay each row of ``x`` by ``shift`` samples (fractional, |shift| ≤ a few taps;
    negative advances): a 12-tap Lanczos-windowed sinc interpolator per row, vectorised
    over rows (samples beyond the row's ends count as zero).

    Parameters
    ----------
    x : numpy.ndarray
        Complex ``(n, m)``.
    shift : numpy.ndarray
        ``(n,)`` samples.
    """
    x = np.asarray(x, np.complex64)
    n, m = x.shape
    shift = np.asarray(shift, np.float64)
    whole = np.floor(shift).astype(int)
    frac = shift - whole
    h = _FD_HALF
    k = np.arange(-h + 1, h + 1)                                  # 2h taps
    d = k[None, :] - frac[:, None]                                # (n, 2h)
    taps = (np.sinc(d) * np.sinc(d / h)).astype(np.float32)
    taps /= taps.sum(axis=1, keepdims=True)
    pad = h + int(np.max(np.abs(whole), initial=0)) + 1
    xp = np.pad(x, ((0, 0), (pad, pad)))
    # one gather applies the whole-sample part: xw[:, c + h] = x[:, c - whole]
    src = np.arange(-h, m + h)[None, :] - whole[:, None] + pad
    xw = np.take_along_axis(xp, src, axis=1)
    out = np.zeros((n, m), np.complex64)
    for j, kk in enumerate(k):
        # y[c] = sum_k taps[k] * x[c - whole - k]
        out += taps[:, j:j + 1] * xw[:, h - kk: h - kk + m]
    return out


def range_axis(frames: Frames) -> np.ndarray:
    """Range of each column of ``frames`` (m): ``meta["range_m"]`` when present (radar, and
    CIRs after :class:`CirAligner`), else ``k * tap_s * c / 2``."""
    rng = frames.meta.get("range_m")
    if rng is not None:
        return np.asarray(rng, np.float64)
    tap = float(frames.meta.get("tap_s", TAP_S))
    return np.arange(frames.data.shape[1]) * tap * C_M_S / 2


class AlignParams(Params):
    """Options of :class:`CirAligner`."""

    before: int = param(8, ge=0, le=512, doc="taps kept before the first path")
    after: int = param(56, ge=1, le=1024, doc="taps kept from the first path on")
    index: Literal["chip", "detect"] = param(
        "chip", doc="first-path index: the chip's (fields['first_path_index'], "
        "detected when missing) or detected from the CIR's leading edge")
    normalise: bool = param(True, doc="divide by RXPACC (fields['rxpacc']) when present")
    fractional: bool = param(True, doc="sub-tap alignment (band-limited shift) on the "
                             "fractional index; else whole taps")
    derotate: bool = param(True, doc="remove the per-frame carrier phase: rotate each CIR "
                           "so that its first-path tap has phase 0")


class CirAligner:
    """Aligns every CIR on its first path and crops ``before + after`` taps around it.

    Removes the first-path index jitter of the chip's accumulator window, so that one
    column is one excess delay in every frame (what slow-time processing per range bin
    needs). Output: Frames with ``data`` ``(n, before + after)`` complex64, the first path
    at column ``before``, ``meta["range_m"]`` = excess path / 2 per column (negative before
    the first path), ``meta["aligned"] = True``, ``fields["first_path_index"]`` kept.
    With ``derotate`` (default) every CIR is also multiplied by the conjugate phase of its
    first-path tap: a DW1000/DW3000 accumulator has an arbitrary carrier phase per frame,
    and slow-time processing (clutter removal, Doppler, breathing phase) needs a common
    phase reference; the direct path is it.
    Radar frames (and CIRs already aligned) pass through unchanged. Stateless per frame.
    """

    Params = AlignParams

    def __init__(self, params: AlignParams | None = None, /, **options: Any) -> None:
        self.params = AlignParams.build(params, options, where="CirAligner")

    def push(self, frames: Frames) -> Frames:
        p = self.params
        if frames.modality != "uwb_cir" or frames.meta.get("aligned") or not len(frames):
            return frames
        x = np.asarray(frames.data, np.complex64)
        if p.normalise and "rxpacc" in frames.fields:
            x = normalise_cir(x, frames.fields["rxpacc"])
        fpi = frames.fields.get("first_path_index") if p.index == "chip" else None
        if fpi is None:
            fpi = detect_first_path(x)
        else:
            fpi = np.asarray(fpi, np.float64).copy()
            bad = ~np.isfinite(fpi) | (fpi < 0) | (fpi >= x.shape[1])
            if bad.any():
                fpi[bad] = detect_first_path(x[bad])
        fpi = np.where(np.isfinite(fpi), fpi, 0.0)
        width = p.before + p.after
        whole = np.floor(fpi).astype(int)
        frac = fpi - whole if p.fractional else np.zeros_like(fpi)
        # pad so every crop is inside, then take the window starting ``before`` taps early
        pad = width + 2
        xp = np.pad(x, ((0, 0), (pad, pad)))
        start = whole - p.before + pad
        idx = start[:, None] + np.arange(width + 4)[None, :]
        win = np.take_along_axis(xp, idx, axis=1)
        if p.fractional:
            win = fractional_shift(win, -frac)
        out = win[:, :width]
        if p.derotate:
            ref = out[:, p.before]
            mag = np.abs(ref)
            rot = np.where(mag > 0, np.conj(ref) / np.maximum(mag, 1e-30), 1.0)
            out = out * rot[:, None]
        tap = float(frames.meta.get("tap_s", TAP_S))
        meta = dict(frames.meta)
        meta.update(aligned=True, first_path_column=p.before, derotated=p.derotate,
                    range_m=((np.arange(width) - p.before) * tap * C_M_S / 2).tolist())
        fields = dict(frames.fields)
        fields["first_path_index"] = fpi
        return dataclasses.replace(frames, data=out.astype(np.complex64), fields=fields,
                                   meta=meta)

    def flush(self) -> list[Frames]:
        return []


class ClutterParams(Params):
    """Options of :class:`ClutterRemover`."""

    time_constant_s: float = param(8.0, unit="s", gt=0, le=3600,
                                   doc="time constant of the moving-average background")
    warmup: Literal["mean", "first"] = param(
        "first", doc="initial background: the first frame, or the mean of the first chunk")


class ClutterRemover:
    """Static clutter removal: subtracts an exponential moving-average background.

    ``b[n] = b[n-1] + a (x[n] - b[n-1])`` with ``a = 1 - exp(-dt / time_constant_s)``;
    output ``x[n] - b[n-1]`` (walls, furniture and the direct path vanish; moving and
    breathing reflectors stay). Bounded state: one background row. The recursion runs
    over the chunk in time order (a loop over frames, vectorised over range bins).
    """

    Params = ClutterParams

    def __init__(self, params: ClutterParams | None = None, /, **options: Any) -> None:
        self.params = ClutterParams.build(params, options, where="ClutterRemover")
        self.background: np.ndarray | None = None
        self._last_t: float | None = None

    def reset(self) -> None:
        self.background = None
        self._last_t = None

    def push(self, frames: Frames) -> Frames:
        if not len(frames):
            return frames
        x = np.asarray(frames.data, np.complex64)
        if self.background is not None and self.background.shape != x.shape[1:]:
            self.reset()
        if self.background is None:
            self.background = (x.mean(axis=0) if self.params.warmup == "mean" else x[0]).copy()
        t = frames.times_s
        prev = self._last_t if self._last_t is not None else float(t[0])
        dts = np.diff(np.concatenate([[prev], t]))
        alpha = 1.0 - np.exp(-np.maximum(dts, 0.0) / self.params.time_constant_s)
        out = np.empty_like(x)
        b = self.background
        for i in range(len(x)):
            out[i] = x[i] - b
            b = b + alpha[i] * (x[i] - b)
        self.background = b.astype(np.complex64)
        self._last_t = float(t[-1])
        return dataclasses.replace(frames, data=out, meta={**frames.meta, "clutter_removed": True})

    def flush(self) -> list[Frames]:
        return []


class RangeTimeMap:
    """Range-time map: the magnitude of every range bin over the last ``window_s``.

    Bounded: a ring of at most ``max_frames`` rows. ``map()`` gives ``(times_s (n,),
    range_m (bins,), magnitude (n, bins))``; ``db=True`` in dB re the map's maximum.

    Parameters
    ----------
    window_s : float
        History kept (s).
    max_frames : int
        Hard bound on rows kept.
    """

    def __init__(self, window_s: float = 20.0, max_frames: int = 20000) -> None:
        self.window_s = float(window_s)
        self.max_frames = int(max_frames)
        self._rows: list[np.ndarray] = []
        self._times: list[np.ndarray] = []
        self.range_m: np.ndarray | None = None

    def push(self, frames: Frames) -> None:
        if not len(frames):
            return
        rng = range_axis(frames)
        if self.range_m is not None and len(rng) != len(self.range_m):
            self._rows, self._times = [], []
        self.range_m = rng
        self._rows.append(np.abs(frames.data).astype(np.float32))
        self._times.append(np.asarray(frames.times_s, np.float64))
        t_end = float(frames.times_s[-1])
        while len(self._times) > 1 and (self._times[0][-1] < t_end - self.window_s
                                        or sum(len(r) for r in self._rows) > self.max_frames):
            self._rows.pop(0)
            self._times.pop(0)

    def map(self, db: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self._rows:
            return np.zeros(0), np.zeros(0), np.zeros((0, 0), np.float32)
        t = np.concatenate(self._times)
        mag = np.concatenate(self._rows)
        keep = t >= t[-1] - self.window_s
        t, mag = t[keep], mag[keep]
        if db:
            mag = 20 * np.log10(np.maximum(mag, 1e-12) / max(float(mag.max()), 1e-12))
        return t, self.range_m, mag


def doppler_spectrogram(
    slow: np.ndarray, fs_hz: float, *, nfft: int = 64, hop: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slow-time Doppler spectrogram per range bin (micro-Doppler).

    Parameters
    ----------
    slow : numpy.ndarray
        Complex ``(n_frames, n_bins)``: one column per range bin, after clutter removal.
    fs_hz : float
        Frame rate (Hz).
    nfft : int
        Frames per Hann-windowed FFT (the Doppler resolution is ``fs_hz / nfft``).
    hop : int
        Frames between FFTs.

    Returns
    -------
    freqs_hz : (nfft,) Doppler frequencies, centred (``fftshift``), Hz
        (velocity = ``f * wavelength / 2``);
    times : (n_windows,) index of each window's centre frame (divide by ``fs_hz`` for s);
    power : (n_windows, n_bins, nfft) float32 power.
    """
    slow = np.asarray(slow, np.complex64)
    n = len(slow)
    if n < nfft:
        return (np.fft.fftshift(np.fft.fftfreq(nfft, 1 / fs_hz)), np.zeros(0),
                np.zeros((0, slow.shape[1], nfft), np.float32))
    starts = np.arange(0, n - nfft + 1, hop)
    win = np.hanning(nfft).astype(np.float32)
    idx = starts[:, None] + np.arange(nfft)[None, :]
    seg = slow[idx] * win[None, :, None]                       # (w, nfft, bins)
    spec = np.fft.fftshift(np.fft.fft(seg, axis=1), axes=1)
    power = (np.abs(spec) ** 2).transpose(0, 2, 1).astype(np.float32)
    freqs = np.fft.fftshift(np.fft.fftfreq(nfft, 1 / fs_hz))
    return freqs, starts + nfft / 2, power


class MicroDoppler:
    """Streaming micro-Doppler: a Doppler spectrum per range bin every ``hop`` frames over
    the last ``nfft`` frames (bounded: the last ``nfft`` rows).

    ``push(frames)`` returns a list of ``(time_s, freqs_hz, power (bins, nfft))``.
    """

    def __init__(self, nfft: int = 64, hop: int = 8) -> None:
        self.nfft, self.hop = int(nfft), int(hop)
        self._buf: np.ndarray | None = None
        self._tbuf = np.zeros(0)
        self._since = 0

    def push(self, frames: Frames) -> list[tuple[float, np.ndarray, np.ndarray]]:
        fs = frame_rate(frames) or 1.0
        out = []
        x = np.asarray(frames.data, np.complex64)
        if self._buf is not None and self._buf.shape[1] != x.shape[1]:
            self._buf = None
        for i in range(len(x)):
            row = x[i:i + 1]
            self._buf = row if self._buf is None else np.concatenate([self._buf, row])[-self.nfft:]
            self._tbuf = np.concatenate([self._tbuf, frames.times_s[i:i + 1]])[-self.nfft:]
            self._since += 1
            if len(self._buf) == self.nfft and self._since >= self.hop:
                self._since = 0
                freqs, _, power = doppler_spectrogram(self._buf, fs, nfft=self.nfft, hop=self.nfft)
                out.append((float(self._tbuf[-1]), freqs, power[0]))
        return out


class RangeTracker:
    """Target range tracking: the strongest moving reflector per frame, smoothed.

    Per frame the power over range bins (after clutter removal) is smoothed over
    ``smooth_s`` (exponential), its maximum taken and refined by a parabola; an
    alpha-beta filter (``alpha``, ``beta``) tracks range and radial velocity. Frames whose
    peak power is below ``min_power`` (absolute, in the data's units squared) keep the
    prediction (``valid`` False). Bounded state: one smoothed power row and the filter.

    ``push(frames)`` returns a dict of arrays ``times_s``, ``range_m``, ``velocity_m_s``,
    ``power``, ``valid``.
    """

    def __init__(self, smooth_s: float = 0.3, alpha: float = 0.5, beta: float = 0.1,
                 min_power: float = 0.0) -> None:
        self.smooth_s, self.alpha, self.beta = float(smooth_s), float(alpha), float(beta)
        self.min_power = float(min_power)
        self._p: np.ndarray | None = None
        self._r: float | None = None
        self._v = 0.0
        self._t: float | None = None

    def push(self, frames: Frames) -> dict[str, np.ndarray]:
        rng = range_axis(frames)
        pw = np.abs(np.asarray(frames.data)) ** 2
        n = len(pw)
        out = {k: np.zeros(n) for k in ("times_s", "range_m", "velocity_m_s", "power")}
        out["valid"] = np.zeros(n, bool)
        out["times_s"] = np.asarray(frames.times_s, np.float64).copy()
        if self._p is not None and self._p.shape != pw.shape[1:]:
            self._p = None
        for i in range(n):
            t = float(frames.times_s[i])
            dt = 0.0 if self._t is None else max(t - self._t, 0.0)
            a = 1.0 if self._p is None else 1.0 - np.exp(-dt / max(self.smooth_s, 1e-6))
            self._p = pw[i].copy() if self._p is None else self._p + a * (pw[i] - self._p)
            k = int(np.argmax(self._p))
            peak = float(self._p[k])
            r_meas = float(rng[k])
            if 0 < k < len(rng) - 1:
                y0, y1, y2 = self._p[k - 1], self._p[k], self._p[k + 1]
                den = y0 - 2 * y1 + y2
                if den < 0:
                    off = 0.5 * (y0 - y2) / den
                    r_meas = float(rng[k] + off * (rng[k + 1] - rng[k - 1]) / 2)
            valid = peak > self.min_power
            if self._r is None:
                if valid:
                    self._r, self._v = r_meas, 0.0
            else:
                pred = self._r + self._v * dt
                if valid:
                    res = r_meas - pred
                    self._r = pred + self.alpha * res
                    if dt > 0:
                        self._v = self._v + self.beta * res / dt
                else:
                    self._r = pred
            self._t = t
            out["range_m"][i] = np.nan if self._r is None else self._r
            out["velocity_m_s"][i] = self._v
            out["power"][i] = peak
            out["valid"][i] = valid
        return out
