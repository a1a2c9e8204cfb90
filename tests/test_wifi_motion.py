"""Presence/motion detector: real ESPectre captures, calibration, streaming, pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent.pipelines import PIPELINES
from agent.runner import run_stream
from sensing.formats import open_capture
from sensing.frames import Frames
from sensing.wifi.motion import (
    DEFAULT_THRESHOLD,
    MotionCalibration,
    MotionDetector,
    MotionScorer,
    calibrate,
)
from tests.conftest import shared_path

ESP = ("csi", "espectre")
TEST_FILE = "test_c3_64sc_20260329_130804.npz"
PAIRS = [
    ("baseline_esp32_64sc_20260310_232100.npz", "movement_esp32_64sc_20260310_232137.npz"),
    ("baseline_c6_64sc_20260310_230414.npz", "movement_c6_64sc_20260310_230434.npz"),
]


def _states(path, **kw):
    det = MotionDetector(**kw)
    return [s for fr in open_capture(path) for s in det.update(fr)]


def _synthetic(moving: bool, seconds: float = 12.0, fs: float = 100.0, seed: int = 0,
               chunk: int = 64):
    """Static multipath + optional moving reflector (1 m/s radial), complex noise, int8-ish."""
    rng = np.random.default_rng(seed)
    k = np.arange(-26, 27)
    f = 2.437e9 + k * 312.5e3
    n = int(seconds * fs)
    t = np.arange(n) / fs
    delays = np.array([10e-9, 25e-9, 60e-9])
    gains = np.array([30.0, 12.0, 6.0])
    h = (gains[None, :, None] * np.exp(-2j * np.pi * f[None, None, :] * delays[None, :, None])
         ).sum(1).repeat(n, 0)
    if moving:
        path_m = 4.0 + 1.0 * np.sin(2 * np.pi * 0.3 * t) * 2  # m, person walking to and fro
        h = h + 8.0 * np.exp(-2j * np.pi * f[None, :] * path_m[:, None] / 3e8)
    h = h * rng.uniform(0.8, 1.25, size=(n, 1))  # AGC steps
    h = h + rng.normal(0, 0.7, h.shape) + 1j * rng.normal(0, 0.7, h.shape)
    h = np.round(h.real) + 1j * np.round(h.imag)
    for s in range(0, n, chunk):
        yield Frames(h[s:s + chunk, :, None, None].astype(np.complex64), t[s:s + chunk], fs,
                     "wifi_csi", "synthetic", subcarriers=k)


def test_test_file_switches_within_few_seconds():
    states = _states(shared_path(*ESP, TEST_FILE))
    moving_t = [s.end_s for s in states if s.moving]
    assert moving_t, "no motion detected in the movement half"
    assert 30.0 <= moving_t[0] <= 33.0
    assert not any(s.moving for s in states if s.end_s <= 29.0)
    # once started, motion stays on for nearly all of the movement half
    late = [s.moving for s in states if s.end_s >= 33.0]
    assert np.mean(late) >= 0.95
    assert all(s.presence == "empty" for s in states if s.end_s <= 29.0)


def test_done_criterion_recall_and_fpr_per_window():
    pos, neg = [], []
    for base, move in PAIRS:
        neg += [s.active for s in _states(shared_path(*ESP, base))]
        pos += [s.active for s in _states(shared_path(*ESP, move))]
    for s in _states(shared_path(*ESP, TEST_FILE)):
        if s.end_s <= 29.0:
            neg.append(s.active)
        elif s.end_s - 1.0 >= 31.0:
            pos.append(s.active)
    assert np.mean(pos) >= 0.95, np.mean(pos)
    assert np.mean(neg) <= 0.05, np.mean(neg)


def test_calibration_learns_device_threshold_and_roundtrips(tmp_path):
    base, move = PAIRS[0]
    cal = calibrate(open_capture(shared_path(*ESP, base)), max_s=5.0, source=base)
    assert cal.empty_median < cal.threshold < 0.044  # below every movement window of the file
    assert cal.n_windows >= 5 and cal.meta.get("chip") == "esp32"
    assert cal.profile is not None and cal.profile_threshold > 0
    f = tmp_path / "cal.json"
    cal.save(f)
    assert json.loads(f.read_text())["kind"] == "wifi_motion_calibration"
    back = MotionCalibration.load(f)
    assert back.threshold == pytest.approx(cal.threshold)
    moving = [s.active for s in _states(shared_path(*ESP, move), calibration=back)]
    assert np.mean(moving) == 1.0
    empty_rest = [s.active for s in _states(shared_path(*ESP, base), calibration=back)
                  if s.end_s > 6.0]
    assert not any(empty_rest)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a wifi_motion calibration"):
        MotionCalibration.load(bad)


def test_calibration_needs_enough_data():
    with pytest.raises(ValueError, match="at least 5 windows"):
        calibrate(_synthetic(False, seconds=2.0))


def test_synthetic_static_vs_moving_and_chunk_invariance():
    det = MotionDetector()
    quiet = [s for fr in _synthetic(False) for s in det.update(fr)]
    det = MotionDetector()
    moving = [s for fr in _synthetic(True) for s in det.update(fr)]
    assert not any(s.moving for s in quiet)
    assert max(s.score for s in quiet) < DEFAULT_THRESHOLD
    assert np.mean([s.moving for s in moving[2:]]) == 1.0
    det_a, det_b = MotionDetector(), MotionDetector()
    a = [s.score for fr in _synthetic(True, chunk=7) for s in det_a.update(fr)]
    b = [s.score for fr in _synthetic(True, chunk=500) for s in det_b.update(fr)]
    np.testing.assert_allclose(a, b)


def test_memory_bounded_by_one_window():
    scorer = MotionScorer(window_s=1.0, hop_s=0.5)
    for fr in _synthetic(True, seconds=60.0, chunk=256):
        scorer.update(fr)
        held = sum(len(t) for t in scorer._times)
        assert held <= 1.5 * 100 + 256  # one window + at most one chunk tail


def test_presence_still_after_motion_then_empty():
    det = MotionDetector(hold_s=3.0)
    states = [s for fr in _synthetic(True, seconds=6.0) for s in det.update(fr)]
    quiet = _synthetic(False, seconds=10.0, seed=3)
    for fr in quiet:
        fr.times_s = fr.times_s + 6.0
        states += det.update(fr)
    pres = [(s.end_s, s.presence) for s in states]
    assert any(p == "moving" for _, p in pres)
    after = [p for t, p in pres if 9.5 < t < 10.5]
    assert after and all(p == "still" for p in after)
    assert pres[-1][1] == "empty"


def test_pipeline_events_on_real_file_and_calibration_option(tmp_path):
    path = shared_path(*ESP, TEST_FILE)
    cls = PIPELINES.get("wifi_motion")
    assert cls.modalities == ("wifi_csi",) and cls.default
    assert set(cls.event_types) == {"motion", "presence"}

    class Collect:
        def __init__(self):
            self.events = []

        def emit(self, ev):
            self.events.append(ev)

        def close(self):
            pass

    sink = Collect()
    run_stream(open_capture(path), [cls()], [sink], source="t")
    motion = [e for e in sink.events if e.type == "motion"]
    assert motion and motion[0].value == 1 and 30.0 <= motion[0].offset_s <= 33.0
    cal = calibrate(open_capture(path), max_s=15.0)
    f = tmp_path / "c3.json"
    cal.save(f)
    pipe = cls(calibration=str(f))
    dets = [d for fr in open_capture(path) for d in pipe.process(fr)]
    m = [d for d in dets if d.type == "motion"]
    assert m[0].value == 1 and m[0].extra["method"] == "calibrated"
    with pytest.raises(ValueError, match="unknown option"):
        cls(treshold=1)
