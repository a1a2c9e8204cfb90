"""Commodity-radio impairments shared by the simulators (sensing.simulate.radio)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from sensing.simulate import radio


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- phase


def test_cfo_rotates_phase_at_the_offset_frequency():
    fs, cfo, phi0 = 125e3, 1.7e3, 0.3
    t = np.arange(1000) / fs
    y = radio.cfo_rotate(np.ones(1000, complex), t, cfo, phi0)
    assert np.angle(y[0]) == pytest.approx(phi0)
    step = np.angle(y[1:] * np.conj(y[:-1]))
    np.testing.assert_allclose(step, 2 * np.pi * cfo / fs, rtol=1e-9)
    np.testing.assert_allclose(np.abs(y), 1.0)
    # any trailing shape: time along axis 0
    y2 = radio.cfo_rotate(np.ones((1000, 3, 2), complex), t, cfo, phi0)
    np.testing.assert_allclose(y2[:, 2, 1], y)


def test_common_phase_range():
    ph = radio.common_phase(_rng(), 20000)
    assert ph.min() >= -np.pi and ph.max() < np.pi and abs(ph.mean()) < 0.05
    ph = radio.common_phase(_rng(), 1000, 0, 2 * np.pi)
    assert ph.min() >= 0 and ph.max() < 2 * np.pi


def test_timing_offset_is_a_linear_phase_slope():
    tau = np.array([10e-9, -25e-9, 0.0])
    k = np.arange(-26, 27)
    ph = radio.timing_phase(tau, k, 312.5e3)
    np.testing.assert_allclose(ph, 2 * np.pi * k[None] * 312.5e3 * tau[:, None])
    ramp = radio.timing_ramp(tau, k, 312.5e3)
    assert ramp.shape == (3, len(k))
    np.testing.assert_allclose(ramp, np.exp(-1j * ph), atol=1e-15)
    # phase difference between neighbouring subcarriers: -2π Δf τ
    d = np.angle(ramp[:, 1:] * np.conj(ramp[:, :-1]))
    np.testing.assert_allclose(d, (-2 * np.pi * 312.5e3 * tau)[:, None] * np.ones((1, len(k) - 1)),
                               atol=1e-12)
    offs = radio.timing_offsets(_rng(), 5000, 50e-9)
    assert np.abs(offs).max() <= 50e-9 and offs.std() > 25e-9


# ----------------------------------------------------------------------------- gain


def test_step_gain_at_the_given_times_and_sizes():
    t = np.array([0.0, 0.99, 1.0, 2.0, 2.5, 9.0])
    g = radio.step_gain_db(t, [(1.0, 3.0), (2.5, -2.0)])
    np.testing.assert_array_equal(g, [0.0, 0.0, 3.0, 3.0, -2.0, -2.0])
    np.testing.assert_array_equal(radio.step_gain_db(t, []), np.zeros(len(t)))
    assert radio.db_to_amplitude(20.0) == pytest.approx(10.0)
    np.testing.assert_allclose(radio.db_to_amplitude(np.array([-6.0, 0.0])), [0.501187, 1.0],
                               rtol=1e-5)


def test_agc_steps_poisson_count_sizes_and_range():
    counts = []
    for seed in range(200):
        steps = radio.agc_steps(_rng(seed), 120.0, 3.0, size_db=(1.0, 6.0), range_db=(-8.0, 4.0))
        counts.append(len(steps))
        times = [s[0] for s in steps]
        levels = np.array([0.0] + [s[1] for s in steps])
        assert times == sorted(times) and all(0 <= x < 120.0 for x in times)
        assert np.all((levels >= -8.0) & (levels <= 4.0))
        jumps = np.abs(np.diff(levels))
        inside = (levels[1:] > -8.0) & (levels[1:] < 4.0)  # a clipped step may be smaller
        assert np.all((jumps[inside] >= 1.0 - 1e-12) & (jumps[inside] <= 6.0 + 1e-12))
    assert np.mean(counts) == pytest.approx(6.0, rel=0.1)  # 3/min × 2 min
    assert radio.agc_steps(_rng(), 60.0, 0.0) == []


def test_agc_drift_steps_once_due_and_stays_in_range():
    rng = _rng(3)
    agc = radio.AgcDrift(rng, walk_db=0.0, step_db=(2.0, 3.0), interval_s=(5.0, 6.0),
                         range_db=(-6.0, 6.0))
    first = agc.next_step_s
    assert 5.0 <= first < 6.0
    t = np.arange(0.0, 10.0, 0.01)
    g = agc.gains_db(t)
    before, after = g[t < first], g[t >= first]
    np.testing.assert_array_equal(before, 0.0)
    assert np.all(after == after[0]) and 2.0 <= abs(after[0]) <= 3.0
    assert first + 5.0 <= agc.next_step_s < first + 6.0 + 0.01
    # the gain carries over to the next chunk and is clipped to the range
    for k in range(1, 40):
        g = agc.gains_db(np.arange(10.0 * k, 10.0 * (k + 1), 0.01))
        assert np.all(np.abs(g) <= 6.0)
    # a locked receiver: 0 dB and nothing drawn
    rng = _rng(1)
    locked = radio.AgcDrift(rng, locked=True)
    state = rng.bit_generator.state
    np.testing.assert_array_equal(locked.gains_db(t), 0.0)
    assert rng.bit_generator.state == state


def test_agc_drift_random_walk():
    agc = radio.AgcDrift(_rng(5), walk_db=0.05, interval_s=(1e9, 2e9))  # no step
    g = agc.gains_db(np.arange(1000) * 0.01)
    assert np.std(np.diff(g)) == pytest.approx(0.05, rel=0.1)
    assert radio.gain_jitter_db(_rng(), 20000, 0.2).std() == pytest.approx(0.2, rel=0.05)


# ----------------------------------------------------------------------------- noise


def test_awgn_at_the_requested_snr():
    sd = radio.noise_sd(20.0, power=400.0)  # 20 dB below |x|² = 400 → noise power 4
    n = radio.awgn(_rng(), (50000, 4), sd)
    assert np.mean(np.abs(n) ** 2) == pytest.approx(4.0, rel=0.02)
    assert radio.noise_sd(20.0, amplitude=20.0) == pytest.approx(2.0 / np.sqrt(2))
    with pytest.raises(ValueError):
        radio.noise_sd(20.0)
    # draw order: every real part, then every imaginary part
    r = _rng(9)
    re, im = r.standard_normal((3, 2)), r.standard_normal((3, 2))
    np.testing.assert_array_equal(radio.awgn(_rng(9), (3, 2), 1.0), re + 1j * im)


def test_quantise_rounds_and_clips():
    x = np.array([200.4 - 300j, 2.5 + 3.5j, -0.4 + 126.6j, -128.7 + 0j])
    q = radio.quantise(x, "int8")
    np.testing.assert_array_equal(q, [127 - 128j, 2 + 4j, 0 + 127j, -128 + 0j])
    q16 = radio.quantise(np.array([40000.0 - 40000j, 1234.4 + 0.6j]), "int16")
    np.testing.assert_array_equal(q16, [32767 - 32768j, 1234 + 1j])


# ----------------------------------------------------------------------------- timing, loss


def test_packet_intervals():
    iv = radio.normal_intervals(_rng(), 50000, 100.0, 0.2)
    assert iv.mean() == pytest.approx(0.01, rel=0.01)
    assert iv.std() == pytest.approx(0.002, rel=0.05)
    assert iv.min() >= 0.001 - 1e-15
    iv = radio.normal_intervals(_rng(), 10000, 100.0, 5.0)  # heavy jitter: clipped at 0.1 T
    assert iv.min() == pytest.approx(0.001)
    gi = radio.gamma_intervals(_rng(), 50000, 50.0, shape=8.0)
    assert gi.mean() == pytest.approx(0.02, rel=0.01)
    assert gi.std() / gi.mean() == pytest.approx(1 / np.sqrt(8), rel=0.05)


def _runs(lost: np.ndarray) -> np.ndarray:
    edges = np.diff(np.r_[0, lost.astype(int), 0])
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


@pytest.mark.parametrize("loss", [0.02, 0.1, 0.3])
def test_gilbert_elliott_loss_rate_and_bursts(loss):
    keep = radio.gilbert_elliott_keep(_rng(1), 400_000, loss, mean_burst=30.0)
    assert 1 - keep.mean() == pytest.approx(loss, rel=0.15)
    assert _runs(~keep).mean() > 3, "losses come in bursts"


def test_gilbert_elliott_without_loss_draws_nothing():
    rng = _rng()
    state = rng.bit_generator.state
    assert radio.gilbert_elliott_keep(rng, 1000, 0.0, 10.0).all()
    assert rng.bit_generator.state == state


@pytest.mark.parametrize("loss", [0.02, 0.05, 0.1])
def test_bernoulli_burst_loss_rate(loss):
    keep = radio.bernoulli_burst_keep(_rng(2), 400_000, loss)
    assert 1 - keep.mean() == pytest.approx(loss, rel=0.1)
    runs = _runs(~keep)
    assert (runs >= 10).any() and (runs == 1).any()
    assert radio.bernoulli_burst_keep(_rng(), 1000, 0.0).all()


# ----------------------------------------------------------------------------- clocks


def test_clock_drift_scales_times():
    t = np.linspace(0.0, 100.0, 11)
    np.testing.assert_allclose(radio.drift_times(t, 20.0), t * (1 + 20e-6))
    np.testing.assert_allclose(radio.drift_times(t, -50.0, t_ref_s=50.0),
                               50.0 + (t - 50.0) * (1 - 50e-6))
    np.testing.assert_array_equal(radio.drift_times(t, 0.0), t)
    # an ADC clock 100 ppm fast takes its samples earlier
    ts = radio.sample_times(1001, 1e3, ppm=100.0)
    assert ts[-1] == pytest.approx(1.0 / (1 + 100e-6))
    np.testing.assert_allclose(radio.sample_times(4, 2.0, t0_s=1.0), [1.0, 1.5, 2.0, 2.5])


def test_counter_timestamps():
    t = np.array([0.0, 0.0101, 1.5, 100.0])
    ts = radio.counter_timestamps(_rng(4), t)
    assert ts.dtype == np.int64 and 0 <= ts[0] < 2**32
    np.testing.assert_array_equal(np.diff(ts), [10100, 1489900, 98500000])
    fast = radio.counter_timestamps(_rng(4), t, ppm=10.0)
    assert fast[0] == ts[0] and fast[-1] - fast[0] == 100_001_000
    assert radio.counter_timestamps(_rng(), t, tick_hz=32e3, bits=16)[0] < 2**16


def test_phase_noise_is_a_wiener_process():
    fs, lw = 1e6, 100.0
    ph = radio.phase_noise(_rng(), 200_000, lw, fs, phase0_rad=1.0)
    inc = np.diff(np.r_[1.0, ph])
    assert inc.var() == pytest.approx(2 * np.pi * lw / fs, rel=0.02)
    assert abs(inc.mean()) < 5 * np.sqrt(2 * np.pi * lw / fs / len(inc))


def test_first_path_index_jitter():
    j = radio.index_jitter(_rng(), 50000, 0.5)
    assert j.std() == pytest.approx(0.5, rel=0.03)
    q = radio.index_jitter(_rng(), 1000, 0.5, resolution=1 / 64, max_samples=1.0)
    np.testing.assert_allclose(q * 64, np.round(q * 64), atol=1e-9)
    assert np.abs(q).max() <= 1.0


# ----------------------------------------------------------------------------- the simulators


def test_simulators_draw_the_same_packets_as_before():
    """The simulators' outputs did not change when their impairments moved here (the fall
    model and the figures in docs/ are built from them with fixed seeds): digests of the
    pre-refactor outputs."""
    from sensing.simulate.csi_activity import ORDINARY, Channel, make_script, stream_activity
    from sensing.simulate.csi_breathing import generate

    h = hashlib.sha256()
    rng = np.random.default_rng(7)
    channel = Channel.random(rng)
    segments = make_script(rng, 40.0, activities=ORDINARY, falls=1)
    for t, csi in stream_activity(segments, channel, rng, rate_hz=80.0, loss=0.04):
        h.update(t.tobytes())
        h.update(csi.tobytes())
    assert h.hexdigest() == ACTIVITY_SHA256

    h = hashlib.sha256()
    _, frames = generate(chunk_packets=500, seed=5, duration_s=50.0, packet_rate_hz=100.0,
                         fidgets=1, loss=0.1, agc_jumps_per_min=6.0, n_rx=2)
    for fr in frames:
        h.update(np.ascontiguousarray(fr.data).tobytes())
        h.update(fr.times_s.tobytes())
        h.update(np.asarray(fr.fields["rssi"]).tobytes())
    assert h.hexdigest() == BREATHING_SHA256


#: Computed with the simulators as they were before sensing.simulate.radio (numpy 2 streams).
ACTIVITY_SHA256 = "4b1f1306b3c3de4eaae688bf6ace8cb6ad5ca52f8d34a56674efa535e75db4a1"
BREATHING_SHA256 = "82b6486780a48c062f93e9e4ce5ab123998cc3994ee8ac1b600f85e4d48c7c23"
