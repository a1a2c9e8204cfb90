"""Settings of the MQTT connection (the ``[mqtt]`` table of the agent config) and URL parsing.

>>> s = MqttSettings.from_url("mqtts://pi@broker.lan/home")
>>> (s.host, s.port, s.prefix, s.username, s.tls is not None)
('broker.lan', 8883, 'home', 'pi', True)

The password is never a plain field: it comes from an environment variable
(``password_env``, default ``AMBISENSE_MQTT_PASSWORD``) or a file (``password_file``),
is read at each connection attempt (a rotated password is picked up without a restart)
and is only handled as a :class:`pydantic.SecretStr`.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sensing.errors import AmbisenseError

#: Default environment variable holding the broker password.
PASSWORD_ENV = "AMBISENSE_MQTT_PASSWORD"

_SLUG_BAD = re.compile(r"[^a-z0-9_-]+")


def topic_slug(name: str) -> str:
    """A topic- and Home-Assistant-safe form of a device or source name.

    Lower case; every run of characters other than ``a-z 0-9 _ -`` becomes ``_``
    (``"Sleep Lab/night 2.csv"`` → ``"sleep_lab_night_2_csv"``).
    """
    slug = _SLUG_BAD.sub("_", name.strip().lower()).strip("_-")
    return slug or "unknown"


class MqttUrlError(AmbisenseError, ValueError):
    """An MQTT URL that cannot be used (bad scheme, unknown option, password, bad value)."""


def _url_value(text: str) -> Any:
    """A URL query value: numbers and true/false as such, anything else as text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (bool, int, float)) else text


class TlsSettings(BaseModel):
    """TLS towards the broker (``mqtts://``)."""

    model_config = ConfigDict(extra="forbid")

    ca_file: Path | None = Field(
        None, description="PEM file of the CA that signed the broker certificate; "
                          "the system trust store when omitted.")
    certfile: Path | None = Field(
        None, description="Client certificate (PEM) when the broker requires one.")
    keyfile: Path | None = Field(None, description="Private key (PEM) of certfile.")
    keyfile_password_env: str | None = Field(
        None, description="Environment variable holding the passphrase of keyfile, if any.")
    insecure: bool = Field(
        False, description="Skip the broker host name check (testing only; the certificate "
                           "chain is still verified; a warning is logged at each start).")

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsSettings:
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("tls.keyfile given without tls.certfile")
        return self


