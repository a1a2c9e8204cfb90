"""Evaluation on Bonn: segment classification and event scoring on concatenated recordings.

Shared by ``models/train_seizure.py`` (figures stored in the manifest and ``docs/seizure.md``)
and the tests, so both measure the same thing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensing.eeg.scoring import Hypothesis, ScoreReport, score_recording
from sensing.eeg.seizure import PredictProba, SeizureDetector, positive_proba
from sensing.eeg.stream_features import features_of
from sensing.formats.eeg_text import EegTextReader
from sensing.formats.eeg_text.bonn import BonnSegment, bonn_segments, concatenated_recording


@dataclass
class SegmentSet:
    """Window features of Bonn segments.

    Attributes
    ----------
    X : numpy.ndarray
        float32 ``(n_windows, N_FEATURES)``.
    y : numpy.ndarray
        1 for set E windows.
    segment : numpy.ndarray
        Index into ``segments`` of each window.
    segments : list of BonnSegment
    """

    X: np.ndarray
    y: np.ndarray
    segment: np.ndarray
    segments: list[BonnSegment]
    flags: np.ndarray | None = None

    def subset(self, sets: str) -> SegmentSet:
        keep_seg = [i for i, s in enumerate(self.segments) if s.set in sets]
        remap = {old: new for new, old in enumerate(keep_seg)}
        m = np.isin(self.segment, keep_seg)
        return SegmentSet(self.X[m], self.y[m], np.array([remap[i] for i in self.segment[m]]),
                          [self.segments[i] for i in keep_seg],
                          None if self.flags is None else self.flags[m])

    def flagged_fraction(self) -> dict[str, float]:
        """Fraction of windows with an artefact flag, per Bonn set."""
        sets = np.array([self.segments[i].set for i in self.segment])
        return {s: float(np.mean(self.flags[sets == s] > 0)) for s in sorted(set(sets))}


def segment_features(segments: Sequence[BonnSegment], window_s: float = 4.0,
                     hop_s: float = 1.0) -> SegmentSet:
    """Features of every window of every segment (the streaming path, one segment at a time)."""
    xs, ys, idx, fl = [], [], [], []
    for i, seg in enumerate(segments):
        fb = features_of(EegTextReader(seg.path).chunks(), window_s, hop_s)
        xs.append(fb.features[:, 0, :])
        fl.append(fb.flags[:, 0])
        ys.append(np.full(len(fb), int(seg.ictal)))
        idx.append(np.full(len(fb), i))
    return SegmentSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(idx), list(segments),
                      np.concatenate(fl))


def segment_scores(ss: SegmentSet, proba: np.ndarray, threshold: float) -> dict[str, Any]:
    """Window and segment accuracy and AUC for one task (``ss`` already restricted to it).

    A segment's probability is the mean of its window probabilities; it is called ictal at
    ``>= threshold``.
    """
    from sklearn.metrics import roc_auc_score

    p = positive_proba(proba)
    n_seg = len(ss.segments)
    seg_p = np.bincount(ss.segment, weights=p, minlength=n_seg) / np.maximum(
        np.bincount(ss.segment, minlength=n_seg), 1)
    seg_y = np.array([int(s.ictal) for s in ss.segments])
    wrong = [ss.segments[i].path.name for i in np.flatnonzero((seg_p >= threshold) != seg_y)]
    return {
        "segments": n_seg,
        "segment_accuracy": float(np.mean((seg_p >= threshold) == seg_y)),
        "segment_auc": float(roc_auc_score(seg_y, seg_p)),
        "windows": int(len(p)),
        "window_accuracy": float(np.mean((p >= threshold) == ss.y)),
        "window_auc": float(roc_auc_score(ss.y, p)),
        "misclassified_segments": wrong,
    }


def long_recordings(root: str | os.PathLike, parity: str, n: int = 4,
                    seed: int = 0) -> list:
    """``n`` recordings from the ``parity`` half of Bonn: A–D background, E seizures."""
    bg = bonn_segments(root, "ABCD", parity)
    ic = bonn_segments(root, "E", parity)
    return [concatenated_recording(bg[r::n], ic[r::n], seed=seed + r) for r in range(n)]


def score_long(recordings: Sequence, predict_proba: PredictProba,
               **detector_options) -> dict[str, Any]:
    """Run the streaming detector on each recording and pool the SzCORE scores."""
    total = ScoreReport()
    for rec in recordings:
        det = SeizureDetector(predict_proba=predict_proba, **detector_options)
        dets = []
        for fr in rec.chunks():
            dets.extend(det.push(fr))
        dets.extend(det.flush())
        hyp = [Hypothesis(d.offset_s, d.offset_s + d.extra["duration_s"], d.extra["detected_at_s"])
               for d in dets if d.type == "seizure"]
        total.add(score_recording(rec.seizures, hyp, rec.duration_s))
    return total.as_dict()
