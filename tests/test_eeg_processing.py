"""Montages, streaming preprocessing, features and artefact flags."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensing.eeg.artefacts import FLAGS, feature_flags, raw_flags
from sensing.eeg.features import FEATURE_NAMES, window_features
from sensing.eeg.preprocess import SlidingWindows, StreamFilter
from sensing.eeg.stream_features import FeatureStream
from sensing.formats.edf.montage import bipolar_name, electrode_name, make_montage
from sensing.frames import Frames

F = {n: i for i, n in enumerate(FEATURE_NAMES)}


def test_channel_names():
    assert electrode_name("EEG Fp1-REF") == "FP1"
    assert electrode_name("T3-LE") == "T7"
    assert bipolar_name("T8-P8-1") == ("T8", "P8")  # mne's duplicate suffix
    assert bipolar_name("EEG Fp1-F7") == ("FP1", "F7")
    assert bipolar_name("Fp1-REF") is None


def test_double_banana_from_referential_and_neonatal():
    labels = [f"EEG {e}-REF" for e in ("Fp1", "F7", "T3", "T5", "O1", "Fp2", "C3", "C4", "Cz",
                                       "T4", "O2")]
    x = np.random.default_rng(0).normal(size=(10, len(labels)))
    m = make_montage(labels, "double_banana")
    assert m.names[:4] == ("FP1-F7", "F7-T7", "T7-P7", "P7-O1")
    i = m.names.index("FP1-F7")
    np.testing.assert_allclose(m.apply(x)[:, i], x[:, 0] - x[:, 1])
    assert "FP1-F3" in m.missing  # F3 not recorded
    neo = make_montage(labels, "neonatal")
    j = neo.names.index("FP2-C4")
    np.testing.assert_allclose(neo.apply(x)[:, j], x[:, 5] - x[:, 7])
    with pytest.raises(ValueError, match="unknown montage"):
        make_montage(labels, "banana_split")


def test_reversed_bipolar_channel_is_negated():
    m = make_montage(["F7-FP1", "F7-T7"], [("Fp1", "F7")])
    np.testing.assert_allclose(m.matrix, [[-1.0, 0.0]])


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 900), min_size=1, max_size=12))
def test_filter_and_windows_independent_of_chunking(cuts):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 30, (3000, 2)) + 500.0  # DC offset: no start-up step expected
    f1, w1 = StreamFilter(256.0, 2), SlidingWindows(128.0, 2)
    ref = w1.push(f1.process(x))
    f2, w2 = StreamFilter(256.0, 2), SlidingWindows(128.0, 2)
    bounds = np.unique(np.clip(np.cumsum(cuts), 0, len(x)))
    parts = np.split(x, bounds)
    got = [w2.push(f2.process(p)) for p in parts]
    wins = np.concatenate([g.windows for g in got])
    ends = np.concatenate([g.end_s for g in got])
    np.testing.assert_allclose(wins, ref.windows, atol=1e-9)
    np.testing.assert_allclose(ends, ref.end_s)
    assert f1.out_fs_hz == 128.0


def test_notch_removes_mains_and_band_keeps_eeg():
    fs = 256.0
    t = np.arange(int(60 * fs)) / fs
    eeg = 50 * np.sin(2 * np.pi * 6 * t)
    for mains in (50.0, 60.0):
        x = (eeg + 80 * np.sin(2 * np.pi * mains * t))[:, None]
        y = StreamFilter(fs, 1).process(x)[:, 0]
        ref = eeg[::2]
        tail = slice(len(y) // 2, None)
        err = np.sqrt(np.mean((y[tail] - ref[tail]) ** 2))
        assert err < 0.05 * 80  # hum attenuated > 26 dB, 6 Hz passes


def test_features_of_a_sine_are_physical():
    fs = 128.0
    t = np.arange(512) / fs
    f = window_features((100 * np.sin(2 * np.pi * 5 * t))[None, :], fs)[0]
    assert f[F["peak_freq_hz"]] == pytest.approx(5.0, abs=0.3)
    assert f[F["hjorth_mobility_hz"]] == pytest.approx(5.0, abs=0.3)
    assert f[F["rel_theta"]] > 0.95
    assert f[F["log_variance"]] == pytest.approx(np.log10(5000), abs=0.01)
    assert f[F["zero_cross_hz"]] == pytest.approx(10.0, abs=0.5)
    assert f[F["log_line_length"]] == pytest.approx(np.log10(4 * 100 * 5), abs=0.02)
    assert f[F["rhythmicity"]] > 0.9
    # the same signal at another rate gives the same features (Bonn 173.61 Hz vs 128 Hz)
    fs2 = 173.61
    t2 = np.arange(int(4 * fs2)) / fs2
    f2 = window_features((100 * np.sin(2 * np.pi * 5 * t2))[None, :], fs2)[0]
    for name in ("log_variance", "hjorth_mobility_hz", "rel_theta", "zero_cross_hz",
                 "log_line_length", "peak_freq_hz"):
        assert f2[F[name]] == pytest.approx(f[F[name]], rel=0.05, abs=0.05), name


def test_raw_flags_flat_and_clipped():
    rng = np.random.default_rng(2)
    ok = rng.normal(0, 30, 512)
    flat = np.full(512, 3.0)
    clipped = np.clip(rng.normal(0, 300, 512), -400, 400)
    fl = raw_flags(np.stack([ok, flat, clipped]))
    assert fl[0] == 0 and fl[1] == FLAGS["flat"] and fl[2] == FLAGS["clipped"]


def test_feature_flags_pop_muscle_movement():
    from scipy import signal

    fs = 128.0
    rng = np.random.default_rng(3)
    t = np.arange(512) / fs
    bg = signal.lfilter([1.0], [1.0, -0.95], rng.normal(0, 5, 512))  # 1/f-like background
    pop = bg.copy()
    pop[200:] += 400 * np.exp(-(t[200:] - t[200]) / 0.1)
    emg = signal.sosfiltfilt(signal.butter(4, [25, 45], "bandpass", fs=fs, output="sos"),
                             rng.normal(0, 60, 512)) + bg
    move = 600 * np.sin(2 * np.pi * 0.6 * t) + bg
    wins = np.stack([bg, pop, emg, move])
    fl = feature_flags(window_features(wins, fs))
    assert fl[0] == 0
    assert fl[1] & FLAGS["pop"]
    assert fl[2] & FLAGS["muscle"]
    assert fl[3] & FLAGS["movement"]


def test_feature_stream_rejects_rate_change():
    fs = FeatureStream()
    a = Frames(np.zeros((256, 2)), np.arange(256) / 256.0, 256.0, "eeg", "x")
    b = Frames(np.zeros((128, 2)), 1 + np.arange(128) / 128.0, 128.0, "eeg", "x")
    fs.push(a)
    with pytest.raises(ValueError, match="started with 2 channels at 256.0 Hz"):
        fs.push(b)
