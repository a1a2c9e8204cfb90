"""``eeg_seizure``: seizure events from EEG with the shipped int8 ONNX classifier.

Loads model ``seizure`` through :mod:`agent.inference` (sha256-checked) and runs
:class:`sensing.eeg.seizure.SeizureDetector` on every chunk. Events: ``seizure_alert`` at
confirmed onset (``detected_at_s``), ``seizure`` once it has ended (``offset_s`` = onset,
``duration_s``, ``detected_at_s``, ``channels``).

Options (``--set eeg_seizure.KEY=VALUE``, :class:`EegSeizureParams`): ``threshold``
(default: the detector threshold tuned in training, stored in the manifest),
``off_threshold``, ``smooth_windows`` (3), ``confirm_windows`` (1), ``release_windows`` (4),
``min_channels`` (2), ``single_channel_threshold`` (0.99) and ``single_channel_windows`` (8:
one channel alone counts when its artefact-free probability averages ≥ 0.99 over 8 windows),
``slow_wave_gate`` (true: slow-delta windows are non-ictal),
``min_peak`` (off), ``min_duration_s`` (10 s), ``alert`` (true), ``precision``
("int8"), ``threads`` (1), ``models_dir``, ``model`` ("seizure"). The analysis window is
the model's (manifest ``inputs[0].window_s``).
"""

from __future__ import annotations

from typing import Any, Literal

from agent.inference import load_model
from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.eeg.seizure import SeizureDecisionParams, SeizureDetector
from sensing.frames import Frames
from sensing.params import param


class EegSeizureParams(SeizureDecisionParams):
    """Options of the ``eeg_seizure`` pipeline: the decision options of
    :class:`~sensing.eeg.seizure.SeizureDetector` and how the model is loaded."""

    threshold: float | None = param(
        None, gt=0, lt=1, doc="smoothed seizure probability at which a window is ictal; "
                              "default: the threshold tuned in training (manifest)")
    model: str = param("seizure", min_length=1, doc="manifest name of the seizure classifier")
    precision: Literal["int8", "fp32"] = param("int8", doc="which of the model's files to run "
                                                              "(agent.inference.PRECISIONS)")
    threads: int = param(1, ge=1, le=64, doc="onnxruntime intra-op threads")
    models_dir: str | None = param(None, path=True,
                                   doc="directory with manifest.json; default: see "
                                       "agent.inference")


@PIPELINES.register("eeg_seizure")
class EegSeizurePipeline(Pipeline):
    """EEG seizure detection (per-channel int8 MLP, channel vote, hysteresis).

    Parameters
    ----------
    params : EegSeizureParams, optional
        Validated options (positional only).
    **options
        Option values applied over ``params``.
    """

    name = "eeg_seizure"
    Params = EegSeizureParams
    modalities = ("eeg",)
    default = True
    event_types = ("seizure_alert", "seizure")
    description = "EEG seizure onset/duration from the shipped int8 ONNX model"

    params: EegSeizureParams

    def __init__(self, params: EegSeizureParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        p = self.params
        self.model = load_model(p.model, models_dir=p.models_dir, precision=p.precision,
                                threads=p.threads)
        extra = self.model.meta.get("extra", {})
        det_opts = {k: getattr(p, k) for k in SeizureDecisionParams.model_fields}
        if p.threshold is None:
            det_opts["threshold"] = float(extra.get("detector_threshold", 0.5))
        window_s = float(self.model.meta["inputs"][0].get("window_s", 4.0))
        self.detector = SeizureDetector(predict_proba=self.model.predict_proba,
                                        window_s=window_s, **det_opts)

    def push(self, frames: Frames) -> list[Detection]:
        return self.detector.push(frames)

    def flush(self) -> list[Detection]:
        return self.detector.flush()

    def quiet_reason(self) -> str | None:
        """``"capture shorter than the 4 s window"`` or ``"no seizure found in N windows
        (M with artefacts)"``."""
        return self.detector.quiet_reason()
