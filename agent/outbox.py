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

Storage faults
--------------
*Disk full or I/O error* (``SQLITE_FULL``, ``SQLITE_IOERR``: the SD card is full, the
file system went read-only): the event is not lost but *spilled* to a bounded queue in
memory (``spill_max`` events, 10 000 by default) and :attr:`Outbox.alarm` says what
happened (``"outbox disk full: …"``, logged as an error once per fault; the MQTT sink
puts it in its status message at once). Spilled events are published like the others,
but they are not durable: a crash while the disk is full loses them. When the spill
queue is full, the oldest spilled periodic reading is dropped (alerts kept, every drop
counted in :attr:`Outbox.dropped`). Every :meth:`Outbox.retry` (the MQTT sink calls it
each second) and every :meth:`Outbox.put` tries to write the spilled events back to the
file; the first success clears the alarm (logged as a warning: "outbox storage
recovered"). Acknowledgements that cannot be written are remembered in memory and
written later (at worst, a crash re-sends them: a duplicate, never a loss).

*Corrupted file* (not a database, a failed ``PRAGMA quick_check``, an unreadable
schema): the file (and its ``-wal``/``-shm``) is renamed to
``<name>.corrupt-<UTC time>``, a fresh outbox is started in its place, and
:attr:`Outbox.recovered` / :attr:`Outbox.alarm` report it (logged as an error).

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

#: Default bound of the in-memory spill queue used while the disk is full.
SPILL_MAX = 10_000
#: SQLite errors that mean "the storage cannot take writes now" (not a bug): disk full,
#: I/O error, read-only file system, cannot open.
_STORAGE_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN")


def _runtime_fault(exc: BaseException) -> bool:
    """While running, any database error of the file (full, I/O, read-only, corrupted
    under us) makes the outbox spill to memory rather than lose the event."""
    return isinstance(exc, sqlite3.DatabaseError)


def _storage_fault(exc: BaseException) -> bool:
    """True when ``exc`` is an SQLite error caused by the storage (see _STORAGE_ERRORS)."""
    if not isinstance(exc, sqlite3.Error):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_STORAGE_ERRORS):
        return True
    text = str(exc).lower()
    return any(w in text for w in ("disk is full", "disk i/o", "readonly", "read-only",
                                   "unable to open"))

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
    spill_max : int
        Bound of the in-memory queue used while the file cannot be written (disk full).

    Attributes
    ----------
    dropped : collections.Counter
        Event type → events dropped by the overflow policies.
    alarm : str or None
        What is wrong with the storage now (disk full, I/O error), None when healthy.
    recovered : dict or None
        ``{"reason", "moved_to", "at"}`` when a corrupted file was set aside at start.
    storage_errors : int
        Failed writes (each one counted; the alarm is logged once per fault).

    Notes
    -----
    Thread-safe: one connection guarded by a lock. Writes use ``synchronous=FULL`` so an
    event acknowledged by :meth:`put` survives a power cut (unless it was spilled).
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        max_events: int = 100_000,
        alert_types: Iterable[str] = ALERT_TYPES,
        spill_max: int = SPILL_MAX,
    ) -> None:
        if max_events < 2:
            raise ValueError(f"outbox max_events must be at least 2, got {max_events}")
        if spill_max < 1:
            raise ValueError(f"outbox spill_max must be at least 1, got {spill_max}")
        self.path = None if path is None else Path(path)
        self.max_events = max_events
        self.alert_types = frozenset(alert_types)
        self.spill_max = spill_max
        self.dropped: Counter[str] = Counter()
        self.alarm: str | None = None
        self.recovered: dict[str, str] | None = None
        self.storage_errors = 0
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._depth = 0  # rows in the file (including those in _ack_later)
        self._next_seq = 0
        self._spill: list[tuple[int, str, str, str, str, str, int, float]] = []
        self._ack_later: set[int] = set()
        self._spill_drops = 0
        self._deleted_tx: list[int] = []
        self._next_try = 0.0  # monotonic time of the next write-back attempt from put()
        if self.path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._db.executescript(_SCHEMA)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open_file()

    # ------------------------------------------------------------------ opening
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(os.fspath(self.path), check_same_thread=False,
                             isolation_level=None, timeout=30)
        try:
            # read-only checks first: a corrupted file is set aside unchanged
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                          "name = 'outbox'").fetchone():
                db.execute("SELECT seq, event_id, event_type, device, topic, payload, alert, "
                           "created FROM outbox LIMIT 1").fetchall()
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    def _open_file(self) -> bool:
        """Open (or re-open) the file; a corrupted one is set aside. False: cannot now."""
        try:
            db = self._connect()
        except sqlite3.Error as exc:
            if _storage_fault(exc):
                self._fault("cannot open", exc)
                return False
            self._set_aside(exc)
            try:
                db = self._connect()
            except sqlite3.Error as exc2:
                self._fault("cannot create a fresh outbox", exc2)
                return False
        self._db = db
        self._depth = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        top = db.execute("SELECT MAX(seq) FROM outbox").fetchone()[0] or 0
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        self._next_seq = max(self._next_seq, int(top), int(row[0]) if row else 0)
        return True

    def _set_aside(self, exc: BaseException) -> None:
        """Rename a corrupted file (and its WAL/shm) out of the way and report it."""
        assert self.path is not None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{target}{suffix}")
        self.recovered = {"reason": f"{type(exc).__name__}: {exc}", "moved_to": str(target),
                          "at": stamp}
        log.error("outbox %s is corrupted (%s); moved it to %s and started a fresh outbox "
                  "(the events it held are not re-sent; inspect the moved file)",
                  self.path, exc, target)

    # ------------------------------------------------------------------ faults
    def _fault(self, what: str, exc: BaseException) -> None:
        self.storage_errors += 1
        if self.alarm is None:
            kind = "disk full" if "full" in str(exc).lower() else "storage error"
            self.alarm = (f"outbox {self.path}: {kind} ({what}: {exc}); new events are kept "
                          f"in memory (at most {self.spill_max}, lost if the agent dies) "
                          f"until the file can be written again")
            log.error("%s", self.alarm)

    def _recovered(self) -> None:
        if self.alarm is not None:
            log.warning("outbox storage recovered: %s is written again (%d storage errors "
                        "meanwhile, %d events dropped from memory)", self.path,
                        self.storage_errors, self._spill_drops)
            self.alarm = None

    @property
    def durable(self) -> bool:
        """True when the queue is a file (survives restarts)."""
        return self.path is not None

    def __len__(self) -> int:
        return self.depth()

    def depth(self) -> int:
        """Number of events waiting for acknowledgement."""
        return self._depth - len(self._ack_later) + len(self._spill)

    def spilled(self) -> int:
        """Events held in memory only (the file could not be written)."""
        return len(self._spill)

    # ------------------------------------------------------------------ writing
    def put(self, event_id: str, event_type: str, device: str, topic: str, payload: str) -> int:
        """Queue one event durably (committed before returning); return its ``seq``
        (-1: dropped by the overflow policy). While the file cannot be written the event
        is spilled to memory (see the module docstring)."""
        alert = int(event_type in self.alert_types)
        with self._lock:
            seq = self._next_seq + 1
            row = (seq, event_id, event_type, device, topic, payload, alert, time.time())
            if (self.path is not None and (self._spill or self._ack_later or self._db is None)
                    and time.monotonic() >= self._next_try):
                self._flush_locked()  # at most once a second while it fails
            if self._db is not None and not self._spill:
                try:
                    ok = self._insert_locked(row)
                except sqlite3.Error as exc:
                    if not _runtime_fault(exc):
                        raise
                    self._fault("writing an event", exc)
                else:
                    if ok:
                        self._next_seq = seq
                    if self.alarm is not None and not self._ack_later:
                        self._recovered()  # the file took a write again
                    return seq if ok else -1
            return self._spill_locked(row)

    def _insert_locked(self, row: tuple) -> bool:
        assert self._db is not None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self._depth >= self.max_events and not self._make_room(row[2], row[6]):
                self._db.execute("COMMIT")
                self._committed()
                return False
            self._db.execute(
                "INSERT INTO outbox (seq, event_id, event_type, device, topic, payload, alert,"
                " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
            self._db.execute("COMMIT")
            self._committed()
        except BaseException:
            self._rollback()
            raise
        self._depth += 1
        return True

    def _rollback(self) -> None:
        assert self._db is not None
        self._deleted_tx.clear()
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction left (SQLite rolled back itself after the error)
        try:
            self._depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        except sqlite3.Error:
            pass

    def _spill_locked(self, row: tuple) -> int:
        if len(self._spill) >= self.spill_max:
            victim = next((i for i, r in enumerate(self._spill) if not r[6]), None)
            if victim is None and not row[6]:
                self._count_spill_drop(row[2])
                return -1
            dropped = self._spill.pop(victim if victim is not None else 0)
            self._count_spill_drop(dropped[2])
        self._spill.append(row)
        self._next_seq = row[0]
        return row[0]

    def _count_spill_drop(self, event_type: str) -> None:
        self.dropped[event_type] += 1
        self._spill_drops += 1
        if self._spill_drops == 1 or self._spill_drops % 1000 == 0:
            log.error("outbox memory queue full (%d events, disk still unwritable): dropped "
                      "%d event(s) so far, oldest periodic readings first", self.spill_max,
                      self._spill_drops)

    def _flush_locked(self) -> bool:
        """Write spilled events and pending acks to the file; True when nothing is left."""
        if self._db is None and not self._open_file():
            self._next_try = time.monotonic() + 1.0
            return False
        assert self._db is not None
        if not self._spill and not self._ack_later and self.alarm is None:
            return True
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                # a write even when nothing is held: proves the file takes writes again
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                self._db.execute(f"PRAGMA user_version = {(version + 1) % 2**31}")
                if self._ack_later:
                    self._delete(sorted(self._ack_later))
                for r in self._spill:
                    self._db.execute(
                        "INSERT INTO outbox (seq, event_id, event_type, device, topic, payload,"
                        " alert, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", r)
                self._db.execute("COMMIT")
                self._deleted_tx.clear()
            except BaseException:
                self._rollback()
                raise
        except sqlite3.Error as exc:
            if not _runtime_fault(exc):
                raise
            self.storage_errors += 1
            self._next_try = time.monotonic() + 1.0
            return False
        self._depth += len(self._spill)
        self._spill.clear()
        self._ack_later.clear()
        self._recovered()
        return True

    def retry(self) -> bool:
        """Try to write what is held in memory to the file now; True when the storage is
        healthy (nothing left in memory)."""
        if self.path is None:
            return True
        with self._lock:
            if (self._db is not None and not self._spill and not self._ack_later
                    and self.alarm is None):
                return True
            return self._flush_locked()

    def _make_room(self, event_type: str, alert: int) -> bool:
        """Apply the overflow policy inside the open transaction; False: drop the new event."""
        assert self._db is not None
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
        assert self._db is not None
        n = 0
        for i in range(0, len(seqs), 500):
            part = seqs[i:i + 500]
            cur = self._db.execute(
                f"DELETE FROM outbox WHERE seq IN ({','.join('?' * len(part))})", part
            )
            n += cur.rowcount
        self._depth -= n
        self._deleted_tx.extend(seqs)
        return n

    def _committed(self) -> None:
        """After a COMMIT: rows deleted in it no longer wait for a deferred ack."""
        if self._ack_later and self._deleted_tx:
            self._ack_later.difference_update(self._deleted_tx)
        self._deleted_tx.clear()

    # ------------------------------------------------------------------ reading
    def pending(self, after: int = 0, limit: int = 100) -> list[OutboxRow]:
        """Queued events with ``seq > after``, oldest first."""
        with self._lock:
            rows: list[tuple] = []
            if self._db is not None:
                try:
                    rows = self._db.execute(
                        "SELECT seq, event_id, event_type, device, topic, payload FROM outbox "
                        "WHERE seq > ? ORDER BY seq LIMIT ?",
                        (after, limit + len(self._ack_later)),
                    ).fetchall()
                except sqlite3.Error as exc:
                    if not _runtime_fault(exc):
                        raise
                    self._fault("reading", exc)
                if self._ack_later:
                    rows = [r for r in rows if r[0] not in self._ack_later]
            if self._spill:
                rows += [r[:6] for r in self._spill if r[0] > after]
                rows.sort(key=lambda r: r[0])
        return [OutboxRow(*r) for r in rows[:limit]]

    def last_seq(self) -> int:
        """``seq`` of the newest queued event (0 when empty)."""
        with self._lock:
            if self._spill:
                return self._spill[-1][0]
            if self._db is None:
                return 0
            row = self._db.execute("SELECT MAX(seq) FROM outbox").fetchone()
        return int(row[0] or 0)

    def first_device(self) -> str | None:
        """Device of the oldest queued event, or None when empty."""
        with self._lock:
            row = None
            if self._db is not None:
                row = self._db.execute("SELECT device FROM outbox ORDER BY seq LIMIT 1").fetchone()
            if row is None and self._spill:
                return self._spill[0][3]
        return None if row is None else row[0]

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove acknowledged events (one transaction); return how many were removed.

        An acknowledgement that cannot be written (disk full) is remembered and written
        with the next successful write."""
        seqs = list(seqs)
        if not seqs:
            return 0
        with self._lock:
            n = 0
            if self._spill:
                done = set(seqs)
                spilled = {r[0] for r in self._spill} & done
                if spilled:
                    self._spill = [r for r in self._spill if r[0] not in spilled]
                    n = len(spilled)
                    seqs = [s for s in seqs if s not in spilled]
            if self._db is None or not seqs:
                return n  # no file open: the rest are not in it
            self._db.execute("BEGIN IMMEDIATE")
            try:
                n += self._delete(seqs)
                self._db.execute("COMMIT")
                self._committed()
            except sqlite3.Error as exc:
                self._rollback()
                if not _runtime_fault(exc):
                    raise
                self._fault("removing acknowledged events", exc)
                # remember those still in the file (the rest were thinned out or are gone)
                try:
                    q = ",".join("?" * len(seqs[:900]))
                    still = [r[0] for r in self._db.execute(
                        f"SELECT seq FROM outbox WHERE seq IN ({q})", seqs[:900])]
                except sqlite3.Error:
                    still = seqs
                self._ack_later.update(still)
                return n
            except BaseException:
                self._rollback()
                raise
        return n

    def close(self) -> int:
        """Write what memory still holds if possible, checkpoint the WAL and close the
        file; return how many events were lost (spilled and still unwritable)."""
        self.retry()
        with self._lock:
            lost = len(self._spill)
            if lost:
                log.error("outbox %s: %d event(s) held in memory could not be written "
                          "(disk full) and are LOST (first ids: %s)", self.path, lost,
                          ", ".join(r[1] for r in self._spill[:5]))
            if self._db is not None:
                if self.path is not None:
                    try:
                        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    except sqlite3.Error:  # another reader: the WAL stays, nothing is lost
                        pass
                self._db.close()
                self._db = None
        return lost
