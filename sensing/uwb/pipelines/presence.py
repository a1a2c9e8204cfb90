"""``uwb_presence``: presence (empty / still / moving) from UWB CIRs or radar frames."""

from __future__ import annotations

import math
from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from agent.pipelines.shared import SharedStages
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.uwb.breathing import shared_conditioner
from sensing.uwb.presence import PresenceDetector, PresenceState, UwbPresenceParams


@PIPELINES.register("uwb_presence")
class UwbPresencePipeline(Pipeline):
    """Presence of a person, still and breathing or moving
    (:class:`sensing.uwb.presence.PresenceDetector`).

    Emits ``presence`` (``value`` 1 occupied / 0 empty; ``extra``: ``state``
    ``empty``/``still``/``moving``, ``evidence`` ``motion``/``breathing``/``sway``/
    ``none``, ``low_db``/``high_db`` band levels over noise, ``range_m`` of the most
    active bin, ``breathing_bpm`` when the evidence is breathing) on the first confirmed
    state and on every confirmed change. Options: see
    :class:`~sensing.uwb.presence.UwbPresenceParams`.
    """

    name = "uwb_presence"
    Params = UwbPresenceParams
    modalities = ("uwb_cir", "radar")
    default = True
    event_types = ("presence",)
    description = "presence (empty/still/moving), a still breathing person included (UWB, radar)"
    home_assistant = {"presence": {"component": "binary_sensor", "device_class": "occupancy",
                                   "icon": "mdi:radar"}}

    params: UwbPresenceParams

    def __init__(self, params: UwbPresenceParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.detector = PresenceDetector(self.params)
        self._reported: str | None = None

    def bind(self, shared: SharedStages, run_context: dict[str, Any] | None = None) -> None:
        """Also share the slow-time conditioning of every chunk with the stream's other UWB
        pipelines (identical results, one alignment per chunk)."""
        super().bind(shared, run_context)
        self.detector.buffer.conditioner = shared_conditioner(shared, self.detector.buffer.p)

    def push(self, frames: Frames) -> list[Detection]:
        out = []
        for st in self.detector.push(frames):
            if self.detector.confirmed and st.state != self._reported:
                self._reported = st.state
                out.append(_event(st, self.params))
        return out

    def quiet_reason(self) -> str | None:
        if self._reported is not None:
            return None
        if self.detector.windows == 0:
            return f"capture shorter than the {self.params.window_s:g} s presence window"
        return f"no state held for {self.params.confirm} windows"


def _event(st: PresenceState, p: UwbPresenceParams) -> Detection:
    """The ``presence`` event of a confirmed state; confidence 0.5 at the deciding
    threshold, towards 1 as the band level moves 10 dB away from it."""
    level = st.high_db if st.state == "moving" and math.isfinite(st.high_db) else st.low_db
    thr = p.motion_db if st.state == "moving" else p.still_db
    conf = 0.5 + min(abs(level - thr) / 20.0, 0.5)
    extra: dict[str, Any] = {"state": st.state, "evidence": st.evidence,
                             "low_db": st.low_db,
                             "high_db": st.high_db if math.isfinite(st.high_db) else None,
                             "range_m": st.range_m}
    if math.isfinite(st.breathing_bpm):
        extra["breathing_bpm"] = round(st.breathing_bpm, 2)
    return Detection("presence", st.end_s, int(st.state != "empty"), "", round(conf, 3), extra)
