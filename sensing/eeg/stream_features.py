"""Chunks → filtered sliding windows → per-channel features and artefact flags.

The one path used for training (Bonn segments), live detection and replay, so the model
always sees features computed exactly as at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensing.eeg.artefacts import DEFAULT_THRESHOLDS, ArtefactThresholds, feature_flags, raw_flags
from sensing.eeg.features import N_FEATURES, window_features
from sensing.eeg.preprocess import SlidingWindows, StreamFilter
from sensing.frames import Frames
from sensing.params import Params, param


@dataclass
class FeatureBatch:
    """Features of the windows completed by one chunk.

    Attributes
    ----------
    features : numpy.ndarray
        float32 ``(n_windows, n_channels, N_FEATURES)``.
    flags : numpy.ndarray
        uint8 ``(n_windows, n_channels)`` artefact bits (:data:`sensing.eeg.artefacts.FLAGS`).
    end_s : numpy.ndarray
        Stream time of each window's end in s.
    """

    features: np.ndarray
    flags: np.ndarray
    end_s: np.ndarray

    def __len__(self) -> int:
        return len(self.end_s)


class FeatureStreamParams(Params):
    """Options of :class:`FeatureStream`."""

    window_s: float = param(4.0, unit="s", gt=0, le=600,
                            doc="EEG analysis window (must match the classifier's training)")
    hop_s: float = param(1.0, unit="s", gt=0, le=600, doc="time between EEG windows")


class FeatureStream:
    """Streaming feature extractor for one EEG stream.

    A :class:`sensing.stage.Stage` whose results are batched: :meth:`push` and
    :meth:`flush` return one :class:`FeatureBatch` (possibly empty) rather than a list.

    Parameters
    ----------
    params : FeatureStreamParams, optional
        The options (positional only); default ``FeatureStreamParams()``.
    thresholds : ArtefactThresholds
        Artefact rule thresholds (keyword).
    **options
        Option values applied over ``params``: ``window_s`` and ``hop_s`` (analysis window
        and hop, s; 4 and 1).

    Raises
    ------
    sensing.params.OptionError
        An unknown option or a bad value.

    Notes
    -----
    The filter and window state are created at the first chunk (its rate and channel count);
    a later chunk with another rate or channel count raises ``ValueError``.
    """

    Params = FeatureStreamParams

    def __init__(self, params: FeatureStreamParams | None = None, /, *,
                 thresholds: ArtefactThresholds = DEFAULT_THRESHOLDS, **options: Any) -> None:
        self.params = FeatureStreamParams.build(params, options, where="FeatureStream")
        self.window_s = self.params.window_s
        self.hop_s = self.params.hop_s
        self.thresholds = thresholds
        self.filter: StreamFilter | None = None
        self._win: SlidingWindows | None = None
        self._raw_win: SlidingWindows | None = None
        self.t_start = 0.0
        self.channel_names: tuple[str, ...] = ()

    @property
    def window_len_s(self) -> float:
        """Exact window length in s (whole samples at the analysis rate)."""
        return self._win.window_s if self._win is not None else self.window_s

    def push(self, frames: Frames) -> FeatureBatch:
        """Consume one chunk; return features of the windows it completes."""
        if frames.fs_hz is None:
            raise ValueError(f"{frames.source}: EEG chunk without a sampling rate")
        n_ch = frames.data.shape[1]
        if self.filter is None:
            self.filter = StreamFilter(frames.fs_hz, n_ch)
            out_fs = self.filter.out_fs_hz
            self._win = SlidingWindows(out_fs, n_ch, self.window_s, self.hop_s)
            self._raw_win = SlidingWindows(out_fs, n_ch, self.window_s, self.hop_s)
            self.t_start = frames.start_s
            self.channel_names = tuple(frames.channel_names or ())
        elif abs(frames.fs_hz - self.filter.fs_hz) > 1e-6 or n_ch != self.filter.n_channels:
            raise ValueError(
                f"{frames.source}: chunk at {frames.start_s:.3f} s has {n_ch} channels at "
                f"{frames.fs_hz} Hz; the stream started with {self.filter.n_channels} channels "
                f"at {self.filter.fs_hz} Hz"
            )
        raw = np.asarray(frames.data, dtype=np.float64)
        raw_kept = raw[self.filter.next_phase:: self.filter.q]  # raw rows the filter keeps
        y = self.filter.process(raw)
        wb = self._win.push(y)
        rb = self._raw_win.push(raw_kept)
        if len(wb.end_s) == 0:
            return FeatureBatch(np.zeros((0, n_ch, N_FEATURES), np.float32),
                                np.zeros((0, n_ch), np.uint8), np.zeros(0))
        feats = window_features(wb.windows, self.filter.out_fs_hz)
        flags = raw_flags(rb.windows, self.thresholds) | feature_flags(feats, self.thresholds)
        return FeatureBatch(feats, flags, wb.end_s + self.t_start)

    def flush(self) -> FeatureBatch:
        """End of stream: a window is complete as soon as its last sample is in, so
        nothing is pending; an empty batch."""
        n_ch = self.filter.n_channels if self.filter is not None else 0
        return FeatureBatch(np.zeros((0, n_ch, N_FEATURES), np.float32),
                            np.zeros((0, n_ch), np.uint8), np.zeros(0))


def features_of(chunks: Iterable[Frames], window_s: float = 4.0, hop_s: float = 1.0,
                thresholds: ArtefactThresholds = DEFAULT_THRESHOLDS) -> FeatureBatch:
    """All window features of a (short) recording, concatenated (training, tests)."""
    fs = FeatureStream(window_s=window_s, hop_s=hop_s, thresholds=thresholds)
    parts = [fs.push(fr) for fr in chunks if len(fr)]
    parts.append(fs.flush())
    parts = [p for p in parts if len(p)]
    if not parts:
        return FeatureBatch(np.zeros((0, 0, N_FEATURES), np.float32), np.zeros((0, 0), np.uint8),
                            np.zeros(0))
    return FeatureBatch(np.concatenate([p.features for p in parts]),
                        np.concatenate([p.flags for p in parts]),
                        np.concatenate([p.end_s for p in parts]))
