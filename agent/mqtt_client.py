"""paho-mqtt (callback API v2, MQTT 5) clients configured from :class:`MqttSettings`, and backoff."""

from __future__ import annotations

import logging
import os
import random
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.mqtt_settings import MqttSettings

log = logging.getLogger("ambisense.mqtt")

#: CONNACK reason codes that mean "your credentials are wrong" (MQTT 5 and 3.1.1 values).
AUTH_FAILURES = frozenset({4, 5, 0x86, 0x87, 0x8C})


def new_client(settings: MqttSettings, client_id: str | None = None) -> mqtt.Client:
    """A paho client for ``settings`` with TLS set up (credentials set per attempt).

    Parameters
    ----------
    settings : MqttSettings
        Broker, TLS, keepalive.
    client_id : str, optional
        Overrides ``settings.effective_client_id()``.

    Raises
    ------
    OSError, ssl.SSLError
        A TLS file cannot be read.
    """
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id or settings.effective_client_id(),
        protocol=mqtt.MQTTv5,
    )
    if settings.tls is not None:
        t = settings.tls
        key_password = None
        if t.keyfile_password_env:
            key_password = os.environ.get(t.keyfile_password_env)
        client.tls_set(
            ca_certs=os.fspath(t.ca_file) if t.ca_file else None,
            certfile=os.fspath(t.certfile) if t.certfile else None,
            keyfile=os.fspath(t.keyfile) if t.keyfile else None,
            keyfile_password=key_password,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        if t.insecure:
            log.warning("TLS host name verification is OFF for %s (mqtt.tls.insecure = "
                        "true): any server holding a certificate from the CA can pose as "
                        "the broker; use it for testing only", settings.broker())
            client.tls_insecure_set(True)
    client.connect_timeout = 10.0
    return client


def set_credentials(client: mqtt.Client, settings: MqttSettings) -> None:
    """Read the password now and give the user name and password to ``client``."""
    if settings.username is None:
        return
    secret = settings.resolve_password()
    client.username_pw_set(settings.username, None if secret is None else secret.get_secret_value())


def prepare_connect(
    client: mqtt.Client, settings: MqttSettings, *, clean_start: bool = True,
    session_expiry_s: int = 0,
) -> None:
    """Record host, port, keepalive, clean start and session expiry (no network yet).

    ``session_expiry_s`` > 0 asks the broker to keep the session (subscriptions and
    queued QoS 1 messages) that long after a disconnect.
    """
    props = None
    if session_expiry_s:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(session_expiry_s)
    client.connect_async(
        settings.host, settings.port, keepalive=settings.keepalive,
        clean_start=clean_start, properties=props,
    )


def describe_connack(reason_code: object, settings: MqttSettings) -> str:
    """A clear sentence for a refused CONNACK, naming the user but never the password."""
    value = getattr(reason_code, "value", reason_code)
    text = str(reason_code)
    if value in AUTH_FAILURES:
        who = f"user {settings.username!r}" if settings.username else "anonymous clients"
        where = (f"password file {settings.password_file}" if settings.password_file
                 else f"environment variable {settings.password_env}")
        return (f"broker {settings.broker()} refused the connection: {text} "
                f"({who}; password read from {where})")
    return f"broker {settings.broker()} refused the connection: {text}"


class Backoff:
    """Exponential backoff with jitter: ``min·2ⁿ`` capped at ``max``, times U(0.5, 1).

    Parameters
    ----------
    min_s, max_s : float
        First and largest delay.
    rng : random.Random, optional
        Source of jitter.
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s, self.max_s = min_s, max_s
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Delay before the next attempt after one more failure."""
        base = min(self.max_s, self.min_s * (2 ** min(self.failures, 30)))
        self.failures += 1
        return base * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0
