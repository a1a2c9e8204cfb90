"""One LoRa receiver per stream: lora_packet, lora_breathing and lora_soil share it; the
sensing pipelines take its per-chirp complex amplitudes; its fast path (coarse sync on the
chip grid, one resampling per frame) gives the frames the full procedure gives."""

from __future__ import annotations

import numpy as np
import pytest

from agent.pipelines.shared import SharedStages
from sensing.frames import Frames
from sensing.lora.pipelines.breathing import LoraBreathingPipeline
from sensing.lora.pipelines.packets import LoraPacketPipeline
from sensing.lora.pipelines.soil import LoraSoilPipeline
from sensing.lora.receiver import LoraReceiver, frame_chirps, receive_iq
from sensing.lora.simulators.breathing import BreathingSimParams, simulate_iq

FS = 125e3
META = {"format": "test", "lora": {"sf": 7, "bw_hz": 125000}, "soil": None,
        "center_hz": 868.1e6}


def _chunks(y: np.ndarray, chunk: int, meta: dict):
    for i in range(0, len(y), chunk):
        d = np.ascontiguousarray(y[i: i + chunk])
        yield Frames(d, (i + np.arange(len(d))) / FS, FS, "lora_iq", "t", meta=dict(meta))


def _run(pipes, y, chunk=65536, meta=META):
    shared = SharedStages()
    for p in pipes:
        p.bind(shared)
    events = []
    for fr in _chunks(y, chunk, meta):
        for p in pipes:
            events += p.push(fr)
    for p in pipes:
        events += p.flush()
    return events, shared


@pytest.fixture(scope="module")
def breathing_iq():
    y, truth = simulate_iq(BreathingSimParams(duration_s=22, seed=21, movers=0))
    return y, truth


def test_three_pipelines_one_receiver_and_the_same_chirps(breathing_iq):
    y, _ = breathing_iq
    opts = {"window_s": 10.0, "hop_s": 4.0}
    breathing, packets = LoraBreathingPipeline(**opts), LoraPacketPipeline()
    events, shared = _run([breathing, packets, LoraSoilPipeline()], y)
    receivers = [k for k in shared._stages if k[0] == "lora_receiver"]
    assert len(receivers) == 1  # decoded once for all three
    pk = [e for e in events if e.type == "lora_packet"]
    assert len(pk) >= 200 and all(e.extra["crc_ok"] for e in pk)
    # the breathing estimator got every chirp of every frame the receiver returned
    frames = receive_iq(y, FS, META["lora"], center_hz=META["center_hz"], chunk=65536)
    assert len(frames) == len(pk)
    chirps = frame_chirps(frames, breathing.params.min_peak_db)
    assert breathing.estimator.chirps == len(chirps) > 20 * len(pk)
    assert breathing.estimator.windows >= 3
    # on its own (no shared stages) the pipeline runs a receiver of its own: same events
    alone = LoraBreathingPipeline(**opts)
    own = []
    for fr in _chunks(y, 65536, META):
        own += alone.push(fr)
    own += alone.flush()
    assert [(e.type, e.offset_s, e.value) for e in own] == \
        [(e.type, e.offset_s, e.value) for e in events
         if e.type in ("breathing_rate", "presence")]


def test_breathing_windows_do_not_depend_on_chunking(breathing_iq):
    y, _ = breathing_iq
    got = []
    for chunk in (65536, 9000):
        events, _ = _run([LoraBreathingPipeline(window_s=10.0, hop_s=4.0)], y, chunk)
        got.append([(e.type, e.offset_s, round(e.value, 1)) for e in events])
    assert got[0] == got[1] and got[0]


def test_fast_path_gives_what_the_full_procedure_gives(breathing_iq, monkeypatch):
    y, _ = breathing_iq
    part = y[: int(4 * FS)]
    fast = receive_iq(part, FS, META["lora"], center_hz=META["center_hz"])
    monkeypatch.setattr(LoraReceiver, "_fast_sync", lambda self, st, final: None)
    full = receive_iq(part, FS, META["lora"], center_hz=META["center_hz"])
    assert len(fast) == len(full) >= 30
    for a, b in zip(fast, full, strict=True):
        assert (a.payload, a.crc_ok) == (b.payload, b.crc_ok)
        assert a.start_s == pytest.approx(b.start_s, abs=2 / FS)
        assert a.cfo_hz == pytest.approx(b.cfo_hz, abs=30.0)
        ra = a.amplitudes[:, 1] / a.amplitudes[:, 0]
        rb = b.amplitudes[:, 1] / b.amplitudes[:, 0]
        np.testing.assert_allclose(ra, rb, rtol=2e-3, atol=1e-4)


def test_search_on_one_channel_while_the_link_is_strong(breathing_iq):
    y, _ = breathing_iq
    part = y[: int(4 * FS)]
    both = receive_iq(part, FS, META["lora"], center_hz=META["center_hz"],
                      strong_link_db=None)
    one = receive_iq(part, FS, META["lora"], center_hz=META["center_hz"])
    assert [f.payload for f in one] == [f.payload for f in both] and len(one) >= 30


def test_undecodable_frames_still_give_their_preamble_chirps():
    p = BreathingSimParams(duration_s=3, seed=22, movers=0, real_frames=False)
    y, truth = simulate_iq(p)
    rx = LoraReceiver(undecoded=True)
    found = []
    for fr in _chunks(y, 40000, META):
        found += rx.push(fr)
    found += rx.flush()
    assert found and not any(f.header_ok for f in found)
    for f in found:
        assert f.payload == b"" and len(f.symbols) == 0 and f.preamble_amplitudes.shape == (7, 2)
    # every packet's preamble; a few more syncs on the random symbols after a preamble
    # (a failed header resumes the search there), whose chirps fail the peak test
    real = [f for f in found if (f.preamble_peak_db > 30).all()]
    assert len(real) == truth["packets"]
    assert len(frame_chirps(real)) == 7 * len(real)
    assert len(frame_chirps(found, 15.0)) < 7 * len(real) + 2 * (len(found) - len(real))
    # lora_packet reports none of them; a receiver without undecoded=True returns none
    events, _ = _run([LoraPacketPipeline()], y)
    assert events == []
    assert receive_iq(y, FS, META["lora"]) == []


def test_non_integer_oversampling_falls_back_to_the_chirp_extractor():
    fs = 150e3  # 1.2 samples per chip: the receiver cannot run
    y, _ = simulate_iq(BreathingSimParams(duration_s=12, seed=23, movers=0, fs_hz=fs))
    pipe = LoraBreathingPipeline(window_s=10.0, hop_s=5.0)
    shared = SharedStages()
    pipe.bind(shared)
    for i in range(0, len(y), 50000):
        d = np.ascontiguousarray(y[i: i + 50000])
        pipe.push(Frames(d, (i + np.arange(len(d))) / fs, fs, "lora_iq", "t",
                         meta=dict(META)))
    pipe.flush()
    assert pipe.estimator.extractor is not None and pipe.estimator.chirps > 1000
    assert pipe.estimator.windows >= 1 and not shared._stages
