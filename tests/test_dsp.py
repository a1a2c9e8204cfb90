"""sensing.dsp: rate estimation (harmonic checks), resampling with gaps, outliers, streaming
buffers and filter state, the debouncer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from sensing.dsp import (
    Debouncer,
    RingBuffer,
    SosStream,
    UniformBinner,
    estimate_rate,
    fill_gaps,
    hampel,
    resample_uniform,
    robust_std,
    winsorize,
)

FS = 10.0
BAND_HZ = (0.9 * 6 / 60, 1.1 * 40 / 60)  # 6–40 per minute with the 10 % margin


def _breathing(rate_bpm: float, harmonic: float, n: int = 300, n_ch: int = 20, *,
               drift: float = 0.0, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    """``(n, n_ch)`` asymmetric breathing wave (fundamental + 2nd harmonic of relative
    amplitude ``harmonic``), a slow drift line at 0.12 Hz, a linear trend and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    ph = 2 * np.pi * rate_bpm / 60 * t
    wave = np.sin(ph) + harmonic * np.sin(2 * ph + 0.7)
    slow = drift * np.sin(2 * np.pi * 0.12 * t + 0.3) + 0.05 * t
    gain = rng.uniform(0.3, 1.0, n_ch)
    return np.outer(wave, gain) + np.outer(slow, rng.uniform(0.5, 1, n_ch)) \
        + noise * rng.standard_normal((n, n_ch))


# --------------------------------------------------------------------------- rate
def test_rate_asymmetric_wave_with_strong_harmonic_and_drift():
    # 35 breaths/min: the 2nd harmonic (70/min) is strong, a slow drift line sits at 7/min;
    # neither the harmonic nor the half frequency (17.5/min) may win
    x = _breathing(35.0, harmonic=0.8, drift=0.6)
    est = estimate_rate(x, FS, BAND_HZ, axis=0)
    assert est.per_min == pytest.approx(35.0, abs=0.7)
    assert est.check == "fundamental" and not est.on_edge and est.confidence > 0.5
    # with the harmonic inside the band it is still the fundamental that is reported
    wide = estimate_rate(x, FS, (0.09, 1.3), axis=0)
    assert wide.per_min == pytest.approx(35.0, abs=0.7) and wide.check == "fundamental"


def test_rate_second_harmonic_stronger_than_fundamental():
    # a reflector near a blind spot doubles the frequency: the peak at 2 × 15/min is the
    # strongest, the significant one at half of it is the rate
    x = _breathing(15.0, harmonic=2.0, drift=0.3, seed=1)
    est = estimate_rate(x, FS, BAND_HZ, axis=0)
    assert est.per_min == pytest.approx(15.0, abs=0.7)
    assert est.check == "second_harmonic"


def test_rate_no_subharmonic_lock_on_clean_fast_breathing():
    for rate, seed in ((24.0, 2), (30.0, 3), (38.0, 4)):
        est = estimate_rate(_breathing(rate, harmonic=0.5, seed=seed), FS, BAND_HZ, axis=0)
        assert est.per_min == pytest.approx(rate, abs=0.7), rate
        assert est.check == "fundamental"


def test_rate_series_axis_and_candidates():
    x = _breathing(18.0, harmonic=0.3, n_ch=1, seed=5)[:, 0]
    one = estimate_rate(x, FS, BAND_HZ)  # a 1-D series
    assert one.rate_hz == pytest.approx(0.3, abs=0.01) and one.candidate == ""
    many = _breathing(18.0, harmonic=0.3, n_ch=6, seed=6)
    a = estimate_rate(many.T, FS, BAND_HZ)  # channels first, time on the last axis
    b = estimate_rate(many, FS, BAND_HZ, axis=0)
    assert a == b
    # several candidates: the significant one wins and is named
    noise = np.random.default_rng(7).standard_normal((300, 6))
    best = estimate_rate({"noise": noise, "chest": many}, FS, BAND_HZ, axis=0)
    assert best.candidate == "chest" and best.per_min == pytest.approx(18.0, abs=0.5)
    nothing = estimate_rate(noise, FS, BAND_HZ, axis=0)
    assert nothing.confidence == 0.0
    flat = estimate_rate(np.zeros((300, 3)), FS, BAND_HZ, axis=0)
    assert np.isnan(flat.rate_hz) and flat.check == "none"


def test_rate_complex_channels_count_as_two():
    x = _breathing(20.0, harmonic=0.2, n_ch=4, seed=8)
    z = x + 1j * _breathing(20.0, harmonic=0.2, n_ch=4, seed=9)
    est = estimate_rate(z, FS, BAND_HZ, axis=0)
    assert est.per_min == pytest.approx(20.0, abs=0.5)


