"""``wifi_fall`` pipeline: fall events (a person falls and stays down) from WiFi CSI."""

from __future__ import annotations

import logging
from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.wifi.fall import (
    CLASSES,
    FEATURE_NAMES,
    N_FEATURES,
    OPERATING_POINT_KEYS,
    RULE_OPERATING_POINT,
    FallDetector,
    FallEvent,
)

log = logging.getLogger("ambisense.wifi_fall")

#: Manifest name of the shipped int8 fall classifier (models/train_fall.py).
MODEL_NAME = "fall"


@PIPELINES.register("wifi_fall")
class WifiFallPipeline(Pipeline):
    """Fall detection: features of 10 s CSI windows classified by the int8 ONNX model.

    If the model cannot be loaded (missing manifest/file, sha256 mismatch, onnxruntime
    error, wrong feature count) the documented rule :func:`sensing.wifi.fall.rule_fall_probability`
    is used instead and a warning is logged; each event says which in ``extra.method``
    (``"model"`` or ``"rule"``).

    Options
    -------
    model : str
        Manifest name (default ``"fall"``).
    method : {"auto", "model", "rule"}
        ``auto`` = model, else rule; ``rule`` forces the rule; ``model`` fails when the
        model cannot be loaded.
    operating_point : str
        Name of one of the model's recorded operating points (manifest
        ``extra.operating_points``): ``"default"`` (tuned for <= 1 false alarm per day) or
        ``"sensitive"`` (more falls found, about twice the false alarms); see docs/fall.md.
        Default ``"default"``. Ignored by the rule.
    threshold, consecutive, within, refractory_s, still_s, still_log, settle_s
        See :class:`sensing.wifi.fall.FallDetector` (defaults: the model's operating point
        ``operating_point``; for the rule :data:`sensing.wifi.fall.RULE_OPERATING_POINT`).
    models_dir : str
        Directory with ``manifest.json`` (default: see ``agent.inference``).
    """

    name = "wifi_fall"
    modalities = ("wifi_csi",)
    # Opt-in (``--pipeline wifi_fall`` or a config entry): on held-out simulation it keeps
    # its false alarms below 1 per day but finds only about half the falls (docs/fall.md).
    default = False
    event_types = ("fall",)
    description = "falls (fast descent, then lying still) from CSI; int8 ONNX model or rule"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        known = {"model", "method", "operating_point", "models_dir", *OPERATING_POINT_KEYS}
        unknown = set(options) - known
        if unknown:
            raise ValueError(f"wifi_fall: unknown option(s) {sorted(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        method = options.get("method", "auto")
        if method not in ("auto", "model", "rule"):
            raise ValueError(f"wifi_fall: method must be auto, model or rule, got {method!r}")
        self.model_name = options.get("model", MODEL_NAME)
        self.model = None
        op: dict[str, Any] = {}
        self.operating_point = str(options.get("operating_point", "default"))
        if method != "rule":
            try:
                self.model = self._load(options.get("models_dir"))
            except Exception as exc:  # any load failure → rule, loudly
                if method == "model":
                    raise
                log.warning("wifi_fall: model %r not usable (%s); using the rule-based "
                            "fallback", self.model_name, exc)
            else:
                op = model_operating_point(self.model.meta, self.operating_point)
        if self.model is None:
            op = dict(RULE_OPERATING_POINT)
        kw = {k: options.get(k, op.get(k)) for k in OPERATING_POINT_KEYS}
        kw = {k: v for k, v in kw.items() if v is not None}
        if self.model is not None:
            self.detector = FallDetector(self.model.predict_proba, labels=self.model.labels,
                                         n_features=self.model.n_features, **kw)
        else:
            self.detector = FallDetector(None, **kw)

    def _load(self, models_dir: str | None):
        from agent.inference import load_model

        model = load_model(self.model_name, models_dir=models_dir)
        names = list(model.meta.get("feature_names") or [])
        if model.n_features is not None and (model.n_features > N_FEATURES or (
                names and names != list(FEATURE_NAMES[:len(names)]))):
            raise ValueError(f"model expects {model.n_features} features {names}, the "
                             f"extractor makes {N_FEATURES}: {list(FEATURE_NAMES)}")
        if "fall" not in model.labels:
            raise ValueError(f"model labels {model.labels} have no 'fall' class "
                             f"(expected {list(CLASSES)})")
        return model

    @property
    def method(self) -> str:
        """``"model"`` or ``"rule"``."""
        return self.detector.method

    def process(self, frames: Frames) -> list[Detection]:
        return [self._detection(ev) for ev in self.detector.update(frames)]

    def _detection(self, ev: FallEvent) -> Detection:
        extra = {"method": ev.method, "detect_s": round(ev.detect_s, 3),
                 "window_s": self.detector.extractor.window_s, **ev.extra}
        if ev.method == "model":
            extra["model"] = self.model_name
        return Detection("fall", ev.onset_s, 1, "", float(ev.confidence), extra)


def model_operating_point(meta: dict[str, Any], name: str = "default") -> dict[str, Any]:
    """The detector options of a fall model's operating point ``name``.

    Parameters
    ----------
    meta : dict
        The model's manifest entry: ``extra.operating_points`` maps names to
        :class:`sensing.wifi.fall.FallDetector` options; models without it (before v4.1)
        have only ``extra.operating_point``, which is their ``"default"``.
    name : str
        Operating-point name.

    Raises
    ------
    ValueError
        ``name`` is not one of the model's operating points.
    """
    extra = meta.get("extra") or {}
    points = dict(extra.get("operating_points") or {})
    if not points and extra.get("operating_point"):
        points = {"default": extra["operating_point"]}
    if name not in points:
        raise ValueError(f"wifi_fall: operating_point {name!r} is not one of the model's "
                         f"operating points {sorted(points)}")
    return dict(points[name])
