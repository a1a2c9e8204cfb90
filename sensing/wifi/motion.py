"""Presence and motion from WiFi CSI amplitude: a streaming score, a detector and calibration.

Motion score
------------
Every ``hop_s`` the last ``window_s`` seconds of CSI are scored as follows:

1. amplitude ``|H|`` per packet, subcarrier and antenna link;
2. null/guard subcarriers (median amplitude below 5 % of the window's median) are dropped;
3. AGC normalisation: each packet's amplitudes are divided by their mean over subcarriers
   (per link), which removes the receiver's gain steps;
4. per subcarrier: the change of its amplitude over the window beyond packet-to-packet
   noise, ``sqrt(max(var(a) − var(diff(a))/2, 0)) / median(a)`` (variances after clipping
   at median ± 5 robust standard deviations);
5. score = median of (4) over subcarriers and links (dimensionless).

Noise (thermal, int8 quantisation) is independent from packet to packet, so the first
differences carry twice its variance and the subtraction removes it: a static room, or a
still breathing person, scores ≈ 0–0.02 whatever its SNR, and an AGC gain drop (which
raises the relative quantisation noise) does not move the score. A moving person changes
the multipath smoothly over many packets and scores 0.04–0.2. The clipping keeps isolated
corrupt packets from dominating a window (before, the plain coefficient of variation,
``1.4826·MAD / median``, scored a still scene at 20 dB SNR 0.07–0.17, above moving people
on real captures, and one 2.7 dB AGC drop pushed a quick-start capture over the threshold).

Decision
--------
A window is *active* when its score exceeds the threshold. The detector reports ``moving``
after ``on_windows`` consecutive active windows and returns to *not moving* after
``off_s`` seconds without an active window (:class:`sensing.dsp.Debouncer`).

Presence (:class:`sensing.wifi.presence.PresenceTracker`): ``moving`` while motion is on;
otherwise ``still`` (occupied, not moving) while there is respiration evidence (a breathing
window in the last ``breath_hold_s`` seconds, from
:func:`sensing.wifi.presence.breathing_evidence`), or — opt-in, with a calibration — while
the static CSI profile differs from the empty-room profile, or for ``hold_s`` seconds after
motion stops; ``empty`` when none holds. Leaving ``empty`` on breathing alone needs
``breath_confirm`` consecutive breathing windows.

Calibration
-----------
:func:`calibrate` learns, from an empty-room capture of one device, the threshold
``max(ratio × median, p99 × margin, CAL_MIN)`` of its window scores and the empty-room amplitude
profile, and :meth:`MotionCalibration.save` writes them as JSON. Without a calibration the
detector uses :data:`DEFAULT_THRESHOLD` (see ``docs/motion.md`` for how it was chosen).
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from sensing.detections import Detection
from sensing.dsp import MAD_TO_STD, Debouncer
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.wifi.presence import (
    BREATH_CONFIRM,
    BREATH_HOLD_S,
    BREATH_MIN_CONFIDENCE,
    PresenceTracker,
    breathing_evidence,
)

#: Threshold on the motion score when no calibration is given: geometric mean of the highest
#: score two consecutive windows reach on 30 simulated still scenes with every impairment
#: (empty rooms and still breathing people, 20–35 dB, 50–200 packets/s, ESP32/Intel
#: 5300/Nexmon, AGC steps 4/min, 15 % bursty loss; seeds 101–130: 0.0224 when it was
#: chosen, 0.0212 with the subsampled medians since) and the movement 5th percentile of
#: the ESP32 and C6 ESPectre pairs (0.0431), rounded; reported on the held-out C3 file and
#: held-out simulated scenes (docs/motion.md).
DEFAULT_THRESHOLD = 0.031
#: Calibrated threshold = max(CAL_RATIO × median empty score, CAL_MARGIN × p99 empty score,
#: CAL_MIN).
CAL_RATIO = 1.6
CAL_MARGIN = 1.1
#: ... and never below this (a quiet device's empty-room scores are ≈ 0: without a floor
#: its calibrated threshold would sit in the noise of the score itself).
CAL_MIN = 0.5 * DEFAULT_THRESHOLD
#: A subcarrier whose median amplitude is below this fraction of the window median is a
#: null/guard tone and ignored.
NULL_FRACTION = 0.05
#: Fewest packets a window must hold to be scored.
MIN_PACKETS = 8


def amplitude_rows(data: np.ndarray) -> np.ndarray:
    """CSI amplitude per packet as ``(n_packets, n_subcarriers, n_links)`` float32."""
    a = np.abs(np.asarray(data)).astype(np.float32)
    return a.reshape(a.shape[0], a.shape[1], -1)


def window_score(amp: np.ndarray) -> tuple[float, np.ndarray | None]:
    """Motion score of one window of amplitudes.

    Parameters
    ----------
    amp : numpy.ndarray
        ``(n_packets, n_subcarriers, n_links)`` CSI amplitudes (any linear unit).

    Returns
    -------
    score : float
        Median over subcarriers/links of the AGC-normalised amplitude's change over the
        window beyond packet-to-packet noise, relative to its median (see the module
        docstring); NaN when fewer than :data:`MIN_PACKETS` packets or no usable
        subcarrier.
    profile : numpy.ndarray or None
        Median normalised amplitude per subcarrier and link (``(n_subcarriers, n_links)``,
        0 on null tones), the window's static profile.
    """
    if amp.shape[0] < MIN_PACKETS:
        return float("nan"), None
    # null/guard tones carry (almost) nothing in every packet: a median over 16 evenly
    # spaced packets finds them (robust to isolated corrupt packets) at a fraction of the
    # cost of one over the whole window
    med_sc = np.median(amp[:: max(1, len(amp) // 16)], axis=0)  # (sc, links)
    valid = med_sc > NULL_FRACTION * max(float(np.median(med_sc)), 1e-9)
    if not valid.any():
        return float("nan"), None
    masked = np.where(valid[None], amp, 0.0)
    mean_pkt = masked.sum(axis=1, keepdims=True) / np.maximum(valid.sum(axis=0), 1)[None, None]
    norm = masked / np.maximum(mean_pkt, 1e-9)
    med = np.median(norm, axis=0)
    # Spread over time per tone, minus the packet-to-packet noise (thermal, int8
    # quantisation, the noise level an AGC gain step changes): that noise is independent
    # between packets, so first differences have twice its variance, while a moving body
    # changes the amplitude smoothly over many packets.
    x = norm[:, valid]
    total = _clipped_std(x, med[valid])
    noise = _clipped_std(np.diff(x, axis=0), 0.0) / np.sqrt(2.0)
    change = np.sqrt(np.maximum(total**2 - noise**2, 0.0))
    cv = change / np.maximum(med[valid], 1e-9)
    profile = np.where(valid, med, 0.0)
    return float(np.median(cv)), profile


def _clipped_std(x: np.ndarray, centre: np.ndarray | float, k: float = 5.0) -> np.ndarray:
    """Standard deviation along axis 0 after clipping each column to ``centre`` ± ``k``
    robust standard deviations (1.4826 × median absolute deviation from ``centre``: the
    column medians, or 0 for first differences). Isolated corrupt packets cannot dominate
    it, and unlike the MAD itself it is unbiased for any noise distribution. The clipping
    bound only needs to be roughly right, so its MAD is taken over at most 64 evenly
    spaced rows (a median is the costly part of a window's score)."""
    step = max(1, len(x) // 64)
    spread = k * np.maximum(
        MAD_TO_STD * np.median(np.abs(x[::step] - centre), axis=0), 1e-12)
    return np.std(np.clip(x, centre - spread, centre + spread), axis=0)


def profile_distance(profile: np.ndarray, reference: np.ndarray) -> float:
    """Relative distance between two static amplitude profiles (0 = identical shape).

    Both are ``(n_subcarriers, n_links)`` normalised amplitudes; tones null in either are
    ignored. Returns ``||p - r|| / ||r||`` over the common tones (NaN when none).
    """
    p = np.asarray(profile, float).reshape(-1)
    r = np.asarray(reference, float).reshape(-1)
    if p.shape != r.shape:
        return float("nan")
    ok = (p > 0) & (r > 0)
    if not ok.any():
        return float("nan")
    return float(np.linalg.norm(p[ok] - r[ok]) / np.linalg.norm(r[ok]))


@dataclass
class WindowScore:
    """Score of one analysis window.

    Attributes
    ----------
    end_s : float
        Stream time of the window end (s).
    score : float
        Motion score (dimensionless).
    n_packets : int
        Packets in the window.
    profile : numpy.ndarray or None
        Static normalised amplitude profile of the window.
    """

    end_s: float
    score: float
    n_packets: int
    profile: np.ndarray | None = None


class MotionScorerParams(Params):
    """Options of :class:`MotionScorer`."""

    window_s: float = param(1.0, unit="s", gt=0, le=600, doc="motion-score window")
    hop_s: float = param(0.5, unit="s", gt=0, le=600, doc="time between motion-score windows")


class MotionScorer:
    """Streaming motion score: push chunks, get one :class:`WindowScore` per hop.

    A :class:`sensing.stage.Stage`; memory is bounded by the packets of one window.

    Parameters
    ----------
    params : MotionScorerParams, optional
        The options (positional only); default ``MotionScorerParams()``.
    **options
        Option values applied over ``params``: ``window_s`` (analysis window length, s;
        1.0) and ``hop_s`` (time between window ends, s; 0.5).

    Raises
    ------
    sensing.params.OptionError
        An unknown option or a bad value.
    """

    Params = MotionScorerParams

    def __init__(self, params: MotionScorerParams | None = None, /, **options: Any) -> None:
        self.params = MotionScorerParams.build(params, options, where="MotionScorer")
        self.window_s = self.params.window_s
        self.hop_s = self.params.hop_s
        self._times: deque[np.ndarray] = deque()
        self._amps: deque[np.ndarray] = deque()
        self._next_end: float | None = None
        self._shape: tuple[int, ...] | None = None

    def _trim(self, t_min: float) -> None:
        while self._times and self._times[0][-1] < t_min:
            self._times.popleft()
            self._amps.popleft()
        if self._times and self._times[0][0] < t_min:
            keep = self._times[0] >= t_min
            self._times[0] = self._times[0][keep]
            self._amps[0] = self._amps[0][keep]

    def push(self, frames: Frames) -> list[WindowScore]:
        """Consume one chunk; return the windows it completed (in time order)."""
        if not len(frames):
            return []
        amp = amplitude_rows(frames.data)
        times = np.asarray(frames.times_s, dtype=np.float64)
        if self._shape is not None and amp.shape[1:] != self._shape:
            # layout change (e.g. bandwidth switch): restart the window
            self._times.clear()
            self._amps.clear()
        self._shape = amp.shape[1:]
        if self._next_end is None:
            self._next_end = float(times[0]) + self.window_s
        out: list[WindowScore] = []
        start = 0
        # split the chunk at window ends so that each window sees exactly its packets
        while True:
            cut = int(np.searchsorted(times, self._next_end, side="right"))
            if cut >= len(times) and times[-1] < self._next_end:
                break
            if cut > start:
                self._times.append(times[start:cut])
                self._amps.append(amp[start:cut])
            start = cut
            self._trim(self._next_end - self.window_s)
            out.append(self._score(self._next_end))
            self._next_end += self.hop_s
            # jump over gaps longer than a window
            if start < len(times) and times[start] > self._next_end + self.window_s:
                self._next_end = float(times[start]) + self.window_s - 1e-9
            if start >= len(times):
                break
        if start < len(times):
            self._times.append(times[start:])
            self._amps.append(amp[start:])
        self._trim(self._next_end - self.window_s - self.hop_s)
        return out

    def flush(self) -> list[WindowScore]:
        """End of stream: the partial window after the last hop is not scored, so ``[]``."""
        return []

    def _score(self, end_s: float) -> WindowScore:
        if not self._amps:
            return WindowScore(end_s, float("nan"), 0)
        amp = np.concatenate(list(self._amps))
        score, profile = window_score(amp)
        return WindowScore(end_s, score, len(amp), profile)


@dataclass
class MotionCalibration:
    """Per-device motion calibration learned from an empty-room capture.

    Attributes
    ----------
    threshold : float
        Motion-score threshold (dimensionless).
    empty_median, empty_p99 : float
        Median and 99th percentile of the empty-room window scores.
    profile : list of list of float or None
        Empty-room static amplitude profile ``(n_subcarriers, n_links)``.
    profile_threshold : float or None
        Profile distance above which a still person is assumed present (used only with
        ``MotionDetector(profile_evidence=True)``).
    window_s : float
        Window length (s) the scores were computed with.
    n_windows : int
        Windows the calibration used.
    source : str
        Capture it was learned from.
    meta : dict
        ``chip`` etc. as read from the capture.
    """

    threshold: float
    empty_median: float
    empty_p99: float
    profile: list[list[float]] | None = None
    profile_threshold: float | None = None
    window_s: float = 1.0
    n_windows: int = 0
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike) -> None:
        """Write the calibration as JSON."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"kind": "wifi_motion_calibration", "version": 1, **asdict(self)}, fh,
                      indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> MotionCalibration:
        """Read a calibration written by :meth:`save`.

        Raises
        ------
        ValueError
            The file is not a motion calibration.
        """
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        if raw.pop("kind", None) != "wifi_motion_calibration":
            raise ValueError(f"{path}: not a wifi_motion calibration file")
        raw.pop("version", None)
        return cls(**raw)


def calibrate(
    chunks: Iterable[Frames],
    *,
    window_s: float = 1.0,
    hop_s: float = 0.5,
    ratio: float = CAL_RATIO,
    margin: float = CAL_MARGIN,
    max_s: float | None = None,
    source: str = "",
) -> MotionCalibration:
    """Learn a device's motion threshold and empty-room profile from an empty-room capture.

    Parameters
    ----------
    chunks : iterable of Frames
        The empty-room stream (a reader or a live source), at least ~10 s.
    window_s, hop_s : float
        As used by the detector (s).
    ratio, margin : float
        Threshold = ``max(ratio × median, margin × p99)`` of the empty-room window scores,
        at least :data:`CAL_MIN`.
    max_s : float, optional
        Use only the first ``max_s`` seconds of the stream.
    source : str
        Name stored in the calibration.

    Raises
    ------
    ValueError
        Fewer than 5 scorable windows.
    """
    scorer = MotionScorer(window_s=window_s, hop_s=hop_s)
    scores: list[float] = []
    profiles: list[np.ndarray] = []
    meta: dict[str, Any] = {}
    t_first: float | None = None
    for fr in chunks:
        if not len(fr):
            continue
        t_first = fr.start_s if t_first is None else t_first
        if max_s is not None:
            fr = _head(fr, t_first + max_s)
            if fr is None:
                break
        meta.update({k: v for k, v in fr.meta.items() if k in ("chip", "format", "gain_locked")})
        for w in scorer.push(fr):
            if np.isfinite(w.score):
                scores.append(w.score)
                if w.profile is not None:
                    profiles.append(w.profile)
    if len(scores) < 5:
        raise ValueError(f"calibration needs at least 5 windows of {window_s} s, got {len(scores)}")
    arr = np.asarray(scores)
    med = float(np.median(arr))
    p99 = float(np.percentile(arr, 99))
    thr = max(ratio * med, margin * p99, CAL_MIN)
    profile = prof_thr = None
    if profiles and all(p.shape == profiles[0].shape for p in profiles):
        ref = np.median(np.stack(profiles), axis=0)
        d = np.array([profile_distance(p, ref) for p in profiles])
        d = d[np.isfinite(d)]
        if len(d):
            profile = ref.tolist()
            # a person standing still must move the profile well beyond the empty spread
            prof_thr = float(max(3.0 * np.percentile(d, 99), 0.05))
    return MotionCalibration(
        threshold=thr, empty_median=med, empty_p99=p99, profile=profile,
        profile_threshold=prof_thr, window_s=window_s, n_windows=len(scores),
        source=source, meta=meta,
    )


def _head(fr: Frames, t_end: float) -> Frames | None:
    keep = fr.times_s <= t_end
    if keep.all():
        return fr
    if not keep.any():
        return None
    return Frames(
        data=fr.data[keep], times_s=fr.times_s[keep], fs_hz=fr.fs_hz, modality=fr.modality,
        source=fr.source, subcarriers=fr.subcarriers, t0=fr.t0,
        fields={k: v[keep] for k, v in fr.fields.items()}, meta=fr.meta,
    )


@dataclass
class MotionState:
    """Detector output for one window.

    Attributes
    ----------
    end_s : float
        Window end (s).
    score : float
        Motion score.
    active : bool
        Raw window decision (score above threshold).
    moving : bool
        Debounced motion state.
    presence : str
        ``"empty"``, ``"still"`` or ``"moving"``.
    profile_distance : float
        Distance to the empty-room profile (NaN without calibration).
    evidence : str
        Why the presence state holds: ``"motion"``, ``"breathing"``, ``"profile"``,
        ``"hold"`` or ``"none"`` (empty).
    breathing_bpm : float
        Rate of the last credible breathing window (breaths/min; NaN if none yet).
    """

    end_s: float
    score: float
    active: bool
    moving: bool
    presence: str
    profile_distance: float = float("nan")
    evidence: str = "none"
    breathing_bpm: float = float("nan")


class MotionDetectorParams(MotionScorerParams):
    """Options of :class:`MotionDetector` (and of the ``wifi_motion`` pipeline)."""

    threshold: float | None = param(
        None, ge=0, doc=f"motion-score threshold (dimensionless); default: the calibration's, "
                        f"else {DEFAULT_THRESHOLD}")
    on_windows: int = param(2, ge=1, doc="consecutive active windows needed to report motion")
    off_s: float = param(2.0, unit="s", ge=0,
                         doc="time without an active window before motion is reported stopped")
    hold_s: float = param(60.0, unit="s", ge=0,
                          doc="time the room stays still (occupied) after motion stops "
                              "without other evidence")
    breathing: bool = param(True, doc="use respiration as evidence of a still person "
                                      "(false halves the CPU cost)")
    breath_hold_s: float = param(BREATH_HOLD_S, unit="s", ge=0,
                                 doc="time one breathing window keeps the room still")
    breath_min_confidence: float = param(BREATH_MIN_CONFIDENCE, ge=0, le=1,
                                         doc="breathing confidence that counts as evidence")
    breath_confirm: int = param(BREATH_CONFIRM, ge=1,
                                doc="consecutive breathing windows needed to go from empty "
                                    "to still")
    profile_evidence: bool = param(False, doc="with a calibration, count a static profile "
                                              "unlike the empty room's as a still person")


class MotionDetector:
    """Streaming presence/motion detector (a :class:`sensing.stage.Stage` of
    :class:`MotionState`, one per motion window).

    Parameters
    ----------
    params : MotionDetectorParams, optional
        The options (positional only); default ``MotionDetectorParams()``.
    calibration : MotionCalibration, optional
        Per-device calibration (keyword); its threshold and empty-room profile are used.
    **options
        Option values applied over ``params`` (see :class:`MotionDetectorParams`):

        threshold : float, optional
            Overrides the threshold (default: calibration's, else
            :data:`DEFAULT_THRESHOLD`; dimensionless).
        window_s, hop_s : float
            Analysis window and hop (s).
        on_windows : int
            Consecutive active windows needed to report motion.
        off_s : float
            Seconds without an active window before motion is reported stopped.
        hold_s : float
            Seconds the room stays ``still`` (occupied) after motion stops when no other
            evidence (breathing, calibrated profile) says so.
        breathing : bool
            Use respiration as evidence of a still person (costs about as much CPU as the
            motion score itself; see ``docs/motion.md``).
        breath_hold_s : float
            Seconds one breathing window keeps the room ``still``.
        breath_min_confidence : float
            Breathing confidence (0–1) that counts as evidence.
        breath_confirm : int
            Consecutive breathing windows (5 s apart) needed to go from ``empty`` to
            ``still``.
        profile_evidence : bool
            With a calibration, also report ``still`` while the static profile differs
            from the empty-room profile. Off by default: on simulated rooms it marked 20 %
            of the empty-room windows occupied (slow environment drift and AGC steps move
            the profile too; ``docs/motion.md``).

    Raises
    ------
    sensing.params.OptionError
        An unknown option or a bad value.
    """

    Params = MotionDetectorParams

    def __init__(self, params: MotionDetectorParams | None = None, /, *,
                 calibration: MotionCalibration | None = None, **options: Any) -> None:
        self.params = p = MotionDetectorParams.build(params, options, where="MotionDetector")
        self.calibration = calibration
        threshold = p.threshold
        if threshold is None:
            threshold = calibration.threshold if calibration else DEFAULT_THRESHOLD
        self.threshold = float(threshold)
        self.scorer = MotionScorer(window_s=p.window_s, hop_s=p.hop_s)
        self.on_windows = p.on_windows
        self.off_s = p.off_s
        self.hold_s = p.hold_s
        self._ref = (np.asarray(calibration.profile) if calibration and calibration.profile
                     else None)
        self.profile_evidence = p.profile_evidence
        self.breathing = (breathing_evidence(min_confidence=p.breath_min_confidence)
                          if p.breathing else None)
        self.tracker = PresenceTracker(
            hold_s=p.hold_s, breath_hold_s=p.breath_hold_s, confirm=p.breath_confirm,
            breath_hop_s=self.breathing.hop_s if self.breathing else 5.0)
        #: Stream time (s) before an ``empty`` verdict is trustworthy: the first
        #: ``breath_confirm`` breathing windows must have had their chance.
        self.presence_warmup_s = (
            self.breathing.window_s + (p.breath_confirm - 1) * self.breathing.hop_s
            if self.breathing else 0.0)
        # breathing windows not yet reached by the motion windows (a few at most)
        self._pending: deque[Detection] = deque()
        #: ``on_windows`` active windows in a row start motion; ``off_s`` without an active
        #: window end it. Counts look at the last windows whatever the state (``restart``
        #: off), as with ``off_s = 0`` a run of active windows keeps restarting motion.
        self._debounce = Debouncer(on_count=self.on_windows, hold_s=self.off_s,
                                   restart=False)

    def push(self, frames: Frames, breathing: list[Detection] | None = None
             ) -> list[MotionState]:
        """Consume one chunk; return the state after each window it completed.

        Parameters
        ----------
        frames : Frames
            The next ``wifi_csi`` chunk of the stream.
        breathing : list of Detection, optional
            The breathing-evidence windows of this chunk when an identically configured
            estimator already ran on it elsewhere (a shared analysis); default: run this
            detector's own.
        """
        if self.breathing is not None and len(frames):
            self._pending.extend(self.breathing.push(frames) if breathing is None
                                 else breathing)
        out = []
        for w in self.scorer.push(frames):
            # breathing windows ending by this motion window (both need the same packets,
            # so the result does not depend on how the stream is chunked)
            while self._pending and self._pending[0].offset_s <= w.end_s + 1e-6:
                d = self._pending.popleft()
                self.tracker.add_breathing(d.offset_s, float(d.value), d.confidence)
            out.append(self._step(w))
        return out

    def _step(self, w: WindowScore) -> MotionState:
        active = bool(np.isfinite(w.score) and w.score > self.threshold)
        self._debounce.step(w.end_s, active)
        moving = self._debounce.on
        dist = float("nan")
        if self._ref is not None and w.profile is not None:
            dist = profile_distance(w.profile, self._ref)
        prof_thr = self.calibration.profile_threshold if self.calibration else None
        profile_occupied = bool(self.profile_evidence and prof_thr is not None
                                and np.isfinite(dist) and dist > prof_thr)
        dec = self.tracker.step(w.end_s, moving, profile_occupied)
        return MotionState(w.end_s, w.score, active, moving, dec.state, dist,
                           dec.evidence, dec.breathing_bpm)

    def flush(self) -> list[MotionState]:
        """End of stream: states are only produced by complete motion windows, so ``[]``
        (breathing windows after the last motion window are dropped)."""
        return []
