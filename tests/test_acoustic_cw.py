"""CW demodulation, Doppler, motion vs stillness; real phone recordings (karolus-ultrasense)
replay cleanly and show motion and walking Doppler."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sensing.acoustic.cw import (
    CwDemodulator,
    CwMotionDetector,
    DopplerSpectrogram,
    doppler_to_speed,
)
from sensing.acoustic.formats import write_wav
from sensing.acoustic.pipelines.cw_motion import AcousticCwMotionPipeline
from sensing.acoustic.probe import probe_from_json
from sensing.formats import open_capture
from sensing.frames import Frames
from tests.conftest import REPO, SHARED_DATA

KAROLUS = SHARED_DATA / "acoustic" / "karolus-ultrasense" / "audio samples"
FS = 48000


def chunks_of(x, fs=FS, size=4096):
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    for i in range(0, len(x), size):
        yield Frames(x[i:i + size], (i + np.arange(len(x[i:i + size]))) / fs, fs, "audio", "s",
                     meta={"format": "wav", "probe": None})


def scene(seconds=10.0, moving=None, fd=100.0, leak=0.3, noise=3e-4, seed=0):
    """A 20 kHz tone heard directly (leakage, ~65 dB over the noise floor per bin) plus,
    during ``moving`` (t0, t1), an echo Doppler-shifted by ``fd``."""
    t = np.arange(int(FS * seconds)) / FS
    x = leak * np.cos(2 * np.pi * 20000 * t + 0.3)
    x += noise * np.random.default_rng(seed).standard_normal(len(t))
    if moving:
        m = (t >= moving[0]) & (t < moving[1])
        ramp = np.clip(np.minimum(t - moving[0], moving[1] - t) / 0.05, 0, 1)
        x[m] += 0.003 * ramp[m] * np.cos(2 * np.pi * (20000 + fd) * t[m])
    return x


def run(det, x):
    out = []
    for fr in chunks_of(x):
        out += det.push(fr)
    return out + det.flush()


def test_demodulated_tone_has_its_amplitude_and_phase():
    t = np.arange(FS) / FS
    x = np.stack([0.25 * np.cos(2 * np.pi * 19000 * t + 0.7),
                  0.1 * np.cos(2 * np.pi * 20000 * t - 1.0)], axis=1)
    demod = CwDemodulator(FS, (19000, 20000))
    bb = demod.push_array(x)
    assert demod.out_rate_hz == 2000 and bb.iq.shape == (2000, 2, 2)
    steady = bb.iq[200:]
    np.testing.assert_allclose(np.abs(steady[:, 0, 0]), 0.25, rtol=1e-3)
    np.testing.assert_allclose(np.angle(steady[:, 0, 0]), 0.7, atol=1e-3)
    np.testing.assert_allclose(np.abs(steady[:, 1, 1]), 0.1, rtol=1e-3)
    np.testing.assert_allclose(np.angle(steady[:, 1, 1]), -1.0, atol=1e-3)
    assert np.abs(steady[:, 1, 0]).max() < 1e-3  # the other tone is filtered out
    assert np.abs(bb.dynamic[100:]).max() < 1e-3  # static: removed
    np.testing.assert_allclose(bb.times_s, np.arange(2000) * 24 / FS - demod.delay_s)
    assert 0 < demod.delay_s < 0.01


def test_chunk_boundaries_do_not_change_the_baseband():
    x = scene(1.0, moving=(0.2, 0.8))
    whole = CwDemodulator(44100 if False else FS, (20000,)).push_array(x[:, None])
    demod = CwDemodulator(FS, (20000,))
    parts, i = [], 0
    for n in (1, 999, 4096, 7, 30000, len(x)):
        parts.append(demod.push_array(x[i:i + n, None], i))
        i += n
        if i >= len(x):
            break
    iq = np.concatenate([p.iq for p in parts])
    np.testing.assert_allclose(iq, whole.iq, atol=1e-6)
    np.testing.assert_allclose(np.concatenate([p.times_s for p in parts]), whole.times_s)
    with pytest.raises(ValueError, match="a gap"):
        demod.push_array(x[:10, None], 5)


def test_doppler_spectrogram_finds_the_echo():
    x = scene(2.0, moving=(0.0, 2.0), fd=-140.0)
    demod = CwDemodulator(FS, (20000,))
    spec = DopplerSpectrogram(demod.out_rate_hz, (20000,))
    frames = []
    for fr in chunks_of(x):
        frames += spec.push(demod.push(fr))
    mid = [f for f in frames if 0.5 < f.t_s < 1.5]
    assert len(mid) > 20
    assert all(abs(f.doppler_hz + 140) <= 8 for f in mid)
    assert np.median([f.speed_m_s for f in mid]) == pytest.approx(
        doppler_to_speed(-140, 20000), abs=0.07)
    assert all(f.score_db > 20 for f in mid)
    assert doppler_to_speed(116.6, 20000) == pytest.approx(1.0, abs=1e-3)


def test_stillness_gives_no_motion():
    det = CwMotionDetector(tones_hz=(20000,))
    assert run(det, scene(30.0)) == []
    assert det.frames > 900 and det.episodes == 0
    assert abs(det.still_score_db) < 3  # leakage + noise: ≈ 0 dB


def test_a_moving_reflector_is_one_episode_with_its_speed():
    det = CwMotionDetector(tones_hz=(20000,))
    ev = run(det, scene(10.0, moving=(4.0, 6.0), fd=100.0))
    assert [e.value for e in ev] == [1, 0]
    on, off = ev
    assert on.offset_s == pytest.approx(4.0, abs=0.15)
    assert off.extra["duration_s"] == pytest.approx(2.0, abs=0.6)
    assert off.extra["speed_m_s"] == pytest.approx(doppler_to_speed(100, 20000), abs=0.05)
    assert off.extra["direction"] == "approaching"


def test_pipeline_uses_the_declared_cw_probe_and_ignores_other_content(tmp_path):
    path = tmp_path / "cw.wav"
    x = scene(8.0, moving=(3.0, 5.0), fd=-80.0, leak=0.1)  # weak: no tone detection needed
    write_wav(path, x, FS, probe=probe_from_json({"type": "cw", "tones_hz": [20000]}))
    pipe = AcousticCwMotionPipeline()
    ev = []
    for fr in open_capture(path).chunks():
        ev += pipe.push(fr)
    ev += pipe.flush()
    assert [e.value for e in ev] == [1, 0] and ev[1].extra["direction"] == "receding"
    still = AcousticCwMotionPipeline()
    for fr in chunks_of(scene(5.0)):
        assert still.push(fr) == []
    assert still.flush() == []
    assert still.quiet_reason().startswith("no motion in ")
    other = AcousticCwMotionPipeline()
    for fr in chunks_of(np.random.default_rng(0).standard_normal(FS * 3) * 0.01):
        assert other.push(fr) == []
    other.flush()
    assert other.quiet_reason().startswith("not a CW tone recording: no probe and no strong")


def karolus_files():
    if not KAROLUS.exists():
        pytest.skip("../shared/data/acoustic/karolus-ultrasense is absent")
    return sorted(KAROLUS.rglob("*.wav"))


def test_karolus_every_recording_shows_motion_and_walking_shows_walking_doppler():
    for path in karolus_files():
        pipe = AcousticCwMotionPipeline()
        ev = []
        for fr in open_capture(path).chunks():
            ev += pipe.push(fr)
        ev += pipe.flush()
        ends = [e for e in ev if e.value == 0]
        assert ends, f"{path}: no motion found"
        total = sum(e.extra["duration_s"] for e in ends)
        assert total >= 0.5 * (open_capture(path).layout().n_frames / 44100 - 0.3), path
        if "walk" in path.parent.name:
            sp = max(ends, key=lambda e: e.extra["duration_s"]).extra
            assert 0.15 <= abs(sp["speed_m_s"]) <= 1.5, (path, sp)
            assert sp["max_speed_m_s"] >= 0.8, (path, sp)
            if "away" in path.parent.name:  # the dominant reflector recedes
                assert sp["speed_m_s"] < 0 and sp["direction"] != "approaching", (path, sp)


def test_every_real_wav_replays_cleanly():
    """Every real WAV of the shared acoustic data through the real CLI, in one run."""
    root = SHARED_DATA / "acoustic"
    if not root.exists():
        pytest.skip("../shared/data/acoustic is absent")
    wavs = sorted(str(p) for p in root.rglob("*.wav"))
    res = subprocess.run([sys.executable, "-m", "agent.cli", "replay", *wavs, "--jsonl",
                          "--no-progress"], capture_output=True, text=True, cwd=REPO,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and "rejects, " not in res.stderr.replace(
        " 0 rejects, ", "")
    events = [json.loads(line) for line in res.stdout.splitlines()]
    by_source: dict[str, set[str]] = {}
    for e in events:
        by_source.setdefault(e["source"], set()).add(e["detector"])
    for w in wavs:
        name = w.rsplit("/", 1)[1]
        want = "acoustic_cw_motion" if "karolus" in w else "acoustic_breath_sounds"
        assert want in by_source.get(name, set()), (name, by_source.get(name))


def test_a_tone_off_the_demodulation_frequency_is_tracked_not_motion():
    """A detected tone 1.5 Hz off (or a 75 ppm clock offset): the carrier tracker removes
    the rotation of the static vector, so stillness stays still."""
    t = np.arange(FS * 20) / FS
    x = 0.3 * np.cos(2 * np.pi * 20001.5 * t) + 3e-4 * np.random.default_rng(2).standard_normal(
        len(t))
    det = CwMotionDetector(tones_hz=(20000,))
    assert run(det, x) == []
    assert det.demod.carrier_offset_hz[0] == pytest.approx(1.5, abs=0.05)


@pytest.mark.parametrize("empty", [True, False])
def test_a_simulated_still_scene_starting_with_the_tone_raises_no_motion(empty):
    """The tone starts with the recording (the room's echoes build up over tens of ms, a
    40 ppm clock offset turns it by 0.8 Hz): the carrier-offset tracker must start right,
    or its convergence reads as motion in the first seconds."""
    from sensing.acoustic.simulators.scenes import BreathingSimParams, generate

    truth, chunks = generate("sonar", BreathingSimParams(probe_type="cw", duration_s=6.0,
                                                         empty=empty, clock_ppm=40.0,
                                                         seed=5))
    det = CwMotionDetector(tones_hz=truth["probe"]["tones_hz"])
    events = [e for fr in chunks for e in det.push(fr)] + det.flush()
    assert events == [] and det.frames > 150
    assert abs(det.demod.carrier_offset_hz[0] - 0.8) < 0.01
