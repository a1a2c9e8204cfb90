"""Pipeline base class and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from sensing.detections import Detection
from sensing.frames import Frames
from sensing.registry import Registry

if TYPE_CHECKING:
    from agent.pipelines.shared import SharedStages


class Pipeline(ABC):
    """Streaming detector for one stream.

    Subclasses set ``modalities`` (which :class:`Frames` they accept), ``default``
    (run on replay without ``--pipeline``) and ``event_types``; :meth:`process` is
    called on every chunk in order and :meth:`flush` once at the end of the stream.
    Keyword options come from the agent config (``[pipelines.<name>]``) or the CLI.
    """

    name: ClassVar[str] = ""
    modalities: ClassVar[tuple[str, ...]] = ()
    default: ClassVar[bool] = True
    event_types: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.options = options
        #: The stream's shared analyses, once :meth:`bind` has been called.
        self.shared: SharedStages | None = None

    def bind(self, shared: SharedStages) -> None:
        """Join the stream's shared analyses (:mod:`agent.pipelines.shared`); called by
        :func:`agent.runner.run_stream` before the first chunk. Without it a pipeline runs
        every analysis itself."""
        self.shared = shared

    @abstractmethod
    def process(self, frames: Frames) -> list[Detection]:
        """Consume one chunk; return the detections it completed."""

    def flush(self) -> list[Detection]:
        """End of stream: return detections still pending."""
        return []


#: Registered pipelines: name → class.
PIPELINES: Registry[type[Pipeline]] = Registry("pipeline")


def pipelines_for(modality: str, names: list[str] | None = None) -> list[type[Pipeline]]:
    """Pipelines to run on a stream of ``modality``.

    Parameters
    ----------
    modality : str
        The stream's modality.
    names : list of str, optional
        Explicit choice; each must accept ``modality``. Default: all default pipelines
        that accept it.
    """
    if names:
        out = []
        for n in names:
            cls = PIPELINES.get(n)
            if modality in cls.modalities:
                out.append(cls)
        return out
    return [cls for _, cls in PIPELINES.items() if cls.default and modality in cls.modalities]
