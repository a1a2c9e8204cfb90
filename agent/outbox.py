"""Durable outbox: events wait in a local SQLite (WAL) queue until the broker acknowledges them.

Every event is written here *before* it is published and removed only when the broker
acknowledges it (PUBACK for QoS 1). A broker outage, an agent restart or a power cut on
the Raspberry Pi therefore loses nothing: the next process that opens the same file
re-publishes what is left, with the same event ids (subscribers deduplicate by id).
Delivery is at-least-once.

Size bound and what is dropped when full
----------------------------------------
The queue holds at most ``max_events`` rows. Events are either *alerts*
(:data:`ALERT_TYPES`: ``fall``, ``seizure``, ``seizure_alert`` …) or *periodic readings*
(everything else: ``breathing_rate``, ``motion``, ``soil_moisture`` …). When a new event
finds the queue full:

1. if it holds periodic readings, the oldest half of them is *thinned*: every second
   one is deleted (about a quarter of the periodic rows). Repeated overflows keep
   halving the resolution of the oldest readings while recent ones stay complete —
   a long outage leaves a coarse but complete-in-time history;
2. otherwise (only alerts are queued) a new periodic reading is dropped, and a new alert
   replaces the oldest alert, so the file stays bounded.

Alerts are never dropped while a periodic reading is queued. Every drop is counted per
type (:attr:`Outbox.dropped`) and logged.

One process should own an outbox file at a time.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ambisense.outbox")

#: Event types that are kept when the outbox overflows.
ALERT_TYPES: frozenset[str] = frozenset({"fall", "seizure", "seizure_alert"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id   TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    device     TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    alert      INTEGER NOT NULL,
    created    REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_alert_seq ON outbox (alert, seq);
"""


@dataclass(frozen=True)
class OutboxRow:
    """One queued event.

    Attributes
    ----------
    seq : int
        Queue position (increasing, never reused in one file).
    event_id, event_type, device, topic, payload : str
        The event id and type, the device slug, the MQTT topic and the JSON payload.
    """

    seq: int
    event_id: str
    event_type: str
    device: str
    topic: str
    payload: str


class Outbox:
    """A bounded, durable FIFO of events awaiting acknowledgement.

    Parameters
    ----------
    path : str or Path, optional
        SQLite file (created with its directory). ``None`` keeps the queue in memory:
        same policy, but nothing survives the process.
    max_events : int
        Bound on the number of queued events (see the module docstring for the policy).
    alert_types : iterable of str
        Event types never thinned out while periodic readings are queued.

    Notes
    -----
    Thread-safe: one connection guarded by a lock. Writes use ``synchronous=FULL`` so an
    event acknowledged by :meth:`put` survives a power cut.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        max_events: int = 100_000,
        alert_types: Iterable[str] = ALERT_TYPES,
    ) -> None:
        if max_events < 2:
            raise ValueError(f"outbox max_events must be at least 2, got {max_events}")
        self.path = None if path is None else Path(path)
        self.max_events = max_events
        self.alert_types = frozenset(alert_types)
        self.dropped: Counter[str] = Counter()
        self._lock = threading.Lock()
        if self.path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                os.fspath(self.path), check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    @property
    def durable(self) -> bool:
        """True when the queue is a file (survives restarts)."""
        return self.path is not None

    def __len__(self) -> int:
        return self._depth

    def depth(self) -> int:
        """Number of events waiting for acknowledgement."""
        return self._depth

    def put(self, event_id: str, event_type: str, device: str, topic: str, payload: str) -> int:
        """Queue one event durably (committed before returning); return its ``seq``."""
        alert = int(event_type in self.alert_types)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if self._depth >= self.max_events and not self._make_room(event_type, alert):
                    self._db.execute("COMMIT")
                    return -1
                cur = self._db.execute(
                    "INSERT INTO outbox (event_id, event_type, device, topic, payload, alert,"
                    " created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event_id, event_type, device, topic, payload, alert, time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                raise
            self._depth += 1
            return int(cur.lastrowid)

    def _make_room(self, event_type: str, alert: int) -> bool:
        """Apply the overflow policy inside the open transaction; False: drop the new event."""
        periodic = self._db.execute("SELECT COUNT(*) FROM outbox WHERE alert = 0").fetchone()[0]
        if periodic:
            half = max(periodic // 2, 1)
            rows = self._db.execute(
                "SELECT seq, event_type FROM (SELECT seq, event_type, ROW_NUMBER() OVER "
                "(ORDER BY seq) AS n FROM (SELECT seq, event_type FROM outbox WHERE alert = 0 "
                "ORDER BY seq LIMIT ?)) WHERE n % 2 = 1",
                (half,),
            ).fetchall()
            self._delete([r[0] for r in rows])
            for _, typ in rows:
                self.dropped[typ] += 1
            log.warning(
                "outbox full (%d events): thinned out %d of the oldest periodic readings",
                self.max_events, len(rows),
            )
            return True
        if not alert:
            self.dropped[event_type] += 1
            log.warning("outbox full of alerts (%d): dropped a new %s reading",
                        self.max_events, event_type)
            return False
        seq, typ = self._db.execute(
            "SELECT seq, event_type FROM outbox ORDER BY seq LIMIT 1"
        ).fetchone()
        self._delete([seq])
        self.dropped[typ] += 1
        log.error("outbox full of alerts (%d): dropped the oldest alert (%s) for a new one",
                  self.max_events, typ)
        return True

    def _delete(self, seqs: list[int]) -> int:
        n = 0
        for i in range(0, len(seqs), 500):
            part = seqs[i:i + 500]
            cur = self._db.execute(
                f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(part))})", part
            )
            n += cur.rowcount
        self._depth -= n
        return n

    def pending(self, after: int = 0, limit: int = 100) -> list[OutboxRow]:
        """Queued events with ``seq > after``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, event_id, event_type, device, topic, payload FROM outbox "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [OutboxRow(*r) for r in rows]

    def last_seq(self) -> int:
        """``seq`` of the newest queued event (0 when empty)."""
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()
        return int(row[0] or 0)

    def first_device(self) -> str | None:
        """Device of the oldest queued event, or None when empty."""
        with self._lock:
            row = self._db.execute("SELECT device FROM outbox ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else row[0]

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove acknowledged events (one transaction); return how many were removed."""
        seqs = list(seqs)
        if not seqs:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n = self._delete(seqs)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
                raise
        return n

    def close(self) -> None:
        """Checkpoint the WAL and close the file."""
        with self._lock:
            if self.path is not None:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error:  # another reader: the WAL stays, nothing is lost
                    pass
            self._db.close()
