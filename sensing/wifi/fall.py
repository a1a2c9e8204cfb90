"""Fall detection from WiFi CSI (amplitude, and since v4 the phase-aligned complex change):
streaming features, classifier-driven detector and a rule-based fallback.

A fall is a fast descent (0.5–1 s, peak body speed 3–6 m/s) followed by lying still, which
in the CSI looks like a short, strong burst of amplitude fluctuation that decorrelates the
channel within 20 ms, with a fast onset, a change of the static multipath profile (the body
ends up at floor level) and quiet afterwards. Walking is long and
periodic, sitting and lying down are slower, picking something up returns to the same
profile.

Feature pipeline (streaming, bounded memory)
--------------------------------------------
1. Decimation: at most one packet (the first) per 20 ms bin of a 50 Hz grid
   (:func:`decimate_mask`), so that every per-bin change has the same noise at any packet
   rate ≥ 50 Hz.
2. ``|H|`` per packet; null/guard tones (median < 5 % of the median) dropped; each packet
   divided by its mean amplitude (AGC normalisation) and, separately, its log taken.
3. Both binned to the 50 Hz grid with :class:`sensing.dsp.UniformBinner`;
   empty bins hold the last value for the amplitude profile, and changes that involve an
   empty bin are left out.
4. Changes over fixed lags: *fast* = mean |20 ms change| of the normalised amplitudes
   (frequency-selective motion), *fast3* = the same over 60 ms (fast motion decorrelates
   within 20 ms, slow motion does not), *common* = |mean 20 ms change of the log
   amplitudes| (common-mode motion; averaging the subcarriers removes most noise, a
   per-block median removes AGC steps). 0.1 s blocks keep these, the per-bin common
   changes and the mean amplitude profile.
5. Everything is divided by a noise floor = 20th percentile of the last 60 s of blocks, so
   the features do not depend on the device's noise level or SNR.
6. Every ``hop_s`` (0.5 s) a 20 s span gives :data:`FEATURE_NAMES`: the first 23 describe
   its first 10 s (the *burst window*, centred on its strongest burst; plus the packet
   rate and three context features relative to the same stream's previous motion), the
   next 10 describe the last 10 s (the *post period*: does the person stay down, still,
   with a changed profile?) and the burst's shape at 20 ms resolution (sharpness,
   concentration, speed ratio), the last 7 (v4) the same span through the complex change
   of the CSI (:func:`complex_change`). A fall is therefore decided ≥ 10 s after it
   happened.

Decision
--------
:class:`FallDetector` turns per-window fall probabilities (from a classifier's
``predict_proba`` or from :func:`rule_fall_probability`) into fall events: ``consecutive``
windows at or above ``threshold`` among the last ``within`` raise a candidate; with
``still_s`` > 0 the candidate becomes an event only if the person then stays still (a hand
rule kept as an option; since v3 the classifier itself sees the 10 s post period); then
``refractory_s`` seconds of silence (the k-of-n and refractory logic is
:class:`sensing.dsp.Debouncer` in pulse mode).
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensing.dsp import Debouncer, RingBuffer, UniformBinner
from sensing.frames import Frames
from sensing.params import Params, param

GRID_HZ = 50.0
BLOCK_BINS = 5  # 0.1 s blocks
BLOCK_S = BLOCK_BINS / GRID_HZ
WINDOW_S = 10.0
#: Seconds after the burst window that the classifier also sees (post-event stillness):
#: each feature vector covers ``WINDOW_S + POST_S`` = 20 s; it is decided at its end.
POST_S = 10.0
HOP_S = 0.5
FLOOR_S = 60.0
#: Version of the feature computation (part of the feature-cache key of models/train_fall).
FEATURE_VERSION = "v4-complex"
#: Multiple of the noise floor above which a block counts as active.
ACTIVE_X = 3.0
NULL_FRACTION = 0.05

FEATURE_NAMES: tuple[str, ...] = (
    "peak_log",            # log peak common-mode change (0.3 s smoothed) / floor
    "t_peak_s",            # time of the peak in the window (s)
    "burst_s",             # length of the burst around the peak (s)
    "rise_s",              # burst start -> peak (s)
    "decay_s",             # peak -> burst end (s)
    "after_s",             # burst end -> window end (s)
    "pre_log",             # mean log common-mode change, 2 s before the burst
    "post_log",            # mean log common-mode change after the burst (+0.5 s)
    "post_max_log",        # max log common-mode change after the burst (+0.5 s)
    "burst_energy_log",    # log sum of common-mode change over the burst
    "posture_log",         # log |profile after - profile before the burst| / slow floor
    "net_ratio",           # net profile change / profile path length over the burst
    "slow_peak_log",       # log peak block-to-block profile change in the burst / floor
    "fast_peak_log",       # log peak frequency-selective packet change in the burst / floor
    "post_drift_log",      # log profile drift within the after-burst period / slow floor
    "periodicity",         # max autocorrelation of log common-mode change at 0.5-1.5 s
    "active_s",            # time with common-mode change > 3x floor in the window (s)
    "n_bursts",            # separate active runs in the window
    "front_fraction",      # share of the burst energy in its first half
    "packet_rate_hz",      # packets per second in the window (the noise floor depends on it)
    # context: the window's motion relative to this stream's own recent motion (the previous
    # 50 s), so that the scale of a person/room/device (scatter strength, SNR, packet rate)
    # cancels out; a fall is the strongest motion in a long while, the end of a walk is not
    "ctx_peak_log",        # log peak common-mode change / 95th pct of the previous 50 s
    "ctx_fast_log",        # log peak frequency-selective change / 95th pct of the previous 50 s
    "ctx_ref_log",         # log 95th pct of the previous 50 s of common-mode change / floor
    # v3: the POST_S (10 s) after the burst window: does the person stay down, and where?
    "still_max_log",       # log max common-mode change (0.3 s smoothed) / floor, post period
    "still_mean_log",      # mean log common-mode change / floor, post period
    "still_fast_log",      # log 90th pct frequency-selective change / floor, post period
    "still_drift_log",     # log profile drift (1st vs 2nd half of the post period) / slow floor
    "still_active_s",      # time with common-mode change > 3x floor in the post period (s)
    "final_posture_log",   # log |post-period profile - profile before the burst| / slow floor
    # v3: burst shape at 20 ms resolution (per-bin common-mode change)
    "fine_peak_log",       # log max per-bin (20 ms) common-mode change in the burst / floor
    "energy_t10_90_s",     # time between 10 % and 90 % of the burst's cumulative energy (s)
    "peak_half_s_frac",    # largest share of the burst energy within 0.5 s
    "speed_ratio",         # excess 20 ms change / excess 60 ms change over the burst (fast
                           # motion decorrelates within 20 ms: ~1; slow motion: ~1/3)
    # v4: complex decorrelation of the CSI vector (phase included, after removing the
    # receiver's common phase and timing slope): sees motion the amplitude misses when the
    # body's path is in quadrature with the static channel
    "cpeak_log",           # log peak 20 ms complex change (0.3 s smoothed) / floor, burst window
    "cburst_s",            # length of the complex-change burst around its peak (s)
    "crise_s",             # its start -> peak (s)
    "cspeed_ratio",        # excess 20 ms / excess 60 ms complex change over that burst
    "cpost_max_log",       # log max complex change (0.3 s smoothed) / floor, post period
    "cpost_log",           # log 90th pct complex change / floor, post period
    "cctx_log",            # log peak complex change / 95th pct of the previous 50 s
)
#: Features of the first released model (20); a model trained on them keeps working: the
#: detector passes it the first ``n_features`` columns. (Since v3 the first 23 features
#: describe the burst window ``[end - 20 s, end - 10 s]`` instead of ``[end - 10 s, end]``.)
N_BASE_FEATURES = 20
N_FEATURES = len(FEATURE_NAMES)
_F = {n: i for i, n in enumerate(FEATURE_NAMES)}

#: Classes of the shipped classifier, in probability-column order.
CLASSES: tuple[str, ...] = ("still", "walk", "sit", "stand_up", "lie_down", "pick_up", "fall")


# ----------------------------------------------------------------------------- features


def window_features(fast: np.ndarray, prof: np.ndarray, floor_fast: float,
                    floor_slow: float, common: np.ndarray, floor_common: float) -> np.ndarray:
    """Features of one window, centred on its strongest burst of motion.

    Parameters
    ----------
    fast : numpy.ndarray
        ``(n_blocks,)`` mean packet-to-packet change of the AGC-normalised amplitudes per
        0.1 s block (frequency-selective part of the motion).
    prof : numpy.ndarray
        ``(n_blocks, n_subcarriers)`` mean normalised amplitude profile per block.
    floor_fast, floor_slow : float
        Noise floors of ``fast`` and of the block-to-block profile change.
    common : numpy.ndarray
        ``(n_blocks,)`` median |mean change of log amplitude| between packets per block
        (common-mode part of the motion, the highest-SNR motion signal).
    floor_common : float
        Noise floor of ``common``.

    Returns
    -------
    numpy.ndarray
        float32 ``(N_FEATURES,)`` in the order of :data:`FEATURE_NAMES`.
    """
    bs = BLOCK_S
    n = len(common)
    ec = np.maximum(common / max(floor_common, 1e-9), 1e-3)
    lc = np.log(ec)
    sm = np.convolve(ec, np.ones(3) / 3, mode="same")
    ip, a, b = _burst(sm)
    peak = float(sm[ip])
    k = np.sqrt(prof.shape[1])
    fs = max(floor_slow, 1e-9)
    slow = np.r_[0.0, np.linalg.norm(np.diff(prof, axis=0), axis=1) / k / fs]
    pre = slice(max(0, a - 20), a) if a > 0 else slice(0, 1)
    post0 = min(b + 6, n - 1)
    post = slice(post0, n)
    before = prof[max(0, a - 10):max(a, 1)].mean(0)
    after = prof[post].mean(0)
    posture = float(np.linalg.norm(after - before) / k / fs)
    path = float(slow[a:b + 2].sum())
    ef = np.maximum(fast / max(floor_fast, 1e-9), 1e-3)
    burst = ec[a:b + 1]
    half = max(1, len(burst) // 2)
    mid = post0 + (n - post0) // 2
    drift = (np.linalg.norm(prof[post0:mid].mean(0) - prof[mid:].mean(0)) / k / fs
             if n - post0 >= 4 else 0.0)
    x = lc - lc.mean()
    den = float(np.dot(x, x))
    period = max(float(np.dot(x[:-lag], x[lag:]) / den) for lag in range(5, 16)) if den > 1e-9 else 0.0
    act = ec > ACTIVE_X
    runs = np.flatnonzero(np.diff(np.r_[0, act.astype(int)]) == 1)
    n_bursts = int(np.sum(np.diff(runs) > 5)) + 1 if len(runs) else 0
    return np.array([
        np.log(max(peak, 1e-3)), ip * bs, (b - a + 1) * bs, (ip - a) * bs, (b - ip) * bs,
        (n - 1 - b) * bs, lc[pre].mean(), lc[post].mean(), lc[post].max(),
        np.log(burst.sum()), np.log(max(posture, 1e-3)), posture / max(path, 1e-6),
        np.log(max(slow[a:b + 2].max(), 1e-3)), np.log(ef[a:b + 1].max()),
        np.log(max(drift, 1e-3)), period, act.sum() * bs, n_bursts,
        burst[:half].sum() / burst.sum(),
    ], dtype=np.float32)


@dataclass
class FeatureWindow:
    """One feature window.

    Attributes
    ----------
    end_s : float
        Stream time of the window end (s).
    features : numpy.ndarray
        ``(N_FEATURES,)`` float32.
    """

    end_s: float
    features: np.ndarray


def decimate_mask(times_s: np.ndarray, last_bin: int | None) -> tuple[np.ndarray, int | None]:
    """Keep at most one packet (the first) per 20 ms grid bin.

    With one packet per bin the noise of every per-bin change is the same at any packet
    rate ≥ 50 Hz, so the features (changes divided by their noise floor) do not depend on
    the packet rate (v2 averaged the packets of a bin: its noise, hence its feature scale,
    fell with the rate and recall collapsed at 80–120 Hz).

    Parameters
    ----------
    times_s : numpy.ndarray
        Packet times (s) of one chunk.
    last_bin : int or None
        Grid bin of the last packet kept from earlier chunks.

    Returns
    -------
    keep : numpy.ndarray of bool
        Packets to keep.
    last_bin : int or None
        Updated grid bin of the last kept packet.
    """
    b = np.floor(np.asarray(times_s, float) * GRID_HZ).astype(np.int64)
    if not len(b):
        return np.zeros(0, bool), last_bin
    prev = np.maximum.accumulate(np.r_[np.int64(-2**62 if last_bin is None else last_bin),
                                       b[:-1]])
    keep = b > prev
    kept = b[keep]
    return keep, (int(kept[-1]) if len(kept) else last_bin)


def _burst(sm: np.ndarray) -> tuple[int, int, int]:
    """Peak index and first/last block of the burst around it (above 15 % of the peak
    and ``ACTIVE_X``)."""
    n = len(sm)
    ip = int(np.argmax(sm))
    level = max(ACTIVE_X, 0.15 * float(sm[ip]))
    a = ip
    while a > 0 and sm[a - 1] > level:
        a -= 1
    b = ip
    while b < n - 1 and sm[b + 1] > level:
        b += 1
    return ip, a, b


def post_features(common: np.ndarray, cbins: np.ndarray, fast: np.ndarray, fast3: np.ndarray,
                  prof: np.ndarray, floor_common: float, floor_fast: float, floor_fast3: float,
                  floor_slow: float, n_burst: int) -> np.ndarray:
    """v3 features of a ``WINDOW_S + POST_S`` span: the post period and the burst shape.

    Parameters
    ----------
    common : numpy.ndarray
        ``(n,)`` per-block median common-mode change (0.1 s blocks; first ``n_burst``
        blocks = burst window, the rest = post period).
    cbins : numpy.ndarray
        ``(n, BLOCK_BINS)`` per-bin (20 ms) common-mode change.
    fast, fast3 : numpy.ndarray
        ``(n,)`` per-block mean frequency-selective change over 20 ms and over 60 ms.
    prof : numpy.ndarray
        ``(n, n_subcarriers)`` mean normalised amplitude profile per block.
    floor_common, floor_fast, floor_fast3, floor_slow : float
        Noise floors (20th percentiles of the last 60 s) of ``common``, ``fast``, ``fast3``
        and of the block-to-block profile change.
    n_burst : int
        Blocks of the burst window.

    Returns
    -------
    numpy.ndarray
        float32 ``(10,)``: the ``still_*``, ``final_posture_log`` and burst-shape features of
        :data:`FEATURE_NAMES`, in order.
    """
    bs = BLOCK_S
    fc = max(floor_common, 1e-9)
    ec = np.maximum(common / fc, 1e-3)
    sm = np.convolve(ec, np.ones(3) / 3, mode="same")
    ip, a, b = _burst(sm[:n_burst])
    post = slice(n_burst, len(ec))
    k = np.sqrt(prof.shape[1])
    fs = max(floor_slow, 1e-9)
    pp = prof[post]
    h = len(pp) // 2
    drift = np.linalg.norm(pp[:h].mean(0) - pp[h:].mean(0)) / k / fs
    before = prof[max(0, a - 10):max(a, 1)].mean(0)
    final = np.linalg.norm(pp.mean(0) - before) / k / fs
    ef = fast / max(floor_fast, 1e-9)
    # burst shape on the 20 ms bins of the burst +- 0.5 s
    lo, hi = max(0, a - 5), min(n_burst, b + 6)
    cb = cbins[lo:hi].ravel() / fc
    cb = cb[np.isfinite(cb)]
    ex = np.maximum(cb - 1.0, 0.0)
    tot = float(ex.sum())
    if tot > 1e-6:
        cum = np.cumsum(ex) / tot
        t1090 = (np.searchsorted(cum, 0.9) - np.searchsorted(cum, 0.1)) / GRID_HZ
        w = int(0.5 * GRID_HZ)
        half = float(np.convolve(ex, np.ones(w), mode="valid").max() / tot) if len(ex) >= w \
            else 1.0
    else:
        t1090, half = 0.0, 1.0
    e1 = np.maximum(fast[a:b + 1] - floor_fast, 0.0).sum()
    e3 = np.maximum(fast3[a:b + 1] - floor_fast3, 0.0).sum()
    speed = float(e1 / e3) if e3 > 1e-9 else 1.0
    return np.array([
        np.log(max(float(sm[post].max()), 1e-3)), float(np.log(ec[post]).mean()),
        np.log(max(_pct(ef[post], 90), 1e-3)), np.log(max(drift, 1e-3)),
        float((ec[post] > ACTIVE_X).sum()) * bs, np.log(max(final, 1e-3)),
        np.log(max(float(cb.max()) if len(cb) else 1e-3, 1e-3)), t1090, half,
        min(speed, 3.0),
    ], dtype=np.float32)


def complex_change(x: np.ndarray, y: np.ndarray, sc: np.ndarray | None = None,
                   ant: np.ndarray | None = None) -> np.ndarray:
    """Decorrelation between CSI vectors, blind to the receiver's phase offsets.

    The receiver adds a random common phase (CFO) and a linear phase slope over the
    subcarriers (timing offset) to every packet; both are removed by aligning ``x`` to
    ``y`` (slope from the mean phase step of ``x·y*`` between neighbouring tones of one
    antenna, common phase and gain by least squares). What remains is the change of the
    channel itself.

    Parameters
    ----------
    x, y : numpy.ndarray
        Complex ``(n, n_columns)`` CSI of packets and of the packets to compare with.
    sc : numpy.ndarray, optional
        Subcarrier index of each column (default ``0 .. n_columns - 1``); gaps (DC, nulls)
        are respected by the slope.
    ant : numpy.ndarray, optional
        Antenna (link) of each column (default: all one); each antenna is aligned with
        its own common phase, their decorrelations are averaged.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` sqrt(1 - |rho|²) (0 = same channel, 1 = uncorrelated), rho the correlation
        of the aligned vectors: the relative size of the part of ``x`` that no phase
        offset explains.
    """
    m = x.shape[1]
    sc = np.arange(m) if sc is None else np.asarray(sc)
    ant = np.zeros(m, int) if ant is None else np.asarray(ant)
    order = np.lexsort((sc, ant))
    adjacent = (ant[order[1:]] == ant[order[:-1]]) & (np.diff(sc[order]) == 1)
    nxt, prv = order[1:][adjacent], order[:-1][adjacent]
    z = x * np.conj(y)
    slope = np.angle(np.sum(z[:, nxt] * np.conj(z[:, prv]), axis=1))
    zr = z * np.exp(-1j * slope[:, None] * sc[None])
    dec = np.zeros(len(x))
    ants = np.unique(ant)
    for a in ants:
        c = ant == a
        num = np.abs(np.sum(zr[:, c], axis=1)) ** 2
        den = np.sum(np.abs(x[:, c]) ** 2, axis=1) * np.sum(np.abs(y[:, c]) ** 2, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            dec += 1.0 - np.where(den > 0, num / den, 0.0)
    return np.sqrt(np.clip(dec / len(ants), 0.0, 1.0))


def complex_features(cd: np.ndarray, cd3: np.ndarray, n_burst: int, floor_cd: float,
                     floor_cd3: float, ref_cd: float) -> np.ndarray:
    """v4 features from the complex change of a ``WINDOW_S + POST_S`` span.

    Parameters
    ----------
    cd, cd3 : numpy.ndarray
        ``(n,)`` per-block mean :func:`complex_change` over 20 ms and over 60 ms.
    n_burst : int
        Blocks of the burst window (the rest is the post period).
    floor_cd, floor_cd3 : float
        Noise floors (20th percentiles of the last 60 s) of ``cd`` and ``cd3``.
    ref_cd : float
        95th percentile of ``cd`` before the span (the stream's recent motion).

    Returns
    -------
    numpy.ndarray
        float32 ``(7,)``: the ``c*`` features of :data:`FEATURE_NAMES`, in order.
    """
    bs = BLOCK_S
    fc = max(floor_cd, 1e-9)
    ec = np.maximum(cd / fc, 1e-3)
    sm = np.convolve(ec, np.ones(3) / 3, mode="same")
    ip, a, b = _burst(sm[:n_burst])
    e1 = np.maximum(cd[a:b + 1] - floor_cd, 0.0).sum()
    e3 = np.maximum(cd3[a:b + 1] - floor_cd3, 0.0).sum()
    speed = float(e1 / e3) if e3 > 1e-9 else 1.0
    post = slice(n_burst, len(ec))
    return np.array([
        np.log(max(float(sm[ip]), 1e-3)), (b - a + 1) * bs, (ip - a) * bs, min(speed, 3.0),
        np.log(max(float(sm[post].max()), 1e-3)), np.log(max(_pct(ec[post], 90), 1e-3)),
        np.log(max(float(sm[ip]) * fc / max(ref_cd, 1e-9), 1e-3)),
    ], dtype=np.float32)


#: Block-statistic columns that hold their last value through blocks without a valid
#: change: common, fast, fast3, complex change over 20 and 60 ms.
_HELD = np.array([0, 1, 2, 10, 11])


class FallFeatureExtractorParams(Params):
    """Options of :class:`FallFeatureExtractor` (rounded to whole 0.1 s blocks)."""

    window_s: float = param(WINDOW_S, unit="s", ge=BLOCK_S, le=600,
                            doc="burst window: the first part of each feature span")
    hop_s: float = param(HOP_S, unit="s", gt=0, le=600, doc="time between feature windows")
    floor_s: float = param(FLOOR_S, unit="s", gt=0, le=3600,
                           doc="history used for the noise floors")
    post_s: float = param(POST_S, unit="s", ge=BLOCK_S, le=600,
                          doc="post period after the burst window (does the person stay "
                              "down?)")


class FallFeatureExtractor:
    """Streaming fall features: push CSI chunks, get one :class:`FeatureWindow` per hop.

    A :class:`sensing.stage.Stage`. Each window covers ``window_s + post_s`` seconds: the
    burst window (the first ``window_s``, described by the first 23 features) and the post
    period (the last ``post_s``: does the person stay down?). Packets are decimated to at
    most one per 20 ms bin (:func:`decimate_mask`). Memory is bounded by ``floor_s`` seconds
    of 0.1 s block statistics plus one span of block profiles, whatever the stream length.

    Parameters
    ----------
    params : FallFeatureExtractorParams, optional
        The options (positional only); default ``FallFeatureExtractorParams()``.
    **options
        Option values applied over ``params``: ``window_s``, ``hop_s``, ``post_s``
        (burst-window length, hop and post period, s; multiples of 0.1 s) and ``floor_s``
        (history used for the noise floors, s).

    Raises
    ------
    sensing.params.OptionError
        An unknown option or a bad value.
    """

    Params = FallFeatureExtractorParams

    def __init__(self, params: FallFeatureExtractorParams | None = None, /,
                 **options: Any) -> None:
        self.params = p = FallFeatureExtractorParams.build(params, options,
                                                           where="FallFeatureExtractor")
        self.window_blocks = int(round(p.window_s / BLOCK_S))
        self.post_blocks = int(round(p.post_s / BLOCK_S))
        self.span_blocks = self.window_blocks + self.post_blocks
        self.hop_blocks = max(1, int(round(p.hop_s / BLOCK_S)))
        self.window_s = self.window_blocks * BLOCK_S
        self.post_s = self.post_blocks * BLOCK_S
        self.span_s = self.span_blocks * BLOCK_S
        self._floor_len = max(int(round(p.floor_s / BLOCK_S)), self.span_blocks)
        self._reset(None)

    def _reset(self, shape: tuple[int, ...] | None) -> None:
        self._shape = shape
        self._valid: np.ndarray | None = None
        self._binner: UniformBinner | None = None
        self._last_pkt_bin: int | None = None  # grid bin of the last kept packet
        self._hist: np.ndarray | None = None  # last 3 filled 50 Hz bins
        self._hist_ok = np.zeros(3, bool)  # ... and whether they held a packet
        self._pend_rows: np.ndarray | None = None  # bins of the open block
        self._pend_bins: np.ndarray | None = None
        span, fl = self.span_blocks, self._floor_len
        n_sc = int(self._valid.sum()) if self._valid is not None else 0
        # per block: common-mode change, 20/60 ms frequency-selective change, slow
        # (profile) change, packets, the 5 per-bin common-mode changes, 20/60 ms complex
        # change; the profile separately
        self._blocks = RingBuffer(fl, (7 + BLOCK_BINS,))
        self._prof: RingBuffer | None = RingBuffer(span, (n_sc,)) if n_sc else None

    def push(self, frames: Frames) -> list[FeatureWindow]:
        """Consume one chunk; return the windows it completed."""
        if not len(frames):
            return []
        keep, self._last_pkt_bin = decimate_mask(frames.times_s, self._last_pkt_bin)
        if not keep.any():  # every packet in the 20 ms bin of one already kept
            return []
        csi = np.asarray(frames.data)[keep]
        csi = csi.reshape(len(csi), -1)
        amp = np.abs(csi).astype(np.float32)
        times = np.asarray(frames.times_s, float)[keep]
        if self._shape is not None and amp.shape[1:] != self._shape:
            self._reset(amp.shape[1:])
        self._shape = amp.shape[1:]
        if self._valid is None:
            med = np.median(amp, axis=0)
            self._valid = med > NULL_FRACTION * max(float(np.median(med)), 1e-9)
            self._binner = UniformBinner(GRID_HZ, 3 * int(self._valid.sum()))
            # subcarrier index and antenna of each column (subcarrier-major flattening)
            shape = np.asarray(frames.data).shape[1:]
            n_sc, n_ant = (shape[0], int(np.prod(shape[1:]))) if shape else (1, 1)
            sub = (np.asarray(frames.subcarriers) if frames.subcarriers is not None
                   and len(frames.subcarriers) == n_sc else np.arange(n_sc))
            self._sc = np.repeat(sub, n_ant)[self._valid]
            self._ant = np.tile(np.arange(n_ant), n_sc)[self._valid]
            self._prof = RingBuffer(self.span_blocks, (int(self._valid.sum()),))
        raw = amp[:, self._valid]
        la = np.log(np.maximum(raw, 0.5))
        a = raw / np.maximum(raw.mean(axis=1, keepdims=True), 1e-9)
        first, means, counts, _ = self._binner.add(np.hstack([a, la, csi[:, self._valid]]),
                                                   times)
        rows = means
        cnt = counts.astype(float)
        bins = first + np.arange(len(rows))
        ok = counts > 0
        # empty bins (lost packets, jitter) hold the last value for the profile; changes
        # involving them are left out (NaN), so that every change is between two single
        # packets 20 (60) ms apart: the same noise at any packet rate
        if not ok.all():
            idx = np.where(ok, np.arange(len(rows)), -1)
            idx = np.maximum.accumulate(idx)
            if self._hist is not None:
                rows = np.vstack([self._hist[-1:], rows])
                idx = idx + 1
                bins = np.r_[bins[0] - 1, bins]
                cnt = np.r_[0.0, cnt]
                ok = np.r_[False, ok]
                keep_b = np.r_[False, np.ones(len(idx), bool)]
                idx = np.r_[0, idx]
            else:
                keep_b = idx >= 0
            rows = rows[np.maximum(idx, 0)][keep_b]
            bins = bins[keep_b]
            cnt = cnt[keep_b]
            ok = ok[keep_b]
        if not len(rows):
            return []
        # changes over fixed lags of the 50 Hz grid, so that they do not scale with the
        # packet rate: d = mean |20 ms change| of the AGC-normalised amplitudes
        # (frequency-selective part), d3 = the same over 60 ms (fast motion decorrelates
        # within 20 ms, slow motion does not: d/d3 measures speed); c = |mean 20 ms change
        # of log amplitude| (common part: the subcarrier average removes most noise; AGC
        # steps are removed by a block median)
        k = rows.shape[1] // 3
        if self._hist is None:
            self._hist = np.repeat(rows[:1], 3, axis=0)
            self._hist_ok = np.zeros(3, bool)
        ext = np.vstack([self._hist, rows])
        eok = np.r_[self._hist_ok, ok]
        amps = ext[:, :2 * k].real
        d = np.mean(np.abs(amps[3:, :k] - amps[2:-1, :k]), axis=1)
        d3 = np.mean(np.abs(amps[3:, :k] - amps[:-3, :k]), axis=1)
        c = np.abs(np.mean(amps[3:, k:] - amps[2:-1, k:], axis=1))
        # complex decorrelation (v4): what the phase adds to the amplitude change
        cd = complex_change(ext[3:, 2 * k:], ext[2:-1, 2 * k:], self._sc, self._ant)
        cd3 = complex_change(ext[3:, 2 * k:], ext[:-3, 2 * k:], self._sc, self._ant)
        ok1 = eok[3:] & eok[2:-1]
        ok3 = eok[3:] & eok[:-3]
        d[~ok1] = np.nan
        c[~ok1] = np.nan
        cd[~ok1] = np.nan
        d3[~ok3] = np.nan
        cd3[~ok3] = np.nan
        self._hist = ext[-3:].copy()
        self._hist_ok = eok[-3:].copy()
        rows = np.hstack([amps[3:, :k], d[:, None], d3[:, None], cd[:, None], cd3[:, None],
                          c[:, None], cnt[:, None]])
        return self._add_bins(bins, rows)

    def _add_bins(self, bins: np.ndarray, rows: np.ndarray) -> list[FeatureWindow]:
        if self._pend_rows is not None:
            rows = np.vstack([self._pend_rows, rows])
            bins = np.r_[self._pend_bins, bins]
        if not len(rows):
            return []
        blk = bins // BLOCK_BINS
        done = blk < blk[-1]  # the last block stays open
        self._pend_rows, self._pend_bins = rows[~done], bins[~done]
        rows, bins, blk = rows[done], bins[done], blk[done]
        if not len(rows):
            return []
        starts = np.flatnonzero(np.r_[True, blk[1:] != blk[:-1]])
        n_in = np.diff(np.r_[starts, len(blk)])
        means = np.add.reduceat(np.nan_to_num(rows), starts, axis=0) / n_in[:, None]
        # the changes: mean over the valid (non-NaN) ones
        with np.errstate(invalid="ignore", divide="ignore"):
            n_ok = np.add.reduceat(np.isfinite(rows[:, -6:-2]), starts, axis=0)
            means[:, -6:-2] = means[:, -6:-2] * n_in[:, None] / n_ok
        # per-bin common-mode change by position in its block; its median per block is
        # robust to single-packet AGC steps
        pad = np.full((len(starts), BLOCK_BINS), np.nan)
        pad[np.repeat(np.arange(len(starts)), n_in), bins % BLOCK_BINS] = rows[:, -2]
        with warnings.catch_warnings():  # all-NaN blocks: handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            common = np.nanmedian(pad, axis=1)
        profs = means[:, :-6]
        prev = np.vstack([self._prof.buf[-1:], profs[:-1]])
        slow = np.sqrt(np.mean((profs - prev) ** 2, axis=1))
        if not len(self._prof):
            slow[0] = np.nan
        stats = np.column_stack([common, means[:, -6], means[:, -5], slow,
                                 means[:, -1] * n_in, pad, means[:, -4], means[:, -3]])
        # a block without any valid change (a burst of lost packets) holds the last values
        held = _HELD
        last = np.nan_to_num(self._blocks.buf[-1, held])
        for j in range(len(stats)):
            row = stats[j, held]
            bad = ~np.isfinite(row)
            row[bad] = last[bad]
            stats[j, held] = row
            last = row
        out: list[FeatureWindow] = []
        for j, b in enumerate(blk[starts]):
            self._blocks.append(stats[j])
            self._prof.append(profs[j])
            if (b + 1) % self.hop_blocks == 0 and len(self._prof) >= self.span_blocks:
                out.append(self._window(int(b)))
        return out

    def flush(self) -> list[FeatureWindow]:
        """End of stream: the open block and a span not yet complete give no window, so
        ``[]``."""
        return []

    def _window(self, b: int) -> FeatureWindow:
        nb, span = self.window_blocks, self.span_blocks
        hist = self._blocks.view()
        fc, ff, f3, fsl = (_p20(hist[:, i]) for i in range(4))
        cur = hist[-span:]
        common, fast, fast3 = cur[:, 0], cur[:, 1], cur[:, 2]
        prof = self._prof.view()
        x = window_features(fast[:nb], prof[:nb], ff, fsl, common[:nb], fc)
        rate = float(cur[:nb, 4].sum()) / self.window_s
        # context features: the burst window compared with the blocks before it (>= 5 s
        # of them, else the whole history)
        n_before = len(hist) - span
        prev = hist[:n_before] if n_before >= 50 else hist
        sm = np.convolve(common[:nb], np.ones(3) / 3, mode="same")
        refc, reff = max(_pct(prev[:, 0], 95), 1e-9), max(_pct(prev[:, 1], 95), 1e-9)
        ctx = np.r_[np.log(max(sm.max(), 1e-9) / refc),
                    np.log(max(fast[:nb].max(), 1e-9) / reff),
                    np.log(refc / max(fc, 1e-9))]
        post = post_features(common, cur[:, 5:5 + BLOCK_BINS], fast, fast3, prof, fc, ff, f3,
                             fsl, nb)
        fcd, fcd3 = _p20(hist[:, 10]), _p20(hist[:, 11])
        cplx = complex_features(cur[:, 10], cur[:, 11], nb, fcd, fcd3,
                                max(_pct(prev[:, 10], 95), 1e-9))
        x = np.r_[x, np.float32(rate), ctx, post, cplx].astype(np.float32)
        return FeatureWindow((b + 1) * BLOCK_S, x)


def _pct(arr: np.ndarray, q: float) -> float:
    """``q``-th percentile (lower order statistic, NaN ignored) of a history (1e-9 when
    empty)."""
    arr = arr[np.isfinite(arr)]
    if not len(arr):
        return 1e-9
    k = int(q / 100 * (len(arr) - 1))
    return float(np.partition(arr, k)[k])


def _p20(arr: np.ndarray) -> float:
    """20th percentile (noise floor) of a history of block values."""
    return _pct(arr, 20)


def extract_features(chunks, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Run :class:`FallFeatureExtractor` over a whole stream.

    Parameters
    ----------
    chunks : iterable of Frames
        The ``wifi_csi`` stream.
    **kw
        :class:`FallFeatureExtractorParams` options.

    Returns
    -------
    end_s : numpy.ndarray
        ``(n_windows,)`` window ends (s).
    X : numpy.ndarray
        ``(n_windows, N_FEATURES)`` float32.
    """
    ex = FallFeatureExtractor(**kw)
    ends: list[float] = []
    feats: list[np.ndarray] = []
    for fr in chunks:
        for w in ex.push(fr):
            ends.append(w.end_s)
            feats.append(w.features)
    for w in ex.flush():
        ends.append(w.end_s)
        feats.append(w.features)
    X = np.stack(feats) if feats else np.empty((0, N_FEATURES), np.float32)
    return np.asarray(ends), X


# ----------------------------------------------------------------------------- labels


def window_labels(intervals: Sequence[dict[str, Any]], end_s: np.ndarray,
                  window_s: float = WINDOW_S, post_s: float = 4.0) -> list[str]:
    """Ground-truth class of each window from labelled activity intervals.

    * ``fall`` — a fall's descent lies entirely inside the window, starting at least 0.5 s
      after its start, and at least ``post_s`` seconds of the window follow the impact
      (the person is seen to stay down);
    * ``fall_partial`` — the window overlaps a fall otherwise (not used for training);
    * otherwise the non-still activity overlapping the window longest (``get_up`` counts as
      ``stand_up``) if it overlaps ≥ 0.3 s, else ``still``.

    Parameters
    ----------
    intervals : sequence of dict
        ``label``, ``start_s``, ``end_s`` (+ ``impact_s`` for falls), as in the truth sidecar
        of ``csi-activity``.
    end_s : numpy.ndarray
        Window ends (s).
    """
    starts = np.array([iv["start_s"] for iv in intervals])
    ends = np.array([iv["end_s"] for iv in intervals])
    labs = [iv["label"] for iv in intervals]
    out = []
    for t in np.asarray(end_s, float):
        w0 = t - window_s
        lab = "still"
        best = 0.3
        for i in np.flatnonzero((ends > w0) & (starts < t)):
            if labs[i] == "fall":
                impact = intervals[i].get("impact_s", ends[i])
                if starts[i] >= w0 + 0.5 and impact <= t - post_s:
                    lab, best = "fall", np.inf
                elif best < np.inf:
                    lab, best = "fall_partial", np.inf - 1
                continue
            if labs[i] == "still":
                continue
            ov = min(ends[i], t) - max(starts[i], w0)
            if ov > best:
                lab, best = ("stand_up" if labs[i] == "get_up" else labs[i]), ov
        out.append(lab)
    return out


# ----------------------------------------------------------------------------- rule


#: Rule thresholds (v3), set by hand from the per-class feature medians and fall 10th/90th
#: percentiles of training captures (seeds 40-79; docs/fall.md): a strong (``peak_log``; falls
#: median e^3.8 x floor, sit-downs e^2.5, lie-downs e^3.0) and sharp (``fine_peak_log``: e^4.9
#: vs e^3.2 / e^4.1) burst of fast motion (``speed_ratio`` 0.62 vs 0.40 for sit-downs,
#: lie-downs and walks), short (``burst_s``; walks 2.4 s) and concentrated
#: (``peak_half_s_frac`` 0.76 vs 0.46 lie-downs, 0.35 walks), then 10 s of stillness
#: (``still_max_log`` e^1.1, 90th pct e^1.4; walks, stand-ups and pick-ups e^3) without
#: profile drift (``still_drift_log``; e^-1.8, 90th pct e^-1.3).
RULE = {"peak_log": 3.3, "fine_peak_log": 4.3, "burst_s": 1.8, "speed_ratio": 0.5,
        "peak_half_s_frac": 0.55, "still_max_log": 1.6, "still_drift_log": -1.2}
#: Operating point of the rule (its own; chosen on the tuning split, seeds 50 000-50 019 and
#: 60 000-60 039: tune event F1 0.61, 13 false alarms in 10.2 h; docs/fall.md).
RULE_OPERATING_POINT = {"threshold": 0.5, "consecutive": 6, "refractory_s": 30.0}


class FallOperatingPointParams(Params):
    """The :class:`FallDetector` options an operating point may set (manifest
    ``extra.operating_points``, ``wifi_fall`` pipeline options); the decision rules are
    described at :class:`FallDetector`."""

    threshold: float = param(0.5, ge=0, le=1, doc="fall probability needed per window "
                                                 "(of the mean over `average` windows)")
    average: int = param(1, ge=1, doc="windows (0.5 s apart) whose fall probabilities are "
                                      "averaged before the threshold (1 = each window alone)")
    consecutive: int = param(2, ge=1, doc="windows at or above the threshold among the last "
                                          "`within` needed to raise an event")
    within: int | None = param(None, ge=1, doc="length of that run of windows, 0.5 s apart "
                                               "(unset: `consecutive`, all in a row)")
    refractory_s: float = param(30.0, unit="s", ge=0, doc="no new event within this time "
                                                          "after one")
    still_s: float = param(0.0, unit="s", ge=0, doc="post-fall stillness confirmation "
                                                    "(0 = off)")
    still_log: float = param(np.inf, doc="highest peak_log (log multiple of the noise floor) "
                                         "that counts as still")
    settle_s: float = param(4.0, unit="s", ge=0, doc="time from the estimated onset to the "
                                                     "start of the stillness period")


#: The :class:`FallDetector` options an operating point may set: the fields of
#: :class:`FallOperatingPointParams`, in order.
OPERATING_POINT_KEYS: tuple[str, ...] = tuple(FallOperatingPointParams.model_fields)


def rule_fall_probability(X: np.ndarray) -> np.ndarray:
    """Rule-based fall probability per window (the fallback when no model is loaded).

    Each condition of :data:`RULE` becomes a soft step (logistic); the probability is their
    product: a strong (``peak_log``), sharp (``fine_peak_log``), fast (``speed_ratio``),
    short (``burst_s``) and concentrated (``peak_half_s_frac``) burst, followed by a post
    period (the last 10 s of the window) that is quiet (``still_max_log``) and in which the
    static profile does not drift (``still_drift_log``): the person stays down.

    Parameters
    ----------
    X : numpy.ndarray
        ``(n, N_FEATURES)`` features.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` values in [0, 1].
    """
    X = np.atleast_2d(np.asarray(X, float))

    def below(v, thr, scale):
        return 1.0 / (1.0 + np.exp(np.clip((v - thr) / scale, -50, 50)))

    def above(v, thr, scale):
        return 1.0 / (1.0 + np.exp(np.clip(-(v - thr) / scale, -50, 50)))

    p = above(X[:, _F["peak_log"]], RULE["peak_log"], 0.15)
    p = p * above(X[:, _F["fine_peak_log"]], RULE["fine_peak_log"], 0.15)
    p = p * below(X[:, _F["burst_s"]], RULE["burst_s"], 0.1)
    p = p * above(X[:, _F["speed_ratio"]], RULE["speed_ratio"], 0.03)
    p = p * above(X[:, _F["peak_half_s_frac"]], RULE["peak_half_s_frac"], 0.03)
    p = p * below(X[:, _F["still_max_log"]], RULE["still_max_log"], 0.1)
    p = p * below(X[:, _F["still_drift_log"]], RULE["still_drift_log"], 0.15)
    return p


# ----------------------------------------------------------------------------- detector


@dataclass
class FallEvent:
    """A detected fall.

    Attributes
    ----------
    onset_s : float
        Estimated start of the descent (s from stream start).
    detect_s : float
        Stream time at which the detector decided (s).
    confidence : float
        Highest fall probability of the triggering windows.
    method : str
        ``"model"`` or ``"rule"``.
    extra : dict
        ``burst_s``, ``windows`` etc.
    """

    onset_s: float
    detect_s: float
    confidence: float
    method: str
    extra: dict[str, Any] = field(default_factory=dict)


class FallDetectorParams(FallOperatingPointParams):
    """Options of :class:`FallDetector`: an operating point plus the warm-up."""

    warmup_s: float = param(20.0, unit="s", ge=0, doc="no decision on windows ending before "
                                                      "this stream time")


class FallDetector:
    """Streaming fall detector (a :class:`sensing.stage.Stage` of :class:`FallEvent`).

    Parameters
    ----------
    params : FallDetectorParams, optional
        The options (positional only); default ``FallDetectorParams()``.
    predict_proba : callable, optional
        ``X (n, N_FEATURES) -> (n, n_classes)`` probabilities (e.g. an ONNX model's
        ``predict_proba``). Without it the rule :func:`rule_fall_probability` is used.
    labels : sequence of str, optional
        Class names of the probability columns (default :data:`CLASSES`); must contain
        ``"fall"``.
    n_features : int, optional
        Number of leading feature columns the model takes (a model trained on the first
        :data:`N_BASE_FEATURES` features); default all.
    **options
        Option values applied over ``params`` (see :class:`FallDetectorParams`):

        threshold : float
            Fall probability needed per window (0–1); with ``average`` > 1, of the mean
            fall probability of the last ``average`` windows.
        average : int
            Windows (0.5 s apart) whose fall probabilities are averaged before the
            threshold is applied (1: each window alone). A fall gives a few seconds of
            fall-like windows whose probabilities vary from window to window; their mean
            is steadier than any one of them (v6 operating points; docs/fall.md).
        consecutive : int
            Windows at or above ``threshold`` among the last ``within`` windows needed to
            raise an event (``within`` = ``consecutive``: that many in a row).
        within : int, optional
            Length of that run of windows (default ``consecutive``). Windows come every
            0.5 s.
        refractory_s : float
            No new event within this time after one (s); a person lying on the floor
            after a fall keeps the windows quiet anyway.
        warmup_s : float
            No decision on windows ending before this stream time (s): the noise floors
            need some history (without it the first windows of a stream raised false
            alarms).
        still_s : float
            Post-fall stillness confirmation (s; 0 = off). A candidate (``consecutive``
            windows at or above ``threshold``) becomes an event only if the person then
            stays still: every window whose burst window (``[end - 20 s, end - 10 s]``)
            starts at or after ``onset + settle_s``, up to the first window ending at or
            after ``onset + settle_s + still_s``, must have ``peak_log`` (log peak
            common-mode motion / noise floor of its burst window) at or below
            ``still_log``; the event is decided at that last window. ``still_s`` ≥ the
            span (20 s) makes at least one window be checked. A candidate still pending
            when the stream ends is dropped. (Since v3 the classifier sees the post period
            itself; the shipped operating point records whether this is used.)
        still_log : float
            Highest ``peak_log`` (natural log of multiples of the noise floor) that counts
            as still. Falls in the simulator: ≤ 1.7 ten seconds after the impact;
            sit-down/lie-down followed by fidgeting, the end of a walk and pick-ups often
            exceed it.
        settle_s : float
            Time from the estimated onset to the start of the stillness period (s):
            descent, rebound and the onset estimate's error.

    Raises
    ------
    sensing.params.OptionError
        An unknown option or a bad value.
    ValueError
        ``labels`` have no ``"fall"`` class.
    """

    Params = FallDetectorParams

    def __init__(
        self,
        params: FallDetectorParams | None = None,
        /,
        *,
        predict_proba: Callable[[np.ndarray], np.ndarray] | None = None,
        labels: Sequence[str] | None = None,
        n_features: int | None = None,
        **options: Any,
    ) -> None:
        self.params = p = FallDetectorParams.build(params, options, where="FallDetector")
        self.predict_proba = predict_proba
        self.n_features = n_features
        self.warmup_s = p.warmup_s
        self.labels = list(labels) if labels is not None else list(CLASSES)
        if predict_proba is not None and "fall" not in self.labels:
            raise ValueError(f"labels {self.labels} have no 'fall' class")
        self.fall_index = self.labels.index("fall") if "fall" in self.labels else -1
        self.method = "model" if predict_proba is not None else "rule"
        self.threshold = p.threshold
        self.average = int(p.average)
        #: The last ``average - 1`` window probabilities (for the running mean).
        self._recent: deque[float] = deque(maxlen=max(self.average - 1, 1))
        self.consecutive = p.consecutive
        self.within = max(int(p.within or p.consecutive), self.consecutive)
        self.refractory_s = p.refractory_s
        self.still_s = p.still_s
        self.still_log = p.still_log
        self.settle_s = p.settle_s
        #: Windows pushed so far that ended after the warm-up, and their highest fall
        #: probability (for :meth:`quiet_reason`).
        self.n_windows = 0
        self.max_probability = 0.0
        self.extractor = FallFeatureExtractor()
        #: ``consecutive`` of the last ``within`` windows at or above the threshold raise a
        #: candidate, then ``refractory_s`` of silence (from the event's decision).
        self._debounce = Debouncer(self.threshold, on_count=self.consecutive,
                                   on_window=self.within, refractory_s=self.refractory_s,
                                   latch=False)
        self._pending: FallEvent | None = None  # candidate awaiting stillness confirmation

    def fall_probability(self, X: np.ndarray) -> np.ndarray:
        """Per-window fall probability of features ``X`` (model or rule)."""
        if not len(X):
            return np.empty(0)
        if self.predict_proba is None:
            return rule_fall_probability(X)
        X = np.asarray(X, np.float32)
        if self.n_features is not None:
            X = X[:, :self.n_features]  # a model trained on the first features only
        return np.asarray(self.predict_proba(X))[:, self.fall_index]

    def push(self, frames: Frames) -> list[FallEvent]:
        """Consume one chunk; return the fall events it completed."""
        wins = self.extractor.push(frames)
        if not wins:
            return []
        X = np.stack([w.features for w in wins])
        p = self.fall_probability(X)
        late = np.asarray([w.end_s for w in wins]) >= self.warmup_s
        if late.any():
            self.n_windows += int(late.sum())
            self.max_probability = max(self.max_probability, float(np.max(p[late])))
        return self.step([w.end_s for w in wins], X, p)

    def flush(self) -> list[FallEvent]:
        """End of stream: a candidate still awaiting its stillness confirmation is dropped,
        so ``[]``."""
        return []

    def quiet_reason(self) -> str | None:
        """Why no fall was found, in a few words (from the windows pushed so far)."""
        if not self.n_windows:
            need = max(self.extractor.span_s, self.warmup_s)
            return (f"capture shorter than {need:g} s (the {self.extractor.span_s:g} s "
                    f"feature span and the {self.warmup_s:g} s warm-up)")
        return (f"no fall: highest fall probability {self.max_probability:.2f} in "
                f"{self.n_windows} windows (threshold {self.threshold:g}, {self.method})")

    def step(self, ends: Sequence[float], X: np.ndarray, p: np.ndarray) -> list[FallEvent]:
        """Decision logic on precomputed windows (used by :meth:`push` and evaluation).

        Parameters
        ----------
        ends : sequence of float
            Window end times (s).
        X : numpy.ndarray
            ``(n, N_FEATURES)`` features of the windows.
        p : numpy.ndarray
            ``(n,)`` fall probabilities of the windows.

        Returns
        -------
        list of FallEvent
            Events decided by these windows.
        """
        out = []
        win_s = self.extractor.span_s  # the burst window starts span_s before the end
        for t, x, pi in zip(ends, X, p, strict=True):
            t, pi = float(t), float(pi)
            if self.average > 1:  # running mean of the last ``average`` windows
                mean = (pi + sum(self._recent)) / self.average
                self._recent.append(pi)
                pi = mean
            if self._pending is not None:
                ev = self._pending
                lo = ev.onset_s + self.settle_s
                hi = lo + self.still_s
                if t - win_s >= lo - 1e-6 and x[_F["peak_log"]] > self.still_log:
                    self._pending = None  # moved again: not a fall that stays down
                elif t >= hi - 1e-6:
                    ev.detect_s = t
                    ev.extra["still_s"] = self.still_s
                    out.append(ev)
                    self._debounce.last_on_s = t  # the refractory time starts now
                    self._pending = None
                continue
            if t < self.warmup_s:
                continue
            last_event = self._debounce.last_on_s
            fired = self._debounce.step(t, pi, x)
            if fired is not None:
                hits = fired.inputs  # the windows at or above the threshold
                t0, x0 = hits[0].t_s, hits[0].item
                onset = t0 - win_s + float(x0[_F["t_peak_s"]] - x0[_F["rise_s"]])
                conf = max(h.value for h in hits)
                ev = FallEvent(
                    onset_s=round(onset, 3), detect_s=t, confidence=round(conf, 4),
                    method=self.method,
                    extra={"burst_s": round(float(x0[_F["burst_s"]]), 2),
                           "windows": len(hits)})
                if self.still_s > 0:
                    # a candidate: the refractory time starts once it is confirmed
                    self._debounce.last_on_s = last_event
                    self._pending = ev
                else:
                    out.append(ev)
        return out
