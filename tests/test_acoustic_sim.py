"""Acoustic sonar simulators: files written (WAV + sidecar, SigMF with annotations), truth,
determinism, and end-to-end replay through the real CLI scored against the truth."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sensing.acoustic.simulators.scenes import (
    BlinkSimParams,
    BreathingSimParams,
    CabinSimParams,
    generate,
    simulate_acoustic_blink,
    simulate_acoustic_cabin,
    simulate_acoustic_sonar,
)
from sensing.acoustic.simulators.scoring import (
    score_blinks,
    score_breathing,
    window_truth_bpm,
)
from sensing.formats import open_capture
from sensing.simulate import SIMULATORS, load_truth


def _replay(path, *sets: str) -> list[dict]:
    cmd = [sys.executable, "-m", "agent.cli", "replay", str(path), "--jsonl", "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def breathing_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("sonar") / "breath.wav"
    truth = simulate_acoustic_sonar(path, duration_s=26.0, distance_m=0.7, rate_bpm=16.0,
                                    clock_ppm=-60.0, seed=3)
    return path, truth


@pytest.fixture(scope="module")
def blink_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("blink") / "blink.wav"
    truth = simulate_acoustic_blink(path, duration_s=24.0, distance_m=0.45, seed=7,
                                    blink_rate_per_min=20.0)
    return path, truth


def test_simulators_registered():
    for name in ("acoustic-sonar", "acoustic-blink", "acoustic-cabin"):
        assert name in SIMULATORS.names()


def test_wav_sidecar_and_truth(breathing_wav):
    path, truth = breathing_wav
    side = json.loads(open(str(path) + ".json").read())
    probe = side["ambisense:probe"]
    assert probe["type"] == "fmcw" and probe["f0_hz"] == 18000 and probe["f1_hz"] == 22000
    assert probe["chirp_s"] == 0.01 and probe["period_s"] == 0.02
    assert load_truth(path) == json.loads(json.dumps(truth))
    chunks = list(open_capture(path).chunks())
    n = sum(len(c) for c in chunks)
    assert n == 26 * 48000 and chunks[0].fs_hz == 48000
    assert chunks[0].meta["probe"] == probe
    x = np.concatenate([c.data[:, 0] for c in chunks])
    assert 0.05 < np.abs(x).max() < 1.0  # leakage dominates, no clipping
    # the probe band holds the leakage: far more power at 18-22 kHz than at 10-14 kHz
    spec = np.abs(np.fft.rfft(x[:48000])) ** 2
    f = np.fft.rfftfreq(48000, 1 / 48000)
    band = spec[(f > 18500) & (f < 21500)].mean()
    low = spec[(f > 10000) & (f < 14000)].mean()
    assert 10 * np.log10(band / low) > 40
    assert truth["breath_onsets_s"] and truth["clock_ppm"] == -60.0


def test_sigmf_with_blink_annotations(tmp_path):
    truth = simulate_acoustic_blink(tmp_path / "face", duration_s=6.0, file_format="sigmf",
                                    subtype="float32", seed=2, blink_rate_per_min=30.0)
    meta = json.loads((tmp_path / "face.sigmf-meta").read_text())
    assert meta["global"]["ambisense:probe"]["type"] == "fmcw"
    labels = [a.get("core:label") for a in meta["annotations"]]
    assert labels.count("blink") == len(truth["blinks"]) > 0
    chunks = list(open_capture(tmp_path / "face.sigmf-meta").chunks())
    assert sum(len(c) for c in chunks) == 6 * 48000
    assert chunks[0].meta["probe"]["f0_hz"] == 18000


def test_same_seed_same_samples():
    a = np.concatenate([f.data for f in generate("cabin", CabinSimParams(duration_s=1.0))[1]])
    b = np.concatenate([f.data for f in generate("cabin", CabinSimParams(duration_s=1.0))[1]])
    c = np.concatenate([f.data for f in generate("cabin", CabinSimParams(duration_s=1.0,
                                                                        seed=1))[1]])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cw_probe_is_simulated(tmp_path):
    simulate_acoustic_cabin(tmp_path / "cw.wav", duration_s=2.0, probe_type="cw",
                            tones_hz="19000,20500", occupant=False)
    side = json.loads((tmp_path / "cw.wav.json").read_text())["ambisense:probe"]
    assert side["type"] == "cw" and side["tones_hz"] == [19000.0, 20500.0]
    x = np.concatenate([c.data[:, 0] for c in open_capture(tmp_path / "cw.wav").chunks()])
    spec = np.abs(np.fft.rfft(x[-48000:]))
    f = np.fft.rfftfreq(48000, 1 / 48000)
    top = sorted(f[np.argsort(spec)[-2:]])
    # the speaker's clock runs 40 ppm fast: 19000 Hz is heard at 19000.76 Hz
    np.testing.assert_allclose(top, [19000.76, 20500.82], atol=1.0)


def test_window_truth_counts_breaths():
    truth = {"rate_bpm": 15, "breath_onsets_s": [0, 4, 8, 12, 16], "duration_s": 16}
    assert window_truth_bpm(truth, 16.0, 8.0) == pytest.approx(15.0)
    assert np.isnan(window_truth_bpm({"rate_bpm": None}, 10, 5))


def test_replay_breathing_cli(breathing_wav):
    path, truth = breathing_wav
    events = _replay(path, "acoustic_sonar_breathing.window_s=20",
                     "acoustic_sonar_breathing.hop_s=2")
    rates = [e for e in events if e["type"] == "breathing_rate"
             and e["detector"] == "acoustic_sonar_breathing"]
    assert len(rates) >= 2  # of the windows ending at 20, 22 and 24 s
    sc = score_breathing(rates, truth, window_s=20.0, hop_s=2.0)
    assert sc["mae"] <= 0.5, sc
    assert all(abs(e["range_m"] - 0.7) < 0.1 for e in rates)
    assert all(abs(e["clock_ppm"] - (-60.0)) < 1.0 for e in rates)
    assert all(3.0 < e["displacement_pp_mm"] < 20.0 for e in rates)


def test_replay_blink_cli(blink_wav):
    path, truth = blink_wav
    events = _replay(path)
    blinks = [e for e in events if e["type"] == "blink"]
    sc = score_blinks(blinks, truth)
    assert sc["n_true"] >= 5
    assert sc["precision"] >= 0.9 and sc["recall"] >= 0.85, sc
    assert sc["onset_mae_s"] < 0.1
    assert all(0.05 <= e["duration_s"] <= 1.2 for e in blinks)
    rates = [e for e in events if e["type"] == "blink_rate"]
    assert len(rates) == 1 and rates[0]["unit"] == "1/min"  # a short capture: one rate
    assert abs(rates[0]["value"] - len(blinks) * 60 / rates[0]["window_s"]) < 0.1
    assert [e["value"] for e in events if e["type"] == "drowsiness"] == [0]


def test_replay_empty_room_says_why(tmp_path):
    path = tmp_path / "empty.wav"
    simulate_acoustic_sonar(path, duration_s=12.0, empty=True)
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "replay", str(path), "--jsonl",
                           "--no-progress", "--pipeline", "acoustic_sonar_breathing"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
    assert "shorter than the 30 s window" in proc.stderr


def test_params_validated():
    with pytest.raises(ValueError):
        BreathingSimParams(distance_m=-1)
    with pytest.raises(ValueError):
        CabinSimParams(present_s="20-10")
    assert BlinkSimParams().distance_m == 0.4
