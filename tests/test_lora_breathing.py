"""LoRa breathing through a wall: simulate two-antenna SigMF recordings, replay them through
the real CLI, compare with the simulator's truth."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sensing.frames import Frames
from sensing.lora.breathing import LoraBreathingEstimator, LoraBreathingParams, circle_fit
from sensing.lora.chirp_amplitude import ChirpAmplitudeExtractor, upchirp
from sensing.lora.simulators.breathing import (
    BreathingSimParams,
    simulate_breathing,
    simulate_iq,
    truth_rate,
)


def replay(*args: str) -> tuple[list[dict], str]:
    """``ambisense replay ARGS --jsonl`` (captures first, then options)."""
    res = subprocess.run([sys.executable, "-m", "agent.cli", "replay", *args, "--jsonl",
                          "--no-progress"], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    return [json.loads(x) for x in res.stdout.splitlines() if x.strip()], res.stderr


def test_extractor_ratio_cancels_common_offsets_and_ignores_chunking():
    rng = np.random.default_rng(1)
    fs, n = 250e3, 256
    c = upchirp(7, 125e3, fs)
    x = np.concatenate([np.zeros(300), np.tile(c, 12), np.zeros(500)]).astype(complex)
    t = np.arange(len(x)) / fs
    x *= np.exp(1j * (2 * np.pi * 4321.0 * t + 0.7 + np.cumsum(rng.normal(0, 1e-3, len(x)))))
    h = np.array([0.8 * np.exp(0.3j), 0.2 * np.exp(-1.1j)])
    y = (x[:, None] * h[None, :]).astype(np.complex64)
    whole = ChirpAmplitudeExtractor(7, 125e3, fs).push(y)
    ex = ChirpAmplitudeExtractor(7, 125e3, fs)
    parts = [ex.push(y[i:i + 333]) for i in range(0, len(y), 333)]
    times = np.concatenate([p.times_s for p in parts])
    ratio = np.concatenate([p.ratio() for p in parts])
    assert len(whole) >= 11 and np.array_equal(times, whole.times_s)
    np.testing.assert_allclose(ratio, whole.ratio(), rtol=1e-5)
    np.testing.assert_allclose(whole.ratio(), h[1] / h[0], rtol=1e-3)
    assert len(whole.times_s) == len(set(np.round(whole.times_s * fs).astype(int) // n))


def test_circle_fit():
    th = np.linspace(0.2, 1.4, 50)
    z = 2 + 1j + 0.5 * np.exp(1j * th)
    c, r, rms = circle_fit(z)
    assert abs(c - (2 + 1j)) < 1e-9 and r == pytest.approx(0.5) and rms < 1e-9


def test_breathing_at_20_m_through_a_wall_via_the_cli(tmp_path):
    out = tmp_path / "through_wall"
    truth = simulate_breathing(out, duration_s=40, seed=11, movers=0, rate_bpm=17.0,
                               distance_m=20, walls=1)
    events, _ = replay(truth["path"], "--pipeline", "lora_breathing")
    rates = [e for e in events if e["type"] == "breathing_rate"]
    assert len(rates) >= 3, events
    errs = [abs(e["value"] - truth_rate(truth, e["offset_s"] - 30, e["offset_s"])) for e in rates]
    assert np.mean(errs) <= 1.0, errs
    for e in rates:
        assert e["unit"] == "bpm" and e["link"].endswith("ch1/ch0") and 0 < e["quality"] <= 1
    pres = [e for e in events if e["type"] == "presence"]
    assert pres and pres[-1]["value"] == 1 and pres[-1]["state"] == "still"


def test_empty_room_a_walker_elsewhere_and_one_channel_in_one_run(tmp_path):
    from sensing.lora.formats.sigmf_iq import write_sigmf_iq

    empty = simulate_breathing(tmp_path / "empty", duration_s=35, seed=12, present=False,
                               movers=0)
    walker = simulate_breathing(tmp_path / "walker", duration_s=32, seed=13, present=False,
                                movers=1, mover_active=1.0, mover_distance_m=15)
    rng = np.random.default_rng(0)
    iq = (rng.standard_normal((20000, 1)) + 1j * rng.standard_normal((20000, 1))) * 0.01
    one, _ = write_sigmf_iq(tmp_path / "one", iq, 125000.0, lora={"sf": 7, "bw_hz": 125000})
    events, err = replay(empty["path"], walker["path"], one, "--pipeline", "lora_breathing")
    by = {name: [e for e in events if e["source"] == name] for name in ("empty", "walker")}
    assert not [e for e in by["empty"] if e["type"] == "breathing_rate"]
    assert [e["value"] for e in by["empty"] if e["type"] == "presence"] == [0]
    pres = [e for e in by["walker"] if e["type"] == "presence"]
    assert pres and pres[0]["value"] == 1 and pres[0]["state"] == "moving"
    assert not [e for e in events if e["source"] == "one"]
    assert "2 channels" in err


def test_displacement_close_without_walls():
    p = BreathingSimParams(duration_s=36, seed=4, movers=0, distance_m=4, walls=0, depth_mm=10)
    y, truth = simulate_iq(p)
    est = LoraBreathingEstimator(LoraBreathingParams(), 7, 125e3, 125e3)
    wins = []
    for i in range(0, len(y), 50000):
        d = y[i:i + 50000]
        wins += est.push(Frames(d, (i + np.arange(len(d))) / 125e3, 125e3, "lora_iq", "x"))
    disp = [w.displacement_mm for w in wins if w.displacement_mm is not None]
    assert disp, wins
    assert np.median(disp) == pytest.approx(truth["depth_mm_p2p"], rel=0.35)
