"""Agent runtime: concurrent streams, restart with backoff, pipeline isolation, status.

The live source is a real pseudo-terminal read by the ESP32 serial source; the failing one
is a serial port path that does not exist.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
import tty

import numpy as np
import pytest

from agent.config import RestartPolicy, validate
from agent.pipelines import Pipeline
from agent.sinks import SINKS
from agent.supervisor import (
    SinkFanout,
    StreamSpec,
    StreamWorker,
    Supervisor,
    build_streams,
    format_status,
)
from sensing.detections import Detection
from sensing.formats.esp32_csi import format_csi_line
from sensing.sources.replay import ReplaySource

FAST = {"initial_s": 0.02, "max_s": 0.1}


def csi_lines(n: int, seed: int = 0, t0_us: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        buf = (20 + 5 * rng.random()) * np.exp(1j * rng.uniform(0, 2 * np.pi, 64))
        out.append(format_csi_line(buf, local_timestamp_us=t0_us + i * 10_000, seq=i) + "\n")
    return out


def wait_for(cond, what: str, deadline_s: float = 30.0) -> None:
    """Poll ``cond`` until true; fail (naming ``what``) after a generous deadline."""
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def pty_port():
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    for fd in (master, slave):
        try:
            os.close(fd)
        except OSError:
            pass


def test_two_serial_sources_one_missing_is_retried_while_the_other_produces(tmp_path, pty_port):
    master, port = pty_port
    missing = "/dev/ttyAMBISENSE-not-there"
    loaded = validate({
        "agent": {"name": "pi-test"},
        "sources": [
            {"type": "esp32_serial", "name": "live", "url": port, "restart": FAST,
             "pipelines": ["wifi_motion"],
             # a presence verdict at once, not after the 35 s breathing warm-up
             "pipeline_options": {"wifi_motion": {"breathing": False}}},
            {"type": "esp32_serial", "name": "unplugged", "url": missing, "restart": FAST},
        ],
    }, "test")
    out = tmp_path / "events.jsonl"
    sup = Supervisor(build_streams(loaded.config), [SINKS.get("jsonl")(path=str(out))],
                     device="pi-test")
    sup.start()
    try:
        def live():
            return sup.status()["streams"]["live"]

        # pyserial flushes the input when it opens a port: write once the device is open
        wait_for(lambda: live()["state"] == "running", "the live port to open")
        data = "".join(csi_lines(300)).encode()
        os.write(master, data)  # the source reads concurrently; blocks only while the pty is full

        wait_for(lambda: live()["frames"] == 300, "300 frames from the pty")
        wait_for(lambda: live()["pipelines"]["wifi_motion"]["events"] >= 1, "an event")
        wait_for(lambda: sup.status()["streams"]["unplugged"]["restarts"] >= 3, "3 restarts")
        st = sup.status()
        bad = st["streams"]["unplugged"]
        assert bad["state"] in ("backoff", "running") and bad["frames"] == 0
        assert missing in bad["last_error"] and "SourceUnavailableError" in bad["last_error"]
        assert st["streams"]["live"]["restarts"] == 0
        assert st["streams"]["live"]["state"] == "running"
        assert st["rss_mb"] > 1 and 0 <= st["cpu_percent"] <= 100 * (os.cpu_count() or 1)
        assert st["threads"] >= 5
        line = format_status(st)
        assert "live [running]" in line and "unplugged [" in line and "wifi_motion" in line

        # the live port goes away too (unplugged): it is reported and retried as well
        os.close(master)
        wait_for(lambda: live()["restarts"] >= 1, "a restart of the unplugged live port")
    finally:
        assert sup.shutdown(timeout_s=10)
    events = [json.loads(x) for x in out.read_text().splitlines()]
    assert events and {e["source"] for e in events} == {"live"}
    assert all(e["detector"] == "wifi_motion" for e in events)


class Counting(Pipeline):
    """Emits one detection per chunk with the chunk's row count."""

    name = "test_counting"
    modalities = ("wifi_csi",)

    def push(self, frames):
        return [Detection("chunk", frames.end_s, len(frames), "", 1.0)]


