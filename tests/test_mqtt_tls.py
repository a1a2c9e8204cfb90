"""TLS with a self-signed CA, password files, client certificates and wrong passwords."""

from __future__ import annotations

import json
import logging
import re
import threading

import pytest
from mosquitto import Listener, wait_until

from agent.cli import main as cli_main
from agent.events import EventFactory
from agent.sinks.mqtt import MqttDeliveryError, MqttSink
from sensing.detections import Detection

pytestmark = pytest.mark.mqtt  # needs the mosquitto binary (skipped without it)


def events(n: int, source: str = "bedroom"):
    fac = EventFactory(source)
    return [fac.make(Detection("breathing_rate", float(i), 15.0, "bpm", 0.9), "p")
            for i in range(n)]


def test_tls_and_password_file_accepted(mosquitto_factory, tmp_path):
    broker = mosquitto_factory(users={"pi": "correct horse"}, tls=True)
    pw = tmp_path / "mqtt.password"
    pw.write_text("correct horse\n")
    lis = Listener(broker, ["ambisense/#"], user="pi", password="correct horse")
    sink = MqttSink.from_url(broker.url(user="pi", password_file=pw), device="bedroom")
    assert sink.settings.tls is not None and sink.settings.port == broker.port
    evs = events(10)
    for ev in evs:
        sink.emit(ev)
    sink.close()
    lis.wait(lambda s: len(s.on("ambisense/bedroom/breathing_rate")) >= 10, what="events")
    assert [json.loads(p)["id"] for p in lis.on("ambisense/bedroom/breathing_rate")] == \
        [e.id for e in evs]
    lis.close()


def test_tls_subscribe_cli_with_env_password(mosquitto_factory, monkeypatch, capsys):
    broker = mosquitto_factory(users={"pi": "s3cret"}, tls=True)
    monkeypatch.setenv("AMBISENSE_MQTT_PASSWORD", "s3cret")
    result: list[int] = []
    sub = threading.Thread(target=lambda: result.append(cli_main(
        ["subscribe", "--url", broker.url(user="pi"), "--jsonl", "--count", "3",
         "--timeout", "60"])))
    sub.start()
    seen: list[str] = []

    def subscribed() -> bool:
        seen.append(capsys.readouterr().err)
        return "subscribed to" in "".join(seen)

    wait_until(subscribed, 60, "the subscriber to subscribe over TLS")
    sink = MqttSink.from_url(broker.url(user="pi"), device="bedroom")
    evs = events(3)
    for ev in evs:
        sink.emit(ev)
    sink.close()
    sub.join(90)
    assert result == [0]
    out = capsys.readouterr().out
    assert [json.loads(x)["id"] for x in out.splitlines()] == [e.id for e in evs]


def test_client_certificate_required(mosquitto_factory):
    broker = mosquitto_factory(tls=True, client_cert=True)
    pki = broker.pki
    lis_ok = MqttSink.from_url(broker.url(certfile=pki.client_cert, keyfile=pki.client_key),
                               device="bedroom")
    lis_ok.emit(events(1)[0])
    lis_ok.close()  # delivered, or close() would raise (in-memory outbox)
    no_cert = MqttSink.from_url(broker.url(close_timeout_s=1.5, reconnect_min_s=0.2,
                                           reconnect_max_s=0.5), device="bedroom")
    no_cert.emit(events(1)[0])
    with pytest.raises(MqttDeliveryError, match="not acknowledged"):
        no_cert.close()


def test_wrong_password_clear_error_backoff_then_recovers(mosquitto_factory, tmp_path,
                                                          caplog):
    broker = mosquitto_factory(users={"pi": "right-one"}, tls=True)
    pw = tmp_path / "mqtt.password"
    pw.write_text("WRONG-secret-123\n")
    caplog.set_level(logging.WARNING, logger="ambisense.mqtt")
    sink = MqttSink.from_url(broker.url(user="pi", password_file=pw, reconnect_min_s=0.2,
                                        reconnect_max_s=0.8, close_timeout_s=30,
                                        outbox_path=tmp_path / "outbox.sqlite"),
                             device="bedroom")
    evs = events(5)
    for ev in evs:
        sink.emit(ev)

    def auth_errors():
        return [r for r in caplog.records if r.levelno == logging.ERROR
                and "refused the connection" in r.getMessage()]

    wait_until(lambda: len(auth_errors()) >= 4, 60, "four failed attempts")
    msgs = [r.getMessage() for r in auth_errors()]
    assert all("WRONG-secret-123" not in m for m in caplog.text.splitlines() + msgs)
    first = msgs[0]
    assert re.search(r"not authori[sz]ed|bad user name or password", first, re.I), first
    assert "user 'pi'" in first and str(pw) in first and "event(s) waiting" in first
    assert "5 event(s) waiting in the outbox" in msgs[-1]
    delays = [float(re.search(r"in ([\d.]+) s \(attempt (\d+)\)", m).group(1)) for m in msgs]
    attempts = [int(re.search(r"\(attempt (\d+)\)", m).group(1)) for m in msgs]
    assert attempts[:4] == [1, 2, 3, 4], "one message per backoff step"
    assert max(delays) <= 0.8 and delays[2] > delays[0] * 0.9, delays  # grows, capped
    assert sink.outbox.depth() == 5 and not sink.connected
    # The password is read at each attempt: fixing the file is enough, nothing was lost.
    lis = Listener(broker, ["ambisense/bedroom/breathing_rate"], user="pi",
                   password="right-one")
    pw.write_text("right-one\n")
    lis.wait(lambda s: len(s.messages) >= 5, 60, "the queued events after the fix")
    assert sorted(json.loads(p)["id"] for _, p, _ in lis.messages) == sorted(e.id for e in evs)
    sink.close()
    lis.close()
