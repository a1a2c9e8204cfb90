"""Fall detection from WiFi CSI amplitude: streaming features, classifier-driven detector and
a rule-based fallback.

A fall is a fast descent (0.5–1 s) followed by lying still, which in the CSI looks like a
short, strong burst of amplitude fluctuation with a fast onset, a large change of the static
multipath profile (the body ends up at floor level) and quiet afterwards. Walking is long and
periodic, sitting and lying down are slower, picking something up returns to the same
profile.

Feature pipeline (streaming, bounded memory)
--------------------------------------------
1. ``|H|`` per packet; null/guard tones (median < 5 % of the median) dropped; each packet
   divided by its mean amplitude (AGC normalisation) and, separately, its log taken.
2. Both binned to a uniform 50 Hz grid with :class:`sensing.wifi.conditioning.UniformBinner`
   (packet jitter and loss; empty bins hold the last value).
3. Changes over a fixed 20 ms lag (consecutive bins), so that they do not scale with the
   packet rate: *fast* = mean |change| of the normalised amplitudes (frequency-selective
   motion), *common* = |mean change of the log amplitudes| (common-mode motion; averaging
   the subcarriers removes most noise, a per-block median removes AGC steps). 0.1 s blocks
   keep these plus the mean amplitude profile; *slow* change = RMS difference of
   consecutive block profiles.
4. Both are divided by a noise floor = 20th percentile of the last 60 s of blocks, so the
   features do not depend on the device's noise level or SNR.
5. Every ``hop_s`` (0.5 s) a 10 s window (100 blocks) gives :data:`FEATURE_NAMES`,
   computed around the window's strongest burst of motion, plus the packet rate (the
   noise floor, hence the feature scale, depends on packets per bin).
6. Context features: the window's peak motion relative to the 95th percentile of the
   previous 50 s of the same stream (a fall is the strongest motion in a long while; the
   scale of a person, room, device and packet rate cancels out), and that reference level
   relative to the noise floor. They are appended after the first 20 features, so a model
   trained on the first :data:`N_BASE_FEATURES` keeps working.

Decision
--------
:class:`FallDetector` turns per-window fall probabilities (from a classifier's
``predict_proba`` or from :func:`rule_fall_probability`) into fall events: ``consecutive``
windows at or above ``threshold`` raise a candidate; with ``still_s`` > 0 the candidate
becomes an event only if the person then stays still (post-fall stillness confirmation, as
real fall detectors do); then ``refractory_s`` seconds of silence.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensing.frames import Frames
from sensing.wifi.conditioning import UniformBinner

GRID_HZ = 50.0
BLOCK_BINS = 5  # 0.1 s blocks
BLOCK_S = BLOCK_BINS / GRID_HZ
WINDOW_S = 10.0
HOP_S = 0.5
FLOOR_S = 60.0
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
)
#: Features of the first released model (20); a model trained on them keeps working: the
#: detector passes it the first ``n_features`` columns.
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
    ip = int(np.argmax(sm))
    peak = float(sm[ip])
    level = max(ACTIVE_X, 0.15 * peak)
    a = ip
    while a > 0 and sm[a - 1] > level:
        a -= 1
    b = ip
    while b < n - 1 and sm[b + 1] > level:
        b += 1
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


class FallFeatureExtractor:
    """Streaming fall features: feed CSI chunks, get one :class:`FeatureWindow` per hop.

    Memory is bounded by ``floor_s`` seconds of 0.1 s block statistics plus one window of
    block profiles, whatever the stream length.

    Parameters
    ----------
    window_s, hop_s : float
        Window length and hop (s); multiples of 0.1 s.
    floor_s : float
        History used for the noise floors (s).
    """

    def __init__(self, window_s: float = WINDOW_S, hop_s: float = HOP_S,
                 floor_s: float = FLOOR_S) -> None:
        self.window_blocks = int(round(window_s / BLOCK_S))
        self.hop_blocks = max(1, int(round(hop_s / BLOCK_S)))
        self.window_s = self.window_blocks * BLOCK_S
        self._floor_len = int(round(floor_s / BLOCK_S))
        self._reset(None)

    def _reset(self, shape: tuple[int, ...] | None) -> None:
        self._shape = shape
        self._valid: np.ndarray | None = None
        self._binner: UniformBinner | None = None
        self._last_bin: np.ndarray | None = None  # last filled 50 Hz bin
        self._common: deque[float] = deque(maxlen=self.window_blocks)
        self._packets: deque[float] = deque(maxlen=self.window_blocks)
        self._floor_common: deque[float] = deque(maxlen=self._floor_len)
        self._pend_rows: np.ndarray | None = None  # bins of the open block
        self._pend_bins: np.ndarray | None = None
        self._fast: deque[float] = deque(maxlen=self.window_blocks)
        self._prof: deque[np.ndarray] = deque(maxlen=self.window_blocks)
        self._floor_fast: deque[float] = deque(maxlen=self._floor_len)
        self._floor_slow: deque[float] = deque(maxlen=self._floor_len)

    def update(self, frames: Frames) -> list[FeatureWindow]:
        """Consume one chunk; return the windows it completed."""
        if not len(frames):
            return []
        amp = np.abs(np.asarray(frames.data)).astype(np.float32)
        amp = amp.reshape(len(amp), -1)
        if self._shape is not None and amp.shape[1:] != self._shape:
            self._reset(amp.shape[1:])
        self._shape = amp.shape[1:]
        if self._valid is None:
            if len(amp) < 8:
                return []
            med = np.median(amp, axis=0)
            self._valid = med > NULL_FRACTION * max(float(np.median(med)), 1e-9)
            self._binner = UniformBinner(GRID_HZ, 2 * int(self._valid.sum()))
        raw = amp[:, self._valid]
        la = np.log(np.maximum(raw, 0.5))
        a = raw / np.maximum(raw.mean(axis=1, keepdims=True), 1e-9)
        first, means, counts, _ = self._binner.add(np.hstack([a, la]), frames.times_s)
        rows = means.real
        cnt = counts.astype(float)
        bins = first + np.arange(len(rows))
        ok = counts > 0
        # empty bins (lost packets) hold the last value
        if not ok.all():
            idx = np.where(ok, np.arange(len(rows)), -1)
            idx = np.maximum.accumulate(idx)
            if self._last_bin is not None:
                rows = np.vstack([self._last_bin[None], rows])
                idx = idx + 1
                bins = np.r_[bins[0] - 1, bins]
                cnt = np.r_[0.0, cnt]
                keep = np.r_[False, np.ones(len(idx), bool)]
                idx = np.r_[0, idx]
            else:
                keep = idx >= 0
            rows = rows[np.maximum(idx, 0)][keep]
            bins = bins[keep]
            cnt = cnt[keep]
        if not len(rows):
            return []
        # changes over a fixed 20 ms lag (consecutive 50 Hz bins), so that they do not
        # scale with the packet rate: d = mean |change| of the AGC-normalised amplitudes
        # (frequency-selective part); c = |mean change of log amplitude| (common part: the
        # subcarrier average removes most noise; AGC steps are removed by a block median)
        k = rows.shape[1] // 2
        prev = rows[:1] if self._last_bin is None else self._last_bin[None]
        diff = np.diff(np.vstack([prev, rows]), axis=0)
        d = np.mean(np.abs(diff[:, :k]), axis=1)
        c = np.abs(np.mean(diff[:, k:], axis=1))
        self._last_bin = rows[-1].copy()
        rows = np.hstack([rows[:, :k], d[:, None], c[:, None], cnt[:, None]])
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
        rows, blk = rows[done], blk[done]
        if not len(rows):
            return []
        starts = np.flatnonzero(np.r_[True, blk[1:] != blk[:-1]])
        n_in = np.diff(np.r_[starts, len(blk)])
        means = np.add.reduceat(rows, starts, axis=0) / n_in[:, None]
        # median of the common-mode change per block (robust to single-packet AGC steps)
        pad = np.full((len(starts), BLOCK_BINS), np.nan)
        pos = np.arange(len(blk)) - np.repeat(starts, n_in)
        pad[np.repeat(np.arange(len(starts)), n_in), np.minimum(pos, BLOCK_BINS - 1)] = rows[:, -2]
        common = np.nanmedian(pad, axis=1)
        out: list[FeatureWindow] = []
        for j, b in enumerate(blk[starts]):
            prof = means[j, :-3]
            if self._prof:
                self._floor_slow.append(float(np.sqrt(np.mean((prof - self._prof[-1]) ** 2))))
            self._fast.append(float(means[j, -3]))
            self._floor_fast.append(float(means[j, -3]))
            self._packets.append(float(means[j, -1] * n_in[j]))
            self._common.append(float(common[j]))
            self._floor_common.append(float(common[j]))
            self._prof.append(prof)
            if (b + 1) % self.hop_blocks == 0 and len(self._fast) >= self.window_blocks:
                out.append(self._window(int(b)))
        return out

    def _window(self, b: int) -> FeatureWindow:
        x = window_features(np.asarray(self._fast), np.stack(self._prof),
                            _p20(self._floor_fast), _p20(self._floor_slow),
                            np.asarray(self._common), _p20(self._floor_common))
        rate = sum(self._packets) / self.window_s
        x = np.r_[x, np.float32(rate)].astype(np.float32)
        # context features: compared with the blocks before this window (>= 5 s of them,
        # else the whole history)
        nb = self.window_blocks
        hc, hf = np.asarray(self._floor_common), np.asarray(self._floor_fast)
        prevc = hc[:-nb] if len(hc) - nb >= 50 else hc
        prevf = hf[:-nb] if len(hf) - nb >= 50 else hf
        sm = np.convolve(np.asarray(self._common), np.ones(3) / 3, mode="same")
        refc, reff = max(_pct(prevc, 95), 1e-9), max(_pct(prevf, 95), 1e-9)
        ctx = np.r_[np.log(max(sm.max(), 1e-9) / refc),
                    np.log(max(max(self._fast), 1e-9) / reff),
                    np.log(refc / max(_p20(self._floor_common), 1e-9))]
        x = np.r_[x, ctx].astype(np.float32)
        return FeatureWindow((b + 1) * BLOCK_S, x)


def _pct(arr: np.ndarray, q: float) -> float:
    """``q``-th percentile of a history (1e-9 when empty)."""
    return float(np.percentile(arr, q)) if len(arr) else 1e-9


def _p20(values: deque[float]) -> float:
    """20th percentile (noise floor) of a history of block values."""
    arr = np.asarray(values)
    if not len(arr):
        return 1e-9
    k = int(0.2 * (len(arr) - 1))
    return float(np.partition(arr, k)[k])


def extract_features(chunks, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Run :class:`FallFeatureExtractor` over a whole stream.

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
        for w in ex.update(fr):
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


#: Rule thresholds, set by hand from the per-class feature medians of training captures
#: (seeds 40-79; docs/fall.md): falls have the strongest common-mode burst (median e^4.05 ×
#: floor) with a strong frequency-selective part (e^1.6; sit-downs e^0.54), it is short
#: (1.0 s; walks 2.5 s), and motion and profile drift stay low afterwards (the person stays
#: down; pick-ups and walks go on).
RULE = {"peak_log": 3.6, "fast_peak_log": 1.1, "burst_s": 1.8, "after_s": 4.0,
        "post_max_log": 1.7, "post_drift_log": -0.8}


def rule_fall_probability(X: np.ndarray) -> np.ndarray:
    """Rule-based fall probability per window (the fallback when no model is loaded).

    Each condition of :data:`RULE` becomes a soft step (logistic); the probability is their
    product: a strong (``peak_log``, ``fast_peak_log``), short (``burst_s``) burst,
    followed by at least ``after_s`` seconds of quiet (``post_max_log``) in which the static
    profile does not drift (``post_drift_log``): the person stays down.

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
    p = p * above(X[:, _F["fast_peak_log"]], RULE["fast_peak_log"], 0.15)
    p = p * below(X[:, _F["burst_s"]], RULE["burst_s"], 0.1)
    p = p * above(X[:, _F["after_s"]], RULE["after_s"], 0.2)
    p = p * below(X[:, _F["post_max_log"]], RULE["post_max_log"], 0.15)
    p = p * below(X[:, _F["post_drift_log"]], RULE["post_drift_log"], 0.15)
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


