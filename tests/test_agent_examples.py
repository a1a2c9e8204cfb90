"""The documented example configs in firmware_configs/ validate, the systemd unit is sane,
and the demo (what agent-replay-demo.toml runs) gives the events the samples' truth expects."""

from __future__ import annotations

import configparser
import json
from collections import Counter
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "firmware_configs").glob("agent-*.toml"))
#: Secrets the examples read from the environment.
ENV = {"AMBISENSE_MQTT_PASSWORD": "x", "AMBISENSE_TLS_KEY_PASSPHRASE": "y"}


def _deployment_only(issue: str) -> bool:
    """Problems that only a deployed machine (or a later build) resolves."""
    return any(s in issue for s in (
        "is not available in this build",              # a source type not merged yet
        "unknown pipeline",                            # a pipeline not merged yet
        "/agent/samples",                              # bundled captures not there yet
    ))


def test_there_is_an_example_per_source_type():
    text = "".join(p.read_text() for p in EXAMPLES)
    for kind in ("esp32_serial", "nexmon_udp", "edf_follow", "replay"):
        assert f'type = "{kind}"' in text


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_config_validates(path, tmp_path):
    text = path.read_text()
    if '"/etc/ambisense/' in text:
        # files made at install time (password file, certificates): stand-ins under tmp_path
        for line in text.splitlines():
            if not line.lstrip().startswith("#") and '"/etc/ambisense/' in line:
                name = line.split('"/etc/ambisense/')[1].split('"')[0]
                (tmp_path / name).write_text("stand-in\n")
        path = tmp_path / path.name
        path.write_text(text.replace('"/etc/ambisense/', f'"{tmp_path}/'))
    try:
        loaded = load_config(path, env=ENV)
    except ConfigError as exc:
        real = [i for i in exc.issues if not _deployment_only(i)]
        assert not real, real
        pytest.skip("needs a deployed machine or a later build: " + "; ".join(exc.issues))
    assert loaded.config.sources


def test_systemd_unit_restarts_on_failure_unprivileged_and_hardened():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(REPO / "firmware_configs" / "systemd" / "ambisense-agent.service")
    svc = unit["Service"]
    assert svc["Restart"] == "on-failure"
    assert svc["User"] == "ambisense"
    assert set(svc["SupplementaryGroups"].split()) >= {"dialout", "audio"}
    assert "--config /etc/ambisense/agent.toml" in svc["ExecStart"]
    assert "78" in svc["RestartPreventExitStatus"].split()  # an invalid config is not retried
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes"}.items():
        assert svc[key] == value
    assert "/var/lib/ambisense" in svc["ReadWritePaths"]


def test_docs_describe_every_config_key():
    from agent.config import SOURCE_CONFIGS, AgentConfig, AgentSection, RestartPolicy, SinksSection

    doc = (REPO / "docs" / "agent.md").read_text()
    docs = {p.name: p.read_text() for p in (REPO / "docs").glob("*.md")}

    def described(k: str, text: str) -> bool:
        return f"`{k}`" in text or f"`[{k}]`" in text or f"`[[{k}]]`" in text

    models = [AgentConfig, AgentSection, RestartPolicy, SinksSection]
    missing = sorted({f"{m.__name__}.{k}" for m in models for k in m.model_fields
                      if not described(k, doc)})
    # a source type is described in agent.md or in its modality's page (the page that
    # shows its `type = "..."` table), so a new modality's folder brings its own docs
    for typ, model in SOURCE_CONFIGS.items():
        pages = [doc] + [t for t in docs.values() if f'type = "{typ}"' in t]
        missing += [f"{model.__name__}.{k}" for k in model.model_fields
                    if not any(described(k, t) for t in pages)]
    assert not missing, missing


SAMPLES = REPO / "agent" / "samples"


