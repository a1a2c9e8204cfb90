"""Fall detection from UWB channel impulse responses: streaming features, a classifier- or
rule-driven detector, ``fall`` and ``fall_cleared`` events.

A fall is a fast (0.5–1.5 s, 2–4 m/s) descent of the whole body that ends with the person
lying still on the floor: in the CIR, a short, strong burst of fast change spread over
several range bins, the body's reflection moving to another range, and quiet right
after. The detector decides **≈ 2 s after the impact** (the target is an alert ≤ 3 s
after the fall ends), so it looks at a short post period, not at minutes of stillness.

Conditioning (streaming, bounded state)
---------------------------------------
1. Decimation to ≤ 50 Hz, then :func:`align_cirs`: normalisation by RXPACC and sub-tap
   alignment on the chip's first-path index (first path at column 8, 64 columns: the
   convention of :class:`sensing.uwb.conditioning.CirAligner`, with a faster FFT).
2. :class:`CirMotion` (here): per 0.5 s block of frames, each frame's random carrier
   phase and its residual timing error (the chip's index is good to ~0.1 tap, which
   would leave −20 dB of the static channel in every frame) are estimated against the
   running background (least squares on the background and its derivative) and removed;
   frames more than 0.6 tap off (a misdetected first path) are dropped. Then per 0.1 s
   sub-block: the noise power ``N`` (columns 0–3, before the first path), the motion
   energy ``E[r] = mean |x − background|²`` and the fast change ``F[r] = mean |x(t) −
   x(t − 20 ms)|²`` per range bin, the mean profile; the background is an exponential
   average of the blocks (τ = 4 s).
3. :class:`FallFeatureExtractor`: every 0.2 s, :data:`FEATURE_NAMES` of the last 8 s:
   the latest strong burst of fast change in its first 6.2 s and the 1.8 s after it.

Decision
--------
:class:`FallDetector`: P(fall) per window from the int8 model (``predict_proba``) or
:func:`rule_fall_probability`; ``consecutive`` of the last ``within`` windows at or above
``threshold`` give a ``fall`` event (:class:`sensing.dsp.Debouncer`, pulse mode, with a
refractory time); its onset is the burst start of the first window over the threshold.
While the person is down, ≥ 1.5 s of movement within 2 s (from 3 s after the alert on)
gives ``fall_cleared`` (a second Debouncer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensing.dsp import Debouncer
from sensing.frames import Frames
from sensing.params import Params, param

#: Version of the feature computation (part of the training cache key).
FEATURE_VERSION = "uwb-fall-v1.4"
BLOCK_S = 0.5          # phase/timing reference and background update
SUB_PER_BLOCK = 5      # 0.1 s sub-blocks
SUB_S = BLOCK_S / SUB_PER_BLOCK
BACKGROUND_TAU_S = 4.0
FAST_LAG_S = 0.02
#: Aligned CIR: first path at column ALIGN_BEFORE, ALIGN_WIDTH columns.
ALIGN_BEFORE = 8
ALIGN_WIDTH = 64
NOISE_COLS = slice(0, 4)
RANGE_COL0 = 6
#: Window (s) of one feature vector, its post period (s), and the hop (s).
WINDOW_S = 8.0
POST_S = 1.8
HOP_S = 0.2
CONTEXT_S = 30.0
#: log fast-change level (mean of the 4 strongest bins / noise) counted as activity
#: (e^2 ≈ 7x the noise; a quiet room gives 0.9-2.5).
ACTIVE_LOG = 2.0
#: Windows whose burst peak is below this (log; e^2.5 = 12x the noise) are not classified
#: (P = 0): 96 % of the fall windows are above it, half of the others below.
GATE_LOG = 2.5
MIN_RATE_HZ = 20.0
#: No decision before this much of the stream (s): the background and the context of
#: the stream's own motion need it.
START_S = 20.0
_W = int(round(WINDOW_S / SUB_S))
_POST = int(round(POST_S / SUB_S))
_BURST = _W - _POST
_HOP = int(round(HOP_S / SUB_S))
_CTX = int(round(CONTEXT_S / SUB_S))
_START = int(round(START_S / SUB_S))

#: Length of the sequences appended to the features (0.2 s steps over the last 6 s).
SEQ = 30
FEATURE_NAMES: tuple[str, ...] = (
    "peak_f",          # max log fast change (0.3 s smoothed, / noise) in the burst region
    "peak_e",          # max log motion energy (vs background, / noise) in the burst region
    "burst_s",         # length of the burst around its peak (s)
    "rise_s",          # burst start -> peak (s)
    "decay_s",         # peak -> burst end (s)
    "pre_f",           # mean log fast change, 2 s before the burst
    "pre_active_s",    # active time in the 4 s before the burst (s)
    "post_f",          # mean log fast change in the post period (stillness after)
    "post_fmax",       # max log fast change (smoothed) in the post period
    "post_e",          # mean log motion energy in the post period (the body moved: its new
                       # static reflection is not yet in the background)
    "settle_s",        # peak -> first 0.5 s without activity (time to stillness, s)
    "speed_ratio",     # mean (log fast change - log motion energy) over the burst
    "r_pre_m",         # range of the moving body before the burst (m, excess path / 2)
    "r_post_m",        # range of the changed reflection in the post period (m)
    "r_shift_m",       # r_post - r_pre (m): where the body went (height-drop proxy)
    "r_span_m",        # span of the moving body's range during the burst (m)
    "r_rate_m_s",      # peak range rate of the moving body during the burst (m/s)
    "r_spread_m",      # range spread of the burst's fast change (m)
    "energy_log",      # log burst energy (fast change above noise x s)
    "front_frac",      # share of the burst energy in its first half
    "ctx_log",         # peak_f - 95th pct of the previous 30 s (this stream's own motion)
    "posture_log",     # log |profile after - profile before| / its noise (posture change)
    "rise_rate",       # largest 0.5 s rise of the smoothed log fast change in the burst
    "stop_drop",       # peak - mean log fast change in the 1 s after the burst (abrupt stop)
    "e_jump",          # post - pre mean log motion energy (a new static reflection)
    "burst_bins",      # range bins whose fast change exceeds 4x the noise in the burst
) + tuple(f"lf_{i:02d}" for i in range(SEQ)) + tuple(f"le_{i:02d}" for i in range(SEQ)) + (
    # v1.4: what tells a fall from the end of a walk, a squat, a bend (docs/uwb-fall.md)
    "walk_ac",         # stride periodicity before the burst: max autocorrelation of the
                       # log fast change at 0.4-1.3 s lags over the 4 s before it
    "gain_log",        # log energy of the bins whose magnitude rose (after vs before)
    "loss_log",        # ... and fell (the body left them)
    "gain_shift_m",    # range of the rise - range of the fall (m): where the body went
    "posture_spread_m",  # range spread of the posture change |after - before|^2 (m)
    "posture_peak",    # share of the posture change in its strongest bin
    "post_e_spread_m",  # range spread of the post period's motion energy (m)
    "post_trend",      # last 0.6 s - first 0.6 s mean log fast change of the post period
    "pre_e",           # mean log motion energy 2 s before the burst
)
# v1.2: the last 6 s of the (0.2 s averaged) log fast change and log motion energy, oldest
# first, minus the window's median: the shape of the burst and of the quiet after it
N_FEATURES = len(FEATURE_NAMES)
_F = {n: i for i, n in enumerate(FEATURE_NAMES)}
CLASSES: tuple[str, ...] = ("other", "fall")
RANGE_PER_COL_M = 299_792_458.0 / 998.4e6 / 2


# ----------------------------------------------------------------------------- conditioning


@dataclass
class SubBlocks:
    """Per-0.1 s statistics from :class:`CirMotion` (arrays over sub-blocks)."""

    t_s: np.ndarray       # (n,) time of each sub-block's last frame
    noise: np.ndarray     # (n,) noise power per tap
    E: np.ndarray         # (n, bins) motion energy vs background
    F: np.ndarray         # (n, bins) fast change (20 ms lag)
    S: np.ndarray         # (n, bins) complex mean profile
    nf: np.ndarray        # (n,) frames used

    @classmethod
    def empty(cls, bins: int) -> SubBlocks:
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, bins)), np.zeros((0, bins)),
                   np.zeros((0, bins), complex), np.zeros(0, int))


class CirMotion:
    """Phase/timing refinement, clutter removal and 0.1 s motion statistics of aligned CIRs.

    Push aligned ``uwb_cir`` Frames (first path at column :data:`ALIGN_BEFORE`); returns
    the completed :class:`SubBlocks`. Frames are processed in blocks of a fixed number of
    frames counted from the stream start, so chunk boundaries do not change anything.
    """

    def __init__(self, fs_hz: float) -> None:
        self.fs_hz = float(fs_hz)
        self.sub = max(1, int(round(SUB_S * fs_hz)))
        self.block = self.sub * SUB_PER_BLOCK
        self.lag = max(1, int(round(FAST_LAG_S * fs_hz)))
        self.alpha = 1.0 - np.exp(-BLOCK_S / BACKGROUND_TAU_S)
        self.bg: np.ndarray | None = None
        self._buf_x: list[np.ndarray] = []
        self._buf_t: list[np.ndarray] = []
        self._n_buf = 0
        self._prev: np.ndarray | None = None   # last `lag` refined frames
        self.dropped = 0
        self.frames = 0

    def push(self, x: np.ndarray, t: np.ndarray) -> SubBlocks:
        """Add aligned frames ``x`` (n, cols) at times ``t``; the completed sub-blocks."""
        self._buf_x.append(np.asarray(x, np.complex64))
        self._buf_t.append(np.asarray(t, np.float64))
        self._n_buf += len(x)
        out: list[SubBlocks] = []
        if self._n_buf >= self.block:
            X = np.concatenate(self._buf_x)
            T = np.concatenate(self._buf_t)
            k = (len(X) // self.block) * self.block
            for i in range(0, k, self.block):
                out.append(self._block(X[i:i + self.block], T[i:i + self.block]))
            self._buf_x, self._buf_t = [X[k:]], [T[k:]]
            self._n_buf = len(X) - k
        if not out:
            return SubBlocks.empty(ALIGN_WIDTH - RANGE_COL0)
        return SubBlocks(*(np.concatenate([getattr(o, f) for o in out])
                           for f in ("t_s", "noise", "E", "F", "S", "nf")))

    def _block(self, x: np.ndarray, t: np.ndarray) -> SubBlocks:
        self.frames += len(x)
        if self.bg is None:
            self.bg = x[0].astype(np.complex64)
        bg = self.bg
        d = np.gradient(bg)
        # carrier phase per frame against the background
        c = x @ bg.conj()
        y = x * (np.conj(c) / np.maximum(np.abs(c), 1e-30))[:, None].astype(np.complex64)
        # residual timing error (taps): least squares on the background's derivative
        dd = float(np.vdot(d, d).real) or 1.0
        delta = ((y - bg) @ d.conj()).real / dd
        y = y - (delta[:, None] * d[None, :]).astype(np.complex64)
        diff = y - bg
        resid = (diff.real ** 2 + diff.imag ** 2).sum(1)
        ebg = float((bg.real ** 2 + bg.imag ** 2).sum())
        ok = (np.abs(delta) < 0.6) & (resid < 0.5 * ebg)
        all_ok = bool(ok.all())
        if not all_ok:  # hold the last good frame for dropped ones
            self.dropped += int((~ok).sum())
            idx = np.maximum.accumulate(np.where(ok, np.arange(len(y)), -1))
            first = self._prev[-1] if self._prev is not None else bg
            y = np.where((idx >= 0)[:, None], y[np.maximum(idx, 0)], first[None, :])
            diff = y - bg
        prev = self._prev if self._prev is not None else np.repeat(y[:1], self.lag, 0)
        r = slice(RANGE_COL0, None)
        yr = y[:, r]
        yy = np.concatenate([prev[:, r], yr])
        fd = yy[self.lag:] - yy[:-self.lag]
        fast = fd.real ** 2 + fd.imag ** 2
        self._prev = y[-self.lag:].copy()
        dr = diff[:, r]
        m = dr.real ** 2 + dr.imag ** 2
        yn = y[:, NOISE_COLS]
        noise = (yn.real ** 2 + yn.imag ** 2).mean(1)
        n_sub, k = SUB_PER_BLOCK, self.sub
        # dropped frames hold the last good one: plain means over the sub-block
        def mean_sub(a: np.ndarray) -> np.ndarray:
            return a.reshape(n_sub, k, *a.shape[1:]).mean(1)

        cnt = ok.reshape(n_sub, k).sum(1)
        out = SubBlocks(t.reshape(n_sub, k)[:, -1], np.maximum(mean_sub(noise), 1e-12),
                        mean_sub(m), mean_sub(fast), mean_sub(yr), cnt)
        good = y if all_ok else y[ok]
        if len(good):
            self.bg = (bg + self.alpha * (good.mean(0) - bg)).astype(np.complex64)
        return out


# ----------------------------------------------------------------------------- features


def _centroid(w: np.ndarray) -> float:
    s = float(w.sum())
    if s <= 0:
        return float("nan")
    return float((w * np.arange(w.shape[-1])).sum() / s) * RANGE_PER_COL_M


def window_features(lf: np.ndarray, le: np.ndarray, F: np.ndarray, E: np.ndarray,
                    S: np.ndarray, noise: np.ndarray, nf: np.ndarray,
                    ctx: np.ndarray) -> tuple[np.ndarray, int]:
    """Features of one 8 s window (80 sub-blocks) and the burst start (sub-block index).

    Parameters
    ----------
    lf, le : numpy.ndarray
        ``(80,)`` log fast change and log motion energy per sub-block (/ noise, per bin).
    F, E : numpy.ndarray
        ``(80, bins)`` per-bin fast change and motion energy divided by the noise power.
    S : numpy.ndarray
        ``(80, bins)`` complex mean profiles.
    noise : numpy.ndarray
        ``(80,)`` noise power; ``nf`` frames per sub-block.
    ctx : numpy.ndarray
        Smoothed ``lf`` of the previous 30 s (may be shorter at the stream start).
    """
    sm = np.convolve(lf, np.ones(3) / 3, mode="same")
    sb = sm[:_BURST]
    # the latest strong burst of the burst region (a decision comes ~2 s after a fall, so
    # a fall is the last burst before the quiet post period): its peak within 1.5 s
    top = float(sb.max())
    last = int(np.flatnonzero(sb >= max(top - 1.5, ACTIVE_LOG))[-1]) if top >= ACTIVE_LOG \
        else int(np.argmax(sb))
    lo = max(0, last - 15)
    ip = lo + int(np.argmax(sb[lo:last + 1]))
    peak = float(sb[ip])
    thr = max(peak - 1.0, ACTIVE_LOG)
    a = ip
    while a > 0 and sb[a - 1] >= thr:
        a -= 1
    b = ip
    while b < _W - 1 and sm[b + 1] >= thr:
        b += 1
    act = sm >= ACTIVE_LOG
    pre = slice(max(0, a - 20), a) if a > 0 else slice(0, 1)
    pre4 = slice(max(0, a - 40), a)
    post = slice(_BURST, _W)
    settle = _W - ip
    q = act[ip:]
    for k in range(len(q) - 4):
        if not q[k:k + 5].any():
            settle = k
            break
    burst = slice(a, b + 1)
    ex = np.maximum(np.exp(sm[burst]) - 1.0, 0.0)
    half = max(1, len(ex) // 2)
    wF = np.maximum(F - 2.0, 0.0)
    wE = np.maximum(E - 3.0, 0.0)
    wsum = wF[burst].sum(1)
    cents = np.full(len(wsum), np.nan)
    nzb = wsum > 0
    cents[nzb] = (wF[burst][nzb] @ np.arange(wF.shape[1])) / wsum[nzb] * RANGE_PER_COL_M
    good = np.isfinite(cents)
    r_burst = _centroid(wF[burst].sum(0))
    r_pre = _centroid(wF[pre].sum(0))
    if not np.isfinite(r_pre):
        r_pre = _centroid(wE[pre].sum(0))
    r_post = _centroid(wE[post].sum(0))
    rb = 0.0 if not np.isfinite(r_burst) else r_burst
    r_pre = rb if not np.isfinite(r_pre) else r_pre
    r_post = rb if not np.isfinite(r_post) else r_post
    if good.sum() >= 2:
        c = cents[good]
        span = float(c.max() - c.min())
        cs = np.convolve(c, np.ones(3) / 3, mode="same") if len(c) >= 3 else c
        rate = float(np.abs(np.diff(cs)).max() / SUB_S) if len(cs) >= 2 else 0.0
    else:
        span, rate = 0.0, 0.0
    wb = wF[burst].sum(0)
    if wb.sum() > 0:
        ax = np.arange(len(wb)) * RANGE_PER_COL_M
        mu = float((wb * ax).sum() / wb.sum())
        spread = float(np.sqrt((wb * (ax - mu) ** 2).sum() / wb.sum()))
    else:
        spread = 0.0
    ctx95 = float(np.partition(ctx, int(0.95 * (len(ctx) - 1)))[int(0.95 * (len(ctx) - 1))]
                  ) if len(ctx) else 0.0
    # posture change: mean profile after vs before the burst, over its noise
    n_pre = max(float(nf[pre].sum()), 1.0)
    n_post = max(float(nf[post].sum()), 1.0)
    sp = (S[pre] * nf[pre, None]).sum(0) / n_pre if a > 0 else S[0]
    sq = (S[post] * nf[post, None]).sum(0) / n_post
    nz = float(np.mean(noise)) * (1.0 / n_pre + 1.0 / n_post) * S.shape[1]
    posture = float(np.sum(np.abs(sq - sp) ** 2)) / max(nz, 1e-12)
    # v1.1: sharpness, abrupt stop, new static reflection, spatial extent
    i5 = np.arange(a, b + 1)
    rise_rate = float(np.max(sm[i5] - sm[np.maximum(i5 - 5, 0)])) if len(i5) else 0.0
    after = slice(min(b + 1, _W - 1), min(b + 11, _W))
    stop_drop = peak - float(lf[after].mean())
    e_jump = float(le[post].mean() - le[pre].mean())
    burst_bins = float((F[burst].max(0) > 4.0).sum())
    onset_i = max(a, ip - 7)
    feats = np.array([
        peak, float(le[:_BURST].max()), (b - a + 1) * SUB_S, (ip - a) * SUB_S,
        (b - ip) * SUB_S, float(lf[pre].mean()), float(act[pre4].sum() * SUB_S),
        float(lf[post].mean()), float(sm[post].max()), float(le[post].mean()),
        settle * SUB_S, float(np.mean(lf[burst] - le[burst])), r_pre, r_post,
        r_post - r_pre, span, min(rate, 20.0), spread,
        float(np.log1p(ex.sum() * SUB_S)), float(ex[:half].sum() / max(ex.sum(), 1e-9)),
        peak - ctx95, float(np.log1p(posture)),
        rise_rate, stop_drop, e_jump, burst_bins,
    ], dtype=np.float32)
    seq_f = lf[-2 * SEQ:].reshape(SEQ, 2).mean(1)
    seq_e = le[-2 * SEQ:].reshape(SEQ, 2).mean(1)
    extra = _fall_vs_ordinary(lf, le, E, sp, sq, nz, a, pre, pre4, post)
    feats = np.concatenate([feats, seq_f - np.median(lf), seq_e - np.median(le), extra]
                           ).astype(np.float32)
    return feats, onset_i


def _spread_m(w: np.ndarray) -> float:
    """Weighted standard deviation of the range (m) of a per-bin weight ``w``."""
    s = float(w.sum())
    if s <= 0:
        return 0.0
    ax = np.arange(len(w)) * RANGE_PER_COL_M
    mu = float((w * ax).sum() / s)
    return float(np.sqrt(max(float((w * (ax - mu) ** 2).sum()) / s, 0.0)))


def _fall_vs_ordinary(lf: np.ndarray, le: np.ndarray, E: np.ndarray, sp: np.ndarray,
                      sq: np.ndarray, nz: float, a: int, pre: slice, pre4: slice,
                      post: slice) -> np.ndarray:
    """The v1.4 features (the last 9 of :data:`FEATURE_NAMES`): stride periodicity before
    the burst, where the body's reflection appeared and disappeared (magnitude profile
    after vs before), the range extent of the change and of the post-period motion, the
    post period's trend and the motion energy before."""
    walk_ac = 0.0
    seg = lf[pre4]
    if len(seg) >= 20:
        z = seg - seg.mean()
        den = float(z @ z)
        if den > 1e-9:
            walk_ac = max(float(z[:-k] @ z[k:]) / den * len(z) / (len(z) - k)
                          for k in range(4, 14))
    nb = max(nz / max(len(sp), 1), 1e-12)      # noise power per bin of the difference
    dm = np.abs(sq) - np.abs(sp)
    gain = np.maximum(dm, 0.0) ** 2
    loss = np.maximum(-dm, 0.0) ** 2
    g_r, l_r = _centroid(gain), _centroid(loss)
    shift = g_r - l_r if np.isfinite(g_r) and np.isfinite(l_r) else 0.0
    d2 = np.abs(sq - sp) ** 2
    peak_share = float(d2.max() / max(float(d2.sum()), 1e-12))
    wE = np.maximum(E[post] - 3.0, 0.0).sum(0)
    n6 = 6
    trend = float(lf[post][-n6:].mean() - lf[post][:n6].mean())
    pre_e = float(le[pre].mean()) if a > 0 else float(le[0])
    return np.array([walk_ac, float(np.log1p(gain.sum() / nb)), float(np.log1p(loss.sum() / nb)),
                     shift, _spread_m(d2), peak_share, _spread_m(wE), trend, pre_e],
                    dtype=np.float32)