class FallDetector:
    """Streaming fall detector.

    Parameters
    ----------
    predict_proba : callable, optional
        ``X (n, N_FEATURES) -> (n, n_classes)`` probabilities (e.g. an ONNX model's
        ``predict_proba``). Without it the rule :func:`rule_fall_probability` is used.
    labels : sequence of str, optional
        Class names of the probability columns (default :data:`CLASSES`); must contain
        ``"fall"``.
    threshold : float
        Fall probability needed per window.
    consecutive : int
        Windows in a row at or above ``threshold`` to raise an event.
    refractory_s : float
        No new event within this time after one (s); a person lying on the floor after a
        fall keeps the windows quiet anyway.
    warmup_s : float
        No decision on windows ending before this stream time (s): the noise floors need
        some history (without it the first windows of a stream raised false alarms).
    still_s : float
        Post-fall stillness confirmation (s; 0 = off). A candidate (``consecutive`` windows
        at or above ``threshold``) becomes an event only if the person then stays still:
        every window starting at or after ``onset + settle_s`` and ending by the first
        window end at or after ``onset + settle_s + still_s`` must have ``peak_log`` (log
        peak common-mode motion / noise floor) at or below ``still_log``; the event is
        decided at that last window. ``still_s`` ≥ the window length (10 s) makes at least
        one window be checked. A candidate still pending when the stream ends is dropped.
    still_log : float
        Highest ``peak_log`` (natural log of multiples of the noise floor) that counts as
        still. Falls in the simulator: ≤ 1.7 ten seconds after the impact; sit-down/lie-
        down followed by fidgeting, the end of a walk and pick-ups often exceed it.
    settle_s : float
        Time from the estimated onset to the start of the stillness period (s): descent,
        rebound and the onset estimate's error.
    n_features : int, optional
        Number of leading feature columns the model takes (a model trained on the first
        :data:`N_BASE_FEATURES` features); default all.
    """

    def __init__(
        self,
        predict_proba: Callable[[np.ndarray], np.ndarray] | None = None,
        *,
        labels: Sequence[str] | None = None,
        threshold: float = 0.5,
        consecutive: int = 2,
        refractory_s: float = 30.0,
        warmup_s: float = 20.0,
        still_s: float = 0.0,
        still_log: float = np.inf,
        settle_s: float = 4.0,
        n_features: int | None = None,
    ) -> None:
        self.predict_proba = predict_proba
        self.n_features = n_features
        self.warmup_s = float(warmup_s)
        self.labels = list(labels) if labels is not None else list(CLASSES)
        if predict_proba is not None and "fall" not in self.labels:
            raise ValueError(f"labels {self.labels} have no 'fall' class")
        self.fall_index = self.labels.index("fall") if "fall" in self.labels else -1
        self.method = "model" if predict_proba is not None else "rule"
        self.threshold = float(threshold)
        self.consecutive = int(consecutive)
        self.refractory_s = float(refractory_s)
        self.still_s = float(still_s)
        self.still_log = float(still_log)
        self.settle_s = float(settle_s)
        self.extractor = FallFeatureExtractor()
        self._run: list[tuple[float, float, np.ndarray]] = []
        self._last_event: float = -np.inf
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

    def update(self, frames: Frames) -> list[FallEvent]:
        """Consume one chunk; return the fall events it completed."""
        wins = self.extractor.update(frames)
        if not wins:
            return []
        X = np.stack([w.features for w in wins])
        p = self.fall_probability(X)
        return self.step([w.end_s for w in wins], X, p)

    def step(self, ends: Sequence[float], X: np.ndarray, p: np.ndarray) -> list[FallEvent]:
        """Decision logic on precomputed windows (used by :meth:`update` and evaluation).

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
        win_s = self.extractor.window_s
        for t, x, pi in zip(ends, X, p, strict=True):
            t = float(t)
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
                    self._last_event = t
                    self._pending = None
                    self._run = []
                continue
            if t < self.warmup_s:
                continue
            if pi >= self.threshold:
                self._run.append((t, float(pi), x))
            else:
                self._run = []
            if len(self._run) >= self.consecutive and t - self._last_event >= self.refractory_s:
                t0, _, x0 = self._run[0]
                onset = t0 - win_s + float(x0[_F["t_peak_s"]] - x0[_F["rise_s"]])
                conf = max(r[1] for r in self._run)
                ev = FallEvent(
                    onset_s=round(onset, 3), detect_s=t, confidence=round(conf, 4),
                    method=self.method,
                    extra={"burst_s": round(float(x0[_F["burst_s"]]), 2),
                           "windows": len(self._run)})
                self._run = []
                if self.still_s > 0:
                    self._pending = ev
                else:
                    out.append(ev)
                    self._last_event = t
        return out
