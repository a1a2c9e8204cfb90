"""``uwb_breathing``: breathing rate from the chest's range bin (UWB CIR or radar)."""

from __future__ import annotations

from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from agent.pipelines.shared import SharedStages
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.uwb.breathing import RangeBinBreathing, UwbBreathingParams, shared_conditioner


@PIPELINES.register("uwb_breathing")
class UwbBreathingPipeline(Pipeline):
    """Breathing rate (breaths/min) every ``hop_s`` over ``window_s``, from the phase of
    the range bin with the strongest periodic slow-time component
    (:class:`sensing.uwb.breathing.RangeBinBreathing`).

    Emits ``breathing_rate`` (``value`` bpm, ``extra``: ``range_m`` of the chest bin,
    ``bin``, ``window_s``, ``snr``, ``check``, ``modality``) for windows whose confidence
    reaches ``min_confidence``. Options: see
    :class:`~sensing.uwb.breathing.UwbBreathingParams`.
    """

    name = "uwb_breathing"
    Params = UwbBreathingParams
    modalities = ("uwb_cir", "radar")
    default = True
    event_types = ("breathing_rate",)
    description = "breathing rate from the chest range bin's phase (UWB CIR, pulsed radar)"
    home_assistant = {"breathing_rate": {"component": "sensor", "unit_of_measurement": "bpm",
                                         "icon": "mdi:lungs", "state_class": "measurement"}}

    params: UwbBreathingParams

    def __init__(self, params: UwbBreathingParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.estimator = RangeBinBreathing(self.params)

    def bind(self, shared: SharedStages, run_context: dict[str, Any] | None = None) -> None:
        """Also share the slow-time conditioning of every chunk with the stream's other UWB
        pipelines (identical results, one alignment per chunk)."""
        super().bind(shared, run_context)
        self.estimator.buffer.conditioner = shared_conditioner(shared, self.estimator.buffer.p)

    def push(self, frames: Frames) -> list[Detection]:
        return self.estimator.push(frames)

    def flush(self) -> list[Detection]:
        return self.estimator.flush()

    def quiet_reason(self) -> str | None:
        return self.estimator.quiet_reason()
