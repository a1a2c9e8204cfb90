"""Breathing rate from WiFi CSI: conditioning functions, accuracy on simulated captures,
gating (empty room, motion), streaming behaviour and the replay path."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from agent.cli import main
from agent.pipelines import PIPELINES, pipelines_for
from sensing.dsp import UniformBinner, hampel, resample_uniform
from sensing.frames import Frames
from sensing.simulate.csi_breathing import generate, score_detections, simulate_csi_breathing
from sensing.wifi.breathing import BreathingEstimator, breathing_rate, estimate_rate
from sensing.wifi.conditioning import (
    csi_ratio,
    lltf_data_mask,
    normalize_amplitude,
    null_subcarrier_mask,
    remove_gain_steps,
    sanitize_phase,
    select_subcarriers,
)

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "agent" / "schema" / "event.schema.json").read_text()
)


# --------------------------------------------------------------------------- conditioning
def test_lltf_mask():
    k = np.arange(-32, 32)
    m = lltf_data_mask(k)
    assert m.sum() == 52 and not m[k == 0].any() and not m[np.abs(k) > 26].any()
    assert lltf_data_mask(np.arange(-64, 0), 40).sum() == 52  # lower half, centred on -32
    with pytest.raises(ValueError):
        lltf_data_mask(k, 80)


@pytest.mark.parametrize("method", ["conjugate", "lstsq"])
def test_sanitize_phase_removes_cfo_and_sto(method):
    rng = np.random.default_rng(0)
    k = np.r_[np.arange(-26, 0), np.arange(1, 27)]
    base = (1 + 0.3 * rng.standard_normal(52)) * np.exp(1j * 0.4 * np.sin(k / 5))
    n = 40
    cfo = rng.uniform(-np.pi, np.pi, n)
    sto = rng.uniform(-0.08, 0.08, n)  # rad per subcarrier (±40 ns at 312.5 kHz)
    h = base[None] * np.exp(1j * (cfo[:, None] + sto[:, None] * k[None]))
    clean = sanitize_phase(h, k, axis=1, method=method)
    ref = sanitize_phase(base[None], k, axis=1, method=method)
    np.testing.assert_allclose(clean, np.repeat(ref, n, axis=0), atol=1e-9)
    np.testing.assert_allclose(np.abs(clean), np.abs(h))
    # axis handling: subcarriers first
    np.testing.assert_allclose(sanitize_phase(h.T, k, axis=0, method=method), clean.T, atol=1e-9)


def test_normalize_amplitude_and_gain_steps():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((100, 52)) + 1j * rng.standard_normal((100, 52))
    g = np.where(np.arange(100) < 50, 1.0, 4.0)  # a 12 dB AGC step
    out, gain = normalize_amplitude(h * g[:, None], axis=1)
    np.testing.assert_allclose(out, normalize_amplitude(h, axis=1)[0])
    assert np.mean(np.abs(out) ** 2) == pytest.approx(1.0)
    # step removal keeps a slow sinusoid, drops the jump
    t = np.arange(600) / 10
    breath = 0.3 * np.sin(2 * np.pi * 0.25 * t)
    gain_db = breath + np.where(t > 30, 5.0, 0.0) + 0.01 * rng.standard_normal(600)
    fixed = remove_gain_steps(gain_db)
    assert np.abs(np.diff(fixed)).max() < 0.3
    np.testing.assert_allclose(fixed - fixed.mean(), breath - breath.mean(), atol=0.15)


def test_hampel_replaces_spikes_only():
    x = np.sin(np.linspace(0, 6, 200))
    y = x.copy()
    y[[50, 120]] += 5.0
    out, mask = hampel(y, 7, 3.0)
    assert set(np.flatnonzero(mask)) == {50, 120}
    np.testing.assert_allclose(out, x, atol=0.05)
    outc, maskc = hampel(y + 1j * y, 7)
    assert maskc.sum() == 2 and np.iscomplexobj(outc)


def test_resample_uniform_and_streaming_binner():
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0, 20, 1500))
    t = t[(t < 7) | (t > 8.5)]  # a 1.5 s gap (loss burst)
    x = np.exp(1j * 2 * np.pi * 0.3 * t)[:, None] * np.ones((1, 3))
    y, grid, counts = resample_uniform(x, t, 10.0, t_start=0.0)
    assert len(grid) == len(y) == 200 and np.all(np.diff(grid) == pytest.approx(0.1))
    assert counts[72:84].sum() == 0 and counts.sum() == len(t)
    truth = np.exp(1j * 2 * np.pi * 0.3 * (grid + 0.05))
    ok = counts > 0
    assert np.abs(y[ok, 0] - truth[ok]).max() < 0.1  # bin mean vs bin centre
    # the gap is interpolated linearly between its neighbours, not left NaN
    np.testing.assert_allclose(y[76, 0], y[71, 0] + (y[84, 0] - y[71, 0]) * 5 / 13)
    y2, _, _ = resample_uniform(x, t, 10.0, t_start=0.0, max_gap_s=1.0)
    assert np.isnan(y2[75, 0]) and not np.isnan(y2[10, 0])
    # streaming binner == batch binning, whatever the chunking
    b = UniformBinner(10.0, 3)
    means, cnts = [], []
    for a in range(0, len(t), 97):
        _first, m, c, _s = b.add(x[a:a + 97], t[a:a + 97])
        means.append(m)
        cnts.append(c)
    m, c = np.concatenate(means), np.concatenate(cnts)
    np.testing.assert_array_equal(c, counts[: len(c)])
    ok = c > 0
    np.testing.assert_allclose(m[ok], y[: len(c)][ok])


def test_csi_ratio_cancels_common_impairments():
    rng = np.random.default_rng(3)
    h = rng.standard_normal((50, 30, 3, 1)) + 1j * rng.standard_normal((50, 30, 3, 1))
    common = 3.0 * np.exp(1j * rng.uniform(-np.pi, np.pi, (50, 1, 1, 1)))
    r = csi_ratio(h * common, ref=0)
    assert r.shape == (50, 30, 2, 1)
    np.testing.assert_allclose(r, csi_ratio(h, ref=0), rtol=1e-4)
    with pytest.raises(ValueError, match="2 receive antennas"):
        csi_ratio(h[:, :, :1])


def test_subcarrier_selection_and_null_mask():
    rng = np.random.default_rng(4)
    t = np.arange(600) / 10
    x = 0.1 * rng.standard_normal((600, 10))
    x[:, 7] += np.sin(2 * np.pi * 0.3 * t)
    x[:, 2] += 0.3 * np.sin(2 * np.pi * 0.3 * t)
    assert list(select_subcarriers(x, 10.0, 2)) == [7, 2]
    h = np.ones((20, 6), complex)
    h[:, [0, 5]] = 0.01
    assert list(null_subcarrier_mask(h)) == [False, True, True, True, True, False]


def test_estimate_rate_on_clean_sinusoid():
    rng = np.random.default_rng(5)
    t = np.arange(300) / 10
    x = 0.05 * rng.standard_normal((300, 20)) + np.outer(np.sin(2 * np.pi * 0.3 * t), rng.uniform(0.2, 1, 20))
    est = estimate_rate(x, 10.0)
    assert est.per_min == pytest.approx(18.0, abs=0.3) and est.confidence > 0.8
    noise = estimate_rate(rng.standard_normal((300, 20)), 10.0)
    assert noise.confidence == 0.0


# --------------------------------------------------------------------------- accuracy
#: 16 simulated captures spanning 6–40 bpm, 1–4 m, SNR 20–35 dB, 50–200 packets/s
GRID = [
    dict(rate_bpm=float(r), distance_m=[1.0, 2.0, 3.0, 4.0][i % 4],
         snr_db=[20.0, 35.0, 25.0, 30.0][(i // 4) % 4], packet_rate_hz=[50.0, 200.0, 100.0][i % 3],
         seed=100 + i)
    for i, r in enumerate(np.linspace(6, 40, 16).round(1))
]


def _run(duration_s: float = 60.0, **params):
    truth, frames = generate(duration_s=duration_s, **params)
    est = BreathingEstimator()
    dets = [d for fr in frames for d in est.push(fr)]
    return dets, truth, est


def test_accuracy_grid(capsys):
    errors, expected, lines = [], 0, []
    for case in GRID:
        dets, truth, _ = _run(**case)
        sc = score_detections(dets, truth)
        assert sc["false"] == 0
        errors += sc["errors"]
        expected += sc["expected"]
        lines.append(f"  {case['rate_bpm']:5.1f} bpm {case['distance_m']:.0f} m "
                     f"{case['snr_db']:.0f} dB {case['packet_rate_hz']:5.0f} pkt/s: "
                     f"{len(sc['errors'])}/{sc['expected']} windows, MAE {sc['mae']:.2f}")
    err = np.abs(errors)
    mae, worst, coverage = err.mean(), err.max(), len(err) / expected
    with capsys.disabled():
        print(f"\nbreathing accuracy on {len(GRID)} simulated captures x 60 s "
              f"(6-40 bpm, 1-4 m, 20-35 dB, 50-200 pkt/s): {len(err)} windows, "
              f"MAE {mae:.3f} bpm, worst {worst:.2f} bpm, coverage {coverage:.0%}")
        print("\n".join(lines))
    assert mae <= 0.5
    assert worst <= 2.0
    assert coverage >= 0.4


def test_multi_antenna_uses_csi_ratio():
    dets, truth, est = _run(duration_s=60.0, n_rx=3, rate_bpm=18.0, distance_m=3.0,
                            snr_db=25.0, seed=21)
    sc = score_detections(dets, truth)
    assert sc["coverage"] == 1.0 and sc["mae"] < 0.3
    assert all(d.extra["feature"] == "subcarriers" for d in dets)
    # Intel 5300 style: 30 subcarrier groups (every 2nd index), 2 antennas
    truth, frames = generate(duration_s=60.0, n_rx=2, rate_bpm=10.0, distance_m=2.0,
                             snr_db=25.0, seed=22, packet_rate_hz=50.0)
    groups = np.r_[np.arange(-28, 0, 2), -1, 1, np.arange(3, 29, 2)]
    sel = groups + 32
    dets = []
    est = BreathingEstimator()
    for fr in frames:
        f5300 = Frames(data=fr.data[:, sel], times_s=fr.times_s, fs_hz=None, modality="wifi_csi",
                       source="intel", subcarriers=groups, meta={"bandwidth_mhz": 20})
        dets += est.push(f5300)
    sc = score_detections(dets, truth)
    assert sc["coverage"] >= 0.8 and sc["mae"] < 0.5


@pytest.mark.parametrize("snr_db,packet_rate_hz,n_rx", [(20.0, 50.0, 1), (35.0, 200.0, 1),
                                                        (25.0, 100.0, 3)])
def test_empty_room_emits_nothing(snr_db, packet_rate_hz, n_rx):
    dets, truth, est = _run(duration_s=120.0, empty=True, snr_db=snr_db,
                            packet_rate_hz=packet_rate_hz, n_rx=n_rx, seed=7,
                            agc_jumps_per_min=3.0)
    assert est.stats["windows"] == 18
    assert dets == []


@pytest.mark.parametrize("packet_rate_hz", [100.0, 8.0])  # 8/s: bin-to-bin motion statistic
def test_fidgets_are_gated(packet_rate_hz):
    dets, truth, est = _run(duration_s=180.0, fidgets=3, rate_bpm=14.0, distance_m=1.5,
                            snr_db=30.0, seed=11, packet_rate_hz=packet_rate_hz)
    sc = score_detections(dets, truth)
    assert est.stats["gated_motion"] >= 10
    assert all(abs(e) < 2.0 for e in sc["motion_errors"]), "no wild values during motion"
    assert sc["during_motion"] <= 2
    assert sc["coverage"] >= 0.8 and sc["mae"] < 0.5, "recovers after each fidget"


def test_stream_chunking_invariance_and_bounded_memory():
    truth, frames = generate(duration_s=90.0, rate_bpm=20.0, distance_m=1.0, seed=9,
                             packet_rate_hz=100.0)
    frames = list(frames)
    data = np.concatenate([f.data for f in frames])
    times = np.concatenate([f.times_s for f in frames])
    a = breathing_rate(data[:, :, 0, 0], times, np.arange(-32, 32), chunk=37)
    b = breathing_rate(data, times, np.arange(-32, 32), chunk=5000)
    assert len(a) >= 10 and len(a) == len(b)
    for da, db in zip(a, b, strict=True):  # equal up to float rounding of the bin sums
        assert da.offset_s == db.offset_s and da.value == pytest.approx(db.value, abs=0.011)
    assert set(d.offset_s for d in a) <= {30.0 + 5 * i for i in range(13)}
    for d in a:
        assert d.type == "breathing_rate" and d.unit == "bpm" and 0 < d.confidence <= 1
        assert d.extra["window_s"] == 30.0
    est = BreathingEstimator()
    for fr in frames:
        est.push(fr)
        assert len(est._buf) <= est.n_win and len(est._cnt) <= est.n_win


def test_long_gap_restarts_window():
    truth, frames = generate(duration_s=100.0, rate_bpm=15.0, distance_m=1.0, seed=10,
                             packet_rate_hz=50.0)
    est = BreathingEstimator()
    dets = []
    for fr in frames:
        keep = (fr.times_s < 40) | (fr.times_s > 55)  # a 15 s outage
        if keep.any():
            dets += est.push(Frames(data=fr.data[keep], times_s=fr.times_s[keep], fs_hz=None,
                                      modality="wifi_csi", source="x",
                                      subcarriers=fr.subcarriers))
    assert est.stats["gap_restart"] == 1
    offs = [d.offset_s for d in dets]
    assert not any(40 < o < 85 for o in offs)
    assert offs and offs[-1] >= 95


def test_bad_input():
    est = BreathingEstimator()
    audio = Frames(data=np.zeros((10, 1)), times_s=np.arange(10.0), fs_hz=1.0, modality="audio",
                   source="mic")
    with pytest.raises(ValueError, match="wifi_csi"):
        est.push(audio)
    with pytest.raises(ValueError, match="cycles"):
        BreathingEstimator(window_s=10.0)


# --------------------------------------------------------------------------- file + replay
def test_pipeline_registered():
    cls = PIPELINES.get("wifi_breathing")
    assert cls.default and cls.modalities == ("wifi_csi",)
    assert cls.event_types == ("breathing_rate",)
    assert cls in pipelines_for("wifi_csi")


@pytest.mark.parametrize("layout,params", [
    ("esp-csi", dict(rate_bpm=12.0, distance_m=1.5, snr_db=30.0, packet_rate_hz=50.0, seed=31)),
    ("esp32-csi-tool", dict(rate_bpm=28.0, distance_m=1.0, snr_db=25.0, packet_rate_hz=60.0,
                            seed=32)),
])
def test_replay_jsonl_on_written_capture(tmp_path, capsys, layout, params):
    out = tmp_path / f"cap_{layout}.csv"
    truth = simulate_csi_breathing(str(out), duration_s=60.0, layout=layout, **params)
    rc = main(["replay", "--jsonl", "--no-progress", "--pipeline", "wifi_breathing", str(out)])
    assert rc == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events, "breathing events expected"
    for ev in events:
        jsonschema.validate(ev, SCHEMA)
        assert ev["type"] == "breathing_rate" and ev["detector"] == "wifi_breathing"
        assert ev["source"] == out.name and ev["window_s"] == 30.0
    sc = score_detections(events, truth)
    assert sc["coverage"] >= 0.5 and sc["worst"] < 1.0
    if layout == "esp32-csi-tool":  # real_timestamp: 2026-01-01T00:00:00Z + seed s
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=params["seed"])
        for ev in events:
            ts = datetime.fromisoformat(ev["ts"].replace("Z", "+00:00"))
            assert abs((ts - t0).total_seconds() - ev["offset_s"]) < 0.01


def test_replay_empty_room_and_options(tmp_path, capsys):
    out = tmp_path / "empty.csv"
    simulate_csi_breathing(str(out), duration_s=70.0, empty=True, packet_rate_hz=40.0, seed=33)
    rc = main(["replay", "--jsonl", "--no-progress", "--pipeline", "wifi_breathing", str(out)])
    assert rc == 0 and capsys.readouterr().out == ""
    full = tmp_path / "b.csv"
    simulate_csi_breathing(str(full), duration_s=45.0, rate_bpm=20.0, distance_m=1.0,
                           packet_rate_hz=40.0, seed=34)
    rc = main(["replay", "--jsonl", "--no-progress", "--pipeline", "wifi_breathing",
               "--set", "wifi_breathing.window_s=20", "--set", "wifi_breathing.hop_s=10", str(full)])
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rc == 0 and [e["offset_s"] for e in events] == [20.0, 30.0, 40.0]
    assert all(e["window_s"] == 20.0 for e in events)


# --------------------------------------------------------------------------- consensus
def test_spectrum_helpers_match_estimate_rate():
    """The wifi estimator's spectra path (computed once per window, kept for the
    consensus) gives exactly what ``sensing.dsp.estimate_rate`` gives."""
    from sensing import dsp
    from sensing.wifi.breathing import best_candidate, candidate_spectra

    rng = np.random.default_rng(9)
    t = np.arange(300) / 10
    x = (0.3 * rng.standard_normal((300, 8)) + 1j * 0.3 * rng.standard_normal((300, 8))
         + np.outer(np.sin(2 * np.pi * 0.45 * t), rng.uniform(0.05, 0.2, 8)))
    g = (0.2 * np.sin(2 * np.pi * 0.45 * t) + 0.3 * rng.standard_normal(300))[:, None]
    ref = dsp.estimate_rate({"subcarriers": x, "gain": g}, 10.0, (0.09, 44 / 60), axis=0)
    got = best_candidate(candidate_spectra(x, 10.0, min_bpm=6.0, extra_real=g), 300, 10.0)
    assert got == ref and got.confidence > 0


@pytest.mark.parametrize("rate_bpm,distance_m,snr_db,seed", [(36.0, 3.2, 25.0, 202),
                                                             (22.0, 3.6, 30.0, 304)])
def test_consensus_answers_weak_distant_breathing(rate_bpm, distance_m, snr_db, seed):
    """One antenna, far from the link: no single window is confident, the spectra of the
    last 60 s averaged (subcarriers and gain combined) are, and the rate is right."""
    kw = dict(duration_s=75.0, rate_bpm=rate_bpm, distance_m=distance_m, snr_db=snr_db,
              packet_rate_hz=100.0, seed=seed)
    truth, frames = generate(**kw)
    single = BreathingEstimator(consensus_s=0)
    assert [d for fr in frames for d in single.push(fr)] == []
    truth, frames = generate(**kw)
    est = BreathingEstimator()
    dets = [d for fr in frames for d in est.push(fr)]
    assert len(dets) >= 3 and {d.extra["feature"] for d in dets} == {"consensus"}
    sc = score_detections(dets, truth)
    assert sc["false"] == 0 and max(abs(e) for e in sc["errors"]) < 1.0 and sc["mae"] < 0.5
    assert all(0.2 <= d.confidence <= 1 for d in dets)


def test_consensus_silent_in_empty_rooms_and_below_threshold():
    """Empty rooms (AGC steps, 50–200 packets/s, 1 antenna): the consensus never answers,
    and its confidence is all-or-nothing (consumers with a lower bar, like presence at 0.1,
    get nothing from it below the calibrated threshold)."""
    for seed, pr in ((41, 50.0), (42, 100.0), (43, 200.0)):
        truth, frames = generate(duration_s=120.0, empty=True, packet_rate_hz=pr, seed=seed,
                                 agc_jumps_per_min=3.0, snr_db=25.0)
        est = BreathingEstimator(min_confidence=0.0)
        est.trace = []
        for fr in frames:
            est.push(fr)
        cons = [t for t in est.trace if "consensus_confidence" in t]
        assert len(cons) >= 12
        assert all(t["consensus_confidence"] == 0.0 for t in cons)
        assert all(t["confidence"] < 0.2 for t in est.trace)


def test_infant_band_up_to_60_bpm():
    """``max_bpm=60`` (infants): a 52 breaths/min capture is answered at its rate."""
    truth, frames = generate(duration_s=60.0, rate_bpm=52.0, distance_m=1.5, snr_db=30.0,
                             packet_rate_hz=100.0, seed=61, depth_mm=3.0)
    est = BreathingEstimator(max_bpm=60.0)
    dets = [d for fr in frames for d in est.push(fr)]
    sc = score_detections(dets, truth)
    assert sc["coverage"] >= 0.8 and sc["mae"] < 0.6
