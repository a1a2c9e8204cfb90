"""Chunks → filtered sliding windows → per-channel features and artefact flags.

The one path used for training (Bonn segments), live detection and replay, so the model
always sees features computed exactly as at run time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sensing.eeg.artefacts import DEFAULT_THRESHOLDS, ArtefactThresholds, feature_flags, raw_flags
from sensing.eeg.features import N_FEATURES, window_features
from sensing.eeg.preprocess import SlidingWindows, StreamFilter
from sensing.frames import Frames


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


class FeatureStream:
    """Streaming feature extractor for one EEG stream.

    Parameters
    ----------
    window_s, hop_s : float
        Analysis window and hop in s.
    thresholds : ArtefactThresholds
        Artefact rule thresholds.

    Notes
    -----
    The filter and window state are created at the first chunk (its rate and channel count);
    a later chunk with another rate or channel count raises ``ValueError``.
    """

    def __init__(self, window_s: float = 4.0, hop_s: float = 1.0,
                 thresholds: ArtefactThresholds = DEFAULT_THRESHOLDS) -> None:
        self.window_s = window_s
        self.hop_s = hop_s
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


def features_of(chunks: Iterable[Frames], window_s: float = 4.0, hop_s: float = 1.0,
                thresholds: ArtefactThresholds = DEFAULT_THRESHOLDS) -> FeatureBatch:
    """All window features of a (short) recording, concatenated (training, tests)."""
    fs = FeatureStream(window_s, hop_s, thresholds)
    parts = [fs.push(fr) for fr in chunks if len(fr)]
    parts = [p for p in parts if len(p)]
    if not parts:
        return FeatureBatch(np.zeros((0, 0, N_FEATURES), np.float32), np.zeros((0, 0), np.uint8),
                            np.zeros(0))
    return FeatureBatch(np.concatenate([p.features for p in parts]),
                        np.concatenate([p.flags for p in parts]),
                        np.concatenate([p.end_s for p in parts]))
