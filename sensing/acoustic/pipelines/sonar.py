"""FMCW sonar pipelines: ``acoustic_sonar_breathing``, ``acoustic_blink`` and
``acoustic_cabin``.

All three accept ``audio``, run by default, and process a recording only when its
content is FMCW sonar (a declared ``ambisense:probe`` of type ``fmcw``,
:mod:`sensing.acoustic.content`); otherwise they emit nothing and say why in
``quiet_reason()``. On one stream they share the content decision and the sonar front end
(:class:`sensing.acoustic.sonar.SonarFrontEnd`, keyed by its options in the stream's
:class:`agent.pipelines.shared.SharedStages`): the matched filtering runs once per chunk.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.acoustic.blink import BlinkDetector, BlinkParams
from sensing.acoustic.cabin import CabinOccupancy, CabinParams
from sensing.acoustic.sonar import (
    SonarBlock,
    SonarBreathing,
    SonarBreathingParams,
    SonarFrontEnd,
    SonarParams,
    front_params,
)
from sensing.detections import Detection
from sensing.frames import Frames


class SonarStream:
    """Content gate + sonar front end of one stream: ``push(frames)`` → the
    :class:`SonarBlock` list the chunk completed (memoised per chunk by
    :class:`agent.pipelines.shared.SharedStage`); ``flush()`` is idempotent."""

    def __init__(self, params: SonarParams) -> None:
        from sensing.acoustic.content import ContentGate, ContentKind

        self.gate = ContentGate({ContentKind.FMCW_SONAR})
        self.front = SonarFrontEnd(params)
        self._flushed: list[SonarBlock] | None = None

    def push(self, frames: Frames) -> list[SonarBlock]:
        out: list[SonarBlock] = []
        for fr in self.gate.push(frames):
            out += self.front.push(fr)
        return out

    def flush(self) -> list[SonarBlock]:
        if self._flushed is None:
            out: list[SonarBlock] = []
            for fr in self.gate.flush():
                out += self.front.push(fr)
            self._flushed = out + self.front.flush()
        return self._flushed

    def quiet_reason(self) -> str | None:
        return self.gate.quiet_reason("FMCW sonar")


class _SonarPipeline(Pipeline):
    """A detector on the stream's shared :class:`SonarStream`."""

    modalities = ("audio",)
    default = True
    detector_cls: ClassVar[Any] = None

    def __init__(self, params: Any = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.detector = self.detector_cls(self.params)
        self._front_params = front_params(self.params)
        self._own: SonarStream | None = None

    def _stream(self) -> SonarStream:
        if self.shared is not None:
            return self.shared.get(("acoustic_fmcw_front", self._front_params),
                                   lambda: SonarStream(self._front_params)).analysis
        if self._own is None:
            self._own = SonarStream(self._front_params)
        return self._own

    def push(self, frames: Frames) -> list[Detection]:
        if self.shared is not None:
            stage = self.shared.get(("acoustic_fmcw_front", self._front_params),
                                    lambda: SonarStream(self._front_params))
            blocks = stage.push(frames)
        else:
            blocks = self._stream().push(frames)
        return self.detector.push_blocks(blocks)

    def flush(self) -> list[Detection]:
        return self.detector.push_blocks(self._stream().flush()) + self.detector.finish()

    def quiet_reason(self) -> str | None:
        return self._stream().quiet_reason() or self.detector.quiet_reason()


@PIPELINES.register("acoustic_sonar_breathing")
class AcousticSonarBreathingPipeline(_SonarPipeline):
    """Breathing rate (breaths/min) and chest displacement at 0.2–1.5 m from FMCW sonar,
    every ``hop_s`` over ``window_s`` (:class:`sensing.acoustic.sonar.SonarBreathing`):
    ``breathing_rate`` events with ``range_m``, ``displacement_pp_mm``,
    ``displacement_mm`` (the last hop at 2 Hz) and ``clock_ppm``."""

    name = "acoustic_sonar_breathing"
    Params = SonarBreathingParams
    event_types = ("breathing_rate",)
    description = ("breathing rate and chest displacement from FMCW sonar (18–22 kHz "
                   "chirps, phase tracking, clock-offset correction)")
    detector_cls = SonarBreathing


@PIPELINES.register("acoustic_blink")
class AcousticBlinkPipeline(_SonarPipeline):
    """Eye blinks of a face at 20–60 cm from FMCW sonar
    (:class:`sensing.acoustic.blink.BlinkDetector`): ``blink`` (onset, ``duration_s``),
    ``blink_rate`` (1/min over the last minute, every ``rate_hop_s``) and ``drowsiness``
    (1/0 on change: mean blink duration ≥ 0.3 s or ≥ 15 % long blinks ≥ 0.5 s)."""

    name = "acoustic_blink"
    Params = BlinkParams
    event_types = ("blink", "blink_rate", "drowsiness")
    description = ("eye blinks, blink rate and a drowsiness flag from FMCW sonar at "
                   "20–60 cm (head-motion compensated)")
    home_assistant = {
        "blink_rate": {"component": "sensor", "unit_of_measurement": "1/min",
                       "icon": "mdi:eye", "state_class": "measurement"},
        "drowsiness": {"component": "binary_sensor", "device_class": "safety",
                       "icon": "mdi:sleep"},
    }
    detector_cls = BlinkDetector


@PIPELINES.register("acoustic_cabin")
class AcousticCabinPipeline(_SonarPipeline):
    """A breathing occupant in a closed car cabin (a child left in a parked car) from
    FMCW sonar (:class:`sensing.acoustic.cabin.CabinOccupancy`): ``presence`` 1 when
    periodic chest motion is found in any range bin (within 30 s), 0 when it is gone."""

    name = "acoustic_cabin"
    Params = CabinParams
    event_types = ("presence",)
    description = ("breathing occupant in a closed car cabin from FMCW sonar (child left "
                   "in a car alert)")
    home_assistant = {"presence": {"component": "binary_sensor", "device_class": "occupancy",
                                   "icon": "mdi:car-seat"}}
    detector_cls = CabinOccupancy
