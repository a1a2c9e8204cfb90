"""A real mosquitto broker for tests, on a free 127.0.0.1 port, stopped by pid.

Fixtures (registered in ``tests/conftest.py``):

* ``mosquitto`` — an anonymous broker, yields a :class:`Broker`;
* ``mosquitto_factory`` — ``start(users={"pi": "pw"}, tls=True, client_cert=False)``
  starts variants (password file, TLS with a self-signed CA made with ``openssl``).

Every test using them is skipped, with the reason, when the mosquitto binary is absent.
:class:`Listener` is a small paho subscriber collecting what a test waits for;
:class:`Background` runs an ``ambisense`` command (e.g. ``subscribe``) in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
#: The ``ambisense`` command line of this checkout.
CLI = [sys.executable, "-m", "agent.cli"]


def mosquitto_binary() -> str | None:
    """Path of the mosquitto broker, or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``pred`` until truthy (returned) or fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Pki:
    """A throw-away CA and the certificates it signed (PEM files)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path) -> Pki:
    """Self-signed CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed: cannot make test certificates")
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=ambisense test CA", cwd=d)
    for name, cn in (("server", "127.0.0.1"), ("client", "ambisense-test-client")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                 f"/CN={cn}", cwd=d)
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if name == "server"
                       else "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", ext.name,
                 cwd=d)
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt",
               d / "client.key")


@dataclass
class Broker:
    """One mosquitto process and its configuration.

    Attributes
    ----------
    host, port : str, int
        Where it listens (127.0.0.1 only).
    directory : Path
        Config, persistence database, password file, certificates and log.
    pki : Pki or None
        Certificates when the listener is TLS.
    users : dict
        user → password accepted (empty: anonymous access).
    """

    host: str
    port: int
    directory: Path
    pki: Pki | None = None
    users: dict[str, str] = field(default_factory=dict)
    client_cert: bool = False
    proc: subprocess.Popen | None = None

    @property
    def conf(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log(self) -> Path:
        return self.directory / "mosquitto.log"

    def url(self, user: str | None = None, prefix: str = "", **query: Any) -> str:
        """``mqtt[s]://[user@]127.0.0.1:port[/prefix][?query]`` for this broker."""
        scheme = "mqtts" if self.pki else "mqtt"
        if self.pki and "ca_file" not in query:
            query["ca_file"] = str(self.pki.ca)
        who = f"{user}@" if user else ""
        q = f"?{urlencode({k: str(v) for k, v in query.items()})}" if query else ""
        return f"{scheme}://{who}{self.host}:{self.port}/{prefix}{q}"

    def write_config(self) -> None:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if self.users else 'true'}",
            "persistence true",
            f"persistence_location {self.directory}/",
            "autosave_interval 1",
            "max_queued_messages 100000",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "user root",
        ]
        if self.users:
            pwfile = self.directory / "passwd"
            pwfile.write_text("")
            pwfile.chmod(0o600)
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pwfile), user, password],
                               check=True, capture_output=True, timeout=30)
            lines.append(f"password_file {pwfile}")
        if self.pki:
            lines += [f"cafile {self.pki.ca}", f"certfile {self.pki.server_cert}",
                      f"keyfile {self.pki.server_key}", "tls_version tlsv1.2"]
            if self.client_cert:
                lines.append("require_certificate true")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 30.0) -> Broker:
        """Start mosquitto (same port and persistence as before) and wait until it listens."""
        binary = mosquitto_binary()
        assert binary, "mosquitto binary vanished"
        self.write_config()
        with open(self.directory / "stderr.log", "ab") as err:
            self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=err,
                                         stderr=err, stdin=subprocess.DEVNULL)

        def listening() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"mosquitto exited with {self.proc.returncode}: "
                                     f"{self.tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return True
            except OSError:
                return False

        wait_until(listening, timeout, f"mosquitto to listen on {self.host}:{self.port}")
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Signal the broker by pid (SIGTERM saves its persistence database) and reap it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def tail(self, n: int = 20) -> str:
        """Last lines of the broker log (for assertion messages)."""
        text = ""
        for p in (self.log, self.directory / "stderr.log"):
            if p.exists():
                text += p.read_text(errors="replace")
        return "\n".join(text.splitlines()[-n:])


class Listener:
    """A paho subscriber recording every message (topic, payload, retain) it receives.

    Parameters
    ----------
    broker : Broker
        Where to connect (anonymous, or as ``user`` with ``password``).
    topics : list of str
        Subscriptions (QoS 1).
    """

    def __init__(self, broker: Broker, topics: list[str], user: str | None = None,
                 password: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._cond = threading.Condition()
        self._topics = topics
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user:
            self.client.username_pw_set(user, password)
        if broker.pki:
            self.client.tls_set(ca_certs=str(broker.pki.ca))
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(30), "listener did not get SUBACK"

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client, userdata, msg) -> None:
        with self._cond:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))
            self._cond.notify_all()

    def on(self, topic: str) -> list[bytes]:
        """Payloads received on ``topic``."""
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[dict]:
        return [json.loads(p) for p in self.on(topic)]

    def wait(self, pred: Callable[[Listener], Any], timeout: float = 30.0,
             what: str = "messages") -> Any:
        """Block until ``pred(self)`` is truthy (generous timeout; fails on real breakage)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = pred(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                         f"got {len(self.messages)} message(s)")
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Background:
    """A CLI subprocess whose output is read by threads (so we can wait for a line)."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env)
        self.err: list[str] = []
        self.out: list[str] = []
        self._ready = threading.Event()
        self._threads = [threading.Thread(target=self._read_err, daemon=True),
                         threading.Thread(target=self._read_out, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.err.append(line)
            if "subscribed to" in line:
                self._ready.set()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            self.out.append(line)

    def wait_ready(self, timeout: float = 60) -> None:
        if not self._ready.wait(timeout):
            self.proc.kill()
            raise AssertionError(f"subscriber never subscribed; stderr: {''.join(self.err)}")

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        """Wait for the exit; return (status, stdout)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        for t in self._threads:
            t.join(10)
        return self.proc.returncode, "".join(self.out)


@pytest.fixture
def mosquitto_factory(tmp_path_factory) -> Iterator[Callable[..., Broker]]:
    """``start(users=None, tls=False, client_cert=False) -> Broker``; all stopped at teardown."""
    if mosquitto_binary() is None:
        pytest.skip("mosquitto binary not installed (apt-get install mosquitto): "
                    "the MQTT tests need a real broker")
    started: list[Broker] = []

    def start(users: dict[str, str] | None = None, tls: bool = False,
              client_cert: bool = False) -> Broker:
        d = tmp_path_factory.mktemp("mosquitto")
        pki = make_pki(d / "pki") if (tls or client_cert) else None
        broker = Broker(HOST, free_port(), d, pki=pki, users=dict(users or {}),
                        client_cert=client_cert)
        started.append(broker)
        return broker.start()

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def mosquitto(mosquitto_factory) -> Broker:
    """An anonymous mosquitto on a free 127.0.0.1 port."""
    return mosquitto_factory()
