"""Presence/motion detector: real ESPectre captures, calibration, streaming, pipeline, and
the breathing evidence of a still person on simulated captures."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from agent.events import EventFactory
from agent.pipelines import PIPELINES
from agent.runner import run_stream
from sensing.formats import open_capture
from sensing.frames import Frames
from sensing.simulate.csi_breathing import generate
from sensing.wifi.motion import (
    DEFAULT_THRESHOLD,
    MotionCalibration,
    MotionDetector,
    MotionScorer,
    calibrate,
)
from sensing.wifi.presence import EVIDENCE, STATES, PresenceTracker
from tests.conftest import shared_path

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "agent" / "schema" / "event.schema.json").read_text())

ESP = ("csi", "espectre")
TEST_FILE = "test_c3_64sc_20260329_130804.npz"
PAIRS = [
    ("baseline_esp32_64sc_20260310_232100.npz", "movement_esp32_64sc_20260310_232137.npz"),
    ("baseline_c6_64sc_20260310_230414.npz", "movement_c6_64sc_20260310_230434.npz"),
]


def _states(path, **kw):
    det = MotionDetector(**kw)
    return [s for fr in open_capture(path) for s in det.push(fr)]


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
    quiet = [s for fr in _synthetic(False) for s in det.push(fr)]
    det = MotionDetector()
    moving = [s for fr in _synthetic(True) for s in det.push(fr)]
    assert not any(s.moving for s in quiet)
    assert max(s.score for s in quiet) < DEFAULT_THRESHOLD
    assert np.mean([s.moving for s in moving[2:]]) == 1.0
    det_a, det_b = MotionDetector(), MotionDetector()
    a = [s.score for fr in _synthetic(True, chunk=7) for s in det_a.push(fr)]
    b = [s.score for fr in _synthetic(True, chunk=500) for s in det_b.push(fr)]
    np.testing.assert_allclose(a, b)


def test_memory_bounded_by_one_window():
    scorer = MotionScorer(window_s=1.0, hop_s=0.5)
    for fr in _synthetic(True, seconds=60.0, chunk=256):
        scorer.push(fr)
        held = sum(len(t) for t in scorer._times)
        assert held <= 1.5 * 100 + 256  # one window + at most one chunk tail


def test_presence_still_after_motion_then_empty():
    det = MotionDetector(hold_s=3.0, breathing=False)
    states = [s for fr in _synthetic(True, seconds=6.0) for s in det.push(fr)]
    quiet = _synthetic(False, seconds=10.0, seed=3)
    for fr in quiet:
        fr.times_s = fr.times_s + 6.0
        states += det.push(fr)
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
    dets = [d for fr in open_capture(path) for d in pipe.push(fr)]
    m = [d for d in dets if d.type == "motion"]
    assert m[0].value == 1 and m[0].extra["method"] == "calibrated"
    with pytest.raises(ValueError, match="unknown option"):
        cls(treshold=1)


# ---------------------------------------------------------------- breathing evidence (simulated)
# Simulated ESP32 rooms at 2 m, 35 dB, 50 packets/s (sensing/simulate/csi_breathing.py).
# Seed 10 (150 s, one fidget at 5.6–10.2 s) is a room where the motion detector sees the
# fidget and the breathing is visible; seed 1 (empty) has no motion false alarm.
SIM = dict(distance_m=2.0, snr_db=35.0, packet_rate_hz=50.0, rate_bpm=15.0)


@functools.lru_cache(maxsize=8)
def _sim_states(chunk: int = 512, breathing: bool = True, **kw):
    """Truth, detector states and detector of a simulated capture (cached per arguments)."""
    truth, frames = generate(chunk_packets=chunk, **{**SIM, **kw})
    det = MotionDetector(breathing=breathing)
    return truth, [s for fr in frames for s in det.push(fr)], det


def test_tracker_needs_consecutive_breathing_windows_from_empty():
    tr = PresenceTracker(hold_s=60.0, breath_hold_s=30.0, confirm=2, breath_hop_s=5.0)
    assert tr.step(30.0, False).state == "empty"
    tr.add_breathing(30.0, 15.0, 0.5)  # one window: not enough from empty
    assert tr.step(30.5, False).state == "empty"
    tr.add_breathing(40.0, 15.0, 0.5)  # not consecutive (10 s later): still not enough
    assert tr.step(40.5, False).state == "empty"
    tr.add_breathing(45.0, 15.5, 0.6)  # second consecutive window
    d = tr.step(45.5, False)
    assert (d.state, d.evidence, d.breathing_bpm) == ("still", "breathing", 15.5)
    assert tr.step(75.0, False).state == "still"  # 45 + breath_hold_s
    assert tr.step(75.5, False).state == "empty"
    # once occupied (motion, then hold), a single breathing window extends the occupancy
    assert tr.step(80.0, True).evidence == "motion"
    assert tr.step(100.0, False).evidence == "hold"
    tr.add_breathing(135.0, 14.0, 0.4)  # breathing is named first: the stronger evidence
    assert tr.step(139.5, False).evidence == "breathing"
    assert tr.step(165.0, False).evidence == "breathing"  # hold ended at 140
    assert tr.step(165.5, False).state == "empty"
    with pytest.raises(ValueError):
        PresenceTracker(confirm=0)


def test_still_breathing_person_stays_still_past_hold():
    truth, states, det = _sim_states(seed=10, duration_s=150.0, fidgets=1)
    (a, b), = truth["motion_intervals_s"]
    assert any(s.moving for s in states if a <= s.end_s <= b + 3.0)
    stop = max(s.end_s for s in states if s.moving)
    assert stop < b + 4.0
    after = [s for s in states if s.end_s > stop]
    # never empty after the fidget, and still on breathing evidence long after hold_s
    assert all(s.presence == "still" for s in after)
    late = [s for s in after if s.end_s > stop + det.hold_s + 10.0]
    assert len(late) > 100 and all(s.evidence == "breathing" for s in late)
    assert all(abs(s.breathing_bpm - 15.0) < 2.0 for s in late)
    # motion + hold alone would have reported the sleeper gone
    _, plain, _ = _sim_states(seed=10, duration_s=150.0, fidgets=1, breathing=False)
    assert plain[-1].presence == "empty"


def test_breathing_alone_takes_empty_room_to_still():
    _, states, _ = _sim_states(seed=0, duration_s=90.0, fidgets=0)
    assert not any(s.moving for s in states)
    first = next(s for s in states if s.presence != "empty")
    # two consecutive 30 s breathing windows (5 s apart) are needed
    assert first.evidence == "breathing" and 34.9 <= first.end_s <= 45.0
    assert all(s.presence == "still" for s in states if s.end_s >= first.end_s)


def test_empty_room_never_occupied():
    _, states, det = _sim_states(seed=1, duration_s=150.0, empty=True)
    assert len(states) > 250
    assert all(s.presence == "empty" and s.evidence == "none" for s in states)
    assert det.breathing.stats["windows"] >= 20
    assert det.breathing.stats["emitted"] == 0


def test_presence_with_breathing_is_chunk_size_independent():
    a = _sim_states(chunk=97, seed=10, duration_s=150.0, fidgets=1)[1]
    b = _sim_states(seed=10, duration_s=150.0, fidgets=1)[1]  # chunk 512
    assert [(s.end_s, s.presence, s.evidence) for s in a] == [
        (s.end_s, s.presence, s.evidence) for s in b]


def test_pipeline_event_contract_on_simulated_sleeper():
    cls = PIPELINES.get("wifi_motion")
    _, frames = generate(chunk_packets=400, seed=10, duration_s=150.0, fidgets=1, **SIM)
    pipe = cls()
    dets = [d for fr in frames for d in pipe.push(fr)]
    fac = EventFactory("sim.csv")
    events = [fac.make(d, "wifi_motion").to_dict() for d in dets]
    for ev in events:
        jsonschema.validate(ev, SCHEMA)
        json.dumps(ev, allow_nan=False)
    motion = [e for e in events if e["type"] == "motion"]
    assert [e["value"] for e in motion] == [1, 0]  # the fidget: on, then off
    pres = [e for e in events if e["type"] == "presence"]
    # the person is there from the start: no spurious first "empty" (the fidget at 5.6 s
    # comes before the 35 s breathing warm-up would allow one)
    assert pres[0]["value"] == 1 and pres[0]["state"] == "moving"
    for e in pres:
        assert e["state"] in STATES and e["evidence"] in EVIDENCE
        assert e["value"] == int(e["state"] != "empty") and e["unit"] == ""
        assert ("breathing_bpm" in e) == (e["evidence"] == "breathing")
    assert [e["state"] for e in pres] == ["moving", "still"]
    assert pres[-1]["evidence"] == "hold"  # the change happens when motion stops
    # options reach the detector; breathing can be turned off
    assert not math.isinf(cls(breath_hold_s=20).detector.tracker.breath_hold_s)
    assert cls(breathing=False).detector.breathing is None


def test_first_empty_waits_for_the_breathing_warm_up():
    pipe = PIPELINES.get("wifi_motion")()
    assert pipe.detector.presence_warmup_s == 35.0
    _, frames = generate(chunk_packets=400, seed=2, duration_s=60.0, empty=True, **SIM)
    pres = [d for fr in frames for d in pipe.push(fr) if d.type == "presence"]
    assert [(d.value, d.extra["state"]) for d in pres] == [(0, "empty")]
    assert pres[0].offset_s == 35.0
    # a stream shorter than the warm-up gets its verdict at the end
    pipe = PIPELINES.get("wifi_motion")()
    _, frames = generate(chunk_packets=400, seed=2, duration_s=10.0, empty=True, **SIM)
    dets = [d for fr in frames for d in pipe.push(fr)]
    assert not dets
    end = pipe.flush()
    assert [(d.type, d.extra["state"]) for d in end] == [("presence", "empty")]
    assert 9.0 <= end[0].offset_s <= 10.0 and pipe.flush() == []
    # without breathing evidence the first decision comes after on_windows windows
    pipe = PIPELINES.get("wifi_motion")(breathing=False)
    _, frames = generate(chunk_packets=400, seed=2, duration_s=20.0, empty=True, **SIM)
    pres = [d for fr in frames for d in pipe.push(fr) if d.type == "presence"]
    assert pres[0].offset_s == 1.5 and pres[0].extra["state"] == "empty"


def test_events_serialise_when_windows_are_too_sparse_to_score():
    # 5 packets/s: every 1 s window holds fewer than MIN_PACKETS, the score is NaN
    pipe = PIPELINES.get("wifi_motion")(breathing=False)  # first "empty" at once
    dets = [d for fr in _synthetic(False, seconds=10.0, fs=5.0) for d in pipe.push(fr)]
    assert dets and all(d.extra["score"] is None for d in dets)
    fac = EventFactory("sparse")
    for d in dets:
        jsonschema.validate(json.loads(fac.make(d, "wifi_motion").to_json()), SCHEMA)


@pytest.mark.parametrize("scene", [
    dict(file_format="esp32", empty=False, distance_m=1.0, snr_db=20.0, packet_rate_hz=50.0),
    dict(file_format="intel5300", n_rx=3, empty=True, snr_db=20.0, packet_rate_hz=200.0),
    dict(file_format="nexmon", n_rx=3, empty=False, distance_m=4.0, snr_db=27.0,
         packet_rate_hz=100.0),
], ids=["esp32-person-20dB", "intel-empty-20dB", "nexmon-person-4m"])
def test_still_scenes_with_every_impairment_give_no_motion(tmp_path, scene):
    """AGC gain steps (4/min), 15 % bursty loss, interval jitter, per-packet CFO and
    timing offsets at low SNR, written in real formats and read back: never motion. (The
    plain coefficient of variation scored these 0.07–0.17, above real moving people.)"""
    from sensing.simulate import SIMULATORS

    ext = {"esp32": ".csv", "intel5300": ".dat", "nexmon": ".pcap"}[scene["file_format"]]
    path = tmp_path / f"still{ext}"
    truth = SIMULATORS.get("csi-breathing")(
        str(path), duration_s=90.0, agc_jumps_per_min=4.0, loss=0.15, jitter=0.4, seed=77,
        **scene)
    assert len(truth["agc_steps"]) >= 3 and not truth["motion_intervals_s"]
    states = _states(path)
    assert states and not any(s.moving for s in states)
    assert max(s.score for s in states if math.isfinite(s.score)) < DEFAULT_THRESHOLD


def test_an_agc_gain_drop_does_not_look_like_motion():
    """The quick start's capture (truth: no motion) reported motion after a 2.7 dB AGC
    drop raised the relative quantisation noise; the noise-compensated score does not
    move."""
    truth, frames = generate(duration_s=120.0, rate_bpm=18.0, distance_m=1.5, seed=0)
    det = MotionDetector()
    states = [s for fr in frames for s in det.push(fr)]
    drops = [t for t, db in truth["agc_steps"] if db < -2]
    assert drops, "the scene must contain an AGC gain drop"
    after = [s.score for s in states if drops[0] < s.end_s < drops[0] + 20]
    before = [s.score for s in states if drops[0] - 20 < s.end_s < drops[0]]
    assert not any(s.moving for s in states)
    assert np.median(after) < DEFAULT_THRESHOLD / 2 and np.median(before) < DEFAULT_THRESHOLD / 2
