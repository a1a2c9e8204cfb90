"""Broker and outbox faults against a real mosquitto: nothing is lost.

* the broker is killed (SIGKILL and SIGTERM, alternating) and restarted repeatedly under
  a steady stream of events: every id sent reaches the ``ambisense subscribe --dedup``
  subscriber exactly once (QoS 1 re-deliveries are counted on a raw listener);
* the publishing process is SIGKILLed mid-publish: the next start drains its outbox;
* a corrupted outbox file is detected, set aside, a fresh one started and reported
  (log, ``sink.status()`` and the status topic).

``AMBISENSE_BROKER_CYCLES`` sets the number of broker kill/restart cycles (default 8,
about 40 s; the figures in docs/reliability.md come from longer runs).
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from mosquitto import Background, Broker, Listener, wait_until

from agent.events import EventFactory
from agent.outbox import Outbox
from agent.sinks.mqtt import MqttSink
from sensing.detections import Detection

pytestmark = pytest.mark.mqtt

REPO = Path(__file__).resolve().parents[1]
CYCLES = int(os.environ.get("AMBISENSE_BROKER_CYCLES", "8"))


def ids_of(lines: list[str]) -> list[str]:
    return [json.loads(x)["id"] for x in lines if x.strip()]


def test_broker_killed_and_restarted_repeatedly_loses_nothing(mosquitto_factory, tmp_path):
    broker: Broker = mosquitto_factory()
    rate_hz = 40.0
    sub = Background("subscribe", "--url", broker.url(), "--jsonl", "--since", "all",
                     "--session", "kill-test", "--dedup", "--timeout", str(60 + CYCLES * 15))
    sub.wait_ready()
    # the same persistent catch-up session without --dedup: shows the QoS 1 re-deliveries
    raw = Background("subscribe", "--url", broker.url(), "--jsonl", "--since", "all",
                     "--session", "kill-test-raw", "--timeout", str(60 + CYCLES * 15))
    raw.wait_ready()
    sink = MqttSink.from_url(broker.url(outbox_path=tmp_path / "outbox.sqlite",
                                        reconnect_min_s=0.1, reconnect_max_s=0.5,
                                        status_interval_s=0, close_timeout_s=120),
                             device="pi")
    fac = EventFactory("steady")
    sent: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        i = 0
        next_t = time.monotonic()
        while not stop.is_set():
            ev = fac.make(Detection("breathing_rate", i / rate_hz, 15.0, "bpm", 0.9), "p")
            sink.emit(ev)
            sent.append(ev.id)
            i += 1
            next_t += 1 / rate_hz
            time.sleep(max(0.0, next_t - time.monotonic()))

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    rng = random.Random(17)
    depth_down = []
    try:
        for cycle in range(CYCLES):
            time.sleep(rng.uniform(2.0, 3.5))  # up, streaming
            broker.stop(signal.SIGKILL if cycle % 2 == 0 else signal.SIGTERM)
            time.sleep(rng.uniform(0.5, 1.5))  # down: events pile up in the outbox
            depth_down.append(sink.outbox.depth())
            broker.start()
        time.sleep(2.0)
    finally:
        stop.set()
        producer.join(10)
    sink.close()
    assert sink.outbox.depth() == 0 and not sub.proc.poll()
    n = len(sent)
    wait_until(lambda: len(sub.out) >= n, 120, f"{n} events at the subscriber")
    wait_until(lambda: len(set(ids_of(list(raw.out)))) >= n, 120, f"{n} ids at the raw one")
    for bg in (sub, raw):
        bg.proc.send_signal(signal.SIGINT)
        bg.finish()
    got = ids_of(sub.out)
    assert len(got) == len(set(got)), "ambisense subscribe --dedup printed an id twice"
    assert set(got) == set(sent), f"lost: {len(set(sent) - set(got))} of {n}"
    raw_ids = ids_of(raw.out)
    assert set(raw_ids) == set(sent)
    dups = len(raw_ids) - len(set(raw_ids))
    print(f"\nbroker faults: {CYCLES} restarts ({(CYCLES + 1) // 2} SIGKILL, {CYCLES // 2} "
          f"SIGTERM), {n} events sent, {len(got)} received unique by ambisense subscribe, "
          f"0 lost; without --dedup: {len(raw_ids)} messages, {dups} duplicates; outbox depth "
          f"while down: max {max(depth_down)}")
    assert max(depth_down) > 0, "events queued while the broker was down"
    assert Outbox(tmp_path / "outbox.sqlite").depth() == 0


#: A publishing process: emits events at a steady rate, printing each id once durable.
PUBLISHER = textwrap.dedent("""
    import sys, time
    from agent.events import EventFactory
    from agent.sinks.mqtt import MqttSink
    from sensing.detections import Detection
    url, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    sink = MqttSink.from_url(url, device="pi")
    fac = EventFactory("killed")
    for i in range(n):
        ev = fac.make(Detection("breathing_rate", float(i), 15.0, "bpm", 0.9), "p")
        sink.emit(ev)
        print("emitted", ev.id, flush=True)
        time.sleep(1 / rate)
    sink.close()
    print("closed", sink.published, flush=True)