class MqttSettings(BaseModel):
    """How the agent talks to the MQTT broker (see ``docs/mqtt.md``)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("localhost", description="Broker host name or address.")
    port: int = Field(
        1883, ge=1, le=65535,
        description="Broker TCP port; defaults to 8883 when tls is set and port is not.")
    prefix: str = Field(
        "ambisense", description="First topic level: <prefix>/<device>/<type>.")
    client_id: str | None = Field(
        None, description="MQTT client id; default ambisense-<hostname>-<pid>-<random>.")
    qos: Literal[0, 1, 2] = Field(
        1, description="QoS of event messages. 1 (at least once) is what the outbox needs: "
                       "an event leaves the outbox on PUBACK; with 0 it leaves once written "
                       "to the socket.")
    username: str | None = Field(None, description="User name for the broker, if it needs one.")
    password_env: str | None = Field(
        PASSWORD_ENV, description="Environment variable holding the password (read at each "
                                  "connection attempt).")
    password_file: Path | None = Field(
        None, description="File holding the password (first line; read at each connection "
                          "attempt). Takes precedence over password_env.")
    tls: TlsSettings | None = Field(None, description="TLS settings; plain TCP when omitted.")
    keepalive: int = Field(
        30, ge=5, le=3600, description="Keepalive in seconds; the broker publishes the last "
                                       "will about 1.5 keepalives after a silent link dies.")
    reconnect_min_s: float = Field(
        1.0, gt=0, description="First reconnect delay; doubles per failure (with jitter).")
    reconnect_max_s: float = Field(
        60.0, gt=0, description="Largest reconnect delay.")
    outbox_path: Path | None = Field(
        None, description="SQLite file of the durable outbox (e.g. "
                          "/var/lib/ambisense/outbox.sqlite); in memory when omitted, "
                          "which loses undelivered events when the process ends.")
    outbox_max_events: int = Field(
        100_000, ge=2, description="Outbox bound; when full the oldest periodic readings are "
                                   "thinned out first, alerts kept (see docs/mqtt.md).")
    discovery: bool = Field(
        False, description="Publish Home Assistant MQTT discovery configs (retained).")
    discovery_prefix: str = Field(
        "homeassistant", description="Home Assistant discovery prefix.")
    status_interval_s: float = Field(
        60.0, ge=0, description="Seconds between status messages on <prefix>/<device>/status; "
                                "0 disables them.")
    close_timeout_s: float = Field(
        10.0, ge=0, description="How long close() waits for the broker to acknowledge "
                                "what is still queued.")
    max_inflight: int = Field(
        100, ge=1, le=10_000, description="Events handed to the MQTT client and not yet "
                                          "acknowledged, at most.")

    @field_validator("prefix", "discovery_prefix")
    @classmethod
    def _topic_level(cls, v: str) -> str:
        # one or more non-empty topic levels: no wildcard, no NUL, no empty level (which a
        # leading, trailing or doubled '/' makes), not the broker's reserved '$' tree
        if (not v or any(c in v for c in "+#\0") or v.startswith(("/", "$")) or v.endswith("/")
                or "//" in v or any(not lvl.strip() for lvl in v.split("/"))):
            raise ValueError(f"{v!r} is not a usable topic prefix (expected one or more "
                             f"non-empty levels separated by '/', without '+', '#', NUL, a "
                             f"leading '$' or a leading/trailing/doubled '/')")
        return v

    @model_validator(mode="after")
    def _defaults(self) -> MqttSettings:
        if self.tls is not None and "port" not in self.model_fields_set:
            self.port = 8883
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    def effective_client_id(self) -> str:
        """The client id to use (``client_id`` or ``ambisense-<hostname>-<pid>-<random>``)."""
        return self.client_id or (f"ambisense-{topic_slug(socket.gethostname())}-{os.getpid()}"
                                  f"-{os.urandom(2).hex()}")

    def resolve_password(self) -> SecretStr | None:
        """Read the password now (file first, then the environment); None when there is none.

        Raises
        ------
        OSError
            ``password_file`` cannot be read (the message names the file, not its content).
        """
        if self.password_file is not None:
            with open(self.password_file, encoding="utf-8") as fh:
                return SecretStr(fh.readline().rstrip("\r\n"))
        if self.password_env and os.environ.get(self.password_env):
            return SecretStr(os.environ[self.password_env])
        return None

    def broker(self) -> str:
        """``mqtt[s]://[user@]host:port/prefix`` for messages (never the password)."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}/{self.prefix}"

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> MqttSettings:
        """Settings from ``mqtt://[user@]host[:port][/prefix][?key=value&…]`` or ``mqtts://…``.

        Query keys are field names (``client_id``, ``qos``, ``outbox_path``, ``discovery``,
        ``status_interval_s`` …) or TLS fields (``ca_file``, ``certfile``, ``keyfile``,
        ``keyfile_password_env``, ``insecure``), which imply TLS. A password in the URL
        is refused: use ``AMBISENSE_MQTT_PASSWORD`` or ``password_file``.

        Raises
        ------
        MqttUrlError
            Unknown scheme or key, a password in the URL, or an invalid value (a
            ``ValueError`` and an ``AmbisenseError``: the CLI reports it in one line).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise MqttUrlError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
        if parts.password is not None:
            raise MqttUrlError(f"MQTT URL must not contain a password; put it in the "
                             f"{PASSWORD_ENV} environment variable or a password_file")
        data: dict[str, Any] = {}
        tls: dict[str, Any] = {}
        if parts.hostname:
            data["host"] = parts.hostname
        try:
            port = parts.port
        except ValueError as exc:
            raise MqttUrlError(f"MQTT URL {url!r}: {exc}") from None
        if port is not None:
            data["port"] = port
        if parts.username:
            data["username"] = unquote(parts.username)
        prefix = unquote(parts.path).strip("/")
        if prefix:
            data["prefix"] = prefix
        tls_keys = set(TlsSettings.model_fields)
        in_url = {"tls", "host", "port", "username"}  # given by the URL itself
        for key, text in parse_qsl(parts.query, keep_blank_values=True):
            value = _url_value(text)
            if key in tls_keys:
                tls[key] = value
            elif key in cls.model_fields and key not in in_url:
                data[key] = value
            else:
                raise MqttUrlError(f"unknown MQTT URL option {key!r}; known: "
                                 f"{', '.join(sorted((set(cls.model_fields) - in_url) | tls_keys))}")
        if parts.scheme == "mqtts" or tls:
            data["tls"] = tls
        data.update(overrides)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'url'}: {e['msg']}" for e in exc.errors()
            )
            raise MqttUrlError(f"MQTT URL {url!r}: {problems}") from None
