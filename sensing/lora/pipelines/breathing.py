"""``lora_breathing``: breathing rate and presence through walls from a two-antenna LoRa
receiver (the antenna ratio of periodic chirps; method in :mod:`sensing.lora.breathing`).

Applies to ``lora_iq`` streams with two channels and no soil set-up (``meta["soil"]``
absent); otherwise it emits nothing and says why. The chirps come from the stream's shared packet
receiver (the one ``lora_packet`` uses: each chunk is demodulated once), or, when the
sample rate is not a whole multiple of the bandwidth, from a chirp extractor of its own.
Events carry ``link`` naming the
sensing link (the option ``link``, default ``"<source> ch1/ch0"``): the envelope's
``source`` field is the stream and cannot be reused by an extra.
"""

from __future__ import annotations

import math
from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.lora.breathing import BreathingWindow, LoraBreathingEstimator, LoraBreathingParams
from sensing.lora.receiver import (
    ReceiverParams,
    frame_chirps,
    receiver_of,
    shared_receiver,
    shared_receiver_flush,
    whole_oversampling,
)

NAME = "lora_breathing"


@PIPELINES.register(NAME)
class LoraBreathingPipeline(Pipeline):
    """Breathing rate (bpm) every ``hop_s`` over ``window_s``, and presence
    (``moving`` / ``still`` / ``empty``) from two receive antennas of LoRa chirps.

    ``breathing_rate`` extras: ``window_s``, ``link``, ``quality`` (confidence × coverage,
    0–1), ``coverage``, ``motion_score``, ``snr`` (breathing peak over the spectral floor),
    ``chirps``, ``series`` (which series won) and, when the circle fit is sound,
    ``displacement_mm`` (chest, peak to peak). ``presence`` (``value`` 1/0, on every change)
    extras: ``state``, ``evidence`` (``motion``, ``breathing``, ``hold``, ``none``),
    ``link``, ``motion_score``.
    """

    name = NAME
    Params = LoraBreathingParams
    modalities = ("lora_iq",)
    default = True
    event_types = ("breathing_rate", "presence")
    description = ("breathing rate and presence through walls from the antenna ratio of "
                   "LoRa chirps (2-channel IQ)")

    params: LoraBreathingParams

    def __init__(self, params: LoraBreathingParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self.estimator: LoraBreathingEstimator | None = None
        self._checked = False
        self._quiet: str | None = "no samples"
        self._link = self.params.link
        self._state: str | None = None
        self._last_evidence = -math.inf
        self._breath_run = 0
        self._rates = 0
        self._rx: ReceiverParams | None = None

    def _check(self, frames: Frames) -> None:
        self._checked = True
        meta = frames.meta or {}
        if meta.get("soil") is not None:
            self._quiet = "a soil recording (ambisense:soil): lora_soil reads it"
            return
        if frames.data.ndim != 2 or frames.data.shape[1] != 2:
            n = frames.data.shape[1] if frames.data.ndim == 2 else 1
            self._quiet = f"breathing needs 2 channels (two antennas), the stream has {n}"
            return
        lora = meta.get("lora") or {}
        sf = self.params.sf or lora.get("sf")
        bw = self.params.bw_hz or lora.get("bw_hz")
        if not sf or not bw or not frames.fs_hz:
            self._quiet = "no LoRa sf/bw_hz (ambisense:lora) or sample rate"
            return
        freq = float(meta.get("center_hz") or self.params.freq_hz or 868.1e6)
        self._rx = (ReceiverParams(sf=self.params.sf, bw_hz=self.params.bw_hz)
                    if whole_oversampling(frames.fs_hz, bw) else None)
        try:
            self.estimator = LoraBreathingEstimator(self.params, int(sf), float(bw),
                                                    float(frames.fs_hz), freq,
                                                    extractor=self._rx is None)
        except ValueError as exc:
            self._quiet = str(exc)
            return
        self._link = self.params.link or f"{frames.source} ch1/ch0"
        self._quiet = None

    def push(self, frames: Frames) -> list[Detection]:
        if not self._checked and len(frames):
            self._check(frames)
        if self.estimator is None:
            return []
        if self._rx is None:
            windows = self.estimator.push(frames)
        else:
            chirps = frame_chirps(shared_receiver(self, frames, self._rx),
                                  self.params.min_peak_db)
            rx = receiver_of(self, self._rx)
            windows = self.estimator.push(frames, chirps, rx.horizon_s if rx else math.inf)
        out: list[Detection] = []
        for w in windows:
            out += self._events(w)
        return out

    def flush(self) -> list[Detection]:
        if self.estimator is None:
            return []
        chirps = None
        if self._rx is not None:
            chirps = frame_chirps(shared_receiver_flush(self, self._rx),
                                  self.params.min_peak_db)
        out: list[Detection] = []
        for w in self.estimator.flush(chirps):
            out += self._events(w)
        return out

    def _events(self, w: BreathingWindow) -> list[Detection]:
        p = self.params
        out = []
        if math.isfinite(w.rate_bpm) and w.confidence >= p.min_confidence:
            extra: dict[str, Any] = {
                "window_s": p.window_s, "link": self._link,
                "quality": round(w.confidence * w.coverage, 3), "coverage": w.coverage,
                "motion_score": w.motion_score, "snr": w.snr, "chirps": w.chirps,
                "series": w.candidate}
            if w.displacement_mm is not None:
                extra["displacement_mm"] = w.displacement_mm
            out.append(Detection("breathing_rate", round(w.end_s, 3), round(w.rate_bpm, 2),
                                 "bpm", w.confidence, extra))
            self._rates += 1
        # presence
        breathing = math.isfinite(w.rate_bpm) and w.confidence >= p.presence_confidence
        self._breath_run = self._breath_run + 1 if breathing else 0
        motion = math.isfinite(w.motion_score) and w.motion_score >= p.motion_threshold
        if motion:
            state, evidence = "moving", "motion"
            self._last_evidence = w.end_s
        elif breathing and (self._state in ("still", "moving")
                            or self._breath_run >= p.presence_confirm):
            state, evidence = "still", "breathing"
            self._last_evidence = w.end_s
        elif self._state not in (None, "empty") and w.end_s - self._last_evidence <= p.presence_hold_s:
            state, evidence = self._state, "hold"
        else:
            state, evidence = "empty", "none"
        if state != self._state:
            conf = (min(1.0, w.motion_score / (2 * p.motion_threshold)) if state == "moving"
                    else w.confidence if state == "still" else
                    round(1 - w.confidence, 3))
            out.append(Detection("presence", round(w.end_s, 3), int(state != "empty"), "",
                                 round(float(conf), 3),
                                 {"state": state, "evidence": evidence, "link": self._link,
                                  "motion_score": w.motion_score}))
            self._state = state
        return out

    def quiet_reason(self) -> str | None:
        if self._rates or (self._state is not None):
            return None
        if self.estimator is None:
            return self._quiet
        return self.estimator.quiet_reason()