""")


def run_publisher(tmp: Path, url: str, n: int, rate: float) -> subprocess.Popen:
    script = tmp / "publisher.py"
    script.write_text(PUBLISHER)
    return subprocess.Popen([sys.executable, str(script), url, str(n), str(rate)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)


@pytest.mark.parametrize("kill_after", [40, 120])
def test_publisher_sigkilled_mid_publish_then_restart_drains(mosquitto, tmp_path, kill_after):
    outbox = tmp_path / "outbox.sqlite"
    url = mosquitto.url(outbox_path=outbox, reconnect_min_s=0.1, reconnect_max_s=0.5,
                        status_interval_s=0, close_timeout_s=60)
    lis = Listener(mosquitto, ["ambisense/pi/breathing_rate"])
    os.kill(mosquitto.proc.pid, signal.SIGSTOP)  # PUBACKs stop: the tail is in flight
    proc = run_publisher(tmp_path, url, 10_000, 200.0)
    emitted: list[str] = []
    try:
        for line in proc.stdout:
            if line.startswith("emitted"):
                emitted.append(line.split()[1])
            if len(emitted) >= kill_after:
                os.kill(proc.pid, signal.SIGKILL)  # mid-publish
                break
        proc.wait(30)
    finally:
        os.kill(mosquitto.proc.pid, signal.SIGCONT)
    assert proc.returncode == -signal.SIGKILL
    queued = Outbox(outbox).depth()
    assert queued >= len(emitted), "every event that emit() returned for is on disk"
    drain = run_publisher(tmp_path, url, 0, 1.0)
    out, err = drain.communicate(timeout=60)
    assert drain.returncode == 0 and "closed" in out, err
    lis.wait(lambda s: {json.loads(p)["id"] for p in s.on("ambisense/pi/breathing_rate")}
             >= set(emitted), what=f"the {len(emitted)} emitted events")
    assert Outbox(outbox).depth() == 0
    got = {json.loads(p)["id"] for p in lis.on("ambisense/pi/breathing_rate")}
    print(f"\nSIGKILL after {len(emitted)} events: {queued} in the outbox, "
          f"{len(got & set(emitted))} of {len(emitted)} received after the restart")
    lis.close()


def _valid_outbox(path: Path, n: int) -> None:
    ob = Outbox(path)
    for i in range(n):
        ob.put(f"{i:020x}", "breathing_rate", "pi", "ambisense/pi/breathing_rate",
               json.dumps({"id": f"{i:020x}", "pad": "x" * 200}))
    ob.close()


def corrupt(path: Path, kind: str) -> None:
    if kind == "garbage":
        path.write_bytes(os.urandom(8192))
    elif kind == "truncated":
        _valid_outbox(path, 300)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "zeroed_pages":
        _valid_outbox(path, 300)
        data = bytearray(path.read_bytes())
        page = int.from_bytes(data[16:18], "big") or 65536
        data[page: 3 * page] = bytes(2 * page)  # the schema/table pages after the header
        path.write_bytes(bytes(data))
    elif kind == "bad_header":
        _valid_outbox(path, 10)
        data = bytearray(path.read_bytes())
        data[0:16] = b"not an outbox!!\0"
        path.write_bytes(bytes(data))
    elif kind == "wrong_schema":
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE outbox (x INTEGER)")
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "zeroed_pages", "bad_header",
                                  "wrong_schema"])
def test_corrupted_outbox_is_set_aside_and_reported(mosquitto, tmp_path, caplog, kind):
    caplog.set_level(logging.WARNING)
    path = tmp_path / "state" / "outbox.sqlite"
    path.parent.mkdir()
    corrupt(path, kind)
    before = path.read_bytes()
    lis = Listener(mosquitto, ["ambisense/pi/#"])
    sink = MqttSink.from_url(mosquitto.url(outbox_path=path, status_interval_s=0.3),
                             device="pi")
    fac = EventFactory("corrupt")
    evs = [fac.make(Detection("motion", float(i), 1.0, "", 0.9), "p") for i in range(5)]
    for ev in evs:
        sink.emit(ev)
    st = sink.status()
    rec = st["outbox_recovered"]
    assert rec and Path(rec["moved_to"]).read_bytes() == before, st
    assert Path(rec["moved_to"]).parent == path.parent and ".corrupt-" in rec["moved_to"]
    assert any("is corrupted" in r.getMessage() and r.levelno == logging.ERROR
               for r in caplog.records)
    lis.wait(lambda s: any(j.get("outbox_recovered") for j in s.json_on("ambisense/pi/status")),
             what="a status message reporting the set-aside outbox")
    lis.wait(lambda s: len(s.on("ambisense/pi/motion")) >= 5, what="5 events via the fresh outbox")
    sink.close()
    assert {json.loads(p)["id"] for p in lis.on("ambisense/pi/motion")} == {e.id for e in evs}
    again = Outbox(path)  # the fresh file is a healthy outbox
    assert again.recovered is None and again.depth() == 0
    again.close()
    lis.close()
