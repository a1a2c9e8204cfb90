"""The one shape of every streaming stage: extractors, detectors and pipelines alike.

A stage is built from a frozen :class:`~sensing.params.Params` model (its options, declared
once), is pushed the chunks of one stream in order, and is flushed once at the end::

    stage = BreathingEstimator(window_s=30)      # or BreathingEstimator(BreathingParams(...))
    for frames in reader:
        results += stage.push(frames)
    results += stage.flush()

A stage keeps only the state its window needs (no global state); the same code runs on a
live source and on a replayed file. :class:`Stage` is a :class:`typing.Protocol`: stages
do not inherit from it, they only have its members.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from sensing.frames import Frames
from sensing.params import Params

R_co = TypeVar("R_co", covariant=True)

__all__ = ["Stage", "run_stage"]


@runtime_checkable
class Stage(Protocol[R_co]):
    """Push chunks of :class:`~sensing.frames.Frames`, get results; flush at the end.

    Attributes
    ----------
    Params : type of Params
        The stage's option model (class attribute).
    params : Params
        The options this instance was built with.
    """

    Params: ClassVar[type[Params]]
    params: Params

    def push(self, frames: Frames) -> list[R_co]:
        """Consume one chunk; return the results it completed (possibly none)."""
        ...

    def flush(self) -> list[R_co]:
        """End of stream: return the results still pending."""
        ...


def run_stage(stage: Stage[Any], chunks: Iterable[Frames]) -> list[Any]:
    """Push every chunk of ``chunks`` through ``stage``, flush it, return all results."""
    out: list[Any] = []
    for fr in chunks:
        out.extend(stage.push(fr))
    out.extend(stage.flush())
    return out
