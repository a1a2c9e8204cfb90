"""A fake serial device (a pseudo-terminal behind a stable device path) that is unplugged
and plugged back repeatedly while it sends garbage, split lines, overlong lines and
corrupted CSI lines: the ESP32 serial source resyncs on the next ``CSI_DATA`` marker,
counts what it skipped, reopens the port with exponential backoff, and a second stream
of the same agent keeps running throughout.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from agent.config import RestartPolicy
from agent.pipelines import Pipeline
from agent.supervisor import StreamSpec, Supervisor
from sensing.detections import Detection
from sensing.formats.esp32_csi import format_csi_line
from sensing.sources.serial import Esp32SerialSource

POLICY = RestartPolicy(initial_s=0.1, max_s=0.8, factor=2.0)
PLUGS = 4


class FakeSerialDevice:
    """A pty whose slave is reachable at a fixed path (a symlink, like a udev
    ``/dev/serial/by-id`` name); :meth:`unplug` closes the master (reads on the open
    port fail with EIO) and removes the path, :meth:`plug` makes a new pty there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.master: int | None = None
        self.slave: int | None = None

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # a USB-serial adapter: no line discipline
        os.symlink(os.ttyname(self.slave), self.path)

    def unplug(self) -> None:
        self.path.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self.slave = None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.master, view[:4096]):]


def csi_line(i: int, rng: np.random.Generator) -> bytes:
    buf = (20 + 5 * rng.random(64)) * np.exp(1j * rng.uniform(0, 2 * np.pi, 64))
    return (format_csi_line(buf, local_timestamp_us=i * 10_000, seq=i) + "\n").encode()


class Counting(Pipeline):
    """Counts rows; one detection per chunk (so events show the pipeline runs)."""

    name = "test_rows"
    modalities = ("wifi_csi",)

    def push(self, frames):
        return [Detection("rows", frames.end_s, len(frames), "", 1.0)]


class ListSink:
    def __init__(self) -> None:
        self.events: list = []

    def emit(self, event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def wait_for(cond, what: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.01)


def test_unplug_replug_garbage_resync_backoff_and_other_streams_keep_running(tmp_path,
                                                                              caplog):
    caplog.set_level(logging.WARNING, logger="ambisense.agent")
    rng = np.random.default_rng(5)
    flaky = FakeSerialDevice(tmp_path / "ttyESP32-flaky")
    steady = FakeSerialDevice(tmp_path / "ttyESP32-steady")
    flaky.plug()
    steady.plug()
    sources: dict[str, Esp32SerialSource] = {}

    def opener(name: str, dev: FakeSerialDevice):
        def open_():
            src = Esp32SerialSource(str(dev.path), chunk_size=20, max_latency_s=0.05,
                                    source=name)
            src.open()
            sources[name] = src
            return src
        return open_

    specs = [StreamSpec(name, "esp32_serial", opener(name, dev), [(Counting, {})], POLICY)
             for name, dev in (("flaky", flaky), ("steady", steady))]
    sink = ListSink()
    sup = Supervisor(specs, [sink], device="test")
    stop_steady = threading.Event()
    steady_sent = [0]

    def feed_steady() -> None:  # 100 lines/s, never unplugged
        r = np.random.default_rng(9)
        while not stop_steady.is_set():
            steady.write(csi_line(steady_sent[0], r))
            steady_sent[0] += 1
            time.sleep(0.01)

    def stream(name: str) -> dict:
        return sup.status()["streams"][name]

    sup.start()
    feeder = threading.Thread(target=feed_steady, daemon=True)
    try:
        wait_for(lambda: stream("steady")["state"] == "running", "the steady port to open")
        feeder.start()
        valid = malformed = garbage_lines = 0
        steady_during_outage = []
        i = 0
        for plug in range(PLUGS):
            wait_for(lambda: stream("flaky")["state"] == "running" and "flaky" in sources
                     and sources["flaky"].is_open, "the flaky port to (re)open")
            # a replugged device starts mid-line: the tail of a line, then boot noise
            flaky.write(b'-3,4,5,6]"\n' if plug else b"")
            flaky.write(b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET),boot:0x13\r\n")
            garbage_lines += 2 + bool(plug)
            for k in range(150):
                line = csi_line(i, rng)
                i += 1
                if k % 25 == 7:  # binary junk glued in front: resync on the marker
                    line = bytes(rng.integers(1, 256, 12).astype(np.uint8)).replace(
                        b"\n", b"") + line
                if k % 50 == 11:  # a corrupted CSI array: a counted reject
                    line = line.replace(b",", b",#", 1)[: len(line) // 2] + b"]\"\n"
                    malformed += 1
                else:
                    valid += 1
                cut = int(rng.integers(1, len(line) - 1))
                flaky.write(line[:cut])  # split lines
                flaky.write(line[cut:])
            if plug == 1:  # an overlong run without a newline (line noise): dropped
                flaky.write(b"\x55" * 20_000 + b"\n")
            expected = valid
            wait_for(lambda e=expected: stream("flaky")["frames"] >= e,
                     f"{expected} frames from the flaky device (plug {plug})")
            if plug < PLUGS - 1:
                before = stream("steady")["frames"]
                flaky.unplug()
                wait_for(lambda p=plug: stream("flaky")["restarts"] >= 2 * (p + 1),
                         "two reopen attempts while unplugged")
                time.sleep(0.5)
                steady_during_outage.append(stream("steady")["frames"] - before)
                flaky.plug()
        st = sup.status()
    finally:
        stop_steady.set()
        feeder.join(5)
        assert sup.shutdown(timeout_s=10)
        flaky.unplug()
        steady.unplug()
    fl, sd = st["streams"]["flaky"], st["streams"]["steady"]
    assert fl["frames"] == valid, "every valid line, none made up"
    assert fl["pipelines"]["test_rows"]["frames"] == valid
    src = sources["flaky"]
    rejects = fl["rejects"]
    assert rejects >= malformed + 1, (rejects, malformed)  # + the overlong run
    assert src.other_lines >= 2, "boot messages skipped and counted"
    assert fl["restarts"] >= 2 * (PLUGS - 1)
    # backoff: delays grow by the factor within an outage, capped at max_s
    delays = [float(m.group(1)) for r in caplog.records
              if r.getMessage().startswith("flaky: source failed")
              for m in [re.search(r"restarting it in ([0-9.]+) s", r.getMessage())] if m]
    assert delays and max(delays) <= POLICY.max_s + 1e-9
    assert any(b > a for a, b in zip(delays, delays[1:], strict=False)), delays
    # the other stream never stopped: frames kept arriving during every outage
    assert sd["restarts"] == 0 and sd["state"] == "running"
    assert all(n > 10 for n in steady_during_outage), steady_during_outage
    assert sd["frames"] >= steady_sent[0] - 200
    print(f"\nserial faults: {PLUGS - 1} unplug/replug cycles, {fl['restarts']} reopen "
          f"attempts (backoff delays {sorted(set(delays))} s), {valid} valid lines sent, "
          f"{fl['frames']} frames read, {rejects} rejects ({malformed} corrupted lines + "
          f"overlong run + replug tails), {src.other_lines} non-CSI lines skipped; steady "
          f"stream: {sd['frames']} frames, 0 restarts, {steady_during_outage} frames "
          f"during the outages")
