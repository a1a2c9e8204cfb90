"""``eeg_seizure``: seizure events from EEG with the shipped int8 ONNX classifier.

Loads model ``seizure`` through :mod:`agent.inference` (sha256-checked) and runs
:class:`sensing.eeg.seizure.SeizureDetector` on every chunk. Events: ``seizure_alert`` at
confirmed onset (``detected_at_s``), ``seizure`` once it has ended (``offset_s`` = onset,
``duration_s``, ``detected_at_s``, ``channels``).

Options (``--set eeg_seizure.KEY=VALUE``): ``threshold`` (default: the detector threshold
tuned in training, stored in the manifest), ``min_channels`` (2), ``alert`` (true),
``smooth_windows`` (3), ``min_duration_s`` (10), ``precision`` ("int8"), ``models_dir``,
``model`` ("seizure").
"""

from __future__ import annotations

from typing import Any

from agent.inference import load_model
from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.eeg.seizure import SeizureDetector
from sensing.frames import Frames

_DETECTOR_OPTIONS = ("threshold", "off_threshold", "smooth_windows", "confirm_windows",
                     "release_windows", "min_channels", "min_duration_s", "alert")


@PIPELINES.register("eeg_seizure")
class EegSeizurePipeline(Pipeline):
    """EEG seizure detection (per-channel int8 MLP, channel vote, hysteresis)."""

    name = "eeg_seizure"
    modalities = ("eeg",)
    default = True
    event_types = ("seizure_alert", "seizure")
    description = "EEG seizure onset/duration from the shipped int8 ONNX model"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        unknown = set(options) - set(_DETECTOR_OPTIONS) - {"precision", "models_dir", "model",
                                                           "threads"}
        if unknown:
            raise ValueError(f"eeg_seizure: unknown option(s) {sorted(unknown)}; known: "
                             f"{', '.join(_DETECTOR_OPTIONS)}, precision, models_dir, model, "
                             f"threads")
        self.model = load_model(options.get("model", "seizure"),
                                models_dir=options.get("models_dir"),
                                precision=options.get("precision", "int8"),
                                threads=options.get("threads", 1))
        extra = self.model.meta.get("extra", {})
        det_opts = {k: options[k] for k in _DETECTOR_OPTIONS if k in options}
        det_opts.setdefault("threshold", float(extra.get("detector_threshold", 0.5)))
        window_s = float(self.model.meta["inputs"][0].get("window_s", 4.0))
        self.detector = SeizureDetector(self.model.predict_proba, window_s=window_s, **det_opts)

    def process(self, frames: Frames) -> list[Detection]:
        return self.detector.process(frames)

    def flush(self) -> list[Detection]:
        return self.detector.flush()
