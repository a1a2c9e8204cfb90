"""Soak: every pipeline at its maximum real rate at once, for a bounded time.

One agent process (the real :class:`agent.supervisor.Supervisor`) runs, concurrently:

* **ESP32 CSI on a serial port** — a pseudo-terminal fed at ``--serial-rate`` packets/s
  (200 by default: the esp-csi firmware's practical maximum at 921600 baud) with a 15 bpm
  breathing modulation; every default ``wifi_csi`` pipeline;
* **Nexmon CSI over UDP** — loopback datagrams at ``--udp-rate`` packets/s; every default
  ``wifi_csi`` pipeline;
* **every bundled capture** (``agent/samples/``: EEG EDF, ESP32 CSV, and whatever the other
  modalities bundle) replayed in real time in a loop — each capture's own sampling rate
  (EEG at 256 Hz …) into every default pipeline of its modality;
* optionally an MQTT sink with a durable outbox towards a real broker (``--mqtt URL``).

Sampled every ``--sample-s``: process RSS, CPU, reader→pipeline queue depths, drops,
outbox depth. Reported: RSS slope after the warm-up (MB/min; flat means no leak), the
largest queue depth (bounded by ``queue_chunks``), drops (the pipelines keep up when 0),
and the event lag of the live ESP32 stream (wall-clock time of the event minus its stream
time: window end for rates, onset otherwise; p50/p95/max in s).

``python benchmarks/soak.py --minutes 10`` (the CI-lite form is
``tests/test_reliability_soak.py``, about 60 s); ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class RecordingSink:
    """Counts events and keeps ``(wall time, offset_s)`` of those of one source (the last
    10 000), for the lag figures; holds no event objects (a soak must not grow itself)."""

    def __init__(self, source: str = "esp32") -> None:
        self.source = source
        self.events: list[tuple[float, float]] = []
        self.count = 0
        self._lock = threading.Lock()

    def emit(self, event: Any) -> None:
        with self._lock:
            self.count += 1
            if event.source == self.source:
                self.events.append((time.monotonic(), float(event.offset_s)))
                if len(self.events) > 10_000:
                    del self.events[:5_000]

    def close(self) -> None:
        pass


def _serial_writer(master: int, rate_hz: float, stop: threading.Event, t0: list) -> None:
    from sensing.formats.esp32_csi import format_csi_line

    rng = np.random.default_rng(0)
    base = 20 * np.exp(1j * rng.uniform(0, 2 * np.pi, 64))
    gains = 1 + 0.05 * rng.standard_normal(64)
    i = 0
    start = time.monotonic()
    t0.append(start)
    while not stop.is_set():
        t = i / rate_hz
        breath = 1 + 0.08 * np.sin(2 * np.pi * 0.25 * t)  # 15 bpm
        buf = base * gains * breath + 0.5 * (rng.standard_normal(64) + 1j * rng.standard_normal(64))
        line = format_csi_line(buf, local_timestamp_us=int(t * 1e6), seq=i) + "\n"
        try:
            os.write(master, line.encode())
        except OSError:
            return
        i += 1
        delay = start + i / rate_hz - time.monotonic()
        if delay > 0:
            stop.wait(delay)


def _udp_payloads(n: int) -> list[bytes]:
    import io
    import struct

    from sensing.formats.nexmon_pcap import NexmonPcapWriter

    rng = np.random.default_rng(1)
    csi = (rng.integers(-500, 500, (n, 64, 1, 1)) + 1j * rng.integers(-500, 500, (n, 64, 1, 1)))
    buf = io.BytesIO()
    NexmonPcapWriter(buf).write(csi.astype(np.complex64), np.arange(n) * 0.01, np.arange(n),
                                np.full(n, -50))
    blob, pos, out = buf.getvalue(), 24, []
    while pos + 16 <= len(blob):
        incl = struct.unpack_from("<I", blob, pos + 8)[0]
        pkt = blob[pos + 16: pos + 16 + incl]
        ulen = int.from_bytes(pkt[38:40], "big")
        out.append(pkt[42: 34 + ulen])
        pos += 16 + incl
    return out


def _udp_writer(port: int, rate_hz: float, stop: threading.Event) -> None:
    payloads = _udp_payloads(200)
    i = 0
    start = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        while not stop.is_set():
            tx.sendto(payloads[i % len(payloads)], ("127.0.0.1", port))
            i += 1
            delay = start + i / rate_hz - time.monotonic()
            if delay > 0:
                stop.wait(delay)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slope_mb_per_min(t: list[float], rss: list[float]) -> float:
    if len(t) < 3:
        return 0.0
    return float(np.polyfit(np.asarray(t) / 60.0, np.asarray(rss), 1)[0])


def run_soak(duration_s: float = 600.0, *, warmup_s: float = 60.0, sample_s: float = 5.0,
             serial_rate: float = 200.0, udp_rate: float = 100.0, mqtt_url: str | None = None,
             samples_dir: str | os.PathLike | None = None, log: Any = None) -> dict[str, Any]:
    """Run the soak and return its figures (see the module docstring).

    Parameters
    ----------
    duration_s : float
        Total run time in s (including the warm-up).
    warmup_s : float
        Start-up period left out of the RSS slope (imports, models, buffers filling).
    sample_s : float
        Sampling period of RSS, queues and drops in s.
    serial_rate, udp_rate : float
        Packets/s of the ESP32 serial and Nexmon UDP streams (0 leaves a stream out).
    mqtt_url : str, optional
        Also publish every event to this broker (durable outbox in a temporary directory).
    samples_dir : path, optional
        Captures replayed in real time in a loop (default ``agent/samples``).
    """
    from agent.config import validate
    from agent.supervisor import Supervisor, build_streams

    samples = Path(samples_dir or REPO / "agent" / "samples")
    stop_feed = threading.Event()
    tmp = tempfile.TemporaryDirectory(prefix="ambisense-soak-")
    sources: list[dict[str, Any]] = []
    master = slave = None
    restart = {"initial_s": 0.2, "max_s": 2.0}
    if serial_rate > 0:
        master, slave = os.openpty()
        tty.setraw(slave)
        sources.append({"type": "esp32_serial", "name": "esp32", "url": os.ttyname(slave),
                        "max_latency_s": 0.2, "restart": restart})
    udp_port = _free_udp_port()
    if udp_rate > 0:
        sources.append({"type": "nexmon_udp", "name": "nexmon", "host": "127.0.0.1",
                        "port": udp_port, "restart": restart})
    sources.append({"type": "replay", "path": str(samples), "loop": True, "realtime": True,
                    "restart": restart})
    data: dict[str, Any] = {"agent": {"name": "soak", "status_interval_s": 0},
                            "sources": sources, "sinks": {"console": "off"}}
    loaded = validate(data, "<soak>")
    specs = build_streams(loaded.config)
    rec = RecordingSink()
    sinks: list[Any] = [rec]
    mqtt = None
    if mqtt_url:
        from agent.sinks.mqtt import MqttSink

        mqtt = MqttSink.from_url(mqtt_url, device="soak",
                                 outbox_path=Path(tmp.name) / "outbox.sqlite",
                                 status_interval_s=30)
        sinks.append(mqtt)
    sup = Supervisor(specs, sinks, device="soak")
    t_serial: list[float] = []
    feeders = []
    sup.start()
    t_start = time.monotonic()
    if master is not None:
        # pyserial flushes input on open: start writing once the port is open
        deadline = time.monotonic() + 30
        while sup.status()["streams"]["esp32"]["state"] != "running":
            if time.monotonic() > deadline:
                raise RuntimeError("the ESP32 pty did not open")
            time.sleep(0.05)
        feeders.append(threading.Thread(target=_serial_writer, daemon=True,
                                        args=(master, serial_rate, stop_feed, t_serial)))
    if udp_rate > 0:
        feeders.append(threading.Thread(target=_udp_writer, daemon=True,
                                        args=(udp_port, udp_rate, stop_feed)))
    for f in feeders:
        f.start()
    samples_t: list[float] = []
    rss: list[float] = []
    cpu: list[float] = []
    queues: dict[str, int] = {}
    outbox: list[int] = []
    try:
        next_t = time.monotonic()
        while time.monotonic() - t_start < duration_s:
            next_t += sample_s
            time.sleep(max(0.0, next_t - time.monotonic()))
            st = sup.status(consumer="soak")
            now = time.monotonic() - t_start
            samples_t.append(now)
            rss.append(st["rss_mb"])
            cpu.append(st["cpu_percent"])
            for w in sup.workers:
                queues[w.spec.name] = max(queues.get(w.spec.name, 0), w.queue.qsize())
            if mqtt is not None:
                outbox.append(mqtt.outbox.depth())
            if log is not None:
                log(f"{now:6.0f} s  rss {st['rss_mb']:.1f} MB  cpu {st['cpu_percent']:.0f}%  "
                    f"events {st['events']}  queues {max(queues.values(), default=0)}")
        final = sup.status(consumer="final")
    finally:
        stop_feed.set()
        for f in feeders:
            f.join(5)
        clean = sup.shutdown(timeout_s=30)
        for fd in (master, slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        tmp.cleanup()
    after = [i for i, t in enumerate(samples_t) if t >= warmup_s]
    lags = []
    if t_serial:
        # the stream clock of the serial source starts at its first packet: t_serial[0]
        lags = [w - t_serial[0] - off for w, off in rec.events]
    streams = final["streams"]
    pipes = {f"{s}/{p}": {"frames": v["frames"], "events": v["events"], "load": v["load"],
                          "errors": v["errors"], "drops": v["drops"]}
             for s, sv in streams.items() for p, v in sv["pipelines"].items()}
    return {
        "duration_s": round(samples_t[-1] if samples_t else 0.0, 1),
        "warmup_s": warmup_s,
        "streams": {k: {"type": v["type"], "frames": v["frames"], "drops": v["drops"],
                        "rejects": v["rejects"], "restarts": v["restarts"],
                        "state": v["state"]} for k, v in streams.items()},
        "pipelines": pipes,
        "events": rec.count,
        "rss_mb": {"start": rss[after[0]] if after else None, "end": rss[-1] if rss else None,
                   "max": max(rss) if rss else None,
                   "slope_mb_per_min": round(_slope_mb_per_min(
                       [samples_t[i] for i in after], [rss[i] for i in after]), 3)},
        "cpu_percent_mean": round(float(np.mean(cpu[1:])) if len(cpu) > 1 else 0.0, 1),
        "max_queue_depth": queues,
        "queue_bound": max((s.queue_chunks for s in specs), default=0),
        "drops": sum(v["drops"] for v in streams.values()),
        "pipeline_errors": sum(v["errors"] for v in pipes.values()),
        "outbox_depth_max": max(outbox) if outbox else None,
        "outbox_depth_end": outbox[-1] if outbox else None,
        "esp32_event_lag_s": ({"n": len(lags), "p50": round(float(np.percentile(lags, 50)), 3),
                               "p95": round(float(np.percentile(lags, 95)), 3),
                               "max": round(float(np.max(lags)), 3)} if lags else None),
        "clean_shutdown": clean,
        "rates": {"serial_pps": serial_rate, "udp_pps": udp_rate},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=60.0, help="s left out of the RSS slope")
    p.add_argument("--sample-s", type=float, default=5.0)
    p.add_argument("--serial-rate", type=float, default=200.0)
    p.add_argument("--udp-rate", type=float, default=100.0)
    p.add_argument("--mqtt", metavar="URL", help="also publish to this broker")
    p.add_argument("--json", metavar="FILE", help="write the figures here")
    args = p.parse_args(argv)
    res = run_soak(args.minutes * 60, warmup_s=args.warmup, sample_s=args.sample_s,
                   serial_rate=args.serial_rate, udp_rate=args.udp_rate, mqtt_url=args.mqtt,
                   log=lambda m: print(m, file=sys.stderr, flush=True))
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
