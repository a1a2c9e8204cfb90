"""Streaming seizure detector: window probabilities → smoothing → seizure events.

For every window (4 s, 1 s hop) and every channel the classifier gives a seizure
probability; artefact-flagged channel windows are set to 0; the window's probability is the
k-th highest over channels (k = ``min_channels``, so one bad electrode cannot raise an
alarm on a multichannel montage); a causal moving average over ``smooth_windows`` windows
is then thresholded with hysteresis:

* onset is confirmed after ``confirm_windows`` consecutive windows at or above
  ``threshold``; a ``seizure_alert`` is emitted then (optional), carrying ``detected_at_s``;
* the seizure ends after ``release_windows`` consecutive windows below ``off_threshold``;
  a ``seizure`` event is emitted then, with the onset as ``offset_s`` and ``duration_s``.

Onset is the start of the first window of the run (window end − window length). Detection
latency (``detected_at_s`` − true onset) is computed by ``ambisense eval seizure``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import numpy as np

from sensing.detections import Detection
from sensing.eeg.artefacts import DEFAULT_THRESHOLDS, ArtefactThresholds, describe
from sensing.eeg.stream_features import FeatureBatch, FeatureStream
from sensing.frames import Frames

#: ``predict_proba(X)`` with X float32 ``(n, N_FEATURES)`` → ``(n,)`` or ``(n, 2)`` probabilities.
PredictProba = Callable[[np.ndarray], np.ndarray]


def positive_proba(p: np.ndarray) -> np.ndarray:
    """Probability of the seizure class from ``(n,)`` or ``(n, 2)`` classifier output."""
    p = np.asarray(p, dtype=np.float64)
    return p[:, 1] if p.ndim == 2 else p


def channel_vote(p: np.ndarray, flags: np.ndarray, min_channels: int) -> np.ndarray:
    """Window probability from channel probabilities ``(n_windows, n_channels)``.

    Flagged channel windows count as 0; the result is the ``k``-th highest channel value with
    ``k = min(min_channels, n_channels)``.
    """
    q = np.where(flags == 0, p, 0.0)
    k = max(1, min(min_channels, q.shape[1]))
    return -np.partition(-q, k - 1, axis=1)[:, k - 1]


class SeizureDetector:
    """Seizure events from an EEG stream.

    Parameters
    ----------
    predict_proba : callable
        Channel-window classifier (see :data:`PredictProba`).
    window_s, hop_s : float
        Analysis window and hop in s (must match the training of the classifier).
    threshold : float
        Smoothed probability at which a window counts as ictal.
    off_threshold : float, optional
        Smoothed probability below which a window counts as non-ictal (default
        0.8 × ``threshold``).
    smooth_windows : int
        Length of the causal moving average, in windows.
    confirm_windows, release_windows : int
        Consecutive windows needed to confirm an onset / an end.
    min_channels : int
        Channels that must agree (k-th highest channel probability).
    min_duration_s : float
        Shorter events are dropped (their ``seizure_alert``, if emitted, stays). Default 10 s,
        the usual minimum of an electrographic seizure (ACNS terminology); most artefacts
        (movement, pops, short EMG bursts) are shorter.
    alert : bool
        Emit ``seizure_alert`` at confirmed onset.
    thresholds : ArtefactThresholds
        Artefact rule thresholds.
    """

    def __init__(
        self,
        predict_proba: PredictProba,
        *,
        window_s: float = 4.0,
        hop_s: float = 1.0,
        threshold: float = 0.5,
        off_threshold: float | None = None,
        smooth_windows: int = 3,
        confirm_windows: int = 2,
        release_windows: int = 4,
        min_channels: int = 2,
        min_duration_s: float = 10.0,
        alert: bool = True,
        thresholds: ArtefactThresholds = DEFAULT_THRESHOLDS,
    ) -> None:
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.predict_proba = predict_proba
        self.window_s = window_s
        self.threshold = threshold
        self.off_threshold = 0.8 * threshold if off_threshold is None else off_threshold
        self.confirm_windows = max(1, confirm_windows)
        self.release_windows = max(1, release_windows)
        self.min_channels = min_channels
        self.min_duration_s = min_duration_s
        self.alert = alert
        self.features = FeatureStream(window_s, hop_s, thresholds)
        #: Windows a channel stays excluded after an artefact flag (window overlap).
        self.hold_windows = max(0, int(round(window_s / hop_s)) - 1) + 1
        self._hold = np.zeros(0, dtype=np.int64)
        self._smooth: deque[float] = deque(maxlen=max(1, smooth_windows))
        self._run_start: float | None = None  # onset candidate (start of first ictal window)
        self._above = 0
        self._below = 0
        self._active = False
        self._detected_at = 0.0
        self._last_ictal_end = 0.0
        self._max_p = 0.0
        self._chan_hits: np.ndarray | None = None
        self._flag_counts: np.ndarray | None = None
        self._last_end = 0.0
        #: Windows seen, and windows with at least one artefact-flagged channel.
        self.n_windows = 0
        self.n_flagged = 0

    # ------------------------------------------------------------------------------
    def window_probabilities(self, batch: FeatureBatch) -> tuple[np.ndarray, np.ndarray]:
        """Channel probabilities ``(n_windows, n_channels)`` and the voted window values."""
        n_w, n_ch, n_f = batch.features.shape
        p = positive_proba(self.predict_proba(batch.features.reshape(-1, n_f)))
        p = p.reshape(n_w, n_ch)
        return p, channel_vote(p, batch.flags, self.min_channels)

    def process(self, frames: Frames) -> list[Detection]:
        """Consume one chunk; return the detections it completed."""
        batch = self.features.push(frames)
        if not len(batch):
            return []
        if self._chan_hits is None:
            n_ch = batch.flags.shape[1]
            self._chan_hits = np.zeros(n_ch)
            self._flag_counts = np.zeros(8, dtype=np.int64)
            self._hold = np.zeros(n_ch, dtype=np.int64)
        gate = self._dilate(batch.flags)
        chan_p, win_p = self.window_probabilities(FeatureBatch(batch.features, gate,
                                                               batch.end_s))
        self.n_windows += len(batch)
        self.n_flagged += int(np.count_nonzero(batch.flags.any(axis=1)))
        for bit in range(8):
            self._flag_counts[bit] += int(np.count_nonzero(batch.flags & (1 << bit)))
        out: list[Detection] = []
        for i, end in enumerate(batch.end_s):
            self._smooth.append(float(win_p[i]))
            s = float(np.mean(self._smooth))
            out.extend(self._step(float(end), s, chan_p[i]))
        return out

    def _dilate(self, flags: np.ndarray) -> np.ndarray:
        """Keep a channel excluded for ``hold_windows`` windows after an artefact: later windows
        still overlap it and carry its edge (a window only partly covering a saturation or a
        movement is not flagged itself but looks like a large rhythmic discharge)."""
        out = flags.copy()
        for i in range(len(flags)):
            hit = flags[i] != 0
            self._hold = np.where(hit, self.hold_windows, np.maximum(self._hold - 1, 0))
            out[i] = np.where((self._hold > 0) & ~hit, 128, flags[i])
        return out

    def _step(self, end: float, s: float, chan_p: np.ndarray) -> list[Detection]:
        self._last_end = end
        out: list[Detection] = []
        if not self._active:
            if s >= self.threshold:
                if self._above == 0:
                    self._run_start = max(self.features.t_start, end - self.features.window_len_s)
                    self._chan_hits[:] = 0
                self._above += 1
                self._chan_hits += chan_p >= self.threshold
                self._max_p = max(self._max_p, s) if self._above > 1 else s
                if self._above >= self.confirm_windows:
                    self._active = True
                    self._below = 0
                    self._detected_at = end
                    self._last_ictal_end = end
                    if self.alert:
                        out.append(Detection(
                            "seizure_alert", self._run_start, None, "", min(1.0, s),
                            {"detected_at_s": round(end, 3)},
                        ))
            else:
                self._above = 0
            return out
        if s >= self.off_threshold:
            self._below = 0
            self._last_ictal_end = end
            self._max_p = max(self._max_p, s)
            self._chan_hits += chan_p >= self.threshold
        else:
            self._below += 1
            if self._below >= self.release_windows:
                out.extend(self._close())
        return out

    def _close(self) -> list[Detection]:
        onset = float(self._run_start or 0.0)
        duration = self._last_ictal_end - onset
        self._active = False
        self._above = 0
        self._below = 0
        if duration < self.min_duration_s:
            return []
        names = self.features.channel_names
        top = np.argsort(-self._chan_hits)[:3]
        chans = [names[j] if j < len(names) else str(j) for j in top if self._chan_hits[j] > 0]
        return [Detection(
            "seizure", onset, round(duration, 3), "s", min(1.0, self._max_p),
            {"duration_s": round(duration, 3), "detected_at_s": round(self._detected_at, 3),
             "channels": chans},
        )]

    def flush(self) -> list[Detection]:
        """End of stream: close a seizure still in progress."""
        if self._active:
            return self._close()
        return []

    def artefact_summary(self) -> dict[str, int]:
        """Channel windows flagged per artefact kind so far."""
        if self._flag_counts is None:
            return {}
        return {describe(1 << b)[0]: int(c) for b, c in enumerate(self._flag_counts)
                if c and describe(1 << b)}


def detect_seizures(chunks: Iterable[Frames], predict_proba: PredictProba,
                    **options) -> list[Detection]:
    """Run a :class:`SeizureDetector` over an iterable of chunks (convenience for scripts)."""
    det = SeizureDetector(predict_proba, **options)
    out: list[Detection] = []
    for fr in chunks:
        if len(fr):
            out.extend(det.process(fr))
    out.extend(det.flush())
    return out
