"""Agent config validation: every malformed file gets one precise message; --check-config."""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pytest

from agent.cli import main
from agent.commands.agent import EX_CONFIG, PlatformError, check_platform
from agent.config import ConfigError, RestartPolicy, load_config
from sensing.formats.esp32_csi import format_csi_line


@pytest.fixture
def capture(tmp_path):
    """A small real ESP32 CSI capture (50 packets)."""
    rng = np.random.default_rng(1)
    path = tmp_path / "night.csv"
    with open(path, "w") as fh:
        for i in range(50):
            buf = 20 * np.exp(1j * rng.uniform(0, 2 * np.pi, 64))
            fh.write(format_csi_line(buf, local_timestamp_us=i * 10_000, seq=i) + "\n")
    return path


def write(tmp_path, text: str, name: str = "agent.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


SERIAL = '[[sources]]\ntype = "esp32_serial"\nurl = "/dev/ttyUSB0"\n'
REPLAY = '[[sources]]\ntype = "replay"\npath = "night.csv"\n'

# (id, file body, the one expected message after "agent.toml: "; a regex when it starts with ^)
CASES = [
    ("unknown-top-level-key", "[agnet]\nname = 'x'\n" + REPLAY,
     'agnet: unknown key "agnet"; expected one of: agent, sources, pipelines, sinks, mqtt'),
    ("unknown-source-key", REPLAY + "baud = 9600\n",
     '^sources\\[0\\]\\.baud: unknown key "baud"; expected one of: name, pipelines, .*, path, '
     'format, loop, realtime, chunk_size$'),
    ("wrong-type", REPLAY + SERIAL + 'baudrate = "fast"\n',
     'sources[1].baudrate: expected an integer from 1200 to 12000000, got "fast"'),
    ("out-of-range", REPLAY + '[[sources]]\ntype = "nexmon_udp"\nport = 70000\n',
     "sources[1].port: expected an integer from 1 to 65535, got 70000"),
    ("below-minimum", REPLAY + "[sources.restart]\ninitial_s = 0\n",
     "sources[0].restart.initial_s: expected a number > 0, ≤ 3600, got 0"),
    ("missing-required-key", '[[sources]]\ntype = "esp32_serial"\n',
     "sources[0].url: required key is missing; expected a non-empty string"),
    ("missing-sources", "[agent]\nname = 'pi'\n",
     "sources: required key is missing; expected a non-empty array of tables"),
    ("bad-enum", REPLAY + '[sinks]\nconsole = "html"\n',
     'sinks.console: expected one of "table", "jsonl", "off", got "html"'),
    ("bad-bool", REPLAY + 'loop = "yes"\n', 'sources[0].loop: expected true or false, got "yes"'),
    ("unknown-pipeline", REPLAY + 'pipelines = ["wifi_breath"]\n',
     '^sources\\[0\\]\\.pipelines\\[0\\]: unknown pipeline "wifi_breath"; known: .*wifi_motion'),
    ("unknown-pipeline-table", REPLAY + "[pipelines.wifi_moton]\nthreshold = 1.0\n",
     '^pipelines\\.wifi_moton: unknown pipeline "wifi_moton"; known: .*wifi_motion'),
    ("pipeline-option-rejected", REPLAY + "[pipelines.wifi_motion]\nbogus_option = 1\n",
     "^pipelines\\.wifi_motion: unknown option 'bogus_option'; valid options: .*threshold "
     "\\(number"),
    ("unknown-source-type", '[[sources]]\ntype = "zigbee"\n',
     'sources[0].type: unknown source type "zigbee"; expected one of "edf_follow", '
     '"esp32_serial", "lora_serial", "nexmon_udp", "replay", "sound_card", "uwb_serial"'),
    ("source-type-missing", '[[sources]]\nurl = "/dev/ttyUSB0"\n',
     'sources[0].type: required key is missing; expected one of "edf_follow", "esp32_serial", '
     '"lora_serial", "nexmon_udp", "replay", "sound_card", "uwb_serial"'),
    ("bad-name", REPLAY + 'name = "bed room/1"\n',
     '^sources\\[0\\]\\.name: expected a string of letters, digits.*, got "bed room/1"$'),
    ("duplicate-name", REPLAY + 'name = "a"\n' + REPLAY + 'name = "a"\n',
     'sources[1].name: expected a name unique among the sources, got "a" (also sources[0])'),
    ("replay-file-missing", '[[sources]]\ntype = "replay"\npath = "nope.csv"\n',
     '^sources\\[0\\]\\.path: expected an existing capture file, got ".*/nope.csv" '
     '\\(no such file\\)$'),
    ("replay-glob-matches-nothing", '[[sources]]\ntype = "replay"\npath = "caps/*.csv"\n',
     '^sources\\[0\\]\\.path: expected a capture file, a directory holding captures or a glob '
     'matching some, got ".*/caps/\\*.csv" \\(nothing there\\)$'),
    ("table-instead-of-value", REPLAY + "[sources.chunk_size]\nx = 1\n",
     "sources[0].chunk_size: expected an integer from 1 to 100000, got a table {x}"),
    ("inline-mqtt-password", REPLAY + '[mqtt]\nhost = "broker"\npassword = "hunter2"\n',
     "mqtt.password: secrets may not be written in the config file; expected mqtt.password_env "
     "or mqtt.password_file (an environment variable name or a file holding the secret), got "
     "an inline string"),
    ("inline-tls-passphrase",
     REPLAY + '[mqtt]\nhost = "broker"\n[mqtt.tls]\nkeyfile_password = "hunter2"\n',
     "mqtt.tls.keyfile_password: secrets may not be written in the config file; expected "
     "mqtt.tls.keyfile_password_env (an environment variable name or a file holding the "
     "secret), got an inline string"),
    ("password-env-unset", REPLAY + '[mqtt]\nhost = "broker"\npassword_env = "NO_SUCH_VAR_X"\n',
     "mqtt.password_env: expected environment variable NO_SUCH_VAR_X to be set (the password "
     "is read from it), got it unset"),
    ("password-file-unreadable", REPLAY + '[mqtt]\npassword_file = "secret.txt"\n',
     '^mqtt\\.password_file: expected a readable file holding the password, got ".*secret.txt" '
     '\\(No such file or directory\\)$'),
    ("mqtt-wrong-type", REPLAY + '[mqtt]\nport = "abc"\n',
     'mqtt.port: expected an integer from 1 to 65535, got "abc"'),
    ("mqtt-unknown-key", REPLAY + '[mqtt]\nhostname = "broker"\n',
     '^mqtt\\.hostname: unknown key "hostname"; expected one of: host, port, prefix, .*'),
    ("not-toml", REPLAY + "loop = \n",
     "^not valid TOML: .*\\(at line 4, column 8\\)$"),
]


@pytest.mark.parametrize("body,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_config_gets_one_precise_message(tmp_path, capture, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    lines = str(info.value).splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("agent.toml: ")
    msg = lines[0][len("agent.toml: "):]
    if expected.startswith("^"):
        assert re.match(expected, msg), msg
    else:
        assert msg == expected
    assert "hunter2" not in str(info.value)


def test_several_problems_are_all_reported(tmp_path, capture):
    path = write(tmp_path, REPLAY + 'loop = 1\nrealtime = "no"\n[sinks]\nconsole = 3\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert [m.split(":")[1].strip() for m in str(info.value).splitlines()] == [
        "sources[0].loop", "sources[0].realtime", "sinks.console"]


def test_valid_config_resolves_relative_paths_and_secret_sources(tmp_path, capture):
    (tmp_path / "pw").write_text("s3cret\n")
    path = write(tmp_path, REPLAY + 'name = "night"\nloop = true\nrealtime = true\n'
                 '[sinks]\njsonl_file = "out/events.jsonl"\n'
                 '[mqtt]\nhost = "127.0.0.1"\nusername = "pi"\npassword_file = "pw"\n'
                 '[mqtt.tls]\nkeyfile_password_env = "KEY_PASS"\n')
    loaded = load_config(path, env={"KEY_PASS": "x"})
    src = loaded.config.sources[0]
    assert src.path == str(capture) and src.loop and src.realtime
    assert loaded.config.sinks.jsonl_file == str(tmp_path / "out" / "events.jsonl")
    assert loaded.mqtt.host == "127.0.0.1" and loaded.mqtt.port == 8883
    assert loaded.secrets_from == {"mqtt.password": f"file {tmp_path / 'pw'}",
                                   "mqtt.tls.keyfile_password": "env KEY_PASS"}
    assert "s3cret" not in repr(loaded)


def test_restart_backoff_is_exponential_and_capped():
    pol = RestartPolicy(initial_s=0.5, factor=2, max_s=3)
    assert [pol.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_check_config_exit_codes(tmp_path, capture, capsys):
    good = write(tmp_path, REPLAY + 'name = "night"\npipelines = ["wifi_motion"]\n'
                 '[sinks]\njsonl_file = "e.jsonl"\n',
                 "good.toml")
    assert main(["agent", "--check-config", "--config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "good.toml: OK" in out and "stream night (replay) → wifi_motion" in out
    assert not (tmp_path / "e.jsonl").exists()  # validating starts nothing

    bad = write(tmp_path, REPLAY + 'chunk_size = -1\n', "bad.toml")
    assert main(["agent", "--check-config", "--config", str(bad)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert err.strip() == ("ambisense agent: error: bad.toml: sources[0].chunk_size: expected an "
                           "integer from 1 to 100000, got -1")

    assert main(["agent", "--check-config", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "absent.toml" in capsys.readouterr().err


def test_check_config_never_prints_secrets(tmp_path, capture, capsys, monkeypatch):
    monkeypatch.setenv("AMBI_TEST_PW", "hunter2-secret")
    good = write(tmp_path, REPLAY + '[mqtt]\nhost = "127.0.0.1"\nusername = "u"\n'
                 'password_env = "AMBI_TEST_PW"\n')
    assert main(["-v", "agent", "--check-config", "--config", str(good)]) == 0
    cap = capsys.readouterr()
    assert "MQTT mqtt://u@127.0.0.1:1883/ambisense (mqtt.password from env AMBI_TEST_PW)" in cap.out
    assert "hunter2" not in cap.out + cap.err


def test_demo_check_config_reports_missing_samples(tmp_path, capsys):
    assert main(["agent", "--demo", "--check-config", "--samples", str(tmp_path)]) == EX_CONFIG
    assert "samples: expected a directory holding captures" in capsys.readouterr().err


@pytest.mark.parametrize("machine,bits", [("armv7l", 32), ("armv6l", 32), ("aarch64", 32)])
def test_32_bit_arm_is_refused_with_a_precise_message(machine, bits):
    with pytest.raises(PlatformError, match=rf"32-bit ARM \({machine}, 32-bit Python\).*"
                                            r"aarch64.*Raspberry Pi OS \(64-bit\)"):
        check_platform(machine, bits)


@pytest.mark.parametrize("machine", ["aarch64", "x86_64", "arm64"])
def test_64_bit_platforms_are_accepted(machine):
    check_platform(machine, 64)