class Exploding(Pipeline):
    """Fails on every third chunk it sees."""

    name = "test_exploding"
    modalities = ("wifi_csi",)
    created = 0

    def __init__(self, **options):
        super().__init__(**options)
        type(self).created += 1
        self.seen = 0

    def push(self, frames):
        self.seen += 1
        if self.seen % 3 == 0:
            raise RuntimeError("boom")
        return []


class ListSink:
    def __init__(self):
        self.events = []
        self.closed = False

    def emit(self, event):
        self.events.append(event)

    def close(self):
        self.closed = True


def test_a_failing_pipeline_is_restarted_and_never_stops_the_others(tmp_path):
    cap = tmp_path / "cap.csv"
    cap.write_text("".join(csi_lines(400)))
    spec = StreamSpec(
        "cap", "replay", lambda: ReplaySource(str(cap), "cap", chunk_size=20),
        [(Exploding, {}), (Counting, {})], RestartPolicy(initial_s=1e-6, max_s=1e-6),
    )
    sink = ListSink()
    sup = Supervisor([spec], [sink])
    sup.start()
    sup.wait()
    assert sup.shutdown()
    st = sup.status()["streams"]["cap"]
    assert st["state"] == "done" and st["frames"] == 400
    counting, exploding = st["pipelines"]["test_counting"], st["pipelines"]["test_exploding"]
    assert counting["frames"] == 400 and counting["errors"] == 0
    assert sum(e.value for e in sink.events) == 400  # every chunk reached the sink
    assert exploding["errors"] >= 3 and exploding["restarts"] >= 2
    assert exploding["last_error"] == "RuntimeError: boom"
    assert exploding["frames"] + exploding["drops"] + 20 * exploding["errors"] == 400
    assert sink.closed


def test_replay_loop_continues_the_stream_clock_and_stops_on_close(tmp_path):
    cap = tmp_path / "cap.csv"
    cap.write_text("".join(csi_lines(50)))
    src = ReplaySource(str(cap), "cap", loop=True, chunk_size=16)
    times = []
    for fr in src.chunks(lambda: False):
        times.extend(fr.times_s.tolist())
        if len(times) >= 160:
            src.close()
    assert len(times) >= 160 and src.passes == 3
    assert np.all(np.diff(times) > 0)  # no jump back at the start of a pass
    assert times[50] == pytest.approx(times[49] + 0.01)


def test_realtime_replay_is_interrupted_by_stop(tmp_path):
    cap = tmp_path / "cap.csv"
    cap.write_text("".join(csi_lines(3000)))  # 30 s of capture
    src = ReplaySource(str(cap), "cap", realtime=True, chunk_size=100)
    stop = threading.Event()
    got = []

    def consume():
        for fr in src.chunks(stop.is_set):
            got.append(len(fr))

    t = threading.Thread(target=consume)
    t.start()
    wait_for(lambda: len(got) >= 1, "the first chunk")
    stop.set()
    t.join(10)
    assert not t.is_alive() and sum(got) < 3000


def test_live_source_drops_when_the_pipelines_fall_behind():
    spec = StreamSpec("x", "esp32_serial", lambda: None, [], RestartPolicy(), queue_chunks=2)
    w = StreamWorker(spec, SinkFanout([]), threading.Event())
    chunk = type("C", (), {"__len__": lambda self: 64})()  # the queue only needs len()
    for _ in range(5):
        w._put(chunk, live=True)
    assert w.stats.frames == 320 and w.stats.drops == 192


