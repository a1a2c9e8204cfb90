"""``acoustic_cw_breathing``: breathing rate from a CW ultrasonic tone."""

from __future__ import annotations

from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.acoustic.content import ContentGate
from sensing.acoustic.cw_breathing import CwBreathing, CwBreathingParams
from sensing.detections import Detection
from sensing.frames import Frames


@PIPELINES.register("acoustic_cw_breathing")
class AcousticCwBreathingPipeline(Pipeline):
    """``breathing_rate`` (bpm) from the phase of a CW tone's echo
    (:mod:`sensing.acoustic.cw_breathing`), with ``method`` ``"cw"``, the displacement
    (``displacement_pp_mm``, ``displacement_mm``) and the tone's ``carrier_offset_hz`` as
    extras. A CW probe has no range resolution: the estimate is that of the dominant
    breathing reflector in front of the device (0.2–1.5 m).

    Runs on recordings with a declared CW probe (its tones) or, without a probe, a strong
    stationary tone above 17 kHz (the detected tone; :mod:`sensing.acoustic.content`);
    otherwise it emits nothing and says why in :meth:`quiet_reason`.

    Parameters
    ----------
    params : CwBreathingParams, optional
        Validated options (positional only).
    **options
        Option values applied over ``params``.
    """

    name = "acoustic_cw_breathing"
    Params = CwBreathingParams
    modalities = ("audio",)
    default = True
    event_types = ("breathing_rate",)
    description = ("breathing rate from the echo phase of a CW ultrasonic tone (declared CW "
                   "probe or detected tone above 17 kHz)")

    params: CwBreathingParams

    def __init__(self, params: CwBreathingParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.gate = ContentGate(lambda d: d.kind.is_cw or bool(self.params.tones_hz))
        self.estimator: CwBreathing | None = None

    def _run(self, chunks: list[Frames]) -> list[Detection]:
        out: list[Detection] = []
        for fr in chunks:
            if self.estimator is None:
                tones = self.params.tones_hz or self.gate.decision.tones_hz  # type: ignore[union-attr]
                self.estimator = CwBreathing(self.params, tones_hz=tones)
            out += self.estimator.push(fr)
        return out

    def push(self, frames: Frames) -> list[Detection]:
        return self._run(self.gate.push(frames))

    def flush(self) -> list[Detection]:
        out = self._run(self.gate.flush())
        if self.estimator is not None:
            out += self.estimator.flush()
        return out

    def quiet_reason(self) -> str | None:
        reason = self.gate.quiet_reason("a CW tone recording")
        if reason is not None:
            return reason
        return None if self.estimator is None else self.estimator.quiet_reason()
