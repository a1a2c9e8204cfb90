"""Occupied-still evidence from respiration, and the presence state machine.

A person who sits or sleeps without moving does not raise the motion score
(:mod:`sensing.wifi.motion`), but their breathing modulates the CSI periodically at
0.1–0.7 Hz (6–40 breaths/min); an empty room does not. :func:`breathing_evidence` configures the
breathing-rate estimator of :mod:`sensing.wifi.breathing` (CSI ratio with ≥ 2 antennas,
phase-sanitised subcarriers + common gain with one) as a respiration detector: every window
with a breathing peak of at least ``min_confidence`` is *breathing evidence*.

:class:`PresenceTracker` turns motion, breathing and (with a calibration) the static-profile
test into the 3-state presence (see ``docs/motion.md``)::

    moving   while motion is on                                   evidence "motion"
    still    a credible breathing window in the last breath_hold_s   "breathing"
             else the static profile differs from the empty room     "profile"
             else less than hold_s since motion stopped              "hold"
    empty    none of these                                           "none"

A breathing window is *credible* when the room is already occupied, or when it is the
``confirm``-th consecutive breathing window (``empty`` → ``still`` without any movement,
e.g. a person who entered unseen at the edge of the motion detector's range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sensing.dsp import Debouncer
from sensing.wifi.breathing import BreathingEstimator

#: Breathing-evidence window (s): 3 cycles at 6 breaths/min, as the breathing estimator.
BREATH_WINDOW_S = 30.0
#: Time between breathing-evidence windows (s).
BREATH_HOP_S = 5.0
#: Minimum breathing confidence that counts as evidence (0–1). Half the breathing-rate
#: pipeline's 0.2: on the training seeds of ``benchmarks/eval_presence.py`` 1 of 1936
#: empty-room windows reached 0.1 (max 0.19) against 67 % of the windows with a still
#: person (62 % at 0.2), and :data:`BREATH_CONFIRM` absorbs isolated false windows.
BREATH_MIN_CONFIDENCE = 0.1
#: Seconds one credible breathing window keeps the room ``still`` (bridges the windows in
#: which the breathing is not visible; chosen on the training seeds: 15 s lost 4 points of
#: still recall, 45 s added 15 s to the time to empty).
BREATH_HOLD_S = 30.0
#: Consecutive breathing windows needed to go from ``empty`` to ``still`` (no empty-room
#: false alarm with 2 on the training seeds; 1 would let a single window through).
BREATH_CONFIRM = 2

STATES = ("empty", "still", "moving")
EVIDENCE = ("none", "motion", "breathing", "profile", "hold")


def breathing_evidence(
    *,
    window_s: float = BREATH_WINDOW_S,
    hop_s: float = BREATH_HOP_S,
    min_confidence: float = BREATH_MIN_CONFIDENCE,
    min_bpm: float = 6.0,
    max_bpm: float = 40.0,
) -> BreathingEstimator:
    """The breathing-rate estimator configured as a respiration detector: every window it
    emits (``breathing_rate`` detections, ``offset_s`` = window end in s, ``value`` in
    breaths/min) is evidence of a still, breathing person.

    Parameters
    ----------
    window_s : float
        Analysis window (s); at least 2 cycles at ``min_bpm``.
    hop_s : float
        Time between windows (s).
    min_confidence : float
        Breathing confidence (0–1) a window needs to count as evidence.
    min_bpm, max_bpm : float
        Respiration band (breaths/min).
    """
    return BreathingEstimator(window_s=window_s, hop_s=hop_s, min_confidence=min_confidence,
                              min_bpm=min_bpm, max_bpm=max_bpm)


@dataclass
class PresenceDecision:
    """Presence after one motion window.

    Attributes
    ----------
    state : str
        ``"empty"``, ``"still"`` or ``"moving"``.
    evidence : str
        Why: ``"motion"``, ``"breathing"``, ``"profile"``, ``"hold"`` or ``"none"``.
    breathing_bpm : float
        Rate of the last credible breathing window (breaths/min; NaN if none yet).
    breathing_confidence : float
        Its confidence (0–1; NaN if none yet).
    """

    state: str
    evidence: str
    breathing_bpm: float = math.nan
    breathing_confidence: float = math.nan


class PresenceTracker:
    """Presence state machine (empty / still / moving), fed once per motion window.

    Parameters
    ----------
    hold_s : float
        Seconds the room stays ``still`` after motion stops without other evidence.
    breath_hold_s : float
        Seconds a credible breathing window keeps the room ``still`` (bridges windows in
        which the breathing is not visible).
    confirm : int
        Consecutive breathing windows needed to leave ``empty`` on breathing alone.
    breath_hop_s : float
        Spacing of the breathing windows (s), to recognise consecutive ones.
    """

    def __init__(
        self,
        *,
        hold_s: float = 60.0,
        breath_hold_s: float = BREATH_HOLD_S,
        confirm: int = BREATH_CONFIRM,
        breath_hop_s: float = BREATH_HOP_S,
    ) -> None:
        if hold_s < 0 or breath_hold_s < 0 or confirm < 1:
            raise ValueError("need hold_s >= 0, breath_hold_s >= 0 and confirm >= 1")
        self.hold_s = float(hold_s)
        self.breath_hold_s = float(breath_hold_s)
        self.confirm = int(confirm)
        self.breath_hop_s = float(breath_hop_s)
        self.state = "empty"
        #: On while moving and for ``hold_s`` after the last moving window.
        self._hold = Debouncer(hold_s=self.hold_s, restart=False)
        self._last_breath: float | None = None
        self._run = 0
        self._breath_until = -math.inf
        self._bpm = math.nan
        self._conf = math.nan

    def add_breathing(self, offset_s: float, bpm: float = math.nan,
                      confidence: float = math.nan) -> None:
        """Register a breathing-evidence window ending at ``offset_s`` (s)."""
        consecutive = (self._last_breath is not None
                       and offset_s - self._last_breath <= 1.5 * self.breath_hop_s)
        self._run = self._run + 1 if consecutive else 1
        self._last_breath = offset_s
        if self.state != "empty" or self._run >= self.confirm:
            self._breath_until = max(self._breath_until, offset_s + self.breath_hold_s)
            self._bpm, self._conf = float(bpm), float(confidence)

    def step(self, end_s: float, moving: bool, profile_occupied: bool = False
             ) -> PresenceDecision:
        """Presence at the end of a motion window.

        Parameters
        ----------
        end_s : float
            Window end (s); breathing windows ending up to here must have been added.
        moving : bool
            Debounced motion state.
        profile_occupied : bool
            The static profile differs from the calibrated empty room.
        """
        self._hold.step(end_s, moving)
        if moving:
            state, why = "moving", "motion"
        elif end_s <= self._breath_until:
            state, why = "still", "breathing"
        elif profile_occupied:
            state, why = "still", "profile"
        elif self._hold.on:
            state, why = "still", "hold"
        else:
            state, why = "empty", "none"
        self.state = state
        return PresenceDecision(state, why, self._bpm, self._conf)
