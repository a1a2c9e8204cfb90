"""What a detector outputs: a :class:`Detection`, turned into a published event by the agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Detection:
    """One finding of a detector, before it gets an id, a source and a timestamp.

    Attributes
    ----------
    type : str
        Event type, e.g. ``"breathing_rate"``, ``"blink"``, ``"fall"``, ``"seizure"``.
    offset_s : float
        Seconds from the start of the stream to the moment described: the end of the
        analysis window for a rate, the onset for a blink, fall or seizure.
    value : float | int | str | None
        The measured value (``None`` for pure occurrence events).
    unit : str
        Unit of ``value`` (``"bpm"``, ``"%"``, ``""`` …).
    confidence : float
        0–1.
    extra : dict
        Type-specific fields (``duration_s``, ``window_s`` …), JSON-serialisable.
    """

    type: str
    offset_s: float
    value: float | int | str | None
    unit: str
    confidence: float
    extra: dict[str, Any] = field(default_factory=dict)
