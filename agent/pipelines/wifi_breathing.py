"""``wifi_breathing``: breathing rate from WiFi CSI (any NIC; ESP32, Intel 5300, Nexmon)."""

from __future__ import annotations

from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from agent.pipelines.shared import shared_breathing
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.wifi.breathing import BreathingEstimator


@PIPELINES.register("wifi_breathing")
class WifiBreathingPipeline(Pipeline):
    """Breathing rate (breaths/min) every ``hop_s`` over a sliding ``window_s`` window.

    Options (``--set wifi_breathing.KEY=VALUE``) are those of
    :class:`~sensing.wifi.breathing.BreathingEstimator`: ``window_s`` (30 s), ``hop_s``
    (5 s), ``fs_hz``, ``min_bpm`` (6), ``max_bpm`` (40), ``min_confidence`` (0.2),
    ``motion_ratio``, ``max_motion_fraction``, ``min_coverage``, ``max_gap_s``.
    Emits nothing while the person moves or when no breathing is visible.
    """

    name = "wifi_breathing"
    modalities = ("wifi_csi",)
    default = True
    event_types = ("breathing_rate",)
    description = "breathing rate from WiFi CSI (CSI ratio across antennas, or one antenna)"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        try:
            self.estimator = BreathingEstimator(**options)
        except TypeError as exc:
            raise ValueError(f"wifi_breathing: bad option: {exc}") from None

    def process(self, frames: Frames) -> list[Detection]:
        if self.shared is None:
            return self.estimator.update(frames)
        return shared_breathing(self.shared, self.estimator, frames)