# --------------------------------------------------------------------------- resampling
def test_resample_with_gap_interpolates_or_leaves_nan():
    rng = np.random.default_rng(10)
    t = np.sort(rng.uniform(0, 10, 400))
    t = t[(t < 4.0) | (t >= 6.0)]  # a 2 s loss burst
    x = np.stack([np.cos(2 * np.pi * 0.2 * t), t], axis=1)
    y, grid, counts = resample_uniform(x, t, 5.0, t_start=0.0)
    assert np.allclose(np.diff(grid), 0.2) and counts.sum() == len(t)
    gap = (grid >= 4.0) & (grid < 6.0)
    assert (counts[gap] == 0).all() and (counts[~gap] > 0).all()
    # the second column is time itself: bin means then linear interpolation over the gap
    a, b = np.flatnonzero(gap)[[0, -1]] + [-1, 1]
    np.testing.assert_allclose(y[gap, 1], np.interp(grid[gap], grid[[a, b]], y[[a, b], 1]))
    y_nan, _, _ = resample_uniform(x, t, 5.0, t_start=0.0, max_gap_s=1.0)
    assert np.isnan(y_nan[gap]).all() and not np.isnan(y_nan[~gap]).any()
    # time on another axis gives the same
    yt, _, _ = resample_uniform(x.T, t, 5.0, t_start=0.0, axis=1)
    np.testing.assert_array_equal(yt, y.T)


def test_fill_gaps_edges_and_axis():
    y = np.arange(8.0)[:, None] * [1.0, -2.0]
    valid = np.array([False, True, True, False, False, True, True, False])
    out = fill_gaps(np.where(valid[:, None], y, np.nan), valid)
    np.testing.assert_allclose(out[1:7], y[1:7])
    np.testing.assert_allclose(out[[0, 7]], y[[1, 6]])  # held at the ends
    assert np.isnan(fill_gaps(y, valid, max_gap_samples=1)[[3, 4]]).all()
    np.testing.assert_array_equal(fill_gaps(out.T, valid, axis=1), out.T)


def test_uniform_binner_matches_batch_whatever_the_chunks():
    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0, 20, 900))
    t = t[(t < 9) | (t > 11.5)]
    x = rng.standard_normal((len(t), 2)) + 1j * rng.standard_normal((len(t), 2))
    y, _, counts = resample_uniform(x, t, 10.0, t_start=0.0)
    for step in (1, 13, 200):
        b = UniformBinner(10.0, 2)
        parts = [b.add(x[a:a + step], t[a:a + step]) for a in range(0, len(t), step)]
        m = np.concatenate([p[1] for p in parts])
        c = np.concatenate([p[2] for p in parts])
        np.testing.assert_array_equal(c, counts[: len(c)])
        ok = c > 0
        np.testing.assert_allclose(m[ok], y[: len(c)][ok])


# --------------------------------------------------------------------------- outliers
def test_hampel_removes_spikes_only():
    x = np.sin(np.linspace(0, 6, 200))[None] * [[1.0], [3.0]]  # 2 channels, time last
    y = x.copy()
    y[0, [40, 41, 120]] += [4.0, -3.0, 5.0]  # two adjacent spikes and a single one
    y[1, 150] -= 10.0
    out, mask = hampel(y, 7, 3.0)
    assert set(zip(*np.nonzero(mask), strict=True)) == {(0, 40), (0, 41), (0, 120), (1, 150)}
    np.testing.assert_array_equal(out[~mask], y[~mask])
    np.testing.assert_allclose(out, x, atol=0.05)
    out0, mask0 = hampel(y.T, 7, 3.0, axis=0)
    np.testing.assert_array_equal(mask0, mask.T)
    np.testing.assert_array_equal(out0, out.T)
    outc, maskc = hampel(y[0] + 1j * x[0], 7)
    assert np.iscomplexobj(outc) and set(np.flatnonzero(maskc)) == {40, 41, 120}


def test_robust_std_and_winsorize():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 5000)) * [[1.0], [2.0], [0.5]]
    np.testing.assert_allclose(robust_std(x), [1.0, 2.0, 0.5], rtol=0.05)
    y = x.copy()
    y[1, 7] = 100.0
    w = winsorize(y, 5.0)
    assert w[1, 7] == pytest.approx(np.median(y[1]) + 5 * robust_std(y[1]))
    np.testing.assert_array_equal(w[0], np.clip(y[0], -10, 10))  # nothing beyond 5 σ
    z = winsorize(y.T + 1j * y.T, 5.0, axis=0)
    np.testing.assert_array_equal(z.real, w.T)


# --------------------------------------------------------------------------- buffers
def test_ring_buffer_keeps_the_last_rows():
    r = RingBuffer(3, (2,))
    assert len(r) == 0 and r.view().shape == (0, 2) and np.isnan(r.buf[-1]).all()
    for i in range(5):
        r.append([i, -i])
    assert len(r) == 3
    np.testing.assert_array_equal(r.view(), [[2, -2], [3, -3], [4, -4]])


