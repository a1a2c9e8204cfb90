"""Seizure scoring in the SzCORE convention (``timescoring``) plus detection latency.

Sample-based and event-based sensitivity, precision, F1 and false alarms per 24 h come from
the ``timescoring`` package (Dan et al., SzCORE): events closer than 90 s are merged, events
longer than 5 min are split, a hypothesis counts as a true detection when it overlaps the
reference extended by 30 s before and 60 s after. ``timescoring`` has no latency: here the
latency of a detected reference seizure is ``detected_at_s`` of the first hypothesis that
overlaps its extended window, minus the reference onset (the hypothesis onset when the
detector gave no ``detected_at_s``).

Scores over several recordings are pooled: true/false detections, reference events and
durations are summed, then the ratios computed (counts of the whole data set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: SzCORE event-scoring parameters (s).
TOLERANCE_START_S = 30.0
TOLERANCE_END_S = 60.0
MIN_GAP_S = 90.0
MAX_EVENT_S = 300.0


@dataclass
class Hypothesis:
    """A detected seizure: onset and end in s, and when it was confirmed (s), if known."""

    onset_s: float
    end_s: float
    detected_at_s: float | None = None


@dataclass
class Counts:
    """Summed counts of one scoring kind over recordings."""

    ref_true: float = 0.0
    tp: float = 0.0
    fp: float = 0.0
    duration_s: float = 0.0

    def add(self, other: Counts) -> None:
        self.ref_true += other.ref_true
        self.tp += other.tp
        self.fp += other.fp
        self.duration_s += other.duration_s

    def scores(self) -> dict[str, float | None]:
        sens = self.tp / self.ref_true if self.ref_true else None
        prec = self.tp / (self.tp + self.fp) if (self.tp + self.fp) else None
        denom = 2 * self.tp + self.fp + (self.ref_true - self.tp)
        f1 = 2 * self.tp / denom if denom else None
        fa = self.fp / (self.duration_s / 86400.0) if self.duration_s else None
        return {"sensitivity": sens, "precision": prec, "f1": f1, "fp_per_24h": fa,
                "ref_events": self.ref_true, "true_detections": self.tp,
                "false_detections": self.fp, "hours": self.duration_s / 3600.0}


@dataclass
class ScoreReport:
    """Pooled scores of one or more recordings."""

    sample: Counts = field(default_factory=Counts)
    event: Counts = field(default_factory=Counts)
    latencies_s: list[float] = field(default_factory=list)
    recordings: int = 0

    def add(self, other: ScoreReport) -> None:
        self.sample.add(other.sample)
        self.event.add(other.event)
        self.latencies_s.extend(other.latencies_s)
        self.recordings += other.recordings

    def as_dict(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_s, dtype=float)
        return {
            "recordings": self.recordings,
            # sample-based "false alarms" are false-positive seconds per 24 h
            "sample": {("fp_s_per_24h" if k == "fp_per_24h" else k): v
                       for k, v in self.sample.scores().items()},
            "event": self.event.scores(),
            "latency_s": {
                "n": int(lat.size),
                "median": float(np.median(lat)) if lat.size else None,
                "mean": float(lat.mean()) if lat.size else None,
                "max": float(lat.max()) if lat.size else None,
            },
        }


def events_from_labels(labels: np.ndarray, fs_hz: float = 1.0) -> list[tuple[float, float]]:
    """(onset, end) in s of runs of non-zero labels sampled at ``fs_hz``."""
    lab = np.asarray(labels).astype(bool).astype(np.int8)
    d = np.diff(np.concatenate([[0], lab, [0]]))
    on = np.flatnonzero(d == 1)
    off = np.flatnonzero(d == -1)
    return [(a / fs_hz, b / fs_hz) for a, b in zip(on, off, strict=True)]


def score_recording(ref: Sequence[tuple[float, float]], hyp: Sequence[Hypothesis | tuple],
                    duration_s: float) -> ScoreReport:
    """Score one recording.

    Parameters
    ----------
    ref : sequence of (onset_s, end_s)
        Reference seizures.
    hyp : sequence of Hypothesis or (onset_s, end_s)
        Detected seizures.
    duration_s : float
        Recording length in s (sets the false-alarm rate and the sample count).
    """
    from timescoring import scoring
    from timescoring.annotations import Annotation

    hyps = [h if isinstance(h, Hypothesis) else Hypothesis(float(h[0]), float(h[1]))
            for h in hyp]
    n_sec = max(1, int(np.ceil(duration_s)))

    def clip(ev):
        out = []
        for a, b in sorted(ev):
            a, b = max(0.0, float(a)), min(float(n_sec), float(b))
            if b > a:
                out.append((a, b))
        return out

    r = clip(ref)
    h = clip([(x.onset_s, x.end_s) for x in hyps])
    ref_a = Annotation(r, 1, n_sec)
    hyp_a = Annotation(h, 1, n_sec)
    # sample-based at 1 Hz
    ss = scoring.SampleScoring(ref_a, hyp_a, fs=1)
    ev = scoring.EventScoring(ref_a, hyp_a, scoring.EventScoring.Parameters(
        toleranceStart=TOLERANCE_START_S, toleranceEnd=TOLERANCE_END_S, minOverlap=0,
        maxEventDuration=MAX_EVENT_S, minDurationBetweenEvents=MIN_GAP_S))
    rep = ScoreReport(recordings=1)
    rep.sample = Counts(float(ss.refTrue), float(ss.tp), float(ss.fp), float(n_sec))
    rep.event = Counts(float(ev.refTrue), float(ev.tp), float(ev.fp), float(n_sec))
    rep.latencies_s = detection_latencies(r, hyps)
    return rep


def merge_events(events: Sequence[tuple[float, float]],
                 min_gap_s: float = MIN_GAP_S) -> list[tuple[float, float]]:
    """Merge events separated by less than ``min_gap_s`` (the SzCORE rule)."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(events):
        if out and a - out[-1][1] < min_gap_s:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def detection_latencies(ref: Sequence[tuple[float, float]],
                        hyps: Sequence[Hypothesis]) -> list[float]:
    """Latency (s) of each detected reference seizure (see module docstring).

    Reference events closer than 90 s are merged first (as SzCORE scores them).
    """
    out = []
    for a, b in merge_events(ref):
        lo, hi = a - TOLERANCE_START_S, b + TOLERANCE_END_S
        hits = [h for h in hyps if h.onset_s < hi and h.end_s > lo]
        if not hits:
            continue
        first = min(hits, key=lambda h: h.onset_s)
        t = first.detected_at_s if first.detected_at_s is not None else first.onset_s
        out.append(float(t - a))
    return out
