"""End to end through the CLI: ``ambisense replay --mqtt`` → broker → ``ambisense subscribe``."""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import subprocess
import threading
from pathlib import Path

import jsonschema
import pytest
from mosquitto import CLI, Background, Listener, wait_until

from agent.cli import main as cli_main
from agent.events import Event
from agent.mqtt_settings import topic_slug
from agent.sinks.mqtt import MqttSink

pytestmark = pytest.mark.mqtt  # needs the mosquitto binary (skipped without it)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "agent" / "schema" / "event.schema.json").read_text())


def cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, **kw)


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> tuple[str, list[dict]]:
    """A capture that some registered pipeline turns into events, and those events
    (the output of ``ambisense replay --jsonl``, run in this process to save a start-up)."""
    samples = sorted(glob.glob(str(REPO / "agent" / "samples" / "*.csv")))
    if samples:
        path = samples[0]
    else:
        from sensing.simulate import SIMULATORS

        if "csi-breathing" not in SIMULATORS:
            pytest.skip("no bundled sample in agent/samples and no csi-breathing simulator")
        path = str(tmp_path_factory.mktemp("capture") / "bedroom.csv")
        SIMULATORS.get("csi-breathing")(path, duration_s=60.0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = cli_main(["replay", "--jsonl", "--no-progress", path])
    assert code == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    if not events:
        pytest.skip(f"no registered pipeline produces events for {os.path.basename(path)} yet")
    return path, events


def test_replay_to_subscribe_cli(mosquitto, capture):
    path, expected = capture
    url = mosquitto.url()
    lis = Listener(mosquitto, ["ambisense/#"])
    sub = Background("subscribe", "--url", url, "--jsonl", "--count", str(len(expected)),
                     "--timeout", "90")
    sub.wait_ready()
    r = cli("replay", "--no-progress", "--jsonl", path, "--mqtt", url)
    assert r.returncode == 0, r.stderr
    printed = [json.loads(line) for line in r.stdout.splitlines()]
    code, out = sub.finish()
    assert code == 0, "".join(sub.err)
    got = [json.loads(line) for line in out.splitlines()]
    # Every event arrives with the ids of a separate `replay --jsonl` run …
    assert sorted(e["id"] for e in got) == sorted(e["id"] for e in expected)
    # … and exactly the content this run printed (in the order it was emitted).
    assert got == printed
    # Topics as documented: <prefix>/<slug of source>/<type>; payload per the schema.
    device = topic_slug(os.path.basename(path))
    lis.wait(lambda s: sum(1 for t, _, _ in s.messages if not t.endswith(
        ("/availability", "/status"))) >= len(expected), what="events at the listener")
    for topic, payload, retain in lis.messages:
        if topic.endswith(("/availability", "/status")):
            continue
        d = json.loads(payload)
        jsonschema.validate(d, SCHEMA)
        assert topic == f"ambisense/{device}/{d['type']}"
        assert not retain
    lis.wait(lambda s: s.on(f"ambisense/{device}/availability")[-1:] == [b"offline"],
             what="offline after the replay ended")
    lis.close()


def test_subscribe_filters(mosquitto, capture, capsys):
    """--type and --device (run in this process; the CLI start-up is covered above)."""
    path, expected = capture
    first_type = expected[0]["type"]
    want = [e for e in expected if e["type"] == first_type]
    result: list[int] = []
    sub = threading.Thread(target=lambda: result.append(cli_main(
        ["subscribe", "--url", mosquitto.url(), "--jsonl", "--type", first_type,
         "--device", os.path.basename(path), "--count", str(len(want)), "--timeout", "90"])))
    sub.start()
    seen: list[str] = []
    wait_until(lambda: seen.append(capsys.readouterr().err) or "subscribed to" in "".join(seen),
               60, "the subscriber to subscribe")
    # The same events from another device must not pass the --device filter.
    sink = MqttSink.from_url(mosquitto.url())
    for e in expected:
        sink.emit(Event.from_dict({**e, "source": "other-room.csv"}))
        sink.emit(Event.from_dict(e))
    sink.close()
    sub.join(120)
    assert result == [0]
    out = capsys.readouterr().out
    assert [json.loads(x)["id"] for x in out.splitlines()] == [e["id"] for e in want]
