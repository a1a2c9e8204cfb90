"""``wifi_fall`` pipeline: fall events (a person falls and stays down) from WiFi CSI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import create_model

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
from sensing.wifi.fall import (
    FEATURE_NAMES,
    OPERATING_POINT_KEYS,
    RULE_OPERATING_POINT,
    FallDetector,
    FallDetectorParams,
    FallEvent,
    FallOperatingPointParams,
)

#: Manifest name of the shipped int8 fall classifier (models/train_fall.py).
MODEL_NAME = "fall"


def _from_operating_point(name: str) -> tuple[Any, Any]:
    """An optional copy of the :class:`FallOperatingPointParams` field ``name``: default
    None = taken from the operating point chosen at run time."""
    f = FallOperatingPointParams.model_fields[name]
    extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
    bounds = {k: getattr(m, k) for m in f.metadata for k in ("ge", "gt", "le", "lt")
              if getattr(m, k, None) is not None}
    doc = (f"{f.description}; default: from the model's operating point "
           f"(the rule's own without a model)")
    return (f.annotation | None, param(None, doc=doc, unit=extra.get("unit", ""), **bounds))


#: The operating-point options of ``wifi_fall``: every field of
#: :class:`~sensing.wifi.fall.FallOperatingPointParams`, optional (None: the model's).
_OperatingPointOptions = create_model(
    "_OperatingPointOptions", __base__=Params,
    **{k: _from_operating_point(k) for k in OPERATING_POINT_KEYS})


class WifiFallParams(_OperatingPointOptions):
    """Options of the ``wifi_fall`` pipeline. Validating them loads no model: the
    operating-point options default to None, i.e. taken from the model's operating point
    ``operating_point`` (or :data:`~sensing.wifi.fall.RULE_OPERATING_POINT` for the rule)
    when the pipeline is built."""

    model: str = param(MODEL_NAME, min_length=1, doc="manifest name of the fall classifier")
    method: Literal["auto", "model", "rule"] = param(
        "auto", doc="auto: the model, else the rule; model: fail if the model cannot be "
                    "loaded; rule: always the rule")
    operating_point: str = param(
        "default", min_length=1,
        doc="the model's recorded operating point: default (<= 1 false alarm per day) or "
            "sensitive; checked when the model is loaded; ignored by the rule")
    models_dir: str | None = param(None, path=True,
                                   doc="directory with manifest.json; default: see "
                                       "agent.inference")


@PIPELINES.register("wifi_fall")
class WifiFallPipeline(Pipeline):
    """Fall detection: features of 10 s CSI windows classified by the int8 ONNX model.

    If the model cannot be loaded (missing manifest/file, sha256 mismatch, onnxruntime
    error, wrong feature count) the documented rule :func:`sensing.wifi.fall.rule_fall_probability`
    is used instead and a warning is logged; each event says which in ``extra.method``
    (``"model"`` or ``"rule"``).

    Options (:class:`WifiFallParams`)
    ---------------------------------
    model : str
        Manifest name (default ``"fall"``).
    method : {"auto", "model", "rule"}
        ``auto`` = model, else rule; ``rule`` forces the rule; ``model`` fails when the
        model cannot be loaded.
    operating_point : str
        Name of one of the model's recorded operating points (manifest
        ``extra.operating_points``): ``"default"`` (tuned for <= 1 false alarm per day) or
        ``"sensitive"`` (more falls found, about twice the false alarms); see docs/fall.md.
        Default ``"default"``. Ignored by the rule; an unknown name is refused when the
        model is loaded.
    threshold, average, consecutive, within, refractory_s, still_s, still_log, settle_s
        See :class:`sensing.wifi.fall.FallDetector` (default None: the model's operating
        point ``operating_point``; for the rule :data:`sensing.wifi.fall.RULE_OPERATING_POINT`).
    models_dir : str
        Directory with ``manifest.json`` (default: see ``agent.inference``).
    """

    name = "wifi_fall"
    Params = WifiFallParams
    modalities = ("wifi_csi",)
    # Opt-in (``--pipeline wifi_fall`` or a config entry): on held-out simulation it keeps
    # its false alarms at 1 per day but finds only 58 % of the falls (event F1 0.73, target
    # 0.9; docs/fall.md: the event stage is not what loses them).
    default = False
    event_types = ("fall",)
    description = "falls (fast descent, then lying still) from CSI; int8 ONNX model or rule"

    params: WifiFallParams

    def __init__(self, params: WifiFallParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        p = self.params
        self.model_name = p.model
        self.operating_point = p.operating_point
        self.model = model_or_rule(p.method, lambda: self._load(p.models_dir),
                                   name=p.model, where="wifi_fall")
        op = (dict(RULE_OPERATING_POINT) if self.model is None else
              model_operating_point(self.model.meta, self.operating_point, where="wifi_fall"))
        kw = {k: getattr(p, k) if getattr(p, k) is not None else op.get(k)
              for k in OPERATING_POINT_KEYS}
        detector_params = FallDetectorParams.from_options(
            {k: v for k, v in kw.items() if v is not None}, where="wifi_fall operating point")
        if self.model is not None:
            self.detector = FallDetector(detector_params, predict_proba=self.model.predict_proba,
                                         labels=self.model.labels,
                                         n_features=self.model.n_features)
        else:
            self.detector = FallDetector(detector_params)

    def _load(self, models_dir: str | None):
        return check_classifier(load_model(self.model_name, models_dir=models_dir),
                                FEATURE_NAMES, "fall", where="wifi_fall")

    @property
    def method(self) -> str:
        """``"model"`` or ``"rule"``."""
        return self.detector.method

    def push(self, frames: Frames) -> list[Detection]:
        return [self._detection(ev) for ev in self.detector.push(frames)]

    def flush(self) -> list[Detection]:
        return [self._detection(ev) for ev in self.detector.flush()]

    def quiet_reason(self) -> str | None:
        """``"capture shorter than 20 s …"`` or the highest fall probability seen."""
        return self.detector.quiet_reason()

    def _detection(self, ev: FallEvent) -> Detection:
        extra = {"method": ev.method, "detect_s": round(ev.detect_s, 3),
                 "window_s": self.detector.extractor.window_s, **ev.extra}
        if ev.method == "model":
            extra["model"] = self.model_name
        return Detection("fall", ev.onset_s, 1, "", float(ev.confidence), extra)

