"""``uwb_fall``: fall alerts (``fall``, ``fall_cleared``) from UWB channel impulse responses."""

from __future__ import annotations

from typing import Any, Literal

from agent.inference import (
    check_classifier,
    load_model,
    model_operating_point,
    model_or_rule,
)
from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.uwb.fall import (
    FEATURE_NAMES,
    WINDOW_S,
    FallDetector,
    FallDetectorParams,
    FallEvent,
)

#: Manifest name of the shipped int8 classifier (models/train_uwb_fall.py).
MODEL_NAME = "uwb_fall"
#: Operating point of the rule fallback (docs/uwb-fall.md).
RULE_OPERATING_POINT: dict[str, Any] = {"threshold": 0.5, "consecutive": 2, "within": 3}
_OP_KEYS = ("threshold", "consecutive", "within")


class UwbFallParams(Params):
    """Options of the ``uwb_fall`` pipeline. Validating them loads no model; the
    operating-point options default to None = the model's recorded operating point (or
    the rule's)."""

    model: str = param(MODEL_NAME, min_length=1, doc="manifest name of the fall classifier")
    method: Literal["auto", "model", "rule"] = param(
        "auto", doc="auto: the model, else the rule; model: fail if the model cannot be "
                    "loaded; rule: always the rule")
    threshold: float | None = param(None, gt=0, lt=1,
                                    doc="P(fall) a window must reach; default: the model's "
                                        "operating point (the rule's without a model)")
    consecutive: int | None = param(None, ge=1, le=20,
                                    doc="windows over the threshold needed; default: as "
                                        "threshold")
    within: int | None = param(None, ge=1, le=30,
                               doc="... among the last this many windows (0.2 s apart); "
                                   "default: as threshold")
    operating_point: str = param(
        "default", min_length=1,
        doc="the model's recorded operating point: default (best event F1 on the tuning "
            "falls within 1 false alarm per tuning day), quiet (fewest false alarms) or "
            "sensitive (best event F1); checked when the model is loaded; ignored by the "
            "rule")
    refractory_s: float = param(30.0, unit="s", ge=0, le=3600,
                                doc="no second fall event within this time")
    clear_active_s: float = param(1.5, unit="s", gt=0, le=2,
                                  doc="movement within 2 s that clears a fall (getting up)")
    clear_after_s: float = param(3.0, unit="s", ge=0, le=600,
                                 doc="fall_cleared only this long after the fall alert")
    models_dir: str | None = param(None, path=True,
                                   doc="directory with manifest.json; default: see "
                                       "agent.inference")


@PIPELINES.register("uwb_fall")
class UwbFallPipeline(Pipeline):
    """Fall alerts from UWB CIRs: features of 8 s windows (every 0.2 s) classified by the
    int8 ONNX model ``uwb_fall`` (or the documented rule
    :func:`sensing.uwb.fall.rule_fall_probability` when the model cannot be loaded: a
    warning is logged and events say ``extra.method = "rule"``).

    Events: ``fall`` (``offset_s`` = estimated onset of the descent, ``confidence`` = mean
    P(fall) of the windows that raised it, ``extra``: ``detect_s`` (when it was decided),
    ``method``, ``peak_f``, ``r_rate_m_s``, ``r_shift_m``) about 2–3 s after the person
    hits the floor; ``fall_cleared`` (``offset_s`` = start of the movement) when the person
    gets up again (≥ ``clear_active_s`` of movement within 2 s, from ``clear_after_s``
    after the alert). See docs/uwb-fall.md.
    """

    name = "uwb_fall"
    Params = UwbFallParams
    modalities = ("uwb_cir",)
    # Opt-in (``--pipeline uwb_fall`` or a config entry), like wifi_fall: on held-out
    # simulation it finds 51 % of the falls at ~21 false alarms per day (``default``),
    # 80 % at ~105 per day (``sensitive``) (docs/uwb-fall.md); targets: 95 %, <= 1.
    default = False
    event_types = ("fall", "fall_cleared")
    description = "falls (fast descent, then still on the floor) and getting up, from UWB CIRs"
    home_assistant = {
        "fall": {"component": "binary_sensor", "device_class": "safety", "off_delay": 300,
                 "icon": "mdi:human-handsdown"},
    }

    params: UwbFallParams

    def __init__(self, params: UwbFallParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        p = self.params
        self.model = model_or_rule(p.method, lambda: self._load(p.models_dir),
                                   name=p.model, where="uwb_fall")
        op = (dict(RULE_OPERATING_POINT) if self.model is None else
              model_operating_point(self.model.meta, p.operating_point, where="uwb_fall"))
        kw = {k: getattr(p, k) if getattr(p, k) is not None else op.get(k) for k in _OP_KEYS}
        kw = {k: v for k, v in kw.items() if v is not None}
        kw.update(refractory_s=p.refractory_s, clear_active_s=p.clear_active_s,
                  clear_after_s=p.clear_after_s)
        dp = FallDetectorParams.from_options(kw, where="uwb_fall operating point")
        if self.model is not None:
            self.detector = FallDetector(dp, predict_proba=self.model.predict_proba,
                                         labels=self.model.labels,
                                         n_features=self.model.n_features)
        else:
            self.detector = FallDetector(dp)

    def _load(self, models_dir: str | None):
        return check_classifier(load_model(self.params.model, models_dir=models_dir),
                                FEATURE_NAMES, "fall", where="uwb_fall")

    @property
    def method(self) -> str:
        """``"model"`` or ``"rule"``."""
        return self.detector.method

    def push(self, frames: Frames) -> list[Detection]:
        return [self._detection(ev) for ev in self.detector.push(frames)]

    def flush(self) -> list[Detection]:
        return [self._detection(ev) for ev in self.detector.flush()]

    def quiet_reason(self) -> str | None:
        return self.detector.quiet_reason()

    def _detection(self, ev: FallEvent) -> Detection:
        extra = {"method": ev.method, "detect_s": round(ev.detect_s, 3), "window_s": WINDOW_S,
                 **ev.extra}
        if ev.method == "model":
            extra["model"] = self.params.model
        value = 1 if ev.kind == "fall" else 0
        return Detection(ev.kind, round(ev.offset_s, 3), value, "", float(ev.confidence), extra)

