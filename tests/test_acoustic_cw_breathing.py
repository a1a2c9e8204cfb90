"""CW-tone sonar breathing (``acoustic_cw_breathing``): rate against the simulator's truth
through a real WAV + probe sidecar, chunking invariance, silence on an empty room, and the
content gate (nothing on FMCW recordings)."""

from __future__ import annotations

import numpy as np
import pytest

from sensing.acoustic.cw_breathing import CwBreathing, derotate, principal_projection
from sensing.acoustic.pipelines.cw_breathing import AcousticCwBreathingPipeline
from sensing.acoustic.simulators.scenes import BreathingSimParams, generate
from sensing.acoustic.simulators.scoring import window_truth_bpm
from sensing.formats import open_capture
from sensing.frames import Frames
from sensing.simulate import SIMULATORS


def replay(pipe, path):
    out = []
    for fr in open_capture(path).chunks():
        out += pipe.push(fr)
    return out + pipe.flush()


@pytest.fixture(scope="module")
def cw_capture(tmp_path_factory):
    out = tmp_path_factory.mktemp("cw") / "cw.wav"
    truth = SIMULATORS.get("acoustic-sonar")(
        out, BreathingSimParams(probe_type="cw", duration_s=45.0, rate_bpm=21.0,
                                distance_m=0.8, clock_ppm=-60.0, seed=11))
    return out, truth


def test_rate_of_a_breathing_person_from_a_cw_wav(cw_capture):
    path, truth = cw_capture
    pipe = AcousticCwBreathingPipeline()
    dets = replay(pipe, path)
    assert len(dets) >= 3  # windows ending at 30, 35, 40, 45 s
    for d in dets:
        ref = window_truth_bpm(truth, d.offset_s, 30.0)
        assert abs(d.value - ref) < 1.0, (d.value, ref)
        assert d.type == "breathing_rate" and d.unit == "bpm"
        assert d.extra["method"] == "cw" and d.extra["tone_hz"] == 20000.0
        # the clock offset (−60 ppm of 20 kHz = −1.2 Hz) is what the rotation fit found
        assert abs(abs(d.extra["carrier_offset_hz"]) - 1.2) < 0.1
        assert 2.0 < d.extra["displacement_pp_mm"] < 30.0
    assert pipe.quiet_reason() is None


def test_chunk_size_does_not_change_the_estimates():
    p = BreathingSimParams(probe_type="cw", duration_s=40.0, rate_bpm=14.0, seed=3)
    truth, chunks = generate("sonar", p)
    frames = list(chunks)
    whole = np.concatenate([f.data for f in frames])
    fs = frames[0].fs_hz

    def run(size):
        est = CwBreathing(tones_hz=truth["probe"]["tones_hz"])
        out = []
        for i in range(0, len(whole), size):
            x = whole[i:i + size]
            out += est.push(Frames(x, (i + np.arange(len(x))) / fs, fs, "audio", "s"))
        return [(d.offset_s, d.value) for d in out + est.flush()]

    a, b = run(4800), run(17_001)
    assert a and a == b


def test_empty_room_gives_no_rate():
    p = BreathingSimParams(probe_type="cw", duration_s=45.0, empty=True, seed=21)
    truth, chunks = generate("sonar", p)
    est = CwBreathing(tones_hz=truth["probe"]["tones_hz"])
    assert [d for fr in chunks for d in est.push(fr)] + est.flush() == []
    assert "no breathing" in est.quiet_reason()


def test_fmcw_recordings_are_left_to_the_fmcw_pipeline(tmp_path):
    out = tmp_path / "fmcw.wav"
    SIMULATORS.get("acoustic-sonar")(out, BreathingSimParams(duration_s=8.0, seed=1))
    pipe = AcousticCwBreathingPipeline()
    assert replay(pipe, out) == []
    assert "CW" in pipe.quiet_reason()


def test_derotation_and_projection_recover_a_rotating_arc():
    t = np.arange(0, 30, 0.1)
    lam = 343 / 20000
    d_mm = 0.5 * np.sin(2 * np.pi * 0.3 * t)  # 1 mm peak to peak at 18 bpm: a short arc
    echo = 0.05 * np.exp(-1j * 4 * np.pi * d_mm * 1e-3 / lam)
    z = (1.0 + echo) * np.exp(2j * np.pi * 0.8 * t)  # static + echo, 0.8 Hz clock rotation
    zr, off = derotate(z, t)
    assert off == pytest.approx(0.8, abs=0.01)
    proj = principal_projection(zr, lam)
    assert abs(np.corrcoef(proj, d_mm)[0, 1]) > 0.99
    assert np.ptp(proj) == pytest.approx(1.0, rel=0.2)  # scaled to mm