def _truth(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.truth.json").read_text())


def _check_new_modalities(by_source: dict[str, list[dict]]) -> None:
    """The acoustic, LoRa and UWB/radar samples: what agent/samples/README.md promises."""
    # acoustic sonar: the one simulated blink, onset within 0.2 s
    (blink,) = [e for e in by_source["acoustic_blink_demo.sigmf-meta"] if e["type"] == "blink"]
    (ref,) = _truth("acoustic_blink_demo.sigmf-meta")["blinks"]
    assert abs(blink["offset_s"] - ref["onset_s"]) <= 0.2
    # LoRa packets: every simulated frame decoded to its payload, CRC valid
    for name in ("lora_packets_sf7.sigmf-meta", "lora_packet.sf7.bw125k.fs250k.cf32"):
        got = [(e["payload_hex"], e["crc_ok"]) for e in by_source[name]
               if e["type"] == "lora_packet"]
        assert got == [(p["payload_hex"], True) for p in _truth(name)["packets"]], name
    # LoRa module log: motion on inside the one episode only
    (a, b), = _truth("lora_module_log.txt")["episodes"]
    on = [e["offset_s"] for e in by_source["lora_module_log.txt"]
          if e["type"] == "motion" and e["value"] == 1]
    assert on and all(a <= t <= b + 10 for t in on)
    # UWB CIR and radar frames: breathing within 1 breath/min of the simulated rate, no fall
    for name, key in (("uwb_breathing_15bpm.npz", "breathing_bpm"),
                      ("radar_breathing_16bpm.npz", "breathing_bpm")):
        rates = [e["value"] for e in by_source[name] if e["type"] == "breathing_rate"]
        assert rates and all(abs(r - _truth(name)[key]) < 1.0 for r in rates), (name, rates)
        assert not [e for e in by_source[name] if e["type"] == "fall"]


def test_demo_events_match_the_samples_truth(tmp_path, capsys):
    """``ambisense agent --demo`` on the bundled samples: the events agent/samples/README.md
    promises, checked against each sample's ``.truth.json``."""
    from agent.cli import main
    from sensing.simulate.csi_breathing import window_truth_bpm

    out = tmp_path / "events.jsonl"
    rc = main(["agent", "--demo", "--events-file", str(out), "--status-interval", "0"])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    events = [json.loads(x) for x in out.read_text().splitlines()]
    by_source: dict[str, list[dict]] = {}
    for e in events:
        by_source.setdefault(e["source"], []).append(e)
    samples = {p.name for p in SAMPLES.iterdir()
               if p.is_file() and p.name != "README.md" and not p.name.endswith(".truth.json")
               and not p.name.endswith(".sigmf-data")}  # a SigMF pair is one recording
    assert set(by_source) == samples == {
        "esp32_breathing_15bpm.csv", "eeg_seizure_demo.edf", "acoustic_blink_demo.sigmf-meta",
        "lora_packets_sf7.sigmf-meta", "lora_packet.sf7.bw125k.fs250k.cf32",
        "lora_module_log.txt", "uwb_breathing_15bpm.npz", "radar_breathing_16bpm.npz"}
    _check_new_modalities(by_source)

    # WiFi: one person breathing at ~15/min, still, present all along (no motion, no absence)
    name = "esp32_breathing_15bpm.csv"
    truth, evs = _truth(name), by_source[name]
    assert truth["motion_intervals_s"] == [] and truth["absence_intervals_s"] == []
    assert Counter(e["type"] for e in evs) == {"breathing_rate": 6, "presence": 1}
    rates = [e for e in evs if e["type"] == "breathing_rate"]
    assert [e["offset_s"] for e in rates] == [30.0, 35.0, 40.0, 45.0, 50.0, 55.0]
    for e in rates:
        ref = window_truth_bpm(truth, e["offset_s"], e["window_s"])
        assert abs(e["value"] - ref) < 0.3, (e["offset_s"], e["value"], ref)
        assert e["unit"] == "bpm" and e["window_s"] == 30.0 and 0.5 < e["confidence"] <= 1.0
    for e in evs:
        if e["type"] == "presence":
            assert e["value"] == 1 and e["state"] == "still" and e["evidence"] == "breathing"
            assert abs(e["breathing_bpm"] - truth["rate_bpm"]) < 0.5

    # EEG: both seizures found, each alerted within 10 s of its onset, no false alarm
    name = "eeg_seizure_demo.edf"
    truth, evs = _truth(name), by_source[name]
    assert Counter(e["type"] for e in evs) == {"seizure_alert": 2, "seizure": 2}
    seizures = [e for e in evs if e["type"] == "seizure"]
    alerts = [e for e in evs if e["type"] == "seizure_alert"]
    assert len(truth["seizures"]) == 2
    for sz, alert, ref in zip(seizures, alerts, truth["seizures"], strict=True):
        onset, dur = ref["onset_s"], ref["duration_s"]
        assert abs(sz["offset_s"] - onset) < 5.0, (sz["offset_s"], onset)
        assert sz["unit"] == "s" and sz["value"] == sz["duration_s"]
        assert 0.5 * dur < sz["value"] and sz["offset_s"] + sz["value"] <= onset + dur + 10.0
        assert alert["offset_s"] == sz["offset_s"] and alert["value"] is None
        assert alert["detected_at_s"] - onset <= 10.0
        # the alert comes at the first confirming window (its probability is over the
        # detector's threshold, 0.5); the seizure event carries the peak probability
        assert sz["confidence"] > 0.9 and alert["confidence"] > 0.5
