"""Home Assistant discovery configs, the status topic and catch-up subscriptions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import paho.mqtt.client as mqtt
import pytest
from mosquitto import Listener
from paho.mqtt.enums import CallbackAPIVersion

from agent.cli import main as cli_main
from agent.events import EventFactory
from agent.sinks.mqtt import MqttSink
from sensing.detections import Detection

pytestmark = pytest.mark.mqtt  # needs the mosquitto binary (skipped without it)

COMPONENT = {"breathing_rate": "sensor", "soil_moisture": "sensor", "fall": "binary_sensor",
             "seizure": "binary_sensor", "presence": "binary_sensor", "motion": "binary_sensor"}
DEVICE_CLASS = {"soil_moisture": "moisture", "fall": "safety", "seizure": "safety",
                "presence": "presence", "motion": "motion"}


def test_discovery_retained_well_formed_and_resent(mosquitto):
    first = Listener(mosquitto, ["homeassistant/#"])
    sink = MqttSink.from_url(mosquitto.url(discovery="true"), device="Pi Kitchen")
    sink.announce(["breathing_rate", "fall", "seizure", "presence", "motion", "soil_moisture",
                   "blink"])
    fac = EventFactory("kitchen")
    sink.emit(fac.make(Detection("breathing_rate", 30.0, 14.2, "bpm", 0.9), "wifi_breathing"))
    sink.emit(fac.make(Detection("fall", 31.0, None, "", 0.8), "wifi_fall"))
    first.wait(lambda s: len(s.messages) >= len(COMPONENT), what="discovery configs")
    first.close()
    # A late subscriber (Home Assistant starting) gets every config, retained.
    lis = Listener(mosquitto, ["homeassistant/#"])
    lis.wait(lambda s: len(s.messages) >= len(COMPONENT), what="discovery configs")
    assert len(lis.messages) == len(COMPONENT), "blink has no HA entity"
    for typ, component in COMPONENT.items():
        uid = f"ambisense_pi_kitchen_{typ}"
        topic = f"homeassistant/{component}/{uid}/config"
        (payload,) = lis.on(topic)
        assert [r for t, _, r in lis.messages if t == topic] == [True], "retained"
        cfg = json.loads(payload)
        assert cfg["unique_id"] == uid
        assert cfg["state_topic"] == f"ambisense/pi_kitchen/{typ}"
        assert cfg["availability_topic"] == "ambisense/pi_kitchen/availability"
        assert cfg["device"]["identifiers"] == ["ambisense_pi_kitchen"]
        assert cfg.get("device_class") == DEVICE_CLASS.get(typ)
        assert "value_template" in cfg
        if component == "binary_sensor":
            assert cfg["payload_on"] == "ON" and cfg["off_delay"] > 0
    assert json.loads(lis.on("homeassistant/sensor/ambisense_pi_kitchen_breathing_rate/config")[0]
                      )["unit_of_measurement"] == "bpm"
    # Home Assistant restarts: it publishes "online" and gets every config again.
    lis.client.publish("homeassistant/status", "online", qos=1)
    lis.wait(lambda s: len(s.messages) >= 2 * len(COMPONENT), what="configs re-sent")
    sink.close()
    lis.close()


def test_status_topic_with_runtime_provider(mosquitto, tmp_path):
    lis = Listener(mosquitto, ["ambisense/pi/status"])
    sink = MqttSink.from_url(mosquitto.url(status_interval_s=0.3,
                                           outbox_path=tmp_path / "ob.sqlite"), device="pi")
    sink.add_status_provider(lambda: {"pipelines": {"wifi_breathing": {
        "fps": 100.0, "rejects": 2, "drops": 0}}, "cpu_percent": 12.5, "rss_mb": 80.1})
    fac = EventFactory("pi")
    for i in range(4):
        sink.emit(fac.make(Detection("breathing_rate", float(i), 15.0, "bpm", 0.9), "p"))
    lis.wait(lambda s: any(d["events_published"] == 4 for d in s.json_on("ambisense/pi/status")),
             what="a status counting 4 published events")
    st = [d for d in lis.json_on("ambisense/pi/status") if d["events_published"] == 4][0]
    assert st["schema"] == "ambisense.status/1" and st["device"] == "pi"
    assert st["connected"] is True and st["outbox_depth"] == 0 and st["outbox_durable"]
    assert 0 <= st["uptime_s"] < 120 and st["events_emitted"] == 4
    assert st["pipelines"]["wifi_breathing"]["fps"] == 100.0 and st["cpu_percent"] == 12.5
    sink.close()
    lis.close()


def test_since_session_catches_up_and_filters_by_time(mosquitto, capsys):
    url = mosquitto.url()
    now = datetime.now(timezone.utc)
    old = EventFactory("bedroom", t0=now - timedelta(hours=3))
    # A retained 3-hour-old event: the first run gets it at once (and so has registered
    # its session), the second run filters it out by time.
    ping = old.make(Detection("breathing_rate", 0.0, 15.0, "bpm", 0.9), "p")
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    pub.publish("ambisense/bedroom/breathing_rate", ping.to_json(), qos=1,
                retain=True).wait_for_publish(30)
    assert cli_main(["subscribe", "--url", url, "--since", "all", "--session", "night-shift",
                     "--jsonl", "--count", "1", "--timeout", "60"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == ping.id
    # While it is away: two old readings (3 h ago) and three recent ones, plus a duplicate.
    new = EventFactory("bedroom", t0=now - timedelta(minutes=1))
    evs = [old.make(Detection("breathing_rate", 100.0 + i, 15.0, "bpm", 0.9), "p")
           for i in range(2)]
    recent = [new.make(Detection("breathing_rate", float(i), 15.0, "bpm", 0.9), "p")
              for i in range(3)]
    sink = MqttSink.from_url(url)
    for ev in evs + recent:
        sink.emit(ev)
    sink.close()
    pub.publish("ambisense/bedroom/breathing_rate", recent[0].to_json(), qos=1).wait_for_publish(30)
    pub.disconnect()
    pub.loop_stop()
    # Back: the queued events arrive; --since 1h keeps the recent ones, --dedup drops the copy.
    assert cli_main(["subscribe", "--url", url, "--since", "1h", "--session", "night-shift",
                     "--dedup", "--jsonl", "--count", "3", "--timeout", "60"]) == 0
    out = capsys.readouterr().out
    assert [json.loads(x)["id"] for x in out.splitlines()] == [e.id for e in recent]


def test_subscribe_timeout_status(mosquitto, capsys):
    assert cli_main(["subscribe", "--url", mosquitto.url(), "--count", "1",
                     "--timeout", "1"]) == 3
    assert "timed out after 1 s with 0 of 1 event(s)" in capsys.readouterr().err
