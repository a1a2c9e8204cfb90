"""MQTT sink: events to a broker, through a durable outbox, with availability, status and HA discovery.

Contract for the agent runtime (stable; see ``docs/mqtt.md``)
--------------------------------------------------------------
``from agent.sinks.mqtt import MqttSettings, MqttSink``

* :class:`MqttSettings` — pydantic v2 model (``extra="forbid"``) for the ``[mqtt]`` table
  of the agent config: ``host``, ``port`` (1883; 8883 with ``tls``), ``prefix``
  ("ambisense"), ``client_id``, ``qos`` (1), ``username``, ``password_env``
  ("AMBISENSE_MQTT_PASSWORD") / ``password_file``, ``tls`` (``ca_file``, ``certfile``,
  ``keyfile``, ``keyfile_password_env``, ``insecure``), ``keepalive``,
  ``reconnect_min_s`` / ``reconnect_max_s``, ``outbox_path``, ``outbox_max_events``,
  ``discovery`` / ``discovery_prefix``, ``status_interval_s``, ``close_timeout_s``,
  ``max_inflight``. ``MqttSettings.model_validate(config["mqtt"])`` or
  ``MqttSettings.from_url("mqtts://user@host:8883/prefix?outbox_path=…")``.
* ``MqttSink(settings, device=None)`` / ``MqttSink.from_url(url, device=None)`` — a
  :class:`~agent.sinks.base.Sink`. ``emit(event)`` writes the event to the outbox
  (durable when ``outbox_path`` is set) and returns; a background thread publishes it.
  ``close()`` waits up to ``close_timeout_s`` for every event to be acknowledged, then
  publishes ``offline`` and disconnects; whatever is still unacknowledged is named in a
  warning (durable outbox: kept for the next start) or raises :class:`MqttDeliveryError`
  (in-memory outbox: those events are lost).
* ``sink.announce(types, device=None)`` — publish HA discovery for event types before
  their first event (e.g. every pipeline's ``event_types``).
* ``sink.add_status_provider(fn)`` — ``fn() -> dict`` merged into each status message
  (per-pipeline frame rate, rejects, drops, CPU, memory …); ``sink.status()`` returns the
  current status dict; ``sink.outbox.depth()`` the queue depth; ``sink.connected``.

Topics
------
``device`` is :func:`topic_slug` of the ``device`` argument, or, when omitted, of each
event's ``source`` (for a replayed capture: its file name, ``night.csv`` → ``night_csv``).

============================================  ===  ========  ====================================
topic                                         QoS  retained  payload
============================================  ===  ========  ====================================
``<prefix>/<device>/<type>``                  1    no        event JSON (``ambisense.event/1``)
``<prefix>/<device>/availability``            1    yes       ``online`` / ``offline`` (last will)
``<prefix>/<device>/status``                  0    no        status JSON (``ambisense.status/1``)
``homeassistant/<component>/<uid>/config``    1    yes       HA discovery config (``discovery``)
============================================  ===  ========  ====================================

The last will (``offline``) is registered for the sink's device: ``device`` when given,
else the device of the first event (other devices of the same sink get ``online`` and,
on ``close()``, ``offline``, but no will).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import paho.mqtt.client as mqtt

from agent.events import Event
from agent.mqtt_client import (
    AUTH_FAILURES,
    Backoff,
    describe_connack,
    new_client,
    prepare_connect,
    set_credentials,
)
from agent.mqtt_discovery import discovery_configs
from agent.mqtt_settings import MqttSettings, TlsSettings, topic_slug
from agent.outbox import Outbox
from agent.sinks.base import SINKS, Sink
from sensing.errors import AmbisenseError

__all__ = ["MqttSettings", "TlsSettings", "MqttSink", "MqttDeliveryError", "topic_slug",
           "RESERVED_TYPES", "STATUS_SCHEMA"]

log = logging.getLogger("ambisense.mqtt")

#: Last topic levels that are not event types.
RESERVED_TYPES = frozenset({"availability", "status"})
#: What an event type must look like to be the last topic level (no '/', '+', '#', NUL).
_TYPE_OK = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")
#: Schema name of status messages.
STATUS_SCHEMA = "ambisense.status/1"


class MqttDeliveryError(AmbisenseError):
    """Events were not acknowledged by the broker and there is no durable outbox to keep them."""


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@SINKS.register("mqtt")
class MqttSink(Sink):
    """Publish events to an MQTT broker; never loses one that reached :meth:`emit` while the
    outbox is durable (see the module docstring for topics and the contract).

    Parameters
    ----------
    settings : MqttSettings
        Broker, credentials, TLS, outbox, discovery and status settings.
    device : str, optional
        Device name for every topic (slugged); default: each event's ``source``.
    """

    def __init__(self, settings: MqttSettings, device: str | None = None) -> None:
        self.settings = settings
        self.device = topic_slug(device) if device else None
        self.outbox = Outbox(settings.outbox_path, settings.outbox_max_events)
        self._client = new_client(settings)
        self._client.max_inflight_messages_set(settings.max_inflight)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self._providers: list[Callable[[], Mapping[str, Any]]] = []
        self._announce: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._first_device: str | None = self.device or self.outbox.first_device()
        self._last_seq = self.outbox.last_seq()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._close_deadline = 0.0
        self._closed = False
        self._started = time.monotonic()
        # Below: touched by the network thread only (counters are read by status()).
        self._state = "down"
        self._connect_error: str | None = None
        self._auth_failed = False
        self._next_attempt = 0.0
        self._connack_deadline = 0.0
        self._inflight: dict[int, tuple[int, str, str]] = {}
        self._early: set[int] = set()
        self._control: set[int] = set()
        self._acked: list[int] = []
        self._cursor = 0
        self._known: dict[str, set[str]] = {}
        self._rediscover = False
        self._next_status = 0.0
        self._alarm_sent: str | None = None
        self._next_retry = 0.0
        self.emitted = 0
        self.published = 0
        self.rejected = 0
        self.connects = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="ambisense-mqtt", daemon=True)
        self._thread.start()

    @classmethod
    def from_url(cls, url: str, device: str | None = None, **overrides: Any) -> MqttSink:
        """Sink for ``mqtt[s]://[user@]host[:port][/prefix][?option=value…]``."""
        return cls(MqttSettings.from_url(url, **overrides), device=device)

    # ------------------------------------------------------------------ public API
    @property
    def connected(self) -> bool:
        """True while the broker has accepted the connection."""
        return self._state == "up"

    def topic_for(self, event: Event) -> str:
        """``<prefix>/<device>/<type>`` of ``event``."""
        return f"{self.settings.prefix}/{self.device or topic_slug(event.source)}/{event.type}"

    def emit(self, event: Event) -> None:
        """Queue ``event`` durably; it is published in the background.

        Raises
        ------
        ValueError
            The event type would shadow ``availability`` or ``status``.
        RuntimeError
            The sink is closed.
        """
        if self._closed or self._closing.is_set():
            raise RuntimeError("MqttSink is closed")
        if event.type in RESERVED_TYPES:
            raise ValueError(f"event type {event.type!r} is reserved for MQTT topics")
        if not _TYPE_OK.fullmatch(event.type):
            raise ValueError(f"event type {event.type!r} cannot be a topic level (expected "
                             f"lower-case letters, digits and '_')")
        device = self.device or topic_slug(event.source)
        topic = f"{self.settings.prefix}/{device}/{event.type}"
        seq = self.outbox.put(event.id, event.type, device, topic, event.to_json())
        if seq > self._last_seq:
            self._last_seq = seq
        self.emitted += 1
        if self._first_device is None:
            self._first_device = device
        self._announce.put((device, event.type))
        self._wake.set()

    def announce(self, types: Iterable[str], device: str | None = None) -> None:
        """Declare event types (Home Assistant discovery, availability) before their first event."""
        dev = topic_slug(device) if device else self.device
        if dev is None:
            raise ValueError("announce() needs a device when the sink has none")
        if self._first_device is None:
            self._first_device = dev
        for t in types:
            self._announce.put((dev, t))
        self._wake.set()

    def add_status_provider(self, fn: Callable[[], Mapping[str, Any]]) -> None:
        """Merge ``fn()`` into every status message (called in the MQTT thread)."""
        self._providers.append(fn)

    def status(self) -> dict[str, Any]:
        """What the sink knows now (the payload of ``<prefix>/<device>/status``)."""
        out: dict[str, Any] = {
            "schema": STATUS_SCHEMA,
            "device": self._first_device,
            "ts": _utc_now(),
            "uptime_s": round(time.monotonic() - self._started, 1),
            "broker": self.settings.broker(),
            "connected": self.connected,
            "events_emitted": self.emitted,
            "events_published": self.published,
            "events_rejected": self.rejected,
            "events_inflight": len(self._inflight),
            "outbox_depth": self.outbox.depth(),
            "outbox_durable": self.outbox.durable,
            "outbox_dropped": dict(self.outbox.dropped),
            "outbox_alarm": self.outbox.alarm,
            "outbox_spilled": self.outbox.spilled(),
            "outbox_storage_errors": self.outbox.storage_errors,
            "outbox_recovered": self.outbox.recovered,
            "connects": self.connects,
            "last_error": self.last_error,
        }
        for fn in list(self._providers):
            try:
                out.update(fn())
            except Exception as exc:  # a broken provider must not stop the status
                log.warning("status provider %r failed: %s", fn, exc)
        return out

    def close(self) -> None:
        """Wait (up to ``close_timeout_s``) until the broker acknowledged every event, then
        publish ``offline`` and disconnect.

        Raises
        ------
        MqttDeliveryError
            Events remain unacknowledged and the outbox is in memory (they are lost).
        """
        if self._closed:
            return
        timeout = self.settings.close_timeout_s
        self._close_deadline = time.monotonic() + timeout
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout + 15)
        self._closed = True
        left = self.outbox.depth()
        sample = [r.event_id for r in self.outbox.pending(limit=5)]
        durable, path = self.outbox.durable, self.outbox.path
        lost = self.outbox.close()
        if lost:
            raise MqttDeliveryError(
                f"{lost} event(s) held in memory while the outbox {path} could not be "
                f"written (disk full) were not acknowledged by {self.settings.broker()} "
                f"within {timeout:g} s; LOST")
        if not left:
            return
        what = (f"{left} event(s) not acknowledged by {self.settings.broker()} within "
                f"{timeout:g} s (first ids: {', '.join(sample)}; last error: "
                f"{self.last_error or 'none'})")
        if durable:
            log.warning("%s; kept in the outbox %s, sent on the next start", what, path)
        else:
            raise MqttDeliveryError(f"{what}; LOST: no outbox_path configured")

    # --------------------------------------------------------------- network thread
    def _run(self) -> None:
        try:
            while self._first_device is None:
                if self._closing.is_set():
                    return
                self._wake.wait(0.5)
                self._wake.clear()
            s = self.settings
            self._client.will_set(f"{s.prefix}/{self._first_device}/availability", "offline",
                                  qos=1, retain=True)
            prepare_connect(self._client, s, clean_start=True)
            self._loop()
        except Exception:
            log.exception("MQTT sink thread failed; events stay in the outbox")
        finally:
            try:
                self._client.disconnect()
            except Exception:  # noqa: BLE001 - socket already gone
                pass

    def _loop(self) -> None:
        offline_sent = False
        while True:
            now = time.monotonic()
            # Acks of mids we never tracked (QoS 0 status) are only meaningful right after
            # the publish() that wrote them, in this same thread: forget the rest.
            self._early.clear()
            self._take_announcements()
            self._storage_check(now)
            closing = self._closing.is_set()
            if closing and now >= self._close_deadline:
                if self._state == "up" and not offline_sent:
                    self._publish_availability("offline")
                    self._client.loop(0.2)
                return
            if self._state == "down":
                if closing and not self.outbox.depth():
                    return
                if now < self._next_attempt:
                    self._wake.wait(min(0.2, self._next_attempt - now))
                    self._wake.clear()
                    continue
                self._attempt()
                if self._state == "down":
                    continue
            rc = self._client.loop(timeout=0.05)
            if rc != mqtt.MQTT_ERR_SUCCESS and self._state != "down":
                self._went_down(f"connection lost ({mqtt.error_string(rc)})")
            if self._state == "connecting" and time.monotonic() > self._connack_deadline:
                self._went_down("no CONNACK from the broker within 15 s")
            if self._state != "up":
                continue
            self._flush_acks()
            if self._rediscover:
                self._rediscover = False
                self._publish_discovery(self._known)
            self._pump()
            self._flush_acks()
            self._maybe_status()
            if closing and not self.outbox.depth() and not self._inflight:
                if not offline_sent:
                    self._publish_availability("offline")
                    offline_sent = True
                elif not self._control:
                    return

    def _attempt(self) -> None:
        self._connect_error = None
        self._auth_failed = False
        try:
            set_credentials(self._client, self.settings)
            self._client.reconnect()
        except (OSError, ValueError) as exc:
            self._went_down(f"cannot connect to {self.settings.broker()}: {exc}")
            return
        self._state = "connecting"
        self._connack_deadline = time.monotonic() + 15.0

    def _went_down(self, reason: str) -> None:
        was_up = self._state == "up"
        self._state = "down"
        if self._connect_error:
            reason = self._connect_error
        self.last_error = reason
        delay = self._backoff.next_delay()
        self._next_attempt = time.monotonic() + delay
        level = logging.ERROR if self._auth_failed else logging.WARNING
        log.log(level, "%s; %s in %.1f s (attempt %d); %d event(s) waiting in the outbox",
                reason, "reconnecting" if was_up else "retrying", delay, self._backoff.failures,
                self.outbox.depth())

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_error = describe_connack(reason_code, self.settings)
            self._auth_failed = getattr(reason_code, "value", None) in AUTH_FAILURES
            return
        if self.connects or self.last_error:
            log.warning("connected to %s; %d event(s) to deliver", self.settings.broker(),
                        self.outbox.depth())
        else:
            log.info("connected to %s", self.settings.broker())
        self._state = "up"
        self.connects += 1
        self._backoff.reset()
        self._next_status = 0.0
        if self.settings.discovery:
            client.subscribe(f"{self.settings.discovery_prefix}/status", qos=1)
        self._publish_availability("online")
        self._publish_discovery(self._known)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._state != "down" and not self._closing.is_set():
            self._went_down(f"disconnected from {self.settings.broker()} ({reason_code})")
        else:
            self._state = "down"

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            if mid in self._control:
                self._control.discard(mid)
            else:
                self._early.add(mid)
            return
        seq, event_id, topic = entry
        if reason_code.is_failure:
            self.rejected += 1
            log.error("broker refused event %s on %s (%s); dropped", event_id, topic, reason_code)
        else:
            self.published += 1
        self._acked.append(seq)

    def _on_message(self, client, userdata, msg) -> None:
        if msg.topic == f"{self.settings.discovery_prefix}/status" and msg.payload == b"online":
            self._rediscover = True

    def _flush_acks(self) -> None:
        if self._acked:
            acked, self._acked = self._acked, []
            self.outbox.ack(acked)

    def _pump(self) -> None:
        room = self.settings.max_inflight - len(self._inflight)
        if room <= 0 or self._last_seq <= self._cursor:
            return
        for row in self.outbox.pending(after=self._cursor, limit=room):
            info = self._client.publish(row.topic, row.payload, qos=self.settings.qos)
            self._cursor = row.seq
            if info.mid in self._early:  # QoS 0: written before we saw the mid
                self._early.discard(info.mid)
                self.published += 1
                self._acked.append(row.seq)
            else:
                self._inflight[info.mid] = (row.seq, row.event_id, row.topic)

    def _take_announcements(self) -> None:
        new: dict[str, set[str]] = {}
        new_devices: set[str] = set()
        while True:
            try:
                dev, typ = self._announce.get_nowait()
            except queue.Empty:
                break
            if dev not in self._known:
                self._known[dev] = set()
                new_devices.add(dev)
            if typ not in self._known[dev]:
                self._known[dev].add(typ)
                new.setdefault(dev, set()).add(typ)
        if self._state == "up":
            for dev in sorted(new_devices - {self._first_device}):
                self._publish_control(f"{self.settings.prefix}/{dev}/availability",
                                      "online", retain=True)
            self._publish_discovery(new)

    def _publish_control(self, topic: str, payload: str, retain: bool) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.mid in self._early:
            self._early.discard(info.mid)
        else:
            self._control.add(info.mid)

    def _publish_availability(self, payload: str) -> None:
        devices = set(self._known) | ({self._first_device} if self._first_device else set())
        for dev in sorted(devices):
            self._publish_control(f"{self.settings.prefix}/{dev}/availability", payload,
                                  retain=True)

    def _publish_discovery(self, known: Mapping[str, set[str]]) -> None:
        s = self.settings
        if not s.discovery:
            return
        for dev, types in sorted(known.items()):
            for typ in sorted(types):
                for topic, config in discovery_configs(s.prefix, dev, typ, s.discovery_prefix):
                    self._publish_control(topic, json.dumps(config, separators=(",", ":")),
                                          retain=True)

    def _storage_check(self, now: float) -> None:
        """While the outbox storage is faulty: retry it each second; publish a status
        message at once whenever its alarm appears or clears."""
        ob = self.outbox
        if ob.alarm is not None and now >= self._next_retry:
            self._next_retry = now + 1.0
            ob.retry()
        if ob.alarm != self._alarm_sent and self._state == "up":
            self._alarm_sent = ob.alarm
            self._next_status = 0.0
            self._maybe_status(force=True)

    def _maybe_status(self, force: bool = False) -> None:
        interval = self.settings.status_interval_s
        if (not interval and not force) or self._first_device is None:
            return
        now = time.monotonic()
        if now < self._next_status and not force:
            return
        self._next_status = now + (interval or 3600.0)
        payload = json.dumps(self.status(), separators=(",", ":"), default=str)
        info = self._client.publish(f"{self.settings.prefix}/{self._first_device}/status",
                                    payload, qos=0)
        self._early.discard(info.mid)