def test_sink_fanout_counts_failures_and_drops_after_close():
    class Broken:
        def emit(self, event):
            raise OSError("disk full")

        def close(self):
            raise RuntimeError("3 event(s) not acknowledged; LOST: no outbox_path configured")

    good = ListSink()
    fan = SinkFanout([Broken(), good])
    from agent.events import EventFactory

    ev = EventFactory("s").make(Detection("chunk", 1.0, 1, "", 1.0), "p")
    fan.emit(ev)
    fan.close()
    fan.emit(ev)
    assert len(good.events) == 1 and fan.errors == 1 and fan.dropped == 1
    assert good.closed and fan.close_errors == 1  # the others are still closed


def udp_payloads(path) -> list[bytes]:
    """The UDP payloads of every packet of a little-endian pcap (Ethernet/IPv4/UDP)."""
    blob = path.read_bytes()
    pos, out = 24, []
    while pos + 16 <= len(blob):
        incl = struct.unpack_from("<I", blob, pos + 8)[0]
        pkt = blob[pos + 16: pos + 16 + incl]
        out.append(pkt[42: 34 + int.from_bytes(pkt[38:40], "big")])
        pos += 16 + incl
    return out


def test_nexmon_udp_source_from_config_feeds_its_pipelines(shared):
    """Real Nexmon datagrams (from a pcap) sent to the agent's UDP source on 127.0.0.1."""
    payloads = udp_payloads(shared("csi", "csikit-nexmon", "example_43455c0.pcap"))[:120]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    loaded = validate({"sources": [{"type": "nexmon_udp", "name": "nexmon", "host": "127.0.0.1",
                                    "port": port, "chunk_size": 16, "max_latency_s": 0.05,
                                    "pipelines": ["wifi_motion"]}]}, "test")
    sink = ListSink()
    sup = Supervisor(build_streams(loaded.config), [sink])
    sup.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            def received():
                return sup.status()["streams"]["nexmon"]["frames"]

            # the socket is bound by the reader thread: resend until the first packet lands
            wait_for(lambda: tx.sendto(payloads[0], ("127.0.0.1", port)) and received() > 0,
                     "the UDP source to receive")
            for p in payloads[1:]:
                tx.sendto(p, ("127.0.0.1", port))
                time.sleep(0.001)  # pace the burst so the loopback queue never overflows
            wait_for(lambda: received() >= len(payloads[1:]) + 1, "every datagram")
        st = sup.status()["streams"]["nexmon"]
        assert st["state"] == "running" and st["type"] == "nexmon_udp" and st["rejects"] == 0
        assert st["pipelines"]["wifi_motion"]["frames"] > 0
    finally:
        assert sup.shutdown()


def write_edf(path, seconds: int, fs: int = 64) -> None:
    from sensing.formats.edf.writer import EdfWriter

    w = EdfWriter(path, ["Fp1-F7", "F7-T7"], fs)
    rng = np.random.default_rng(0)
    w.write(rng.normal(0, 20, (seconds * fs, 2)))
    w.close()


def test_followed_edf_is_not_reread_when_complete_and_a_new_recording_is_followed(tmp_path):
    edf = tmp_path / "current.edf"
    write_edf(edf, 4)
    loaded = validate({"sources": [{"type": "edf_follow", "name": "eeg", "path": str(edf),
                                    "poll_s": 0.02, "pipelines": []}]}, "test")
    sup = Supervisor(build_streams(loaded.config), [ListSink()])
    sup.start()
    try:
        def eeg():
            return sup.status()["streams"]["eeg"]

        wait_for(lambda: eeg()["frames"] == 4 * 64, "the first recording")
        time.sleep(0.2)  # ten polls: a finished recording must not be read again
        assert eeg()["frames"] == 4 * 64 and eeg()["restarts"] == 0
        write_edf(tmp_path / "next.edf", 2)
        os.replace(tmp_path / "next.edf", edf)  # the recorder starts a new file
        wait_for(lambda: eeg()["frames"] == 6 * 64, "the second recording")
        assert eeg()["state"] == "running" and eeg()["restarts"] == 0
    finally:
        assert sup.shutdown()
