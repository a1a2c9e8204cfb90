"""``ambisense agent`` end to end: SIGTERM shuts down cleanly; ``--demo`` replays captures."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from agent.commands.agent import bundled_samples
from agent.config import expand_replay
from sensing.formats.esp32_csi import format_csi_line


def write_capture(path: Path, n: int = 600, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "w") as fh:
        for i in range(n):
            buf = (20 + 5 * rng.random()) * np.exp(1j * rng.uniform(0, 2 * np.pi, 64))
            fh.write(format_csi_line(buf, local_timestamp_us=i * 10_000, seq=i) + "\n")
    return path


def read_events(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "last JSON line is incomplete"
    return [json.loads(line) for line in text.splitlines()]


def test_sigterm_stops_cleanly_and_flushes_the_jsonl_file(tmp_path, capsys, caplog):
    """A real SIGTERM to this process while ``ambisense agent`` runs in its main thread (the
    same code path as the installed command, without a second interpreter start-up)."""
    write_capture(tmp_path / "room.csv")
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        '[agent]\nname = "sigterm-test"\n'
        '[[sources]]\ntype = "replay"\nname = "room"\npath = "room.csv"\nloop = true\n'
        'realtime = true\nchunk_size = 20\npipelines = ["wifi_motion"]\n'
        '[[sources]]\ntype = "esp32_serial"\nname = "gone"\nurl = "/dev/ttyAMBISENSE-gone"\n'
        '[sources.restart]\ninitial_s = 0.05\nmax_s = 0.2\n'
        '[sinks]\nconsole = "off"\njsonl_file = "out/events.jsonl"\n'
    )
    out = tmp_path / "out" / "events.jsonl"
    before = signal.getsignal(signal.SIGTERM)
    sent = threading.Event()

    def terminate_after_first_event():
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text().count("\n") >= 1):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # let a status line and a few restarts happen
        sent.set()
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_after_first_event, daemon=True)
    killer.start()
    rc = main(["agent", "--config", str(cfg), "--status-interval", "0.2"])
    killer.join(5)
    err = capsys.readouterr().err
    assert sent.is_set() and rc == 0, err
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    logs = caplog.text
    assert "received SIGTERM: stopping" in logs
    assert re.search(r"status sigterm-test: .*room \[running\].*gone \[(backoff|running)\]", logs)
    assert re.search(r"gone: source failed: .*/dev/ttyAMBISENSE-gone.*restarting it in", logs)
    events = read_events(out)
    total = int(re.search(r"^(\d+) events in", err, re.M).group(1))
    assert len(events) == total >= 1  # every event emitted reached the file, whole
    assert {e["source"] for e in events} == {"room"}
    assert re.search(r"^room: stopped, \d+ frames, 0 rejects, 0 drops, 0 restarts", err, re.M)


def test_demo_replays_every_capture_in_the_samples_directory(tmp_path, capsys):
    samples = tmp_path / "samples"
    samples.mkdir()
    write_capture(samples / "a.csv", seed=1)
    write_capture(samples / "b.csv", seed=2)
    (samples / "a.csv.truth.json").write_text("{}")
    (samples / "README.md").write_text("# samples\n")
    events_file = tmp_path / "ambisense-events.jsonl"
    events_file.write_text("stale line from an earlier run\n")
    rc = main(["agent", "--demo", "--samples", str(samples), "--events-file", str(events_file)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    events = read_events(events_file)
    assert {e["source"] for e in events} == {"a.csv", "b.csv"}
    assert "offset_s  type" in cap.out and "a.csv" in cap.out
    assert re.search(r"^a\.csv: done, 600 frames, 0 rejects", cap.err, re.M)
    assert re.search(r"^b\.csv: done, 600 frames, 0 rejects", cap.err, re.M)


def test_demo_on_the_bundled_samples(tmp_path, capsys, monkeypatch):
    samples = bundled_samples()
    if not samples.is_dir() or not expand_replay(str(samples)):
        pytest.skip(f"no bundled captures in {samples} yet")
    monkeypatch.chdir(tmp_path)
    rc = main(["agent", "--demo", "--jsonl"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    events = read_events(tmp_path / "ambisense-events.jsonl")
    assert [json.loads(x) for x in cap.out.splitlines()] == events
    captures = sorted(os.path.basename(f) for f in expand_replay(str(samples)))
    assert sorted({e["source"] for e in events}) == captures, cap.err
    replayed = dict(re.findall(r"^(\S+): done, (\d+) frames", cap.err, re.M))
    assert sorted(replayed) == captures and all(int(n) > 0 for n in replayed.values())


def test_a_source_that_gives_up_makes_the_agent_exit_1(tmp_path, capsys, caplog):
    write_capture(tmp_path / "room.csv", n=200)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        '[[sources]]\ntype = "replay"\npath = "room.csv"\npipelines = ["wifi_motion"]\n'
        '[[sources]]\ntype = "esp32_serial"\nname = "gone"\nurl = "/dev/ttyAMBISENSE-gone"\n'
        'restart = { initial_s = 0.01, max_s = 0.02, max_restarts = 2 }\n'
        '[sinks]\nconsole = "off"\n'
    )
    assert main(["agent", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"^room\.csv: done, 200 frames", err, re.M)
    assert re.search(r"^gone: failed, 0 frames, 0 rejects, 0 drops, 2 restarts", err, re.M)
    assert "giving up after 2 restarts" in caplog.text