def align_cirs(x: np.ndarray, fpi: np.ndarray, rxpacc: np.ndarray | None) -> np.ndarray:
    """CIRs aligned on their first path: normalised by RXPACC, first path at column
    :data:`ALIGN_BEFORE`, :data:`ALIGN_WIDTH` columns, sub-tap (band-limited) shift.

    The convention of :class:`sensing.uwb.conditioning.CirAligner` (same window, same
    normalisation), computed with a 128-point single-precision FFT (``scipy.fft``):
    ~5x faster, which a day of 50 Hz frames needs.
    """
    import scipy.fft as sfft

    from sensing.uwb.conditioning import detect_first_path, normalise_cir

    x = normalise_cir(x, rxpacc)
    fpi = np.asarray(fpi, np.float64).copy()
    bad = ~np.isfinite(fpi) | (fpi < 0) | (fpi >= x.shape[1])
    if bad.any():
        fpi[bad] = detect_first_path(x[bad])
    fpi = np.where(np.isfinite(fpi), fpi, 0.0)
    whole = np.floor(fpi).astype(np.int64)
    frac = fpi - whole
    extra = 8
    width = ALIGN_WIDTH + 2 * extra
    left = ALIGN_BEFORE + extra + 1
    xp = np.pad(x, ((0, 0), (left, width + 1)))
    idx = np.clip(whole - ALIGN_BEFORE - extra + left, 0, x.shape[1] + left)
    win = np.take_along_axis(xp, idx[:, None] + np.arange(width)[None, :], axis=1)
    spec = sfft.fft(win, _NFFT, axis=1)
    q = np.minimum(np.rint(frac * _RAMP_STEPS).astype(np.int64), _RAMP_STEPS)
    spec *= _RAMPS[q]
    out = sfft.ifft(spec, axis=1)[:, extra:extra + ALIGN_WIDTH]
    return out.astype(np.complex64)


