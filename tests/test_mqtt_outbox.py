"""Never lose an event: durable outbox, broker restarts, publisher SIGKILL, last will."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mosquitto import Background, Broker, Listener, free_port, wait_until

from agent.events import EventFactory
from agent.outbox import Outbox
from agent.sinks.mqtt import MqttSink
from sensing.detections import Detection

pytestmark = pytest.mark.mqtt  # needs the mosquitto binary (skipped without it)

REPO = Path(__file__).resolve().parents[1]

#: A publishing process: emits N events (ids deterministic from SOURCE), then closes.
PUBLISHER = textwrap.dedent("""
    import sys, time
    from agent.events import EventFactory
    from agent.sinks.mqtt import MqttSink
    from sensing.detections import Detection
    url, device, n, interval, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
        float(sys.argv[4]), sys.argv[5] == "hold"
    sink = MqttSink.from_url(url, device=device)
    fac = EventFactory("publisher")
    for i in range(n):
        sink.emit(fac.make(Detection("breathing_rate", float(i), 15.0, "bpm", 0.9), "p"))
        print("emitted", i, flush=True)
        time.sleep(interval)
    print("all emitted", flush=True)
    if hold:
        time.sleep(3600)
    sink.close()
    print("closed", sink.published, flush=True)
""")


def expected_ids(n: int, source: str = "publisher") -> list[str]:
    fac = EventFactory(source)
    return [fac.make(Detection("breathing_rate", float(i), 15.0, "bpm", 0.9), "p").id
            for i in range(n)]


class Publisher:
    """The PUBLISHER script in a subprocess, stdout read by a thread.

    ``hold``: after emitting, sleep (for a SIGKILL) instead of closing the sink. Start
    them through the ``publisher`` fixture, which kills them at the end of the test."""

    def __init__(self, tmp: Path, url: str, device: str, n: int, interval: float = 0.0,
                 hold: bool = False) -> None:
        script = tmp / "publisher.py"
        script.write_text(PUBLISHER)
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(script), url, device, str(n), str(interval),
             "hold" if hold else "close"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def wait_line(self, prefix: str, timeout: float = 60) -> None:
        wait_until(lambda: any(x.startswith(prefix) for x in self.lines) or
                   self.proc.poll() is not None, timeout, f"publisher to print {prefix!r}")
        assert any(x.startswith(prefix) for x in self.lines), self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)


@pytest.fixture
def publisher(tmp_path):
    """``publisher(url, device, n, hold=False) -> Publisher``; all killed (by pid) at teardown."""
    started: list[Publisher] = []

    def start(url: str, device: str, n: int, hold: bool = False) -> Publisher:
        started.append(Publisher(tmp_path, url, device, n, hold=hold))
        return started[-1]

    yield start
    for pub in started:
        pub.kill()


def test_outbox_policy_and_persistence(tmp_path):
    path = tmp_path / "state" / "outbox.sqlite"
    ob = Outbox(path, max_events=10)
    seqs = [ob.put(f"{i:020x}", "breathing_rate", "pi", "a/pi/breathing_rate", "{}")
            for i in range(8)]
    seqs += [ob.put(f"f{i:019x}", "fall", "pi", "a/pi/fall", "{}") for i in range(2)]
    assert ob.depth() == 10
    # Full: the oldest half of the periodic readings is thinned (every second one).
    ob.put("n" * 20, "breathing_rate", "pi", "a/pi/breathing_rate", "{}")
    ids = [r.event_id for r in ob.pending(limit=100)]
    assert len(ids) == 9 and ob.dropped["breathing_rate"] == 2
    assert f"{0:020x}" not in ids and f"{1:020x}" in ids and f"{2:020x}" not in ids
    assert all(f"f{i:019x}" in ids for i in range(2)), "alerts are kept"
    ob.ack([seqs[1], seqs[3]])
    assert ob.depth() == 7
    ob.close()
    # Reopened (agent restart): the same rows, in order.
    ob = Outbox(path, max_events=10)
    assert [r.event_id for r in ob.pending(limit=100)] == [i for i in ids if i not in
                                                            (f"{1:020x}", f"{3:020x}")]
    ob.close()
    # Only alerts left: a new reading is refused, a new alert replaces the oldest alert.
    ob = Outbox(None, max_events=2)
    ob.put("a1", "fall", "pi", "t", "{}")
    ob.put("a2", "seizure", "pi", "t", "{}")
    assert ob.put("r1", "breathing_rate", "pi", "t", "{}") == -1
    ob.put("a3", "seizure_alert", "pi", "t", "{}")
    assert [r.event_id for r in ob.pending()] == ["a2", "a3"]
    assert ob.dropped == {"breathing_rate": 1, "fall": 1}


def test_broker_restart_loses_nothing(mosquitto_factory, tmp_path):
    broker: Broker = mosquitto_factory()
    n = 60
    # A catch-up subscriber (persistent session) through the CLI, deduplicating by id.
    sub = Background("subscribe", "--url", broker.url(), "--jsonl", "--since", "all",
                     "--session", "restart-test", "--dedup", "--count", str(n),
                     "--timeout", "120")
    sub.wait_ready()
    sink = MqttSink.from_url(broker.url(outbox_path=tmp_path / "outbox.sqlite",
                                        reconnect_min_s=0.2, reconnect_max_s=1,
                                        close_timeout_s=60), device="pi")
    fac = EventFactory("publisher")
    sent = []
    for i in range(n):
        ev = fac.make(Detection("breathing_rate", float(i), 15.0, "bpm", 0.9), "p")
        sink.emit(ev)
        sent.append(ev.id)
        time.sleep(0.02)
        if i == 20:
            broker.stop()  # SIGTERM mid-stream: the broker saves its sessions and exits
        if i == 40:
            assert sink.outbox.depth() > 0, "events queue while the broker is down"
            broker.start()  # same port, same persistence directory
    sink.close()
    code, out = sub.finish()
    assert code == 0, "".join(sub.err)
    got = [line.split('"id":"')[1][:20] for line in out.splitlines()]
    assert sorted(got) == sorted(sent), f"missing: {set(sent) - set(got)}"
    assert Outbox(tmp_path / "outbox.sqlite").depth() == 0


def test_sigkill_with_full_outbox_then_drain(tmp_path, publisher):
    port = free_port()  # the broker is not running yet: everything stays in the outbox
    outbox = tmp_path / "outbox.sqlite"
    url = (f"mqtt://127.0.0.1:{port}/?outbox_path={outbox}&reconnect_min_s=0.2"
           f"&reconnect_max_s=1&close_timeout_s=60")
    n = 25
    pub = publisher(url, "pi", n, hold=True)
    pub.wait_line("all emitted")
    pub.kill()
    assert Outbox(outbox).depth() == n, "every event was in the outbox before SIGKILL"

    broker = Broker("127.0.0.1", port, tmp_path / "broker")
    broker.directory.mkdir()
    try:
        broker.start()
        lis = Listener(broker, ["ambisense/pi/breathing_rate"])
        pub2 = publisher(url, "pi", 0)  # emits nothing: only drains the outbox
        pub2.wait_line("closed")
        assert pub2.proc.wait(30) == 0
        lis.wait(lambda s: len(s.messages) >= n, what=f"{n} re-delivered events")
        got = [p.split(b'"id":"')[1][:20].decode() for _, p, _ in lis.messages]
        assert sorted(set(got)) == sorted(expected_ids(n)), "same ids, none missing"
        assert Outbox(outbox).depth() == 0
        lis.close()
    finally:
        broker.stop()


def test_last_will_when_publisher_dies(mosquitto, publisher):
    lis = Listener(mosquitto, ["ambisense/kitchen/availability"])
    pub = publisher(mosquitto.url(), "kitchen", 1, hold=True)
    pub.wait_line("all emitted")
    lis.wait(lambda s: s.on("ambisense/kitchen/availability")[-1:] == [b"online"],
             what="online")
    pub.kill()
    lis.wait(lambda s: s.on("ambisense/kitchen/availability")[-1:] == [b"offline"],
             what="last will 'offline' after SIGKILL")
    lis.close()
    late = Listener(mosquitto, ["ambisense/kitchen/availability"])
    late.wait(lambda s: s.messages, what="retained availability")
    assert late.messages[-1][1:] == (b"offline", True)
    late.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["breathing_rate", "motion", "fall", "seizure"]),
                          st.booleans()), max_size=60),
       st.integers(min_value=2, max_value=12))
def test_outbox_bound_and_alert_policy(ops, cap):
    """Any sequence of puts and acks: bounded, FIFO, and no alert is dropped while a
    periodic reading could have been dropped instead."""
    ob = Outbox(None, max_events=cap)
    alive: list[tuple[int, str]] = []
    for i, (typ, ack_oldest) in enumerate(ops):
        periodic_before = sum(1 for _, t in alive if t in ("breathing_rate", "motion"))
        alerts_before = [s for s, t in alive if t in ("fall", "seizure")]
        seq = ob.put(f"{i:020x}", typ, "pi", f"a/pi/{typ}", "{}")
        rows = ob.pending(limit=1000)
        assert len(rows) == ob.depth() <= cap
        assert [r.seq for r in rows] == sorted(r.seq for r in rows)
        kept = {r.seq for r in rows}
        if periodic_before:
            assert set(alerts_before) <= kept, "an alert went while readings were queued"
        if seq != -1:
            assert seq in kept
        alive = [(r.seq, r.event_type) for r in rows]
        if ack_oldest and alive:
            ob.ack([alive[0][0]])
            alive = alive[1:]
    ob.close()


def test_sent_but_unacknowledged_events_stay_in_outbox(mosquitto, tmp_path):
    """An event leaves the outbox on PUBACK, not when it is written to the socket."""
    sink = MqttSink.from_url(mosquitto.url(outbox_path=tmp_path / "ob.sqlite",
                                           close_timeout_s=60), device="pi")
    fac = EventFactory("publisher")
    first = fac.make(Detection("breathing_rate", 0.0, 15.0, "bpm", 0.9), "p")
    sink.emit(first)
    wait_until(lambda: sink.outbox.depth() == 0, 30, "the first event acknowledged")
    lis = Listener(mosquitto, ["ambisense/pi/breathing_rate"])
    os.kill(mosquitto.proc.pid, signal.SIGSTOP)  # the broker hangs: no PUBACK can come
    try:
        evs = [fac.make(Detection("breathing_rate", float(i), 15.0, "bpm", 0.9), "p")
               for i in range(1, 11)]
        for ev in evs:
            sink.emit(ev)
        wait_until(lambda: sink.status()["events_inflight"] == 10, 30, "10 events sent")
        assert sink.outbox.depth() == 10
        assert Outbox(tmp_path / "ob.sqlite").depth() == 10, "on disk, not only in memory"
    finally:
        os.kill(mosquitto.proc.pid, signal.SIGCONT)
    sink.close()
    lis.wait(lambda s: len(s.messages) >= 10, what="the 10 events after the broker resumed")
    assert Outbox(tmp_path / "ob.sqlite").depth() == 0
    lis.close()
