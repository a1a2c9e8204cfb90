"""The one event schema every detector speaks (versioned; JSON Schema in ``schema/``).

An :class:`Event` is a :class:`~sensing.detections.Detection` plus where it came from
(``source``, ``detector``), an absolute time when the capture has one (``ts``) and a
deterministic ``id``: the same input replayed gives the same ids, so subscribers can
deduplicate re-deliveries.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sensing.detections import Detection

#: Schema identifier carried by every event. Bump the number on a breaking change.
SCHEMA = "ambisense.event/1"

#: Keys of the envelope; detector extras may not reuse them.
CORE_FIELDS = (
    "schema", "id", "type", "source", "detector", "offset_s", "ts", "value", "unit", "confidence",
)


@dataclass(frozen=True)
class Event:
    """A published event (see ``docs/events.md``).

    Attributes
    ----------
    id : str
        Deterministic 20-hex-digit id (sha256 of source, detector, type, offset, occurrence).
    type : str
        ``breathing_rate``, ``motion``, ``presence``, ``fall``, ``blink``, ``seizure`` …
    source : str
        Device name, or the file name of a replayed capture.
    detector : str
        Pipeline that produced it.
    offset_s : float
        Seconds from the start of the stream (window end for rates, onset otherwise).
    ts : str or None
        ISO-8601 UTC time of ``offset_s`` when the capture has an absolute clock.
    value, unit, confidence
        Measurement, its unit, and a 0–1 confidence.
    extra : dict
        Type-specific fields, flattened into the JSON object.
    """

    id: str
    type: str
    source: str
    detector: str
    offset_s: float
    ts: str | None
    value: Any
    unit: str
    confidence: float
    extra: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": self.schema,
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "detector": self.detector,
            "offset_s": self.offset_s,
            "ts": self.ts,
            "value": self.value,
            "unit": self.unit,
            "confidence": self.confidence,
        }
        d.update(self.extra)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Event:
        missing = [k for k in CORE_FIELDS if k not in d]
        if missing:
            raise ValueError(f"event lacks required field(s) {missing}: {d!r:.200}")
        extra = {k: v for k, v in d.items() if k not in CORE_FIELDS}
        return cls(
            id=d["id"], type=d["type"], source=d["source"], detector=d["detector"],
            offset_s=float(d["offset_s"]), ts=d["ts"], value=d["value"], unit=d["unit"],
            confidence=float(d["confidence"]), extra=extra, schema=d["schema"],
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        return cls.from_dict(json.loads(text))


class EventFactory:
    """Turns the detections of one stream into events with stable ids.

    Parameters
    ----------
    source : str
        Device or capture file name.
    t0 : datetime, optional
        Absolute UTC time of stream offset 0; sets ``ts``.
    """

    def __init__(self, source: str, t0: datetime | None = None) -> None:
        self.source = source
        self.t0 = t0
        self._seen: Counter[tuple[str, str, int]] = Counter()

    def make(self, det: Detection, detector: str) -> Event:
        bad = [k for k in det.extra if k in CORE_FIELDS]
        if bad:
            raise ValueError(f"detector {detector!r} used reserved event field(s) {bad}")
        if not 0.0 <= det.confidence <= 1.0 or math.isnan(det.confidence):
            raise ValueError(f"detector {detector!r}: confidence {det.confidence} not in 0..1")
        offset_ms = int(round(det.offset_s * 1000))
        key = (detector, det.type, offset_ms)
        n = self._seen[key]
        self._seen[key] += 1
        digest = hashlib.sha256(
            f"{self.source}|{detector}|{det.type}|{offset_ms}|{n}".encode()
        ).hexdigest()[:20]
        ts = None
        if self.t0 is not None:
            when = self.t0 + timedelta(seconds=det.offset_s)
            ts = when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"
            )
        value = det.value
        if isinstance(value, float):
            value = round(value, 4)
        return Event(
            id=digest, type=det.type, source=self.source, detector=detector,
            offset_s=round(det.offset_s, 3), ts=ts, value=value, unit=det.unit,
            confidence=round(float(det.confidence), 4), extra=dict(det.extra),
        )
