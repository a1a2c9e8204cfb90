"""``wifi_breathing``: breathing rate from WiFi CSI (any NIC; ESP32, Intel 5300, Nexmon)."""

from __future__ import annotations

from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from agent.pipelines.shared import shared_breathing, shared_breathing_stage
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.wifi.breathing import BreathingEstimator, BreathingParams


@PIPELINES.register("wifi_breathing")
class WifiBreathingPipeline(Pipeline):
    """Breathing rate (breaths/min) every ``hop_s`` over a sliding ``window_s`` window.

    Options (``--set wifi_breathing.KEY=VALUE``) are those of
    :class:`~sensing.wifi.breathing.BreathingEstimator`
    (:class:`~sensing.wifi.breathing.BreathingParams`): ``window_s`` (30 s), ``hop_s``
    (5 s), ``fs_hz`` (10 Hz), ``min_bpm`` (6 bpm), ``max_bpm`` (40 bpm),
    ``min_confidence`` (0.2), ``motion_ratio``, ``max_motion_fraction``, ``min_coverage``,
    ``max_gap_s`` (s), ``consensus_s`` (60 s: the spectra of the windows of the last minute
    averaged, subcarriers and gain combined, answer when no single window is confident;
    0 turns it off). Infants: ``max_bpm=60``. Emits nothing while the person moves or when
    no breathing is visible.

    Parameters
    ----------
    params : BreathingParams, optional
        Validated options (positional only).
    **options
        Option values applied over ``params``.
    """

    name = "wifi_breathing"
    Params = BreathingParams
    modalities = ("wifi_csi",)
    default = True
    event_types = ("breathing_rate",)
    description = "breathing rate from WiFi CSI (CSI ratio across antennas, or one antenna)"

    params: BreathingParams

    def __init__(self, params: BreathingParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.estimator = BreathingEstimator(self.params)
        self._emitted = 0

    def push(self, frames: Frames) -> list[Detection]:
        if self.shared is None:
            out = self.estimator.push(frames)
        else:
            out = shared_breathing(self.shared, self.estimator, frames)
        self._emitted += len(out)
        return out

    def flush(self) -> list[Detection]:
        return self.estimator.flush()

    def quiet_reason(self) -> str | None:
        """``"capture shorter than the 30 s window"``, ``"no breathing found in N windows
        (M gated by motion)"`` … (None once a rate was emitted)."""
        if self._emitted:
            return None
        est = (self.estimator if self.shared is None
               else shared_breathing_stage(self.shared, self.estimator).analysis)
        reason = est.quiet_reason()
        if reason is None:  # the shared estimator had rates, none confident enough for us
            n = est.stats["windows"]
            reason = (f"no breathing with confidence >= {self.params.min_confidence:g} in "
                      f"{n} windows")
        return reason
