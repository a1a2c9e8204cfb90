"""Seizure detector with the shipped int8 model: Bonn held-out (even) segments, long
concatenated recordings, artefact robustness, the agent pipeline on the bundled demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import shared_path
from scipy import signal

from agent.inference import load_model
from agent.pipelines import PIPELINES, pipelines_for
from agent.runner import run_stream
from sensing.eeg.artefacts import ArtefactThresholds
from sensing.eeg.evaluate import score_long, segment_features, segment_scores
from sensing.eeg.seizure import SeizureDetector, detect_seizures
from sensing.formats import open_capture
from sensing.formats.eeg_text import BONN_FS_HZ as FS
from sensing.formats.eeg_text.bonn import (
    LongRecording,
    bonn_segments,
    concatenated_recording,
    load_segment,
)
from sensing.simulate import load_truth

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "agent" / "samples" / "eeg_seizure_demo.edf"

#: Thresholds that never flag anything (the detector without artefact handling).
NO_GATE = ArtefactThresholds(flat_uv=-1, clip_fraction=2, pop_kurtosis=1e9, movement_uv2=1e9,
                             muscle_rel_gamma=2, muscle_entropy=2)


@pytest.fixture(scope="module")
def model():
    return load_model("seizure", threads=1)


@pytest.fixture(scope="module")
def bonn():
    return shared_path("eeg", "bonn")


def test_manifest_entry_is_int8_and_carries_thresholds(model):
    assert model.precision == "int8"
    assert model.meta["quantization"]["quantized_activations"] > 0  # really int8 inside
    extra = model.meta["extra"]
    assert 0 < extra["segment_threshold"] < 1 and 0 < extra["detector_threshold"] < 1
    assert model.meta["inputs"][0]["window_s"] == 4.0


def test_bonn_even_a_vs_e_with_int8(model, bonn):
    """Held-out (even) A and E segments, a quarter of them (the full figure is in the manifest)."""
    segs = bonn_segments(bonn, "AE", "even")[::2]
    ss = segment_features(segs)
    res = segment_scores(ss, model.predict_proba(ss.X), model.meta["extra"]["segment_threshold"])
    assert res["segments"] == 50
    assert res["segment_accuracy"] >= 0.96 and res["segment_auc"] >= 0.99
    assert res["window_accuracy"] >= 0.95


def test_long_even_recording_events_and_latency(model, bonn):
    bg = bonn_segments(bonn, "ABCD", "even")[::4]
    ic = bonn_segments(bonn, "E", "even")[::4]
    rec = concatenated_recording(bg, ic, seed=1)
    assert rec.duration_s > 1000 and len(rec.seizures) >= 4
    res = score_long([rec], model.predict_proba, threshold=model.meta["extra"]["detector_threshold"])
    ev = res["event"]
    assert ev["sensitivity"] >= 0.75 and ev["false_detections"] <= 1
    assert res["latency_s"]["median"] <= 10.0


def test_detector_events_do_not_depend_on_chunk_size(model, bonn):
    segs = bonn_segments(bonn, "AE", "even")
    rec = concatenated_recording(segs[:12], segs[-2:], seed=0, min_gap=5)
    kw = dict(threshold=model.meta["extra"]["detector_threshold"])
    a = detect_seizures(rec.chunks(chunk_s=1.0), model.predict_proba, **kw)
    b = detect_seizures(rec.chunks(chunk_s=17.3), model.predict_proba, **kw)
    assert [d.offset_s for d in a] == [d.offset_s for d in b] and len(a) >= 1
    sz = [d for d in a if d.type == "seizure"]
    assert sz and sz[0].extra["duration_s"] >= 10 and sz[0].extra["detected_at_s"] > sz[0].offset_s


def _inject_artefacts(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """EMG and chewing bursts, electrode pops, movement, a flat stretch, saturation, 50 Hz."""
    x = x.copy()
    n = len(x)
    t = np.arange(n) / FS

    def span(dur: float) -> tuple[int, int]:
        a = int(rng.integers(0, n - int(dur * FS)))
        return a, a + int(dur * FS)

    emg = signal.butter(4, [20, 80], "bandpass", fs=FS, output="sos")
    for _ in range(4):  # EMG bursts (jaw clench, 8–15 s)
        a, b = span(rng.uniform(8, 15))
        x[a:b] += signal.sosfilt(emg, rng.normal(0, 150, b - a))
    for _ in range(4):  # chewing: EMG bursts at 1.3 Hz
        a, b = span(rng.uniform(10, 15))
        x[a:b] += (np.sin(2 * np.pi * 1.3 * t[a:b]) > 0.3) * signal.sosfilt(
            emg, rng.normal(0, 200, b - a))
    for _ in range(6):  # electrode pops
        a, b = span(2)
        x[a:b] += 600 * np.exp(-(t[a:b] - t[a]) / 0.2)
    for _ in range(3):  # movement: slow large sway
        a, b = span(12)
        tt = t[a:b] - t[a]
        x[a:b] += 800 * np.sin(2 * np.pi * 0.5 * tt) * np.sin(np.pi * tt / 12)
    a, b = span(20)
    x[a:b] = 0.0  # disconnected electrode
    x += 30 * np.sin(2 * np.pi * 50 * t)  # mains hum throughout
    a, b = span(8)  # amplifier saturation during a large artefact
    x[a:b] = np.clip(x[a:b] + 900 * np.sin(2 * np.pi * 0.5 * (t[a:b] - t[a])), -500, 500)
    return x


def test_artefacts_in_non_seizure_eeg_raise_no_alarm(model, bonn):
    rng = np.random.default_rng(0)
    segs = bonn_segments(bonn, "ABCD", "even")
    pick = [segs[i] for i in rng.choice(len(segs), 40, replace=False)]
    clean = np.concatenate([(lambda v: v - v.mean())(load_segment(s)) for s in pick])
    dirty = _inject_artefacts(clean, rng)
    th = model.meta["extra"]["detector_threshold"]

    def run(x, gate):
        det = SeizureDetector(predict_proba=model.predict_proba, threshold=th,
                              thresholds=ArtefactThresholds() if gate else NO_GATE,
                              slow_wave_gate=gate)
        out = []
        for fr in LongRecording(x, [], []).chunks():
            out += det.push(fr)
        return out + det.flush(), det

    assert run(clean, True)[0] == []
    events, det = run(dirty, True)
    assert events == []  # no seizure, and not even an early alert
    flagged = det.artefact_summary()
    assert {"muscle", "pop", "movement", "clipped"} <= set(flagged)
    # the same data without artefact handling does raise a false seizure: the test has teeth
    ungated, _ = run(dirty, False)
    assert any(d.type == "seizure" for d in ungated)


def test_pipeline_on_bundled_demo_matches_truth():
    from agent.sinks.base import Sink

    class Collect(Sink):
        def __init__(self):
            self.events = []

        def emit(self, event):
            self.events.append(event)

    assert DEMO.stat().st_size < 1_000_000
    truth = load_truth(DEMO)
    classes = pipelines_for("eeg")
    assert PIPELINES.get("eeg_seizure") in classes
    sink = Collect()
    reader = open_capture(DEMO)
    run_stream(reader.chunks(), [PIPELINES.get("eeg_seizure")()], [sink], source=reader.source)
    seizures = [e for e in sink.events if e.type == "seizure"]
    alerts = [e for e in sink.events if e.type == "seizure_alert"]
    assert len(seizures) == len(truth["seizures"]) == 2 and len(alerts) == 2
    for ev, ref in zip(seizures, truth["seizures"], strict=True):
        assert abs(ev.offset_s - ref["onset_s"]) < 5.0
        assert ev.extra["detected_at_s"] - ref["onset_s"] <= 10.0
        assert ev.extra["duration_s"] > 0.5 * ref["duration_s"]
        assert ev.ts is not None and ev.unit == "s"


def test_pipeline_options():
    pipe = PIPELINES.get("eeg_seizure")(threshold=0.9, min_channels=3, alert=False)
    assert pipe.detector.threshold == 0.9 and pipe.detector.min_channels == 3
    assert pipe.event_types == ("seizure_alert", "seizure") and pipe.modalities == ("eeg",)
    with pytest.raises(ValueError, match="unknown option"):
        PIPELINES.get("eeg_seizure")(treshold=0.9)
