"""MqttSink against a real mosquitto: topics, payloads, availability, settings."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from mosquitto import Listener, free_port
from pydantic import ValidationError

from agent.events import Event, EventFactory
from agent.outbox import Outbox
from agent.sinks import SINKS
from agent.sinks.mqtt import MqttDeliveryError, MqttSettings, MqttSink, topic_slug
from sensing.detections import Detection

pytestmark = pytest.mark.mqtt  # needs the mosquitto binary (skipped without it)

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "agent" / "schema" / "event.schema.json").read_text()
)


def make_events(source: str = "night 1.csv", n: int = 20) -> list[Event]:
    """Periodic breathing readings and two falls from one stream, with deterministic ids."""
    fac = EventFactory(source)
    out = []
    for i in range(n):
        out.append(fac.make(Detection("breathing_rate", 10.0 + i, 14.0 + i / 10, "bpm", 0.9,
                                      {"window_s": 30.0}), "wifi_breathing"))
        if i % 10 == 5:
            out.append(fac.make(Detection("fall", 10.0 + i, None, "", 0.8), "wifi_fall"))
    return out


def test_settings_from_url_and_validation(monkeypatch, tmp_path):
    s = MqttSettings.from_url("mqtts://pi@broker.lan/home?ca_file=/etc/ca.pem&qos=1")
    assert (s.host, s.port, s.prefix, s.username) == ("broker.lan", 8883, "home", "pi")
    assert str(s.tls.ca_file) == "/etc/ca.pem" and not s.tls.insecure
    s = MqttSettings.from_url("mqtt://127.0.0.1:1999")
    assert (s.port, s.prefix, s.tls, s.qos) == (1999, "ambisense", None, 1)
    with pytest.raises(ValueError, match="must not contain a password"):
        MqttSettings.from_url("mqtt://pi:hunter2@host")
    with pytest.raises(ValueError, match="unknown MQTT URL option 'bogus'"):
        MqttSettings.from_url("mqtt://host?bogus=1")
    with pytest.raises(ValidationError):
        MqttSettings.model_validate({"host": "h", "pasword": "typo"})
    with pytest.raises(ValidationError):
        MqttSettings(prefix="a/#")
    # The password never appears in a repr, a dump or the broker description.
    monkeypatch.setenv("AMBISENSE_MQTT_PASSWORD", "hunter2")
    s = MqttSettings(username="pi")
    secret = s.resolve_password()
    assert secret.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(secret) + repr(s) + s.model_dump_json() + s.broker()
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    assert MqttSettings(username="pi", password_file=pw).resolve_password().get_secret_value() \
        == "from-file"
    assert topic_slug("Sleep Lab/night 2.csv") == "sleep_lab_night_2_csv"
    assert all(f.description for f in MqttSettings.model_fields.values())


def test_events_topics_availability(mosquitto):
    events = make_events()
    lis = Listener(mosquitto, ["ambisense/#"])
    sink = SINKS.get("mqtt").from_url(mosquitto.url())
    for ev in events:
        sink.emit(ev)
    sink.close()
    dev = "night_1_csv"
    got = {}
    for typ in ("breathing_rate", "fall"):
        lis.wait(lambda s, t=typ: len(s.on(f"ambisense/{dev}/{t}")) >= sum(
            e.type == t for e in events), what=typ)
        for payload in lis.on(f"ambisense/{dev}/{typ}"):
            d = json.loads(payload)
            jsonschema.validate(d, SCHEMA)
            assert d["type"] == typ
            got[d["id"]] = Event.from_dict(d)
    assert got == {e.id: e for e in events}
    lis.wait(lambda s: s.on(f"ambisense/{dev}/availability")[-1:] == [b"offline"],
             what="offline after close")
    assert lis.on(f"ambisense/{dev}/availability")[0] == b"online"
    lis.close()
    # availability is retained: a late subscriber sees the last state.
    late = Listener(mosquitto, [f"ambisense/{dev}/availability"])
    late.wait(lambda s: s.messages, what="retained availability")
    assert late.messages[0][1:] == (b"offline", True)
    late.close()


def test_close_reports_lost_events_without_outbox(caplog):
    port = free_port()  # nothing listens there
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=port, close_timeout_s=0.5,
                                 reconnect_min_s=0.1, reconnect_max_s=0.2), device="pi")
    ev = make_events(n=1)[0]
    sink.emit(ev)
    with pytest.raises(MqttDeliveryError, match=rf"1 event\(s\) not acknowledged.*{ev.id}.*LOST"):
        sink.close()


def test_close_keeps_undelivered_in_durable_outbox(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite"
    url = (f"mqtt://127.0.0.1:{free_port()}/?outbox_path={path}&close_timeout_s=0.5"
           f"&reconnect_min_s=0.1&reconnect_max_s=0.2")
    sink = MqttSink.from_url(url, device="pi")
    evs = make_events(n=3)
    for ev in evs:
        sink.emit(ev)
    sink.close()  # no exception: the events are safe on disk
    assert f"kept in the outbox {path}" in caplog.text and evs[0].id in caplog.text
    assert [r.event_id for r in Outbox(path).pending()] == [e.id for e in evs]


def test_several_sources_each_get_availability(mosquitto):
    lis = Listener(mosquitto, ["ambisense/+/availability"])
    sink = MqttSink.from_url(mosquitto.url())
    a, b = make_events("a.csv", n=2), make_events("b.csv", n=2)
    for ev in a + b:
        sink.emit(ev)
    sink.close()
    for dev in ("a_csv", "b_csv"):
        lis.wait(lambda s, d=dev: s.on(f"ambisense/{d}/availability")[-1:] == [b"offline"],
                 what=f"{dev} offline")
        assert lis.on(f"ambisense/{dev}/availability")[0] == b"online"
    lis.close()
