"""The outbox's disk fills up: alarm on the status topic and in the log, the documented
drop policy, no crash, nothing lost while memory holds, recovery when space returns.

The full disk is real: a 1 MiB tmpfs mounted for the test (needs root and mount rights),
otherwise the per-process file size limit ``RLIMIT_FSIZE`` (writes beyond it fail with
``EFBIG``, ``SIGXFSZ`` ignored). Both are OS-level faults SQLite sees as a failed write.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mosquitto import Listener, wait_until

from agent.events import EventFactory
from agent.outbox import Outbox
from agent.sinks.mqtt import MqttSink
from sensing.detections import Detection


class FullDisk:
    """A directory whose file system can be filled and freed on demand.

    ``mode="tmpfs"``: a real 1 MiB tmpfs, filled by a filler file (ENOSPC);
    ``mode="rlimit"``: RLIMIT_FSIZE lowered to the current size of the files in it (EFBIG).
    """

    def __init__(self, root: Path, mode: str) -> None:
        self.dir = root / "disk"
        self.dir.mkdir()
        self.mode = mode
        self.full = False
        self._old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
        self._old_handler = None
        if mode == "tmpfs":
            if shutil.which("mount") is None or os.geteuid() != 0:
                pytest.skip("mounting a tmpfs needs root and mount(8); the rlimit variant "
                            "covers the fault")
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                                str(self.dir)], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}); "
                            f"the rlimit variant covers the fault")

    def fill(self) -> None:
        if self.mode == "tmpfs":
            with open(self.dir / "filler", "wb", buffering=0) as fh:
                for block in (1 << 16, 1 << 12, 512, 1):
                    try:
                        while True:
                            fh.write(b"\0" * block)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc
        else:
            self._old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            biggest = max(p.stat().st_size for p in self.dir.iterdir())
            resource.setrlimit(resource.RLIMIT_FSIZE, (biggest, self._old_limit[1]))
        self.full = True

    def free(self) -> None:
        if self.mode == "tmpfs":
            (self.dir / "filler").unlink(missing_ok=True)
        else:
            resource.setrlimit(resource.RLIMIT_FSIZE, self._old_limit)
            if self._old_handler is not None:
                signal.signal(signal.SIGXFSZ, self._old_handler)
                self._old_handler = None
        self.full = False

    def close(self) -> None:
        if self.full:
            self.free()
        if self.mode == "tmpfs":
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True)


@pytest.fixture(params=["tmpfs", "rlimit"])
def disk(request, tmp_path):
    d = FullDisk(tmp_path, request.param)
    yield d
    d.close()


def reading(fac: EventFactory, i: int, typ: str = "breathing_rate"):
    return fac.make(Detection(typ, float(i), 15.0, "bpm", 0.9), "p")


@pytest.mark.mqtt
def test_disk_full_alarm_no_loss_and_recovery(disk, mosquitto, caplog):
    caplog.set_level(logging.WARNING)
    lis = Listener(mosquitto, ["ambisense/pi/#"])
    sink = MqttSink.from_url(mosquitto.url(outbox_path=disk.dir / "outbox.sqlite",
                                           status_interval_s=0, close_timeout_s=60),
                             device="pi")
    fac = EventFactory("disk")
    sent = []
    for i in range(5):  # healthy: written, published, acknowledged
        ev = reading(fac, i)
        sink.emit(ev)
        sent.append(ev.id)
    wait_until(lambda: sink.outbox.depth() == 0, 30, "the first events acknowledged")

    os.kill(mosquitto.proc.pid, signal.SIGSTOP)  # no PUBACK: the outbox must hold them
    try:
        disk.fill()
        for i in range(5, 65):
            ev = reading(fac, i, "fall" if i % 10 == 0 else "breathing_rate")
            sink.emit(ev)  # never raises: the event is spilled to memory
            sent.append(ev.id)
        st = sink.status()
        assert st["outbox_alarm"] and str(disk.dir) in st["outbox_alarm"], st
        assert st["outbox_spilled"] > 0 and st["outbox_storage_errors"] > 0
        assert st["outbox_depth"] == 60 and st["outbox_dropped"] == {}
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert sum("new events are kept in memory" in m for m in errors) == 1, errors
    finally:
        os.kill(mosquitto.proc.pid, signal.SIGCONT)

    # the alarm reaches the status topic, and every event is delivered from memory
    lis.wait(lambda s: any(j.get("outbox_alarm") for j in s.json_on("ambisense/pi/status")),
             what="a status message carrying the outbox alarm")
    lis.wait(lambda s: {x["id"] for x in s.json_on("ambisense/pi/breathing_rate")
                        + s.json_on("ambisense/pi/fall")} >= set(sent), what="all 65 events")
    assert sink._thread.is_alive()

    disk.free()  # space returns: the outbox writes again, the alarm clears (on the topic too)
    wait_until(lambda: sink.outbox.alarm is None, 30, "the outbox to recover")
    lis.wait(lambda s: s.json_on("ambisense/pi/status")[-1].get("outbox_alarm") is None,
             what="a status message with the alarm cleared")
    assert any("outbox storage recovered" in r.getMessage() for r in caplog.records)
    for i in range(65, 75):
        ev = reading(fac, i)
        sink.emit(ev)
        sent.append(ev.id)
    wait_until(lambda: sink.outbox.depth() == 0, 30, "the last events acknowledged")
    sink.close()
    got = [x["id"] for t in ("breathing_rate", "fall")
           for x in lis.json_on(f"ambisense/pi/{t}")]
    assert set(got) == set(sent) and len(sent) == 75, f"missing: {set(sent) - set(got)}"
    assert Outbox(disk.dir / "outbox.sqlite").depth() == 0, "the deferred acks were written"
    lis.close()


def test_disk_full_drop_policy_keeps_alerts_then_writes_back(disk, caplog):
    """Memory holds at most spill_max events: the oldest periodic readings go first,
    alerts stay; when space returns, everything still held is written to the file."""
    caplog.set_level(logging.WARNING)
    path = disk.dir / "outbox.sqlite"
    ob = Outbox(path, spill_max=20)
    for i in range(3):
        ob.put(f"pre{i}", "breathing_rate", "pi", "a/pi/breathing_rate", "{}")
    disk.fill()
    alerts, readings = [], []
    for i in range(60):
        if i % 6 == 0:
            alerts.append(f"alert{i}")
            assert ob.put(alerts[-1], "fall", "pi", "a/pi/fall", "{}") > 0
        else:
            readings.append(f"r{i}")
            ob.put(readings[-1], "breathing_rate", "pi", "a/pi/breathing_rate", "{}")
    assert ob.alarm is not None and ob.spilled() == 20
    kept = [r.event_id for r in ob.pending(limit=1000)]
    assert kept[:3] == ["pre0", "pre1", "pre2"], "what was on disk stays"
    assert set(alerts) <= set(kept), "no alert dropped while readings were held"
    assert kept[-1] == readings[-1], "the newest reading is kept"
    assert sum(ob.dropped.values()) == 60 - 20 and set(ob.dropped) == {"breathing_rate"}
    assert any("memory queue full" in r.getMessage() for r in caplog.records)
    assert not ob.retry(), "still full"
    disk.free()
    assert ob.retry() and ob.alarm is None and ob.spilled() == 0
    ob.close()
    again = Outbox(path)
    assert [r.event_id for r in again.pending(limit=1000)] == kept
    again.close()


def test_outbox_that_cannot_be_created_spills_then_opens(disk):
    """The disk is already full when the agent starts: events wait in memory; the file
    is created once there is room."""
    disk.fill() if disk.mode == "tmpfs" else None
    if disk.mode == "rlimit":  # nothing there yet: a limit of 0 bytes refuses any file
        disk._old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, disk._old_limit[1]))
        disk.full = True
    ob = Outbox(disk.dir / "fresh" / "outbox.sqlite")
    assert ob.alarm is not None
    seqs = [ob.put(f"e{i}", "motion", "pi", "a/pi/motion", "{}") for i in range(5)]
    assert seqs == sorted(seqs) and ob.depth() == 5
    ob.ack(seqs[:2])
    assert [r.event_id for r in ob.pending()] == ["e2", "e3", "e4"]
    disk.free()
    deadline = time.monotonic() + 10
    while not ob.retry():
        assert time.monotonic() < deadline, ob.alarm
        time.sleep(0.05)
    ob.close()
    assert [r.event_id for r in Outbox(disk.dir / "fresh" / "outbox.sqlite").pending()] == [
        "e2", "e3", "e4"]
