"""Pipeline base class and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from sensing.detections import Detection
from sensing.frames import Frames
from sensing.registry import Registry


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
