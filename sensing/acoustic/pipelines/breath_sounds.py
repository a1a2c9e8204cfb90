"""``acoustic_breath_sounds``: breathing rate from breath sounds (microphone only)."""

from __future__ import annotations

from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.acoustic.breath_sounds import BreathSoundsEstimator, BreathSoundsParams
from sensing.acoustic.content import ContentGate, ContentKind
from sensing.detections import Detection
from sensing.frames import Frames


@PIPELINES.register("acoustic_breath_sounds")
class AcousticBreathSoundsPipeline(Pipeline):
    """Breathing rate (breaths/min) from the breath-sound envelope, every ``hop_s`` over a
    ``window_s`` window, resolving the inhale + exhale doubling
    (:mod:`sensing.acoustic.breath_sounds`).

    Runs only on recordings without a probe and without an ultrasonic tone (content
    ``breath_sounds``, :mod:`sensing.acoustic.content`); on sonar recordings it emits
    nothing and says why in :meth:`quiet_reason`.

    Parameters
    ----------
    params : BreathSoundsParams, optional
        Validated options (positional only).
    **options
        Option values applied over ``params``.
    """

    name = "acoustic_breath_sounds"
    Params = BreathSoundsParams
    modalities = ("audio",)
    default = True
    event_types = ("breathing_rate",)
    description = ("breathing rate from breath sounds (microphone or stethoscope, no probe; "
                   "inhale/exhale doubling resolved)")

    params: BreathSoundsParams

    def __init__(self, params: BreathSoundsParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.estimator = BreathSoundsEstimator(self.params)
        self.gate = ContentGate({ContentKind.BREATH_SOUNDS})

    def push(self, frames: Frames) -> list[Detection]:
        out: list[Detection] = []
        for fr in self.gate.push(frames):
            out += self.estimator.push(fr)
        return out

    def flush(self) -> list[Detection]:
        out: list[Detection] = []
        for fr in self.gate.flush():
            out += self.estimator.push(fr)
        return out + self.estimator.flush()

    def quiet_reason(self) -> str | None:
        return self.gate.quiet_reason("breath sounds") or self.estimator.quiet_reason()
