"""Per-stream analyses shared by several pipelines (computed once per chunk).

Two default WiFi pipelines need the same breathing analysis: ``wifi_breathing`` reports the
rate, ``wifi_motion`` uses it as evidence of a still person. Run separately, the estimator
would process every chunk twice. :class:`SharedStages` holds one instance per stream and
per configuration; each pipeline calls :meth:`SharedStage.update` with the chunk it is
processing, and the analysis runs only on the first call for that chunk — the other
pipelines get the same result. :func:`agent.runner.run_stream` gives every pipeline of a
stream the same :class:`SharedStages` (:meth:`agent.pipelines.base.Pipeline.bind`); a
pipeline used on its own (no ``bind``) runs its own analysis, with identical results.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from sensing.detections import Detection
from sensing.frames import Frames
from sensing.wifi.breathing import BreathingEstimator


class SharedStage:
    """One analysis (anything with ``update(frames) -> result``), memoised per chunk."""

    def __init__(self, analysis: Any) -> None:
        self.analysis = analysis
        self._frames: Frames | None = None
        self._result: Any = None
        self._error: BaseException | None = None

    def update(self, frames: Frames) -> Any:
        """The analysis' result for ``frames``, computed on the first call for that chunk
        (an error is raised again for every caller of the same chunk)."""
        if frames is not self._frames:
            self._frames, self._result, self._error = frames, None, None
            try:
                self._result = self.analysis.update(frames)
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


def shared_breathing(shared: SharedStages, est: BreathingEstimator,
                     frames: Frames) -> list[Detection]:
    """Breathing windows of ``frames`` from the stream's shared estimator configured like
    ``est``, filtered by ``est.min_confidence``.

    The shared estimator has ``est``'s settings but emits every window with a rate
    (``min_confidence`` 0); confidence only decides emission, so each consumer's filtered
    result equals what its own estimator would have emitted.
    """
    settings = est.settings()
    key = ("breathing", tuple(sorted((k, v) for k, v in settings.items()
                                     if k != "min_confidence")))
    stage = shared.get(key, lambda: BreathingEstimator(**{**settings, "min_confidence": 0.0}))
    return [d for d in stage.update(frames) if d.confidence >= est.min_confidence]
