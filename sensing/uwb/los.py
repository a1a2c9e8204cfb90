"""LOS/NLOS classification of a UWB link from the shape of its CIRs (DW1000/DW3000).

Features per CIR (magnitude of the RXPACC-normalised accumulator, first path ``fp`` from
the chip's fractional index, or the leading edge when missing):

=========================  ===========================================================
``rsl_minus_fsl_db``       receive level minus first-path level (the chip's own
                           estimates, ``RSL``/``FSL`` of the log; from the CIR when the log
                           has none): large when the first path is weak against the
                           multipath (the DW1000 user manual's NLOS indicator, APS006)
``fp_to_peak_db``          first-path amplitude over the strongest tap (dB, ≤ 0)
``peak_delay_taps``        strongest tap minus first path (taps, ~1 ns)
``rise_time_taps``         leading edge: first tap over 10 % of the peak to the peak
``mean_excess_delay_ns``   power-weighted mean delay after the first path (60 taps)
``rms_delay_spread_ns``    power-weighted RMS delay spread (same window)
``kurtosis``               kurtosis of the magnitude over that window
``energy_3taps``           share of the window's energy in the first 3 taps from fp
``fp_level_1m_dbm``        first-path level corrected for free-space spreading,
                           ``FSL + 20 log10(distance / 1 m)`` (dBm; needs the chip's FSL
                           and a ranging distance, the latest one of the link; NaN
                           without): a wall or a body in the direct path attenuates it
=========================  ===========================================================

The classifier is a **documented rule** (:func:`classify`), its thresholds checked on the
real Kolakowski 2018 logs by leave-one-log-out (``benchmarks/eval_uwb_real.py``: each log
is scored with thresholds fitted on the other six):

* with a distance and the chip's first-path level: NLOS when ``fp_level_1m_dbm <
  fp_level_nlos_dbm`` (-75.5 dBm; LOS logs lie at -72..-73, NLOS at -77..-85 with the
  EVK1000 at its default transmit power: **recalibrate it for another transmit power or
  antenna**);
* otherwise, from the CIR shape alone: NLOS when the first path is weak against the
  strongest path (``fp_to_peak_db < fp_to_peak_nlos_db``, -20 dB) or the strongest path
  comes late (``peak_delay_taps > peak_delay_nlos_taps``, 3.5 taps).

A link's state over a window of CIRs is the majority of its CIRs
(:class:`LinkStateClassifier`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from sensing.frames import Frames
from sensing.params import Params, param
from sensing.uwb.conditioning import TAP_S, detect_first_path, normalise_cir

__all__ = ["FEATURES", "cir_features", "rule_features", "frames_features", "classify", "LosParams",
           "LinkStateClassifier", "forward_fill"]

FEATURES = ("rsl_minus_fsl_db", "fp_to_peak_db", "peak_delay_taps", "rise_time_taps",
            "mean_excess_delay_ns", "rms_delay_spread_ns", "kurtosis", "energy_3taps",
            "fp_level_1m_dbm")
#: Taps after the first path in the delay-spread window.
WINDOW_TAPS = 60


def cir_features(cir: np.ndarray, first_path_index: np.ndarray | None = None,
                 rxpacc: np.ndarray | None = None, rsl_dbm: np.ndarray | None = None,
                 fsl_dbm: np.ndarray | None = None, tap_s: float = TAP_S,
                 distance_m: np.ndarray | None = None) -> np.ndarray:
    """Features of :data:`FEATURES` for each CIR: ``(n, len(FEATURES))`` float64.

    Parameters
    ----------
    cir : numpy.ndarray
        Complex ``(n, n_taps)`` raw accumulators.
    first_path_index : numpy.ndarray, optional
        Fractional first-path index per CIR (taps); detected when missing or NaN.
    rxpacc : numpy.ndarray, optional
        Preamble accumulation count (normalisation).
    rsl_dbm, fsl_dbm : numpy.ndarray, optional
        The chip's receive / first-path level estimates (dBm).
    tap_s : float
        Tap spacing (s).
    distance_m : numpy.ndarray, optional
        Link distance per CIR (m; NaN where unknown).
    """
    x, k0, w, fpa, win, peak_off, peak = _first_path_window(cir, first_path_index, rxpacc)
    n, m = x.shape
    rows = np.arange(n)
    p = win ** 2
    ptot = np.maximum(p.sum(axis=1), 1e-30)
    delay = (np.arange(WINDOW_TAPS) * tap_s * 1e9)[None, :]
    med = (p * delay).sum(axis=1) / ptot
    rms = np.sqrt(np.maximum((p * delay ** 2).sum(axis=1) / ptot - med ** 2, 0))
    # leading edge: first tap before the peak over 10 % of it, searched 20 taps back
    back = k0[:, None] - 20 + np.arange(21 + WINDOW_TAPS)[None, :]
    edge_seg = x[rows[:, None], np.clip(back, 0, m - 1)]
    over = edge_seg >= 0.1 * peak[:, None]
    first_over = over.argmax(axis=1) - 20
    rise = np.maximum(peak_off - first_over, 0).astype(np.float64)
    fp_db = _fp_to_peak_db(fpa, peak)
    if rsl_dbm is not None and fsl_dbm is not None and np.isfinite(rsl_dbm).all() \
            and np.isfinite(fsl_dbm).all():
        rf = np.asarray(rsl_dbm, np.float64) - np.asarray(fsl_dbm, np.float64)
    else:  # from the CIR: total power of the window over the first-path power
        rf = 10 * np.log10(ptot / np.maximum(fpa ** 2, 1e-30))
    kurt = stats.kurtosis(win, axis=1, fisher=False)
    e3 = p[:, :3].sum(axis=1) / ptot
    lvl = _fp_level_1m(n, fsl_dbm, distance_m)
    return np.column_stack([rf, fp_db, peak_off - w, rise, med, rms, kurt, e3, lvl])


def rule_features(cir: np.ndarray, first_path_index: np.ndarray | None = None,
                  rxpacc: np.ndarray | None = None, fsl_dbm: np.ndarray | None = None,
                  distance_m: np.ndarray | None = None) -> np.ndarray:
    """The columns of :func:`cir_features` that :func:`classify` reads
    (``fp_to_peak_db``, ``peak_delay_taps``, ``fp_level_1m_dbm``: the same values), the
    others NaN: ``(n, len(FEATURES))``. What the streaming classifier computes."""
    x, k0, w, fpa, win, peak_off, peak = _first_path_window(cir, first_path_index, rxpacc)
    n = len(x)
    out = np.full((n, len(FEATURES)), np.nan)
    out[:, FEATURES.index("fp_to_peak_db")] = _fp_to_peak_db(fpa, peak)
    out[:, FEATURES.index("peak_delay_taps")] = peak_off - w
    out[:, FEATURES.index("fp_level_1m_dbm")] = _fp_level_1m(n, fsl_dbm, distance_m)
    return out


def _first_path_window(cir: np.ndarray, first_path_index: np.ndarray | None,
                       rxpacc: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Normalised magnitudes ``x``, whole and fractional first-path tap ``k0``/``w``,
    first-path amplitude, the :data:`WINDOW_TAPS` window after it, its peak offset and
    peak."""
    x = np.abs(normalise_cir(cir, rxpacc)).astype(np.float64)
    n, m = x.shape
    fp = (np.full(n, np.nan) if first_path_index is None
          else np.asarray(first_path_index, np.float64).copy())
    bad = ~np.isfinite(fp) | (fp < 0) | (fp >= m - 1)
    if bad.any():
        fp[bad] = detect_first_path(cir[bad])
    fp = np.clip(np.nan_to_num(fp), 0, m - 2)
    k0 = np.floor(fp).astype(int)
    w = fp - k0
    rows = np.arange(n)
    fpa = x[rows, k0] * (1 - w) + x[rows, k0 + 1] * w
    idx = k0[:, None] + np.arange(WINDOW_TAPS)[None, :]
    idx = np.clip(idx, 0, m - 1)
    win = x[rows[:, None], idx]
    peak_off = win.argmax(axis=1)
    peak = win[rows, peak_off]
    return x, k0, w, fpa, win, peak_off, peak


