"""In-car occupant detection from FMCW sonar: a breathing person (a child left in a parked
car) in a closed cabin, from periodic chest motion in any range bin.

Every ``hop_s`` (2 s) over the last ``window_s`` (16 s) (:class:`CabinOccupancy`): the ``candidates``
bins of ``min_range_m … max_range_m`` with the most motion (seats, windows and the
leakage are static: a temperature drift only turns their phase slowly) are turned into
displacement and tested for breathing with :func:`sensing.dsp.rate.estimate_rate` (band
``min_bpm … max_bpm``, widened to cover infants); a window is *breathing* when the best
bin's confidence reaches ``min_confidence``. ``presence`` turns on after ``on_count`` of
the last ``on_window`` windows were breathing (:class:`sensing.dsp.debounce.Debouncer`)
and off ``hold_s`` after the last breathing window. With the defaults (16 s window, 2 s
hop, 3 of 4) an occupant present from the start is reported 20 s in. Events: one
``presence`` = 0 once the first windows are decided, then ``presence`` 1/0 on every
change (``extra``: ``rate_bpm``, ``range_m``, ``confidence``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sensing.acoustic.sonar import (
    SlowTime,
    SonarBlock,
    SonarFrontEnd,
    SonarParams,
    candidate_bins,
    decimate_mean,
    displacement_mm,
    front_params,
    motion_scores,
)
from sensing.detections import Detection
from sensing.dsp.debounce import Debouncer
from sensing.frames import Frames
from sensing.params import param

__all__ = ["CabinParams", "CabinOccupancy"]


class CabinParams(SonarParams):
    """Options of the cabin occupant detector."""

    min_range_m: float = param(0.25, unit="m", ge=0, le=10, doc="nearest range searched")
    max_range_m: float = param(2.5, unit="m", gt=0.05, le=20, doc="farthest range searched")
    window_s: float = param(16.0, unit="s", ge=8, le=300, doc="analysis window")
    hop_s: float = param(2.0, unit="s", gt=0, le=60, doc="time between decisions")
    min_bpm: float = param(8.0, unit="bpm", gt=0, le=60, doc="slowest breathing")
    max_bpm: float = param(60.0, unit="bpm", gt=1, le=120, doc="fastest breathing (infants)")
    min_score: float = param(8.0, ge=1, doc="motion power over the noise floor (both at "
                                            "~5 profiles/s) a bin needs to be tested "
                                             "(linear)")
    candidates: int = param(5, ge=1, le=40, doc="range bins tested per window")
    min_confidence: float = param(0.5, ge=0, le=1,
                                  doc="rate confidence of a breathing window")
    on_count: int = param(3, ge=1, le=50, doc="breathing windows that turn presence on …")
    on_window: int = param(4, ge=1, le=50, doc="… among this many")
    hold_s: float = param(60.0, unit="s", gt=0, le=3600,
                          doc="presence turns off this long after the last breathing window")


class CabinOccupancy:
    """Streaming occupant detector (see the module docstring); ``push(frames)`` or
    :meth:`push_blocks` return ``presence`` detections."""

    Params = CabinParams

    def __init__(self, params: CabinParams | None = None, /, **options: Any) -> None:
        self.params = CabinParams.build(params, options, where="cabin")
        p = self.params
        self.front = SonarFrontEnd(front_params(p))
        self.buf = SlowTime(p.window_s + 1.0, p.min_range_m, p.max_range_m)
        self.deb = Debouncer(on_count=p.on_count, on_window=max(p.on_window, p.on_count),
                             hold_s=p.hold_s)
        self._next: float | None = None
        self._state: int | None = None
        self._n = 0
        self.stats = {"windows": 0, "breathing": 0, "max_confidence": 0.0}

    def push(self, frames: Frames) -> list[Detection]:
        return self.push_blocks(self.front.push(frames))

    def flush(self) -> list[Detection]:
        return self.push_blocks(self.front.flush()) + self.finish()

    def finish(self) -> list[Detection]:
        """End of the block stream: nothing pending."""
        return []

    def push_blocks(self, blocks: list[SonarBlock]) -> list[Detection]:
        out: list[Detection] = []
        for b in blocks:
            self.buf.add(b)
            if self._next is None:
                self._next = float(b.times_s[0]) + self.params.window_s
            while self.buf.end_s >= self._next:
                out += self._decide(self._next)
                self._next += self.params.hop_s
        return out

    def window_test(self, end_s: float) -> tuple[float, float, float]:
        """(confidence, rate bpm, range m) of the most breathing-like bin in the window
        ending at ``end_s`` (confidence 0 when no bin moves)."""
        from sensing.dsp.rate import estimate_rate

        p = self.params
        t, z = self.buf.window(end_s - p.window_s, end_s)
        if len(t) < 16 or z.shape[1] == 0:
            return 0.0, float("nan"), float("nan")
        score, _ = motion_scores(z, max(1, int(round(self.buf.rate_hz / 5.0))))
        cands = candidate_bins(score, p.min_score, p.candidates)
        if not cands:
            return 0.0, float("nan"), float("nan")
        fac = max(1, int(round(self.buf.rate_hz / 10.0)))
        fs = self.buf.rate_hz / fac
        disps = {str(b): decimate_mean(displacement_mm(z[:, b], self.buf.wavelength_m), fac)
                 for b in cands}
        est = estimate_rate(disps, fs, (p.min_bpm / 60.0 * 0.8, p.max_bpm / 60.0 * 1.1))
        bpm = est.per_min
        if not np.isfinite(bpm) or not (p.min_bpm <= bpm <= p.max_bpm):
            return 0.0, float("nan"), float("nan")
        assert self.buf.range_m is not None
        return float(est.confidence), float(bpm), float(self.buf.range_m[int(est.candidate)])

    def _decide(self, end_s: float) -> list[Detection]:
        p = self.params
        conf, bpm, rng = self.window_test(end_s)
        self._n += 1
        self.stats["windows"] += 1
        self.stats["max_confidence"] = max(self.stats["max_confidence"], round(conf, 3))
        breathing = conf >= p.min_confidence
        self.stats["breathing"] += int(breathing)
        tr = self.deb.step(end_s, breathing, (conf, bpm, rng))
        out: list[Detection] = []
        state = int(self.deb.on)
        first = self._state is None and self._n >= max(p.on_window, p.on_count)
        if tr is not None or first:
            if state != self._state:
                self._state = state
                extra: dict[str, Any] = {"state": "occupied" if state else "empty",
                                         "window_s": p.window_s,
                                         "clock_ppm": round(self.buf.clock_ppm, 2)}
                if state:
                    extra.update({"rate_bpm": round(bpm, 2), "range_m": round(rng, 3),
                                  "evidence": "breathing"})
                out.append(Detection("presence", round(end_s, 3), state, "",
                                     round(conf if state else 1.0 - conf, 3), extra))
        return out

    def quiet_reason(self) -> str | None:
        if self._state is not None:
            return None
        if self.front.no_probe:
            return "no FMCW probe in the capture (no ambisense:probe of type fmcw)"
        need = self.params.window_s + self.params.hop_s * (self.params.on_window - 1)
        return f"capture shorter than {need:g} s (window and confirmation)"
