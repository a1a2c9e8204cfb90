"""``wifi_motion`` pipeline: presence (empty / still / moving) and motion events from CSI."""

from __future__ import annotations

import logging
import math
from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from agent.pipelines.shared import shared_breathing
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.params import param
from sensing.wifi.motion import (
    MotionCalibration,
    MotionDetector,
    MotionDetectorParams,
    MotionState,
)

log = logging.getLogger("ambisense.wifi_motion")


class WifiMotionParams(MotionDetectorParams):
    """Options of the ``wifi_motion`` pipeline: the
    :class:`~sensing.wifi.motion.MotionDetector` options and a calibration file."""

    calibration: str | None = param(
        None, path=True, doc="JSON calibration file of the device (written by "
                             "sensing.wifi.motion.calibrate + MotionCalibration.save); "
                             "default: none, the default threshold")


@PIPELINES.register("wifi_motion")
class WifiMotionPipeline(Pipeline):
    """Presence and motion from WiFi CSI amplitude fluctuations.

    Emits ``motion`` (value 1 when motion starts, 0 when it stops) and ``presence``
    (value 1 occupied / 0 empty, ``extra.state`` = ``empty``/``still``/``moving``,
    ``extra.evidence`` = ``motion``/``breathing``/``profile``/``hold``/``none``, plus
    ``extra.breathing_bpm`` when the evidence is breathing) on the first decision and on
    every change of state. With breathing evidence on, a first ``empty`` is only emitted
    once breathing could have been confirmed (35 s into the stream by default), or at the
    end of a shorter stream.

    Options (:class:`WifiMotionParams`)
    -----------------------------------
    calibration : str
        JSON file written by ``sensing.wifi.motion.calibrate`` (``MotionCalibration.save``);
        ``--set wifi_motion.calibration=cal.json``.
    threshold : float
        Motion-score threshold overriding the calibration / default (dimensionless).
    window_s, hop_s, on_windows, off_s, hold_s
        See :class:`sensing.wifi.motion.MotionDetector` (s, windows).
    breathing, breath_hold_s, breath_min_confidence, breath_confirm
        Respiration evidence of a still person (``breathing=false`` turns it off and
        halves the CPU cost); see :class:`sensing.wifi.motion.MotionDetector`.
    profile_evidence : bool
        With a calibration, count a static profile unlike the empty room's as a still
        person (off by default: false alarms on drifting rooms).
    """

    name = "wifi_motion"
    Params = WifiMotionParams
    modalities = ("wifi_csi",)
    default = True
    event_types = ("motion", "presence")
    description = "presence (empty/still/moving) and motion start/stop from CSI amplitude"

    params: WifiMotionParams

    def __init__(self, params: WifiMotionParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        p = self.params
        cal = MotionCalibration.load(p.calibration) if p.calibration else None
        detector_options = p.model_dump(include=set(MotionDetectorParams.model_fields))
        self.detector = MotionDetector(MotionDetectorParams(**detector_options),
                                       calibration=cal)
        self.method = "calibrated" if cal else "default_threshold"
        if cal is None and p.threshold is None:
            log.info("wifi_motion: no calibration, using the default threshold %.3f",
                     self.detector.threshold)
        self._moving = False
        self._presence: str | None = None
        self._n = 0
        self._t0: float | None = None  # stream start (s)
        self._last: MotionState | None = None

    def push(self, frames: Frames) -> list[Detection]:
        out: list[Detection] = []
        breathing = None
        if self.shared is not None and self.detector.breathing is not None:
            breathing = shared_breathing(self.shared, self.detector.breathing, frames)
        for st in self.detector.push(frames, breathing=breathing):
            out.extend(self._events(st))
        return out

    def quiet_reason(self) -> str | None:
        """Why no motion/presence event was emitted (a stream too short to decide)."""
        if self._last is None:
            return f"capture shorter than the {self.detector.scorer.window_s:g} s motion window"
        if self._n < self.detector.on_windows:
            return (f"capture shorter than the {self.detector.on_windows} motion windows "
                    f"needed for a decision")
        return None

    def flush(self) -> list[Detection]:
        """End of stream: a stream shorter than the warm-up still gets its presence verdict
        (the state after the last window), if none was emitted yet."""
        st = self._last
        if self._presence is None and st is not None and self._n >= self.detector.on_windows:
            return [self._presence_event(st)]
        return []

    def _extra(self, st: MotionState) -> dict[str, Any]:
        score = round(float(st.score), 5) if math.isfinite(st.score) else None  # JSON has no NaN
        return {"score": score, "threshold": round(self.detector.threshold, 5),
                "window_s": self.detector.scorer.window_s, "method": self.method}

    def _presence_event(self, st: MotionState) -> Detection:
        self._presence = st.presence
        extra = {**self._extra(st), "state": st.presence, "evidence": st.evidence}
        if st.evidence == "breathing":
            extra["breathing_bpm"] = round(float(st.breathing_bpm), 2)
        return Detection("presence", st.end_s, int(st.presence != "empty"), "",
                         _confidence(st.score, self.detector.threshold), extra)

    def _events(self, st: MotionState) -> list[Detection]:
        self._last = st
        self._n += 1
        if self._t0 is None:
            self._t0 = st.end_s - self.detector.scorer.window_s
        out = []
        if st.moving != self._moving:
            out.append(Detection("motion", st.end_s, int(st.moving), "",
                                 _confidence(st.score, self.detector.threshold),
                                 self._extra(st)))
            self._moving = st.moving
        # the first presence decision waits until motion could have been confirmed, and a
        # first "empty" until breathing could have been seen (a person already sitting
        # still when the stream starts is not reported empty, then occupied)
        first_ok = (self._presence is not None or st.presence != "empty"
                    or st.end_s - self._t0 >= self.detector.presence_warmup_s - 1e-6)
        if self._n >= self.detector.on_windows and st.presence != self._presence and first_ok:
            out.append(self._presence_event(st))
        return out


def _confidence(score: float, threshold: float) -> float:
    """0.5 at the threshold, towards 1 as the score moves away from it (either side)."""
    if not score == score or threshold <= 0:  # NaN
        return 0.0
    r = score / threshold
    dist = abs(r - 1.0) / (r + 1.0)
    return round(min(1.0, 0.5 + dist), 3)
