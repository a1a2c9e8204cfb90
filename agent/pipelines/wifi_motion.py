"""``wifi_motion`` pipeline: presence (empty / still / moving) and motion events from CSI."""

from __future__ import annotations

import logging
from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.wifi.motion import MotionCalibration, MotionDetector, MotionState

log = logging.getLogger("ambisense.wifi_motion")


@PIPELINES.register("wifi_motion")
class WifiMotionPipeline(Pipeline):
    """Presence and motion from WiFi CSI amplitude fluctuations.

    Emits ``motion`` (value 1 when motion starts, 0 when it stops) and ``presence``
    (value 1 occupied / 0 empty, ``extra.state`` = ``empty``/``still``/``moving``) on the
    first decision and on every change.

    Options
    -------
    calibration : str
        JSON file written by ``sensing.wifi.motion.calibrate`` (``MotionCalibration.save``);
        ``--set wifi_motion.calibration=cal.json``.
    threshold : float
        Motion-score threshold overriding the calibration / default.
    window_s, hop_s, on_windows, off_s, hold_s
        See :class:`sensing.wifi.motion.MotionDetector`.
    """

    name = "wifi_motion"
    modalities = ("wifi_csi",)
    default = True
    event_types = ("motion", "presence")
    description = "presence (empty/still/moving) and motion start/stop from CSI amplitude"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        cal_path = options.pop("calibration", None)
        cal = MotionCalibration.load(cal_path) if cal_path else None
        known = {"threshold", "window_s", "hop_s", "on_windows", "off_s", "hold_s"}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"wifi_motion: unknown option(s) {sorted(unknown)}; "
                             f"known: calibration, {', '.join(sorted(known))}")
        self.detector = MotionDetector(cal, **options)
        self.method = "calibrated" if cal else "default_threshold"
        if cal is None and "threshold" not in options:
            log.info("wifi_motion: no calibration, using the default threshold %.3f",
                     self.detector.threshold)
        self._moving: bool | None = None
        self._presence: str | None = None
        self._n = 0

    def process(self, frames: Frames) -> list[Detection]:
        out: list[Detection] = []
        for st in self.detector.update(frames):
            out.extend(self._events(st))
        return out

    def _events(self, st: MotionState) -> list[Detection]:
        out = []
        extra = {"score": round(float(st.score), 5), "threshold": round(self.detector.threshold, 5),
                 "window_s": self.detector.scorer.window_s, "method": self.method}
        conf = _confidence(st.score, self.detector.threshold)
        if self._moving is None:
            self._moving = False
        if st.moving != self._moving:
            out.append(Detection("motion", st.end_s, int(st.moving), "", conf, dict(extra)))
            self._moving = st.moving
        self._n += 1
        # the first presence decision waits until motion could have been confirmed
        if self._n >= self.detector.on_windows and st.presence != self._presence:
            out.append(Detection("presence", st.end_s, int(st.presence != "empty"), "",
                                 conf, {**extra, "state": st.presence}))
            self._presence = st.presence
        return out


def _confidence(score: float, threshold: float) -> float:
    """0.5 at the threshold, towards 1 as the score moves away from it (either side)."""
    if not score == score or threshold <= 0:  # NaN
        return 0.0
    r = score / threshold
    dist = abs(r - 1.0) / (r + 1.0)
    return round(min(1.0, 0.5 + dist), 3)
