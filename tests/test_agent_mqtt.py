"""The agent with ``[mqtt]`` configured, against a real mosquitto with a password."""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pytest
from mosquitto import Listener

from agent.commands.agent import run_agent
from agent.config import load_config
from sensing.formats.esp32_csi import format_csi_line

pytestmark = pytest.mark.mqtt


def test_agent_publishes_events_and_pipeline_status_then_flushes_on_stop(
    tmp_path, mosquitto_factory
):
    broker = mosquitto_factory(users={"pi": "correct horse"})
    rng = np.random.default_rng(3)
    with open(tmp_path / "room.csv", "w") as fh:
        for i in range(400):
            buf = 20 * np.exp(1j * rng.uniform(0, 2 * np.pi, 64))
            fh.write(format_csi_line(buf, local_timestamp_us=i * 10_000, seq=i) + "\n")
    (tmp_path / "mqtt-password").write_text("correct horse\n")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        '[agent]\nname = "pi-mqtt"\n'
        '[[sources]]\ntype = "replay"\nname = "room"\npath = "room.csv"\nloop = true\n'
        'realtime = true\nchunk_size = 50\n'
        '[sinks]\nconsole = "off"\njsonl_file = "events.jsonl"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nusername = "pi"\n'
        'password_file = "mqtt-password"\noutbox_path = "outbox.sqlite"\nstatus_interval_s = 0.2\n'
        # the first presence verdict at once (not after the 35 s breathing warm-up)
        '[pipelines.wifi_motion]\nbreathing = false\n'
    )
    loaded = load_config(cfg, env={})
    listener = Listener(broker, ["ambisense/#"], user="pi", password="correct horse")
    stop = threading.Event()
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(run_agent(loaded, stop=stop)))
    t.start()
    try:
        listener.wait(lambda s: s.on("ambisense/pi-mqtt/presence"), what="a presence event")

        def pipeline_status(s):
            for st in s.json_on("ambisense/pi-mqtt/status"):
                pipes = st.get("streams", {}).get("room", {}).get("pipelines", {})
                if pipes.get("wifi_motion", {}).get("frames", 0) > 0:
                    return st
            return None

        st = listener.wait(pipeline_status, what="a status message with pipeline counters")
    finally:
        stop.set()
        t.join(60)
    assert result == [0]
    room = st["streams"]["room"]
    assert room["type"] == "replay" and room["state"] == "running"
    assert set(room["pipelines"]["wifi_motion"]) >= {"fps", "events", "errors", "restarts",
                                                     "drops", "load"}
    assert st["rss_mb"] > 0 and "cpu_percent" in st and st["connected"] is True
    # every event written to the file was delivered: the outbox is empty after close
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    listener.wait(lambda s: len(s.on("ambisense/pi-mqtt/presence")) + len(
        s.on("ambisense/pi-mqtt/motion")) >= len(events), what="every event on the broker")
    with sqlite3.connect(tmp_path / "outbox.sqlite") as db:
        assert db.execute("select count(*) from outbox").fetchone()[0] == 0
    listener.close()
