"""The content rule: probe → sonar; ultrasonic tone → CW; otherwise breath sounds."""

from __future__ import annotations

import numpy as np
import pytest

from sensing.acoustic.content import (
    ContentGate,
    ContentKind,
    classify,
    classify_frames,
    detect_tones,
)
from sensing.acoustic.probe import probe_from_json, probe_to_json
from sensing.formats import open_capture
from sensing.frames import Frames
from tests.conftest import SHARED_DATA


def frames(x, fs, probe=None, t0=0):
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        x = x[:, None]
    return Frames(x, (t0 + np.arange(len(x))) / fs, fs, "audio", "t",
                  meta={"format": "wav", "probe": probe})


def tone(fs, f, s=3.0, amp=0.3, noise=1e-3, seed=0):
    t = np.arange(int(fs * s)) / fs
    rng = np.random.default_rng(seed)
    return amp * np.cos(2 * np.pi * f * t) + noise * rng.standard_normal(len(t))


def test_probe_decides():
    fm = probe_to_json(probe_from_json({"type": "fmcw", "f0_hz": 18000, "f1_hz": 22000,
                                        "chirp_s": 0.01, "period_s": 0.01}))
    cw = probe_to_json(probe_from_json({"type": "cw", "tones_hz": [18500, 19500]}))
    noise = np.random.default_rng(1).standard_normal(48000) * 0.01
    assert classify(frames(noise, 48000, fm)) is ContentKind.FMCW_SONAR
    d = classify_frames(frames(noise, 48000, cw))
    assert d.kind is ContentKind.CW_SONAR and d.tones_hz == (18500.0, 19500.0)
    assert d.kind.is_cw and not ContentKind.FMCW_SONAR.is_cw


def test_ultrasonic_tone_without_probe_is_cw():
    d = classify_frames(frames(tone(48000, 20000) + tone(48000, 500, amp=0.2, seed=3), 48000))
    assert d.kind is ContentKind.CW_TONE
    assert d.tones_hz[0] == pytest.approx(20000, abs=3) and d.prominence_db[0] > 40
    two = tone(44100, 18000, amp=0.2) + tone(44100, 21000, amp=0.1, seed=5)
    assert sorted(round(f) for f, _ in detect_tones(two[:, None], 44100)) == [18000, 21000]


@pytest.mark.parametrize("case", ["quiet 48k", "tone below 17 kHz", "tone only in the first half",
                                  "4.5 kHz stethoscope", "16 kHz mic with a 7 kHz whistle",
                                  "weak tone"])
def test_everything_else_is_breath_sounds(case):
    rng = np.random.default_rng(7)
    if case == "quiet 48k":
        x, fs = rng.standard_normal(96000) * 0.01, 48000
    elif case == "tone below 17 kHz":
        x, fs = tone(48000, 15000), 48000
    elif case == "tone only in the first half":
        x, fs = tone(48000, 20000), 48000
        x[len(x) // 3:] = rng.standard_normal(len(x) - len(x) // 3) * 1e-3
    elif case == "4.5 kHz stethoscope":
        x, fs = rng.standard_normal(9000) * 0.1, 4500
    elif case == "16 kHz mic with a 7 kHz whistle":
        x, fs = tone(16000, 7000), 16000
    else:
        x, fs = tone(48000, 20000, amp=1e-3, noise=3e-3), 48000
    d = classify_frames(frames(x, fs))
    assert d.kind is ContentKind.BREATH_SOUNDS, (case, d)
    assert d.reason


def test_gate_holds_then_releases_in_order_or_drops():
    fs = 48000
    x = tone(fs, 20000, s=3.0)
    chunks = [frames(x[i:i + 4000], fs, t0=i) for i in range(0, len(x), 4000)]
    mine = ContentGate({ContentKind.CW_TONE})
    other = ContentGate({ContentKind.BREATH_SOUNDS})
    got, dropped = [], []
    for i, c in enumerate(chunks):
        out = mine.push(c)
        got += out
        dropped += other.push(c)
        if i < 23:  # 24 chunks of 4000 samples = 2 s: held until then
            assert out == []
    assert mine.decision.kind is ContentKind.CW_TONE and mine.accepted
    assert [c.start_s for c in got] == [c.start_s for c in chunks]
    assert dropped == [] and other.accepted is False
    assert other.quiet_reason("breath sounds").startswith("not breath sounds: no probe; a "
                                                          "stationary tone at 20000 Hz")
    assert mine.quiet_reason("x") is None


def test_gate_decides_a_short_stream_at_flush():
    gate = ContentGate({ContentKind.BREATH_SOUNDS})
    x = np.random.default_rng(0).standard_normal(2000) * 0.1
    assert gate.push(frames(x, 4500)) == []
    out = gate.flush()
    assert len(out) == 1 and gate.decision.kind is ContentKind.BREATH_SOUNDS
    assert ContentGate({ContentKind.BREATH_SOUNDS}).quiet_reason("x") == "no audio"


def test_real_recordings():
    root = SHARED_DATA / "acoustic"
    if not root.exists():
        pytest.skip("../shared/data/acoustic is absent")
    for path in sorted(root.rglob("*.wav")):
        first = next(iter(open_capture(path, chunk_size=96000).chunks()))
        d = classify_frames(first)
        if "karolus" in str(path):  # phone playing 20 kHz, no probe declared
            assert d.kind is ContentKind.CW_TONE, path
            assert d.tones_hz[0] == pytest.approx(20000, abs=5) and d.prominence_db[0] > 50
        else:  # stethoscopes at 4.5 and 8 kHz
            assert d.kind is ContentKind.BREATH_SOUNDS, path