_NFFT = 128
_RAMP_STEPS = 256   # sub-tap shifts quantised to 1/256 tap
_RAMPS = np.exp(2j * np.pi * (np.arange(_RAMP_STEPS + 1)[:, None] / _RAMP_STEPS)
                * np.fft.fftfreq(_NFFT)[None, :]).astype(np.complex64)


#: Frames are decimated to at most this rate before the features (from the stream start).
DECIMATE_TO_HZ = 50.0


class FallFeatureExtractor:
    """Streaming features of ``uwb_cir`` Frames: every :data:`HOP_S` seconds a vector of
    :data:`FEATURE_NAMES` over the last :data:`WINDOW_S` seconds (bounded memory: 8 s of
    per-bin 0.1 s statistics and 30 s of scalars).

    Frames above 50 Hz are decimated (every ``round(fs / 50)``-th frame, counted from the
    stream start), so the features are the same at any frame rate ≥ 50 Hz.

    ``push(frames)`` returns ``(times_s (k,), features (k, N_FEATURES), burst_start_s (k,),
    gated (k,) bool)`` (gated: the burst is below :data:`GATE_LOG`, not classified;
    its features are then not computed, all zero).
    """

    window_s = WINDOW_S

    def __init__(self) -> None:
        self.motion: CirMotion | None = None
        bins = ALIGN_WIDTH - RANGE_COL0
        self.h_lf = np.zeros(0)
        self.h_le = np.zeros(0)
        self.h_F = np.zeros((0, bins), np.float32)
        self.h_E = np.zeros((0, bins), np.float32)
        self.h_S = np.zeros((0, bins), np.complex64)
        self.h_noise = np.zeros(0)
        self.h_nf = np.zeros(0)
        self.h_t = np.zeros(0)
        self.n_sub = 0
        self.fs_hz: float | None = None
        self.step = 0
        self.too_slow = False
        self.n_in = 0
        #: (t, smoothed log fast change) of each new sub-block (for fall_cleared)
        self.recent: list[tuple[float, float]] = []

    def push(self, frames: Frames) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        self.recent = []
        return self._add(self.subblocks(frames))

    def push_subblocks(self, sb: SubBlocks) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                    np.ndarray]:
        """:meth:`push` from conditioned sub-blocks (:meth:`subblocks`; training cache)."""
        self.recent = []
        return self._add(sb)

    def subblocks(self, frames: Frames) -> SubBlocks:
        """Conditioning only: decimation, alignment, :class:`CirMotion` sub-blocks."""
        bins = ALIGN_WIDTH - RANGE_COL0
        if not len(frames):
            return SubBlocks.empty(bins)
        if self.motion is None:
            from sensing.uwb.conditioning import frame_rate

            fs = frame_rate(frames)
            if not fs:
                return SubBlocks.empty(bins)
            self.fs_hz = fs
            if fs < MIN_RATE_HZ:   # too slow for a fall's motion: nothing is computed
                self.motion = CirMotion(fs)
                self.too_slow = True
        if self.too_slow:
            return SubBlocks.empty(bins)
        if self.step == 0:
            self.step = max(1, int(round(self.fs_hz / DECIMATE_TO_HZ)))
            self.motion = CirMotion(self.fs_hz / self.step)
        n = len(frames)
        keep = np.flatnonzero((self.n_in + np.arange(n)) % self.step == 0)
        self.n_in += n
        if not len(keep):
            return SubBlocks.empty(bins)
        fpi = frames.fields.get("first_path_index")
        fpi = np.full(n, np.nan) if fpi is None else np.asarray(fpi, np.float64)
        acc = frames.fields.get("rxpacc")
        x = align_cirs(np.asarray(frames.data)[keep], fpi[keep],
                       None if acc is None else np.asarray(acc)[keep])
        return self.motion.push(x, np.asarray(frames.times_s)[keep])

    def _add(self, sb: SubBlocks) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        k = len(sb.t_s)
        self.recent = []
        if not k:
            return _EMPTY()
        n0 = sb.noise[:, None]
        Fn = (sb.F / (2 * n0)).astype(np.float32)
        En = (sb.E / n0).astype(np.float32)
        lf = np.log(np.maximum(_top_mean(Fn), 1e-3))
        le = np.log(np.maximum(_top_mean(En), 1e-3))
        keep = _W + _CTX
        h_lf = np.concatenate([self.h_lf, lf])
        h_le = np.concatenate([self.h_le, le])
        h_F = np.concatenate([self.h_F, Fn])
        h_E = np.concatenate([self.h_E, En])
        h_S = np.concatenate([self.h_S, sb.S.astype(np.complex64)])
        h_noise = np.concatenate([self.h_noise, sb.noise])
        h_nf = np.concatenate([self.h_nf, sb.nf])
        h_t = np.concatenate([self.h_t, sb.t_s])
        off = len(h_lf) - k          # index (in h_lf) of the first new sub-block
        off_o = len(h_le) - k        # the same in the other (shorter) histories
        # trailing 0.3 s mean of the log fast change of each new sub-block
        c = np.concatenate([[0.0], np.cumsum(h_lf)])
        i = np.arange(off, len(h_lf))
        lo = np.maximum(i - 2, 0)
        trail = (c[i + 1] - c[lo]) / (i + 1 - lo)
        self.recent = list(zip(h_t[off_o:].tolist(), trail.tolist(), strict=True))
        ts, fs, starts, gates = [], [], [], []
        for j in range(k):
            n_sub = self.n_sub + j + 1
            if n_sub < _W or n_sub % _HOP:
                continue
            e = off + j + 1           # window = h_lf[e - _W : e]
            eo = off_o + j + 1        # ... = h_le[eo - _W : eo]
            lfw = h_lf[e - _W:e]
            smw = np.convolve(lfw, np.ones(3) / 3, mode="same")
            tw = h_t[eo - _W:eo]
            ts.append(float(tw[-1]))
            if float(smw[:_BURST].max()) < GATE_LOG or n_sub < _START:
                fs.append(np.zeros(N_FEATURES, np.float32))
                starts.append(float(tw[0]))
                gates.append(True)
                continue
            ctx_raw = h_lf[max(0, e - _W - _CTX):e - _W]
            ctx = (np.convolve(ctx_raw, np.ones(3) / 3, mode="same")
                   if len(ctx_raw) >= 3 else ctx_raw)
            sl = slice(eo - _W, eo)
            feats, a = window_features(lfw, h_le[sl], h_F[sl], h_E[sl], h_S[sl],
                                       h_noise[sl], h_nf[sl], ctx)
            fs.append(feats)
            starts.append(float(tw[a]) - SUB_S)
            gates.append(False)
        self.n_sub += k
        self.h_lf, self.h_le = h_lf[-keep:], h_le[-_W:]
        self.h_F, self.h_E, self.h_S = h_F[-_W:], h_E[-_W:], h_S[-_W:]
        self.h_noise, self.h_nf, self.h_t = h_noise[-_W:], h_nf[-_W:], h_t[-_W:]
        if not ts:
            return _EMPTY()
        return np.array(ts), np.stack(fs), np.array(starts), np.array(gates)


