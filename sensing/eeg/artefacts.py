"""Artefact flags per channel window: the usual causes of false seizure alarms.

Each flag is a simple physiological rule on the raw window (before filtering: flat and
clipped channels) or on the features of the filtered window (pops, movement, muscle/EMG
and chewing). A flagged channel window is excluded from the seizure decision. Mains hum is
not flagged: the 50/60 Hz notch in :mod:`sensing.eeg.preprocess` removes it.

Thresholds were set on the Bonn *odd* segments (training half): the fraction of ictal (set E)
channel windows they flag is reported by ``models/train_seizure.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensing.eeg.features import FEATURE_NAMES

#: Bit of each artefact in the flag word.
FLAGS: dict[str, int] = {
    "flat": 1,
    "clipped": 2,
    "pop": 4,
    "movement": 8,
    "muscle": 16,
}

_F = {n: i for i, n in enumerate(FEATURE_NAMES)}


@dataclass(frozen=True)
class ArtefactThresholds:
    """Rule thresholds.

    Attributes
    ----------
    flat_uv : float
        Peak-to-peak below this (µV) over the raw window: disconnected or flat channel.
    clip_fraction : float
        Fraction of raw samples exactly at the window's own maximum or minimum above which
        the channel is taken as saturated/clipped.
    pop_kurtosis : float
        Excess kurtosis above which a window is dominated by one transient (electrode pop).
    movement_uv2 : float
        log10 of the delta-band power (µV²) above which, with ``movement_rel_delta`` of the
        power below 4 Hz and a spectral peak below ``movement_peak_hz``, a window is taken as
        movement (body/head movement and sweat sway are slower than ictal rhythms).
    movement_rel_delta : float
        Minimum relative delta power for the movement rule.
    movement_peak_hz : float
        The movement rule applies below this spectral peak frequency (Hz).
    muscle_rel_gamma : float
        Relative 30–45 Hz power above which a window is taken as muscle (EMG, chewing).
    muscle_entropy : float
        Spectral entropy (0–1) above which a window with ``muscle_rel_gamma / 2`` of gamma
        is taken as broadband EMG.
    slow_peak_hz, slow_rel_delta : float
        Slow-wave background (:func:`slow_wave_mask`): spectral peak below ``slow_peak_hz``
        (Hz) with more than ``slow_rel_delta`` of the power in the delta band.
    """

    flat_uv: float = 1.0
    clip_fraction: float = 0.04
    pop_kurtosis: float = 12.0
    movement_uv2: float = 4.5
    movement_rel_delta: float = 0.85
    movement_peak_hz: float = 2.5
    muscle_rel_gamma: float = 0.25
    muscle_entropy: float = 0.85
    slow_peak_hz: float = 2.5
    slow_rel_delta: float = 0.65


#: Default thresholds (immutable).
DEFAULT_THRESHOLDS = ArtefactThresholds()


def raw_flags(raw: np.ndarray, th: ArtefactThresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Flat and clipped flags of raw windows ``(..., n_samples)`` in µV → uint8 ``(...)``."""
    hi = raw.max(axis=-1)
    lo = raw.min(axis=-1)
    ptp = hi - lo
    flags = np.where(ptp < th.flat_uv, FLAGS["flat"], 0).astype(np.uint8)
    # a saturated amplifier or ADC repeats its rail value exactly
    n_rail = (np.count_nonzero(raw == hi[..., None], axis=-1)
              + np.count_nonzero(raw == lo[..., None], axis=-1))
    frac = n_rail / raw.shape[-1]
    flags |= np.where((frac > th.clip_fraction) & (ptp >= th.flat_uv), FLAGS["clipped"], 0
                      ).astype(np.uint8)
    return flags


def feature_flags(feats: np.ndarray, th: ArtefactThresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Pop, movement and muscle flags from window features ``(..., N_FEATURES)`` → uint8."""
    kurt = feats[..., _F["kurtosis"]]
    rel_d = feats[..., _F["rel_delta"]]
    abs_d = feats[..., _F["log_abs_delta"]]
    rel_g = feats[..., _F["rel_gamma"]]
    ent = feats[..., _F["spectral_entropy"]]
    peak = feats[..., _F["peak_freq_hz"]]
    flags = np.where(kurt > th.pop_kurtosis, FLAGS["pop"], 0).astype(np.uint8)
    move = (abs_d > th.movement_uv2) & (rel_d > th.movement_rel_delta) & (peak < th.movement_peak_hz)
    flags |= np.where(move, FLAGS["movement"], 0).astype(np.uint8)
    muscle = (rel_g > th.muscle_rel_gamma) | ((ent > th.muscle_entropy)
                                               & (rel_g > th.muscle_rel_gamma / 2))
    flags |= np.where(muscle, FLAGS["muscle"], 0).astype(np.uint8)
    return flags


def slow_wave_mask(feats: np.ndarray, th: ArtefactThresholds = DEFAULT_THRESHOLDS
                   ) -> np.ndarray:
    """Windows dominated by slow delta activity (peak < 2.5 Hz, > 65 % of power in δ).

    Not an artefact but the background that fools the classifier most on long recordings:
    high-amplitude rhythmic delta of interictal EEG (Bonn sets C/D) gets seizure
    probabilities of 0.5–0.9 on one or several neighbouring derivations. Ictal rhythms are
    faster: on the Bonn dev segments 4 % of the confidently ictal set E windows fall under
    this rule, against 75 % of the background windows the classifier calls ictal. Spike-wave
    at 3 Hz is above the 2.5 Hz peak limit. Returns a boolean array ``(...)``.
    """
    return ((feats[..., _F["peak_freq_hz"]] < th.slow_peak_hz)
            & (feats[..., _F["rel_delta"]] > th.slow_rel_delta))


def describe(flags: int) -> list[str]:
    """Names of the artefacts set in a flag word."""
    return [name for name, bit in FLAGS.items() if flags & bit]
