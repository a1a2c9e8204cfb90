"""Per-stream analyses shared by several pipelines (computed once per chunk).

Two default WiFi pipelines need the same breathing analysis: ``wifi_breathing`` reports the
rate, ``wifi_motion`` uses it as evidence of a still person. Run separately, the estimator
would process every chunk twice. :class:`SharedStages` holds one instance per stream and
per configuration (its frozen, hashable :class:`~sensing.params.Params` model); each
pipeline calls :meth:`SharedStage.push` with the chunk it is processing, and the analysis
runs only on the first call for that chunk — the other pipelines get the same result.
:func:`agent.runner.run_stream` gives every pipeline of a stream the same
:class:`SharedStages` (:meth:`agent.pipelines.base.Pipeline.bind`); a pipeline used on its
own (no ``bind``) runs its own analysis, with identical results.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from sensing.detections import Detection
from sensing.frames import Frames
from sensing.wifi.breathing import BreathingEstimator


class SharedStage:
    """One analysis (a :class:`sensing.stage.Stage`: ``push(frames) -> results``),
    memoised per chunk."""

    def __init__(self, analysis: Any) -> None:
        self.analysis = analysis
        self._frames: Frames | None = None
        self._result: Any = None
        self._error: BaseException | None = None

    def push(self, frames: Frames) -> Any:
        """The analysis' result for ``frames``, computed on the first call for that chunk
        (an error is raised again for every caller of the same chunk)."""
        if frames is not self._frames:
            self._frames, self._result, self._error = frames, None, None
            try:
                self._result = self.analysis.push(frames)
            except Exception as exc:
                self._error = exc
                raise
        if self._error is not None:
            raise self._error
        return self._result


class SharedStages:
    """The shared analyses of one stream, keyed by kind and configuration."""

    def __init__(self) -> None:
        self._stages: dict[Hashable, SharedStage] = {}

    def get(self, key: Hashable, factory: Callable[[], Any]) -> SharedStage:
        """The stage for ``key``, created with ``factory()`` on first use."""
        stage = self._stages.get(key)
        if stage is None:
            stage = self._stages[key] = SharedStage(factory())
        return stage


def shared_breathing_stage(shared: SharedStages, est: BreathingEstimator) -> SharedStage:
    """The stream's shared breathing estimator configured like ``est`` except for
    ``min_confidence`` (0: it emits every window with a rate).

    It is keyed by its :class:`~sensing.wifi.breathing.BreathingParams` (frozen and
    hashable), so every consumer whose options differ only in ``min_confidence`` shares it.
    """
    params = est.params.replace(min_confidence=0.0)
    return shared.get(("breathing", params), lambda: BreathingEstimator(params))


def shared_breathing(shared: SharedStages, est: BreathingEstimator,
                     frames: Frames) -> list[Detection]:
    """Breathing windows of ``frames`` from the stream's shared estimator configured like
    ``est`` (:func:`shared_breathing_stage`), filtered by ``est.params.min_confidence``.

    Confidence only decides emission, so each consumer's filtered result equals what its
    own estimator would have emitted.
    """
    stage = shared_breathing_stage(shared, est)
    return [d for d in stage.push(frames) if d.confidence >= est.params.min_confidence]