def _top_mean(a: np.ndarray, k: int = 4) -> np.ndarray:
    """Mean of the ``k`` largest values of each row (the bins the body is in)."""
    return np.partition(a, a.shape[1] - k, axis=1)[:, -k:].mean(1)


def _EMPTY() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # noqa: N802
    return (np.zeros(0), np.zeros((0, N_FEATURES), np.float32), np.zeros(0),
            np.zeros(0, bool))


def extract_features(chunks: Sequence[Frames] | Any) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray, np.ndarray]:
    """All feature windows of a stream of Frames (for training and tests)."""
    ex = FallFeatureExtractor()
    parts = [ex.push(fr) for fr in chunks]
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return (np.zeros(0), np.zeros((0, N_FEATURES), np.float32), np.zeros(0),
                np.zeros(0, bool))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))  # type: ignore[return-value]


def window_labels(times_s: np.ndarray, falls: Sequence[dict[str, Any]]) -> np.ndarray:
    """Training labels of windows ending at ``times_s``: 1 = fall (its impact lies 1.6–5 s
    before the window end, its onset inside the window), 0 = other, −1 = left out
    (a fall in the window that is not labelled 1)."""
    y = np.zeros(len(times_s), np.int64)
    for f in falls:
        on, imp = float(f["onset_s"]), float(f["impact_s"])
        lag = times_s - imp
        inside = (times_s - WINDOW_S <= on) & (times_s >= on)
        pos = (lag >= 1.6) & (lag <= 5.0) & inside
        amb = (times_s >= on - 0.5) & (times_s - WINDOW_S <= imp + 1.0) & ~pos
        y[amb & (y == 0)] = -1
        y[pos] = 1
    return y


