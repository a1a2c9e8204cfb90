"""Streaming seizure detector: window probabilities → smoothing → seizure events.

For every window (4 s, 1 s hop) and every channel the classifier gives a seizure
probability; artefact-flagged channel windows are set to 0; the window's probability is the
k-th highest over channels (k = ``min_channels``, so one bad electrode cannot raise an
alarm on a multichannel montage). A focal seizure seen by one derivation only still counts
through the single-channel path: a channel whose artefact-free probability averages at least
``single_channel_threshold`` over the last ``single_channel_windows`` windows gives the window
that value (and the onset goes back to the start of that channel's ictal run). A causal
moving average over ``smooth_windows`` windows is then thresholded with hysteresis
(:class:`sensing.dsp.Debouncer`):

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
from typing import Any

import numpy as np

from sensing.detections import Detection
from sensing.dsp import Debouncer
from sensing.eeg.artefacts import (
    DEFAULT_THRESHOLDS,
    ArtefactThresholds,
    describe,
    slow_wave_mask,
)
from sensing.eeg.stream_features import FeatureBatch, FeatureStream, FeatureStreamParams
from sensing.frames import Frames
from sensing.params import Params, param

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


class SeizureDecisionParams(Params):
    """The decision options of :class:`SeizureDetector` (also those of the ``eeg_seizure``
    pipeline, whose windows are set by its model)."""

    threshold: float = param(0.5, gt=0, lt=1,
                             doc="smoothed seizure probability at which a window is ictal")
    off_threshold: float | None = param(
        None, ge=0, le=1, doc="smoothed probability below which a window is non-ictal; "
                              "default: 0.8 × threshold")
    smooth_windows: int = param(3, ge=1, doc="length of the causal moving average, in windows")
    confirm_windows: int = param(1, ge=1, doc="consecutive ictal windows that confirm an onset")
    release_windows: int = param(4, ge=1, doc="consecutive non-ictal windows that end a seizure")
    min_channels: int = param(2, ge=1, doc="channels that must agree (k-th highest channel "
                                           "probability)")
    min_duration_s: float = param(10.0, unit="s", ge=0, doc="shorter seizures are dropped")
    single_channel_threshold: float | None = param(
        0.99, gt=0, le=1, doc="a single channel whose artefact-free probability, averaged "
                              "over single_channel_windows windows, reaches this counts on "
                              "its own (focal seizures seen by one derivation); None: off")
    single_channel_windows: int = param(8, ge=1, doc="windows of the single-channel average")
    slow_wave_gate: bool = param(True, doc="slow-delta windows (peak < 2.5 Hz, > 65 % δ "
                                           "power) count as non-ictal")
    min_peak: float | None = param(
        None, gt=0, le=1, doc="a seizure is reported only if its smoothed probability "
                              "reached this at least once (None: off)")
    alert: bool = param(True, doc="emit seizure_alert at the confirmed onset")


class SeizureParams(SeizureDecisionParams, FeatureStreamParams):
    """Options of :class:`SeizureDetector`: the analysis windows
    (:class:`~sensing.eeg.stream_features.FeatureStreamParams`) and the decision."""


class SeizureDetector:
    """Seizure events from an EEG stream (a :class:`sensing.stage.Stage` of detections).

    Parameters
    ----------
    params : SeizureParams, optional
        The options (positional only); default ``SeizureParams()``.
    predict_proba : callable
        Channel-window classifier (keyword; see :data:`PredictProba`).
    thresholds : ArtefactThresholds
        Artefact rule thresholds (keyword).
    **options
        Option values applied over ``params`` (see :class:`SeizureParams`):

        window_s, hop_s : float
            Analysis window and hop in s (must match the training of the classifier).
        threshold : float
            Smoothed probability at which a window counts as ictal (0–1, exclusive).
        off_threshold : float, optional
            Smoothed probability below which a window counts as non-ictal (default
            0.8 × ``threshold``).
        smooth_windows : int
            Length of the causal moving average, in windows.
        confirm_windows, release_windows : int
            Consecutive windows needed to confirm an onset / an end.
        min_channels : int
            Channels that must agree (k-th highest channel probability).
        single_channel_threshold : float, optional
            One channel alone counts when its artefact-free probability averaged over
            ``single_channel_windows`` windows reaches this (0.99; None: off). Only with
            several channels and ``min_channels`` > 1.
        single_channel_windows : int
            Windows of that average (8).
        slow_wave_gate : bool
            Slow-delta windows (:func:`sensing.eeg.artefacts.slow_wave_mask`) count as
            non-ictal (True).
        min_peak : float, optional
            Report a seizure only if its smoothed probability reached this (None: off).
        min_duration_s : float
            Shorter events are dropped (their ``seizure_alert``, if emitted, stays; s).
            Default 10 s, the usual minimum of an electrographic seizure (ACNS
            terminology); most artefacts (movement, pops, short EMG bursts) are shorter.
        alert : bool
            Emit ``seizure_alert`` at confirmed onset.

    Raises
    ------
    sensing.params.OptionError
        An unknown option or a bad value.
    """

    Params = SeizureParams

    def __init__(
        self,
        params: SeizureParams | None = None,
        /,
        *,
        predict_proba: PredictProba,
        thresholds: ArtefactThresholds = DEFAULT_THRESHOLDS,
        **options: Any,
    ) -> None:
        self.params = p = SeizureParams.build(params, options, where="SeizureDetector")
        window_s, hop_s, threshold = p.window_s, p.hop_s, p.threshold
        self.predict_proba = predict_proba
        self.window_s = window_s
        self.threshold = threshold
        self.off_threshold = 0.8 * threshold if p.off_threshold is None else p.off_threshold
        self.confirm_windows = max(1, p.confirm_windows)
        self.release_windows = max(1, p.release_windows)
        self.min_channels = p.min_channels
        self.min_duration_s = p.min_duration_s
        self.alert = p.alert
        self.single_threshold = p.single_channel_threshold
        self.min_peak = p.min_peak
        self.slow_wave_gate = p.slow_wave_gate
        self.thresholds = thresholds
        self._chan_mean: deque[np.ndarray] = deque(maxlen=max(1, p.single_channel_windows))
        self._run_len = np.zeros(0, dtype=np.int64)  # ictal windows in a row, per channel
        self._lead_s = np.zeros(0)
        self.hop_s = hop_s
        self.features = FeatureStream(window_s=window_s, hop_s=hop_s, thresholds=thresholds)
        #: Windows a channel stays excluded after an artefact flag (window overlap).
        self.hold_windows = max(0, int(round(window_s / hop_s)) - 1) + 1
        self._hold = np.zeros(0, dtype=np.int64)
        self._smooth: deque[float] = deque(maxlen=max(1, p.smooth_windows))
        self._run_start: float | None = None  # onset (start of the first ictal window)
        #: ``confirm_windows`` ictal windows in a row confirm an onset, ``release_windows``
        #: windows in a row below ``off_threshold`` end it (hysteresis).
        self._debounce = Debouncer(self.threshold, self.off_threshold,
                                   on_count=self.confirm_windows,
                                   off_count=self.release_windows)
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
        if self.slow_wave_gate:
            p = np.where(slow_wave_mask(batch.features, self.thresholds), 0.0, p)
        vote = channel_vote(p, batch.flags, self.min_channels)
        self._lead_s = np.zeros(n_w)
        if self.single_threshold is not None and n_ch > 1 and self.min_channels > 1:
            single, lead = self._single_channel(np.where(batch.flags == 0, p, 0.0))
            use = single > vote
            vote = np.where(use, single, vote)
            self._lead_s = np.where(use, lead, 0.0)
        return p, vote

    def _single_channel(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per window: the best channel's causal mean of gated probability over
        ``single_channel_windows`` windows where it reaches ``single_channel_threshold``,
        else 0; and how far (s) that channel's run of ictal windows goes back. A focal seizure seen by one derivation keeps its channel near 1 for tens of
        seconds; background that fools the classifier rarely does."""
        out = np.zeros(len(q))
        lead = np.zeros(len(q))
        if len(self._run_len) != q.shape[1]:
            self._run_len = np.zeros(q.shape[1], dtype=np.int64)
        for i, row in enumerate(q):
            self._chan_mean.append(row)
            self._run_len = np.where(row >= self.threshold, self._run_len + 1, 0)
            if len(self._chan_mean) < self._chan_mean.maxlen:
                continue
            mean = np.mean(self._chan_mean, axis=0)
            j = int(np.argmax(mean))
            if mean[j] >= self.single_threshold:
                out[i] = mean[j]
                # onset: where the channel's run of ictal windows began
                lead[i] = max(0, int(self._run_len[j]) - 1) * self.hop_s
        return out, lead

    def push(self, frames: Frames) -> list[Detection]:
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
        lead = self._lead_s if len(self._lead_s) == len(batch) else np.zeros(len(batch))
        for i, end in enumerate(batch.end_s):
            self._smooth.append(float(win_p[i]))
            s = float(np.mean(self._smooth))
            out.extend(self._step(float(end), s, chan_p[i], float(lead[i])))
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

    def _step(self, end: float, s: float, chan_p: np.ndarray, lead_s: float = 0.0
              ) -> list[Detection]:
        self._last_end = end
        was_active = self._debounce.on
        change = self._debounce.step(end, s, chan_p)
        if not was_active:
            if change is None:
                return []
            # onset confirmed by the run of ictal windows
            run = change.inputs
            self._run_start = max(self.features.t_start,
                                  run[0].t_s - self.features.window_len_s - lead_s)
            self._chan_hits[:] = 0
            self._max_p = run[0].value
            for w in run:
                self._chan_hits += w.item >= self.threshold
                self._max_p = max(self._max_p, w.value)
            self._detected_at = end
            self._last_ictal_end = end
            if not self.alert:
                return []
            return [Detection("seizure_alert", self._run_start, None, "", min(1.0, s),
                              {"detected_at_s": round(end, 3)})]
        if change is not None:  # released
            return self._close()
        if not self._debounce.low(s):
            self._last_ictal_end = end
            self._max_p = max(self._max_p, s)
            self._chan_hits += chan_p >= self.threshold
        return []

    def _close(self) -> list[Detection]:
        onset = float(self._run_start or 0.0)
        duration = self._last_ictal_end - onset
        self._debounce.reset()
        if duration < self.min_duration_s:
            return []
        if self.min_peak is not None and self._max_p < self.min_peak:
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
        if self._debounce.on:
            return self._close()
        return []

    def quiet_reason(self) -> str | None:
        """Why no seizure was reported, in a few words (from the windows pushed so far)."""
        if not self.n_windows:
            return f"capture shorter than the {self.window_s:g} s window"
        flagged = f", {self.n_flagged} with artefacts" if self.n_flagged else ""
        return f"no seizure found in {self.n_windows} windows{flagged}"

    def artefact_summary(self) -> dict[str, int]:
        """Channel windows flagged per artefact kind so far."""
        if self._flag_counts is None:
            return {}
        return {describe(1 << b)[0]: int(c) for b, c in enumerate(self._flag_counts)
                if c and describe(1 << b)}


def detect_seizures(chunks: Iterable[Frames], predict_proba: PredictProba,
                    **options: Any) -> list[Detection]:
    """Run a :class:`SeizureDetector` over an iterable of chunks (convenience for scripts).

    ``options``: :class:`SeizureParams` options and ``thresholds``.
    """
    det = SeizureDetector(predict_proba=predict_proba, **options)
    out: list[Detection] = []
    for fr in chunks:
        if len(fr):
            out.extend(det.push(fr))
    out.extend(det.flush())
    return out