@pytest.mark.parametrize("steady", [True, False])
def test_sos_stream_equals_one_shot_filtering(steady):
    rng = np.random.default_rng(14)
    x = 50.0 + rng.standard_normal((3, 1000)).cumsum(axis=1)  # offset + drift, 3 channels
    sos = signal.butter(4, [0.5, 40.0], btype="bandpass", fs=256.0, output="sos")
    zi = signal.sosfilt_zi(sos)[:, :, None] * x[:, 0] if steady else np.zeros((len(sos), 2, 3))
    whole, _ = signal.sosfilt(sos, x, axis=-1, zi=np.moveaxis(zi, -1, 1))
    for cuts in ([1000], [1, 2, 3, 500], [0, 0, 17, 999], list(range(0, 1000, 97))):
        f = SosStream(sos, steady_state=steady)
        edges = [0, *sorted(cuts), 1000]
        y = np.concatenate([f.push(x[:, a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)],
                           axis=-1)
        np.testing.assert_allclose(y, whole, rtol=0, atol=1e-9)
    # time first
    g = SosStream(sos, axis=0, steady_state=steady)
    y0 = np.concatenate([g.push(x.T[a:a + 64]) for a in range(0, 1000, 64)])
    np.testing.assert_allclose(y0, whole.T, rtol=0, atol=1e-9)
    g.reset()
    assert g.zi is None


# --------------------------------------------------------------------------- debouncer
def _run(deb: Debouncer, values, dt: float = 1.0):
    out = []
    for i, v in enumerate(values):
        tr = deb.step(i * dt, v, i)
        if tr is not None:
            out.append((tr.kind, i, [inp.item for inp in tr.inputs]))
    return out


def test_debouncer_k_of_n_pulse():
    deb = Debouncer(0.5, on_count=2, on_window=4, latch=False)
    v = [0.9, 0.1, 0.1, 0.1, 0.8, 0.2, 0.6, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.7]
    # 2 of the last 4: the high at 0 is forgotten by 4; after an event the counts restart
    # (7 alone is not enough, 7 + 8 are); 13 is alone in its 4 windows
    assert _run(deb, v) == [("on", 6, [4, 6]), ("on", 8, [7, 8])]
    assert not deb.on


def test_debouncer_refractory_time():
    deb = Debouncer(0.5, on_count=1, refractory_s=3.0, latch=False)
    assert [i for _, i, _ in _run(deb, [0.9] * 10)] == [0, 3, 6, 9]
    deb = Debouncer(0.5, on_count=2, refractory_s=4.0, latch=False)
    # the run that the refractory time blocked still counts once it is over
    assert [i for _, i, _ in _run(deb, [1, 1, 1, 1, 1, 0, 0, 1, 1])] == [1, 5 + 3]


def test_debouncer_hysteresis_confirm_release():
    deb = Debouncer(0.5, 0.3, on_count=2, off_count=3)
    v = [0.6, 0.2, 0.6, 0.6, 0.4, 0.2, 0.2, 0.4, 0.1, 0.1, 0.1, 0.7, 0.7]
    # on after 2 in a row at >= 0.5; 0.4 is not low (hysteresis); off after 3 in a row < 0.3
    assert _run(deb, v) == [("on", 3, [2, 3]), ("off", 10, [8, 9, 10]), ("on", 12, [11, 12])]
    assert deb.on and deb.low(0.29) and not deb.low(0.3) and deb.high(0.5)
    deb.reset()
    assert not deb.on


def test_debouncer_hold_and_booleans():
    # motion: on after 2 active windows in a row, off 2 s after the last active one
    deb = Debouncer(on_count=2, hold_s=2.0, restart=False)
    act = [True, False, True, True, False, False, True, False, False, False, False]
    states = []
    for i, a in enumerate(act):
        deb.step(0.5 * i, a)
        states.append(deb.on)
    assert states == [False] * 3 + [True] * 7 + [False]
    assert deb.last_active_s == 3.0
    # restart=False: the counts ignore the transitions (hold 0: every active window
    # restarts what the previous one ended)
    deb = Debouncer(on_count=2, hold_s=0.0, restart=False)
    assert [k for k, _, _ in _run(deb, [True] * 5)] == ["on", "off", "on", "off"]
    deb = Debouncer(on_count=2, hold_s=0.0)
    assert [k for k, _, _ in _run(deb, [True] * 5)] == ["on", "off", "on"]


def test_debouncer_rejects_bad_counts():
    with pytest.raises(ValueError):
        Debouncer(0.5, on_count=3, on_window=2)
    with pytest.raises(ValueError):
        Debouncer(0.5, on_count=0)
    with pytest.raises(ValueError):
        Debouncer(0.5, off_count=2, off_window=1)