def _fp_to_peak_db(fpa: np.ndarray, peak: np.ndarray) -> np.ndarray:
    return 20 * np.log10(np.maximum(fpa, 1e-12) / np.maximum(peak, 1e-12))


def _fp_level_1m(n: int, fsl_dbm: np.ndarray | None, distance_m: np.ndarray | None
                 ) -> np.ndarray:
    lvl = np.full(n, np.nan)
    if fsl_dbm is not None and distance_m is not None:
        d = np.asarray(distance_m, np.float64)
        ok = np.isfinite(d) & (d > 0.05)
        lvl[ok] = np.asarray(fsl_dbm, np.float64)[ok] + 20 * np.log10(d[ok])
    return lvl


def forward_fill(x: np.ndarray, last: float = float("nan")) -> tuple[np.ndarray, float]:
    """``x`` with every NaN replaced by the latest finite value before it (``last`` before
    the first); also returns the latest finite value."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x)
    idx = np.where(ok, np.arange(len(x)), -1)
    np.maximum.accumulate(idx, out=idx)
    out = np.where(idx >= 0, x[np.maximum(idx, 0)], last)
    return out, (float(out[-1]) if len(out) else last)


def frames_features(frames: Frames, last_distance_m: float = float("nan")) -> np.ndarray:
    """:func:`cir_features` of a ``uwb_cir`` chunk, from its data and fields (the distance
    carried forward from the latest ranging, ``last_distance_m`` before the chunk's
    first)."""
    f = frames.fields
    dist = f.get("distance_m")
    if dist is not None:
        dist, _ = forward_fill(dist, last_distance_m)
    return cir_features(frames.data, f.get("first_path_index"), f.get("rxpacc"),
                        f.get("rsl_dbm"), f.get("fsl_dbm"),
                        float(frames.meta.get("tap_s", TAP_S)), dist)


class LosParams(Params):
    """Options of the LOS/NLOS rule and of the ``uwb_link`` pipeline."""

    fp_level_nlos_dbm: float = param(-75.5, unit="dBm", ge=-150, le=0,
                                     doc="first-path level at 1 m below it: NLOS (needs "
                                     "ranging; calibrate per transmit power/antenna)")
    fp_to_peak_nlos_db: float = param(-20.0, unit="dB", ge=-60, le=0,
                                      doc="without ranging: first path weaker than the "
                                      "peak by more: NLOS")
    peak_delay_nlos_taps: float = param(3.5, unit="taps", ge=0, le=100,
                                        doc="without ranging: peak later than the first "
                                        "path by more: NLOS")
    window_s: float = param(10.0, unit="s", gt=0, le=3600,
                            doc="CIRs per link-state decision (majority vote)")
    min_cirs: int = param(3, ge=1, le=10000, doc="fewest CIRs for a decision")


def classify(features: np.ndarray, params: LosParams | None = None) -> np.ndarray:
    """The rule: True = NLOS for each row of :func:`cir_features`."""
    p = params or LosParams()
    fp_db = features[:, FEATURES.index("fp_to_peak_db")]
    delay = features[:, FEATURES.index("peak_delay_taps")]
    lvl = features[:, FEATURES.index("fp_level_1m_dbm")]
    shape = (fp_db < p.fp_to_peak_nlos_db) | (delay > p.peak_delay_nlos_taps)
    return np.where(np.isfinite(lvl), lvl < p.fp_level_nlos_dbm, shape)


class LinkStateClassifier:
    """Streaming LOS/NLOS of one link: one decision per ``window_s`` of CIRs (majority of
    the per-CIR rule), as ``(end_s, "los"|"nlos", nlos_fraction, n_cirs)`` tuples. Only
    the features the rule reads are computed (:func:`rule_features`)."""

    Params = LosParams

    def __init__(self, params: LosParams | None = None, /, **options: Any) -> None:
        self.params = LosParams.build(params, options, where="uwb_link")
        self._votes: list[np.ndarray] = []
        self._start: float | None = None
        self._last_t: float | None = None
        self._distance = float("nan")

    def push(self, frames: Frames) -> list[tuple[float, str, float, int]]:
        if not len(frames) or frames.modality != "uwb_cir":
            return []
        if "distance_m" in frames.fields:
            _, last = forward_fill(frames.fields["distance_m"], self._distance)
        else:
            last = self._distance
        f = frames.fields
        dist = f.get("distance_m")
        if dist is not None:
            dist, _ = forward_fill(dist, self._distance)
        nlos = classify(rule_features(frames.data, f.get("first_path_index"), f.get("rxpacc"),
                                      f.get("fsl_dbm"), dist), self.params)
        self._distance = last
        out = []
        t = frames.times_s
        if self._start is None:
            self._start = float(t[0])
        a = 0
        while True:
            end = self._start + self.params.window_s
            k = int(np.searchsorted(t, end, side="left"))
            if k >= len(t):
                break
            self._votes.append(nlos[a:k])
            out += self._decide(end)
            self._start = end
            a = k
        self._votes.append(nlos[a:])
        self._last_t = float(t[-1])
        return out

    def _decide(self, end: float) -> list[tuple[float, str, float, int]]:
        v = np.concatenate(self._votes) if self._votes else np.zeros(0, bool)
        self._votes = []
        if len(v) < self.params.min_cirs:
            return []
        frac = float(v.mean())
        return [(round(end, 3), "nlos" if frac > 0.5 else "los", round(frac, 3), int(len(v)))]

    def flush(self) -> list[tuple[float, str, float, int]]:
        if self._last_t is None:
            return []
        return self._decide(self._last_t)
