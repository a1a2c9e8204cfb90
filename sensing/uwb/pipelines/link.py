"""``uwb_link``: LOS/NLOS state of a UWB link from its CIRs (``link_state`` events)."""

from __future__ import annotations

from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.uwb.los import LinkStateClassifier, LosParams


@PIPELINES.register("uwb_link")
class UwbLinkPipeline(Pipeline):
    """LOS/NLOS of the link every ``window_s`` (majority of the per-CIR rule of
    :func:`sensing.uwb.los.classify`).

    Emits ``link_state`` per window: ``value`` ``"los"`` or ``"nlos"``, ``confidence`` the
    share of CIRs that voted for it, ``extra``: ``nlos_fraction``, ``cirs``,
    ``window_s``. Options: see :class:`~sensing.uwb.los.LosParams`.
    """

    name = "uwb_link"
    Params = LosParams
    modalities = ("uwb_cir",)
    default = True
    event_types = ("link_state",)
    description = "LOS/NLOS link state from CIR shape and first-path level (DW1000/DW3000)"
    home_assistant = {"link_state": {"component": "sensor", "icon": "mdi:wall"}}

    params: LosParams

    def __init__(self, params: LosParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.classifier = LinkStateClassifier(self.params)

    def _events(self, decisions) -> list[Detection]:
        return [Detection("link_state", end, state, "",
                          round(frac if state == "nlos" else 1 - frac, 3),
                          {"nlos_fraction": frac, "cirs": n, "window_s": self.params.window_s})
                for end, state, frac, n in decisions]

    def push(self, frames: Frames) -> list[Detection]:
        return self._events(self.classifier.push(frames))

    def flush(self) -> list[Detection]:
        return self._events(self.classifier.flush())
