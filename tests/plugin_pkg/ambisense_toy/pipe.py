"""``toy_threshold``: a ``toy_high`` event for every sample above a threshold."""

from __future__ import annotations

from agent.pipelines import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.params import Params, param


class ToyParams(Params):
    threshold: float = param(5.0, unit="counts", ge=0, doc="report samples above this")


@PIPELINES.register("toy_threshold")
class ToyThreshold(Pipeline):
    name = "toy_threshold"
    Params = ToyParams
    modalities = ("toy",)
    event_types = ("toy_high",)
    description = "samples above a threshold (plug-in test pipeline)"

    def push(self, frames):
        v = frames.data[:, 0]
        return [Detection("toy_high", float(t), float(x), "counts", 1.0)
                for t, x in zip(frames.times_s, v, strict=True) if x > self.params.threshold]
