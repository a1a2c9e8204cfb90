"""Pipeline base class and registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from sensing.detections import Detection
from sensing.frames import Frames
from sensing.params import NoParams, Params
from sensing.registry import Registry

if TYPE_CHECKING:
    from agent.pipelines.shared import SharedStages


class Pipeline(ABC):
    """Streaming detector for one stream: a :class:`sensing.stage.Stage` of detections.

    Subclasses set ``Params`` (their option model: every option declared once, with type,
    unit, default, range and description), ``modalities`` (which :class:`Frames` they
    accept), ``default`` (run on replay without ``--pipeline``) and ``event_types``.
    :meth:`push` is called on every chunk in order and :meth:`flush` once at the end.

    Options come from the agent config (``[pipelines.<name>]``) or ``--set``; they are
    validated by :meth:`check_options` from ``Params`` alone, without building the pipeline
    or loading a model.

    Parameters
    ----------
    params : Params, optional
        A validated option model (positional only); default: ``Params()``.
    **options
        Option values applied over ``params``.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = NoParams
    modalities: ClassVar[tuple[str, ...]] = ()
    #: Home Assistant entities of this pipeline's event types (MQTT discovery): event type
    #: → discovery config keys, with ``component`` ``"sensor"`` (a reading: add
    #: ``unit_of_measurement`` …) or ``"binary_sensor"`` (a state or an alert: add
    #: ``device_class``, ``off_delay`` for occurrences, ``value_template``).
    home_assistant: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    default: ClassVar[bool] = True
    event_types: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def __init__(self, params: Params | None = None, /, **options: Any) -> None:
        self.params = self.Params.build(params, options, where=self.name)
        #: The stream's shared analyses, once :meth:`bind` has been called.
        self.shared: SharedStages | None = None
        #: State shared by every pipeline of every stream of one run (one ``ambisense
        #: replay`` invocation, or one agent process), e.g. a calibration that one capture
        #: measures and the others of the same site use. Empty when the pipeline runs on
        #: its own; a pipeline keeps its entries under a key named after itself.
        self.run_context: dict[str, Any] = {}

    @classmethod
    def check_options(cls, options: Mapping[str, Any] | None) -> Params:
        """Validate ``options`` against ``Params`` only (nothing is built or loaded).

        Raises
        ------
        sensing.params.OptionError
            Unknown option or bad value; the message lists the valid options with types.
        """
        return cls.Params.from_options(options, where=cls.name)

    def bind(self, shared: SharedStages, run_context: dict[str, Any] | None = None) -> None:
        """Join the stream's shared analyses (:mod:`agent.pipelines.shared`) and the run's
        shared state (:attr:`run_context`); called by :func:`agent.runner.run_stream`
        before the first chunk. Without it a pipeline runs every analysis itself."""
        self.shared = shared
        if run_context is not None:
            self.run_context = run_context

    @abstractmethod
    def push(self, frames: Frames) -> list[Detection]:
        """Consume one chunk; return the detections it completed."""

    def flush(self) -> list[Detection]:
        """End of stream: return detections still pending."""
        return []

    def models(self) -> list[dict[str, Any]]:
        """The models this pipeline runs (``OnnxModel.summary()`` of each), for reports;
        by default the ``model`` attribute when a pipeline has one."""
        model = getattr(self, "model", None)
        return [model.summary()] if hasattr(model, "summary") else []

    def quiet_reason(self) -> str | None:
        """Why this pipeline has emitted nothing so far, in a few words for a person
        (``"capture shorter than the 30 s window"``, ``"no breathing found"``), or None
        when it has no opinion. Called by replay when a capture gave no events."""
        return None

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """What ``ambisense info --pipelines --json`` prints for this pipeline."""
        return {"name": cls.name, "description": cls.description,
                "modalities": list(cls.modalities), "default": cls.default,
                "event_types": list(cls.event_types), "options": cls.Params.describe()}


#: Registered pipelines: name → class.
PIPELINES: Registry[type[Pipeline]] = Registry("pipeline", package="agent.pipelines",
                                              group="ambisense.pipelines", folder="pipelines")


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