# ----------------------------------------------------------------------------- rule


def _step(x: float | np.ndarray, at: float, width: float) -> np.ndarray:
    """Soft step: 0.5 at ``at``, → 1 above (width > 0) or below (width < 0)."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(x, float) - at) / width))


#: Thresholds of the rule (see docs/uwb-fall.md for how they were set).
RULE = {"peak_f": 3.0, "burst_s_max": 2.2, "post_fmax_max": 2.0, "posture_log": 2.5,
        "r_rate_m_s": 1.5, "settle_s_max": 3.0}


def rule_fall_probability(X: np.ndarray) -> np.ndarray:
    """Documented rule fallback: P(fall) per window ``(n, N_FEATURES)``.

    Product of soft steps: a strong burst of fast change (``peak_f`` ≥ 3.0, e³ ≈ 20× the
    noise), short (``burst_s`` ≤ 2.2 s), moving fast in range (``r_rate_m_s`` ≥ 1.5 m/s)
    and changing the posture (``posture_log`` ≥ 2.5), then still (``post_fmax`` ≤ 2.0 and
    ``settle_s`` ≤ 3 s).
    """
    X = np.atleast_2d(np.asarray(X, float))
    c = {n: X[:, i] for n, i in _F.items()}
    r = RULE
    p = (_step(c["peak_f"], r["peak_f"], 0.3) * _step(c["burst_s"], r["burst_s_max"], -0.25)
         * _step(c["post_fmax"], r["post_fmax_max"], -0.25)
         * _step(c["posture_log"], r["posture_log"], 0.4)
         * _step(c["r_rate_m_s"], r["r_rate_m_s"], 0.3)
         * _step(c["settle_s"], r["settle_s_max"], -0.3))
    return p.astype(np.float32)


# ----------------------------------------------------------------------------- detector


class FallDetectorParams(Params):
    """Options of :class:`FallDetector` (the operating point)."""

    threshold: float = param(0.5, gt=0, lt=1, doc="P(fall) at or above which a window "
                                                   "counts")
    consecutive: int = param(2, ge=1, le=20, doc="windows over the threshold needed ...")
    within: int = param(3, ge=1, le=30, doc="... among the last this many (0.2 s apart)")
    refractory_s: float = param(30.0, unit="s", ge=0, le=3600,
                                doc="no second fall event within this time")
    clear_active_s: float = param(1.5, unit="s", gt=0, le=30,
                                  doc="movement within 2 s that clears a fall (getting up)")
    clear_after_s: float = param(3.0, unit="s", ge=0, le=600,
                                 doc="fall_cleared only this long after the fall alert")


@dataclass
class FallEvent:
    """A detector output: ``kind`` ``"fall"`` or ``"fall_cleared"``."""

    kind: str
    offset_s: float
    detect_s: float
    confidence: float
    method: str
    extra: dict[str, Any] = field(default_factory=dict)


class FallDetector:
    """Features → P(fall) → debounced ``fall`` / ``fall_cleared`` events.

    Parameters
    ----------
    params : FallDetectorParams, optional
        Operating point.
    predict_proba : callable, optional
        ``X (n, k) -> (n, n_classes)``; None: :func:`rule_fall_probability`.
    labels : sequence of str
        Class order of ``predict_proba`` (must contain ``"fall"``).
    n_features : int, optional
        Columns the model takes (the first ``n_features`` of :data:`FEATURE_NAMES`).
    """

    def __init__(self, params: FallDetectorParams | None = None, /, *,
                 predict_proba: Callable[[np.ndarray], np.ndarray] | None = None,
                 labels: Sequence[str] = CLASSES, n_features: int | None = None,
                 **options: Any) -> None:
        self.params = FallDetectorParams.build(params, options, where="FallDetector")
        p = self.params
        if p.consecutive > p.within:
            raise ValueError(f"consecutive ({p.consecutive}) > within ({p.within})")
        self.predict_proba = predict_proba
        self.fall_col = list(labels).index("fall") if predict_proba is not None else 0
        self.n_features = n_features or N_FEATURES
        self.method = "model" if predict_proba is not None else "rule"
        self.extractor = FallFeatureExtractor()
        self.deb = Debouncer(p.threshold, on_count=p.consecutive, on_window=p.within,
                             refractory_s=p.refractory_s, latch=False)
        n_clear = int(round(2.0 / SUB_S))
        self.clear = Debouncer(ACTIVE_LOG,
                               on_count=min(n_clear, int(round(p.clear_active_s / SUB_S))),
                               on_window=n_clear, latch=False)
        self.down_since: float | None = None
        self.max_p = 0.0
        self.windows = 0

    def probabilities(self, X: np.ndarray, gated: np.ndarray) -> np.ndarray:
        """P(fall) of feature windows (0 where gated)."""
        p = np.zeros(len(X), np.float32)
        live = ~gated
        if live.any():
            if self.predict_proba is None:
                p[live] = rule_fall_probability(X[live])
            else:
                pr = np.asarray(self.predict_proba(
                    np.ascontiguousarray(X[live][:, :self.n_features], np.float32)))
                p[live] = pr[:, self.fall_col]
        return p

    def push(self, frames: Frames) -> list[FallEvent]:
        t, X, starts, gated = self.extractor.push(frames)
        p = self.probabilities(X, gated) if len(t) else np.zeros(0)
        return self.decide(t, p, starts, X, self.extractor.recent)

    def decide(self, t: np.ndarray, p: np.ndarray, starts: np.ndarray, X: np.ndarray,
               recent: Sequence[tuple[float, float]]) -> list[FallEvent]:
        """Events from window probabilities ``p`` (at window ends ``t``, with burst starts
        and features) and the sub-block activity ``recent`` (for ``fall_cleared``), in
        time order: what :meth:`push` does after the features (the benchmark feeds one
        extractor's output to several detectors)."""
        events: list[FallEvent] = []
        self.windows += len(t)
        if len(p):
            self.max_p = max(self.max_p, float(np.max(p)))
        wi = 0
        for ts, act in recent:
            while wi < len(t) and t[wi] <= ts:
                ev = self._window(t[wi], float(p[wi]), starts[wi], X[wi])
                if ev:
                    events.append(ev)
                wi += 1
            if self.down_since is not None and ts >= self.down_since + self.params.clear_after_s:
                tr = self.clear.step(ts, act)
                if tr is not None and tr.kind == "on":
                    first = tr.inputs[0].t_s if tr.inputs else ts
                    events.append(FallEvent("fall_cleared", first - SUB_S, ts, 0.9, self.method,
                                            {"down_s": round(first - self.down_since, 2)}))
                    self.down_since = None
        while wi < len(t):
            ev = self._window(t[wi], float(p[wi]), starts[wi], X[wi])
            if ev:
                events.append(ev)
            wi += 1
        return events

    def _window(self, t: float, p: float, start: float, x: np.ndarray) -> FallEvent | None:
        tr = self.deb.step(t, p, item=(start, x))
        if tr is None or tr.kind != "on":
            return None
        onset = float(tr.inputs[0].item[0]) if tr.inputs else start
        conf = float(np.mean([i.value for i in tr.inputs])) if tr.inputs else p
        xf = tr.inputs[0].item[1] if tr.inputs else x
        self.down_since = t
        self.clear.reset()
        return FallEvent("fall", onset, t, conf, self.method,
                         {"peak_f": round(float(xf[_F["peak_f"]]), 3),
                          "r_rate_m_s": round(float(xf[_F["r_rate_m_s"]]), 3),
                          "r_shift_m": round(float(xf[_F["r_shift_m"]]), 3)})

    def flush(self) -> list[FallEvent]:
        return []

    def quiet_reason(self) -> str | None:
        fs = self.extractor.fs_hz
        if fs is not None and fs < MIN_RATE_HZ:
            return (f"frame rate {fs:.1f} Hz: fall detection needs >= {MIN_RATE_HZ:.0f} Hz "
                    "CIR frames")
        if self.windows == 0:
            return f"capture shorter than the {WINDOW_S:.0f} s feature window"
        return f"no fall: highest P(fall) {self.max_p:.2f} ({self.method})"
