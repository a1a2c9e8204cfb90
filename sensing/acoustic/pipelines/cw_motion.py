"""``acoustic_cw_motion``: motion and walking Doppler from a CW ultrasonic tone."""

from __future__ import annotations

from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.acoustic.content import ContentGate
from sensing.acoustic.cw import CwMotionDetector, CwMotionParams
from sensing.detections import Detection
from sensing.frames import Frames


@PIPELINES.register("acoustic_cw_motion")
class AcousticCwMotionPipeline(Pipeline):
    """``motion`` on (value 1, at the onset) and off (value 0, with ``duration_s``) from the
    Doppler sidebands of a CW tone, with the dominant reflector's radial speed
    (``speed_m_s``, positive approaching; walking ≈ 0.3–1.5 m/s), ``max_speed_m_s`` and
    ``direction`` as extras (:mod:`sensing.acoustic.cw`).

    Runs on recordings with a declared CW probe (its tones) or, without a probe, a strong
    stationary tone above 17 kHz (the detected tone; :mod:`sensing.acoustic.content`);
    otherwise it emits nothing and says why in :meth:`quiet_reason`.

    Parameters
    ----------
    params : CwMotionParams, optional
        Validated options (positional only).
    **options
        Option values applied over ``params``.
    """

    name = "acoustic_cw_motion"
    Params = CwMotionParams
    modalities = ("audio",)
    default = True
    event_types = ("motion",)
    description = ("motion on/off and the dominant Doppler speed from a CW ultrasonic tone "
                   "(declared CW probe or detected tone above 17 kHz)")

    params: CwMotionParams

    def __init__(self, params: CwMotionParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.gate = ContentGate(lambda d: d.kind.is_cw or bool(self.params.tones_hz))
        self.detector: CwMotionDetector | None = None

    def _run(self, chunks: list[Frames]) -> list[Detection]:
        out: list[Detection] = []
        for fr in chunks:
            if self.detector is None:
                tones = self.params.tones_hz or self.gate.decision.tones_hz[:1]  # type: ignore[union-attr]
                self.detector = CwMotionDetector(self.params, tones_hz=tones)
            out += self.detector.push(fr)
        return out

    def push(self, frames: Frames) -> list[Detection]:
        return self._run(self.gate.push(frames))

    def flush(self) -> list[Detection]:
        out = self._run(self.gate.flush())
        if self.detector is not None:
            out += self.detector.flush()
        return out

    def quiet_reason(self) -> str | None:
        reason = self.gate.quiet_reason("a CW tone recording")
        if reason is not None:
            return reason
        if self.detector is not None and self.detector.episodes == 0:
            still = self.detector.still_score_db
            return (f"no motion in {self.detector.frames} Doppler frames (median "
                    f"{still:.1f} dB over the reference band, threshold "
                    f"{self.params.threshold_db:g} dB)" if still is not None
                    else "no motion")
        return None
