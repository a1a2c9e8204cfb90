"""``ambisense subscribe``: print the events a broker carries, for people and for scripts.

Examples
--------
``ambisense subscribe --url mqtt://pi.lan --type fall,seizure_alert`` — a live table.
``ambisense subscribe --jsonl --count 10 --timeout 60`` — exit after 10 events (status 3
when the timeout comes first). ``ambisense subscribe --since 2h --dedup`` — a persistent
session: QoS 1 events published while this subscriber was away (since its previous run
with the same ``--session``) are delivered, then filtered to the last two hours.
"""

from __future__ import annotations

import argparse
import collections
import getpass
import json
import logging
import os
import queue
import re
import socket
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from agent.commands.base import COMMANDS, Command

if TYPE_CHECKING:  # paho and the MQTT modules are imported when the command runs
    import paho.mqtt.client as mqtt

    from agent.mqtt_settings import MqttSettings

log = logging.getLogger("ambisense.subscribe")

#: Event ids remembered by ``--dedup`` (re-deliveries come within minutes, not this many
#: events later).
DEDUP_WINDOW = 200_000
#: Default session expiry of ``--since`` / ``--session`` (7 days).
SESSION_EXPIRY_S = 7 * 24 * 3600
_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime | None:
    """``"all"`` → None; ``"90s"``, ``"10m"``, ``"2h"``, ``"7d"`` → now minus that; else ISO 8601.

    Raises
    ------
    ValueError
        Not one of these forms.
    """
    text = text.strip()
    if text.lower() in ("all", ""):
        return None
    now = now or datetime.now(timezone.utc)
    m = _REL.match(text.lower())
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r}: expected 'all', a duration like 10m/2h/7d or an "
                         f"ISO 8601 time") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def default_session_id() -> str:
    """Stable client id of this user on this host (persistent sessions)."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = str(os.getuid())
    from agent.mqtt_settings import topic_slug

    return f"ambisense-subscribe-{topic_slug(user)}-{topic_slug(socket.gethostname())}"


def _csv(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("AMBISENSE_MQTT_URL", "mqtt://localhost:1883"),
                   help="broker: mqtt[s]://[user@]host[:port][/prefix][?ca_file=…] (default "
                        "$AMBISENSE_MQTT_URL or mqtt://localhost:1883; password from "
                        "AMBISENSE_MQTT_PASSWORD)")
    p.add_argument("--type", metavar="T1,T2", help="only these event types, e.g. fall,breathing_rate")
    p.add_argument("--device", metavar="D1,D2", help="only these devices (topic slugs or names)")
    p.add_argument("--jsonl", action="store_true",
                   help="one JSON event per line on stdout (nothing else); a table otherwise")
    p.add_argument("--count", type=int, metavar="N", help="exit after N events")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="exit after S seconds (status 3 if --count was not reached)")
    p.add_argument("--since", metavar="WHEN",
                   help="catch up: persistent session (queued QoS 1 events since the previous "
                        "run of this session are delivered), keeping events with ts at/after "
                        "WHEN: 'all', 10m, 2h, 7d or an ISO time")
    p.add_argument("--session", metavar="ID",
                   help="persistent session client id (implied by --since; default "
                        f"{default_session_id()})")
    p.add_argument("--session-expiry", type=int, default=SESSION_EXPIRY_S, metavar="S",
                   help="how long the broker keeps the session while away (default 7 days)")
    p.add_argument("--dedup", action="store_true",
                   help="print each event id once (re-deliveries after reconnects are "
                        f"dropped; the last {DEDUP_WINDOW} ids are remembered)")


class _Subscriber:
    """Connects, subscribes and feeds a queue; paho's thread reconnects with backoff."""

    def __init__(self, settings: MqttSettings, topics: list[str], session: str | None,
                 expiry: int) -> None:
        from agent.mqtt_client import new_client, prepare_connect, set_credentials

        self.settings = settings
        self.topics = topics
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.client = new_client(settings, client_id=session or
                                 f"ambisense-subscribe-{os.getpid()}-{time.time_ns() % 10**6}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, msg: self.messages.put(msg)
        self.client.on_connect_fail = lambda c, u: log.warning(
            "cannot connect to %s; retrying", settings.broker())
        self.client.reconnect_delay_set(max(1, int(settings.reconnect_min_s)),
                                        max(1, int(settings.reconnect_max_s)))
        set_credentials(self.client, settings)
        prepare_connect(self.client, settings, clean_start=session is None,
                        session_expiry_s=expiry if session else 0)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            from agent.mqtt_client import describe_connack

            log.error("%s", describe_connack(reason_code, self.settings))
            return
        client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        bad = [str(rc) for rc in reason_codes if rc.is_failure]
        if bad:
            log.error("broker refused the subscription: %s", ", ".join(bad))
            return
        print(f"ambisense subscribe: subscribed to {' '.join(self.topics)} on "
              f"{self.settings.broker()}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _run(args: argparse.Namespace) -> int:
    from agent.events import Event
    from agent.mqtt_settings import MqttSettings, topic_slug
    from agent.sinks import SINKS
    from agent.sinks.mqtt import RESERVED_TYPES

    settings = MqttSettings.from_url(args.url)
    try:
        since = parse_since(args.since) if args.since is not None else None
    except ValueError as exc:
        raise SystemExit(f"ambisense subscribe: error: {exc}") from None
    session = args.session or (default_session_id() if args.since is not None else None)
    types = _csv(args.type)
    devices = [topic_slug(d) for d in _csv(args.device)]
    topics = [f"{settings.prefix}/{d}/{t}" for d in (devices or ["+"]) for t in (types or ["+"])]
    sink = SINKS.get("jsonl")() if args.jsonl else SINKS.get("table")()
    seen: set[str] = set()
    order: collections.deque[str] = collections.deque()
    printed = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    sub = _Subscriber(settings, topics, session, args.session_expiry)
    try:
        while args.count is None or printed < args.count:
            wait = 0.5 if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                break
            try:
                msg = sub.messages.get(timeout=min(wait, 0.5))
            except queue.Empty:
                continue
            parts = msg.topic.split("/")
            if len(parts) < 3 or parts[-1] in RESERVED_TYPES:
                continue
            if (types and parts[-1] not in types) or (devices and parts[-2] not in devices):
                continue
            try:
                event = Event.from_json(msg.payload)
            except (ValueError, TypeError, json.JSONDecodeError) as exc:
                log.warning("%s: not an ambisense event: %s", msg.topic, exc)
                continue
            if since is not None and event.ts:
                try:
                    when = datetime.fromisoformat(event.ts.replace("Z", "+00:00"))
                except ValueError:
                    when = None
                if when is not None and when < since:
                    continue
            if args.dedup:
                if event.id in seen:
                    continue
                seen.add(event.id)
                order.append(event.id)
                if len(order) > DEDUP_WINDOW:  # bounded memory on a months-long run
                    seen.discard(order.popleft())
            sink.emit(event)
            printed += 1
    finally:
        sub.close()
        sink.close()
    if args.count is not None and printed < args.count:
        print(f"ambisense subscribe: error: timed out after {args.timeout:g} s with {printed} of "
              f"{args.count} event(s)", file=sys.stderr)
        return 3
    return 0


COMMANDS.register("subscribe")(
    Command("print events from an MQTT broker (filters, dedup, catch-up sessions)",
            _configure, _run)
)
