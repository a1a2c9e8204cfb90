"""The UWB activity simulator: kinematics, CIR physics grounded on the DW1000 logs, files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sensing.formats import open_capture
from sensing.simulate import SIMULATORS, load_truth
from sensing.uwb.simulators.activity import UwbActivityParams, simulate
from sensing.uwb.simulators.body import POINTS, ScriptBuilder, make_script, points_at
from sensing.uwb.simulators.cir import FP_NOMINAL, Scene

TORSO = POINTS.index("torso")


def _frames(cap, chunk_s=10.0):
    parts = list(cap.chunks(chunk_s))
    return (np.concatenate([f.data for f in parts]), np.concatenate([f.times_s for f in parts]),
            np.concatenate([f.fields["first_path_index"] for f in parts]),
            np.concatenate([f.fields["rxpacc"] for f in parts]))


def test_fall_kinematics_height_and_speed():
    room = np.array([3.0, 2.5, 2.5])
    for seed in range(6):
        rng = np.random.default_rng(seed)
        b = ScriptBuilder(rng, room, {"seat": np.array([1.0, 2.0])})
        b.hold(2.0)
        seg = b.fall(5.0, get_up=False)
        t = np.arange(seg.start_s - 0.5, seg.end_s + 2.0, 0.002)
        pts, _, _ = points_at(b.segments, t, {"amp_m": 0.0, "hz": 0.25, "phase": 0.0})
        z = pts[:, TORSO, 2]
        assert z[0] == pytest.approx(1.15, abs=0.02)
        assert z[-1] == pytest.approx(0.2, abs=0.03)
        dur = seg.params["pre_s"] + seg.params["descent_s"]
        assert 0.5 <= dur <= 1.5
        v = np.abs(np.diff(z)) / 0.002
        assert 2.0 * 0.85 <= v.max() <= 4.0 * 1.05
        # lying still afterwards: the torso moves < 1 cm after the rebound settles
        after = t > seg.end_s + 0.3
        assert np.ptp(z[after]) < 0.01


def test_script_contains_negatives_and_truth_intervals():
    rng = np.random.default_rng(3)
    scene = Scene.random(rng, kind="bedroom")
    segs = make_script(rng, scene.room, scene.spots, 1800.0, falls=1)
    labels = {s.label for s in segs}
    assert {"walk", "sit", "fall", "fall_still"} <= labels
    assert labels & {"lie_down", "squat", "bend", "pick_up"}
    # contiguous in time
    assert all(abs(a.end_s - b.start_s) < 1e-9 for a, b in zip(segs, segs[1:], strict=False))


def test_deterministic_and_noise_floor_from_real_logs():
    cap = simulate(seed=11, duration_s=20, falls=0, fs_hz=50, activities="still")
    x1, t1, fp1, acc1 = _frames(cap, 10.0)
    x2, t2, fp2, acc2 = _frames(simulate(seed=11, duration_s=20, falls=0, fs_hz=50,
                                         activities="still"), 10.0)
    assert np.array_equal(x1, x2) and np.array_equal(fp1, fp2)
    assert x1.dtype == np.complex64 and x1.shape[1] == 64
    assert np.allclose(np.diff(t1), 1 / 50)
    # reported first path inside the window: pre_taps + [0, 1) (+ rare misdetections)
    assert np.median(fp1) == pytest.approx(8.5, abs=0.3)
    assert np.mean((fp1 >= 8) & (fp1 < 9)) > 0.98
    # the noise floor (taps 0-3, before the first path) is 38-43 dB below the peak tap,
    # like the DW1000 logs (median -38.1 ... -41.1 dB)
    p = np.abs(x1.astype(complex)) ** 2
    # (median over frames, as on the logs: 0.5 % of frames have a misdetected first path
    # and their window starts on the pulse)
    nf_db = 10 * np.log10(np.median(p[:, :4].mean(1)) / np.median(p.max(1)))
    assert -44.0 < nf_db < -37.0
    assert abs(nf_db + cap.scene.noise_db) < 1.5
    # counts scale with RXPACC like the chip's accumulator
    assert 250 < np.median(acc1) < 500
    assert 8_000 < np.median(np.abs(x1).max(1)) < 25_000
    # random carrier phase per frame (as measured: resultant length < 0.1)
    k = np.abs(x1).argmax(1)
    ph = np.angle(x1[np.arange(len(x1)), k])
    assert abs(np.exp(1j * ph).mean()) < 0.15


def test_pulse_shape_and_full_accumulator():
    cap = simulate(seed=2, duration_s=4, falls=0, fs_hz=20, activities="still", nlos="los",
                   n_taps=1016)
    x, _, fp, _ = _frames(cap)
    assert x.shape[1] == 1016
    # content moves with the first-path index (sd ~1.7 taps + late outliers), as measured
    assert abs(np.median(fp) - FP_NOMINAL) < 1.5
    # first-path-aligned magnitude profile: ~0.1 one tap before the reported index, ~0.5
    # at it, of the first path's peak 1.2 taps later (the measured LOS profile: 0.08, 0.51,
    # 0.94 of the strongest tap at -1, 0, +1)
    prof = []
    for row, f in zip(np.abs(x), fp, strict=True):
        v = np.interp(f + np.array([-1.0, 0.0, 1.2]), np.arange(len(row)), row)
        prof.append(v / v[2])
    m = np.median(prof, axis=0)
    assert m[0] < 0.3 and 0.35 < m[1] < 0.75, m


def test_files_roundtrip_through_readers(tmp_path):
    out = tmp_path / "clip.npz"
    truth = SIMULATORS.get("uwb-activity")(out, seed=4, duration_s=25, falls=1, fs_hz=50)
    assert load_truth(out)["falls"] == truth["falls"]
    f = truth["falls"][0]
    assert f["onset_s"] < f["impact_s"] <= f["onset_s"] + 1.5
    chunks = list(open_capture(str(out)))
    data = np.concatenate([c.data for c in chunks])
    cap = simulate(UwbActivityParams(seed=4, duration_s=25, falls=1, fs_hz=50))
    x, t, fp, _ = _frames(cap)
    assert chunks[0].modality == "uwb_cir"
    assert np.array_equal(data, x)
    assert np.allclose(np.concatenate([c.fields["first_path_index"] for c in chunks]), fp)
    log = tmp_path / "clip.log"
    SIMULATORS.get("uwb-activity")(log, seed=4, duration_s=4, falls=0, fs_hz=20,
                                   activities="still")
    got = list(open_capture(str(log)))
    d2 = np.concatenate([c.data for c in got])
    cap2 = simulate(seed=4, duration_s=4, falls=0, fs_hz=20, activities="still")
    x2, t2, fp2, _ = _frames(cap2)
    assert np.array_equal(d2, x2)
    assert np.allclose(np.concatenate([c.times_s for c in got]), t2, atol=1e-6)
    assert np.allclose(np.concatenate([c.fields["first_path_index"] for c in got]), fp2,
                       atol=1e-4)


def test_breathing_simulator_truth(tmp_path):
    out = tmp_path / "b.npz"
    truth = SIMULATORS.get("uwb-breathing")(out, seed=1, duration_s=30, rate_bpm=14.0,
                                            fs_hz=20)
    assert truth["breathing_bpm"] == pytest.approx(14.0)
    assert [d["label"] for d in truth["intervals"]] == ["still"]
    assert truth["frames"] == 600


def test_cli_simulate_help_lists_options():
    r = subprocess.run([sys.executable, "-m", "agent.cli", "simulate", "uwb-activity", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for opt in ("--falls", "--fs-hz", "--nlos", "--n-taps", "--get-up"):
        assert opt in r.stdout
    json.dumps(UwbActivityParams().model_dump())
