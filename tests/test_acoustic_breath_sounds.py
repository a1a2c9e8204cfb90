"""Breathing rate from breath sounds: inhale + exhale doubling resolved; real RRuJO MAE."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import signal

from sensing.acoustic.breath_sounds import BreathSoundsEstimator
from sensing.acoustic.pipelines.breath_sounds import AcousticBreathSoundsPipeline
from sensing.formats import open_capture
from sensing.frames import Frames
from tests.conftest import REPO, SHARED_DATA

RRUJO = SHARED_DATA / "acoustic" / "rrujo-breath-sounds"


def breath_audio(rate_bpm, *, fs=4000, seconds=70.0, bursts=((0.0, 0.35, 1.0), (0.4, 0.45, 0.7)),
                 heart_bpm=72.0, noise=0.02, jitter=0.03, seed=0):
    """Synthetic breath sounds: per breath, noise bursts (start, duration as fractions of
    the period, amplitude) in 200–900 Hz, heart sounds (two 60 ms low thumps per beat,
    loud) and background noise."""
    rng = np.random.default_rng(seed)
    n = int(fs * seconds)
    t = np.arange(n) / fs
    env = np.zeros(n)
    start = rng.uniform(0, 60 / rate_bpm)
    while start < seconds:
        period = 60 / rate_bpm * (1 + jitter * rng.standard_normal())
        for a, d, amp in bursts:
            i0, i1 = int((start + a * period) * fs), int((start + (a + d) * period) * fs)
            if i0 < n and i1 > i0:
                seg = np.hanning(i1 - i0) ** 0.5 * amp
                env[i0:min(i1, n)] += seg[: min(i1, n) - i0]
        start += period
    sos = signal.butter(4, [200, 900], "bandpass", fs=fs, output="sos")
    breath = signal.sosfilt(sos, rng.standard_normal(n)) * env
    heart = np.zeros(n)
    for beat in np.arange(0.3, seconds, 60 / heart_bpm):
        for dt, amp in ((0.0, 1.0), (0.3, 0.7)):
            i = int((beat + dt) * fs)
            m = min(int(0.06 * fs), n - i)
            if m > 0:
                heart[i:i + m] += amp * np.sin(2 * np.pi * 60 * t[:m]) * np.hanning(m)
    x = 0.3 * breath / np.std(breath) + 0.5 * heart + noise * rng.standard_normal(n)
    return x / np.abs(x).max() * 0.8


def run(x, fs, chunk=4096, **opts):
    est = BreathSoundsEstimator(**opts)
    out = []
    for i in range(0, len(x), chunk):
        out += est.push(Frames(x[i:i + chunk, None].astype(np.float32),
                               (i + np.arange(len(x[i:i + chunk]))) / fs, fs, "audio", "s"))
    return out + est.flush(), est


@pytest.mark.parametrize("rate, bursts, doubled", [
    (15, ((0.0, 0.35, 1.0), (0.42, 0.45, 0.7)), True),   # louder inhale
    (12, ((0.0, 0.30, 1.0), (0.35, 0.55, 1.0)), True),   # same loudness, shorter inhale
    (20, ((0.3, 0.5, 1.0),), False),                     # one burst per breath
    (8, ((0.0, 0.3, 0.8), (0.35, 0.45, 1.0)), True),
])
def test_rate_with_inhale_and_exhale_bursts(rate, bursts, doubled):
    fs = 4000
    x = breath_audio(rate, fs=fs, bursts=bursts, seed=rate)
    dets, _ = run(x, fs)
    assert len(dets) >= 6
    vals = np.array([d.value for d in dets])
    assert np.all(np.abs(vals - rate) <= 1.0), vals
    assert all(d.type == "breathing_rate" and d.unit == "bpm" and d.extra["window_s"] == 30
               for d in dets)
    if doubled:  # the envelope's strongest line was the burst rate, twice the breath rate
        assert any(d.extra["bursts_per_breath"] == 2 for d in dets)
    assert all(0 < d.confidence <= 1 for d in dets)


def test_noise_alone_gives_nothing_and_says_why():
    fs = 8000
    x = np.random.default_rng(3).standard_normal(fs * 90) * 0.1
    dets, est = run(x, fs)
    assert dets == []
    assert est.quiet_reason().startswith("no breathing rhythm with confidence >= 0.1 in 13 ")
    short, est = run(x[: fs * 10], fs)
    assert short == [] and est.quiet_reason() == "capture (10.0 s) shorter than the 30 s window"


@pytest.mark.parametrize("fs", [4500, 48000])  # 48 kHz: decimated before the bands
def test_chunk_boundaries_do_not_change_the_result(fs):
    x = breath_audio(10, fs=fs, seed=4)
    a, _ = run(x, fs, chunk=4096)
    b, _ = run(x, fs, chunk=777)
    assert [(d.offset_s, d.value) for d in a] == [(d.offset_s, d.value) for d in b]
    assert a and all(abs(d.value - 10) <= 1 for d in a)


def test_options_are_validated():
    with pytest.raises(ValueError, match="max_bpm"):
        BreathSoundsEstimator(min_bpm=20, max_bpm=10)
    with pytest.raises(ValueError, match="window_s"):
        AcousticBreathSoundsPipeline.check_options({"window_s": 2})


def rrujo_rates():
    truth = json.loads((RRUJO / "truth.json").read_text())
    rows = []
    for name, t in sorted(truth.items()):
        pipe = AcousticBreathSoundsPipeline()
        dets = []
        for fr in open_capture(RRUJO / name).chunks():
            dets += pipe.push(fr)
        dets += pipe.flush()
        est = float(np.median([d.value for d in dets])) if dets else float("nan")
        rows.append((t["device"], t["rate_bpm"], est))
    return rows


def test_rrujo_mae_within_1_bpm():
    if not RRUJO.exists():
        pytest.skip("../shared/data/acoustic/rrujo-breath-sounds is absent")
    rows = rrujo_rates()
    assert len(rows) == 30
    err = np.array([abs(e - r) for _, r, e in rows])
    assert np.isfinite(err).all(), rows
    assert err.mean() <= 1.0, rows
    for dev in ("RRinervasO", "ThinklabsO"):
        assert np.mean([abs(e - r) for d, r, e in rows if d == dev]) <= 1.0
    # no estimate is an octave off (the doubling the issue describes)
    assert not any(abs(e - 2 * r) < 1 or abs(e - r / 2) < 1 for _, r, e in rows), rows


def test_replay_of_a_real_recording_gives_breathing_and_no_cw_motion():
    if not RRUJO.exists():
        pytest.skip("../shared/data/acoustic/rrujo-breath-sounds is absent")
    path = RRUJO / "ThinklabsO_12bpm_2023022016102.wav"
    res = subprocess.run([sys.executable, "-m", "agent.cli", "replay", str(path), "--jsonl",
                          "--no-progress"], capture_output=True, text=True, cwd=REPO,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events and {e["detector"] for e in events} == {"acoustic_breath_sounds"}
    assert all(abs(e["value"] - 12) <= 1 for e in events)
