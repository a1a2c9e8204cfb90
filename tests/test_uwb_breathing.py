"""Breathing and presence from UWB CIRs and radar frames: synthetic scenes with known
rates (MAE), chunk invariance, conditioning, and the real Acconeer A121 recordings against
the vendor's own breathing output."""

from __future__ import annotations

import numpy as np
import pytest

from sensing.frames import Frames
from sensing.uwb.breathing import RangeBinBreathing
from sensing.uwb.conditioning import (
    CirAligner,
    ClutterRemover,
    RangeTimeMap,
    RangeTracker,
    detect_first_path,
    doppler_spectrogram,
    fractional_shift,
)
from sensing.uwb.presence import PresenceDetector
from tests.conftest import shared_path

WL_CH5 = 299_792_458.0 / 6489.6e6  # m


def pulse(taps: np.ndarray, at: float, width: float = 1.2) -> np.ndarray:
    """A band-limited UWB pulse (Gaussian-windowed sinc) centred at fractional tap ``at``."""
    d = taps - at
    return np.sinc(d / width) * np.exp(-(d / (2.5 * width)) ** 2)


def synth_cir(rate_bpm: float = 15.0, *, seconds: float = 60.0, fs: float = 20.0,
              amp_mm: float = 4.0, body_taps: float = 10.0, person: str = "breathing",
              seed: int = 0, n_taps: int = 1016, snr_db: float = 42.0) -> Frames:
    """DW1000-like CIRs of a link with a breathing (or absent, or walking) person.

    Direct path at ~745 taps with integer window jitter (±2 taps) and a fractional
    first-path index, a random carrier phase per frame, static multipath, the body echo
    ``body_taps`` after the first path with its phase modulated by the chest displacement
    (``4 pi d / wavelength``), complex noise ``snr_db`` below the direct path, RXPACC
    varying per frame (raw accumulators scale with it).
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    taps = np.arange(n_taps, dtype=float)
    fp = 745.0 + rng.integers(-2, 3, n) + rng.uniform(0, 1, n)
    acc = rng.integers(900, 1020, n)
    x = np.zeros((n, n_taps), np.complex64)
    statics = [(3.0, 0.5), (17.0, 0.35), (25.0, 0.2)]
    phases = rng.uniform(0, 2 * np.pi, len(statics))
    if person == "breathing":
        disp = amp_mm * 1e-3 * np.sin(2 * np.pi * rate_bpm / 60 * t)
        delay = np.full(n, body_taps)
    elif person == "walking":
        disp = 0.6 * np.sin(2 * np.pi * 0.1 * t)  # 0.6 m back and forth
        delay = body_taps + disp * 2 / (299_792_458.0 * 1.0016e-9)
    else:
        disp = np.zeros(n)
        delay = np.full(n, body_taps)
    carrier = rng.uniform(0, 2 * np.pi, n)
    for i in range(n):
        row = pulse(taps, fp[i])
        for (dt, a), ph in zip(statics, phases, strict=True):
            row = row + a * np.exp(1j * ph) * pulse(taps, fp[i] + dt)
        if person != "empty":
            row = row + 0.25 * np.exp(1j * (1.0 + 4 * np.pi * disp[i] / WL_CH5)) \
                * pulse(taps, fp[i] + delay[i])
        x[i] = row * np.exp(1j * carrier[i])
    noise = 10 ** (-snr_db / 20) / np.sqrt(2)
    x = x + noise * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
    x = (x * (acc[:, None] * 20.0)).astype(np.complex64)
    return Frames(data=x, times_s=t, fs_hz=fs, modality="uwb_cir", source="synth",
                  fields={"first_path_index": fp, "rxpacc": acc},
                  meta={"format": "synth", "tap_s": 1.0016e-9, "channel": 5})


def synth_radar(rate_bpm: float = 15.0, *, seconds: float = 60.0, fs: float = 20.0,
                amp_mm: float = 2.0, seed: int = 0, person: str = "breathing") -> Frames:
    """A121-like frames: 21 points 0.3-1.5 m, a chest at 0.78 m (60 GHz phase)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    t = np.arange(n) / fs
    r = 0.2978 + np.arange(21) * 0.06
    wl = 299_792_458.0 / 60.5e9
    x = np.zeros((n, 21), np.complex64)
    x += 300 * np.exp(-((r - 0.32) / 0.05) ** 2)[None, :]       # leakage / static
    if person == "breathing":
        d = amp_mm * 1e-3 * np.sin(2 * np.pi * rate_bpm / 60 * t)
        env = np.exp(-((r - 0.78) / 0.07) ** 2)
        x += 200 * env[None, :] * np.exp(1j * 4 * np.pi * (0.78 + d)[:, None] / wl)
    x += 5 * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))
    return Frames(data=x.astype(np.complex64), times_s=t, fs_hz=fs, modality="radar",
                  source="synth", meta={"range_m": r.tolist(), "wavelength_m": wl})


def chunks(fr: Frames, size: int):
    for a in range(0, len(fr), size):
        yield Frames(data=fr.data[a:a + size], times_s=fr.times_s[a:a + size],
                     fs_hz=fr.fs_hz, modality=fr.modality, source=fr.source,
                     fields={k: v[a:a + size] for k, v in fr.fields.items()}, meta=fr.meta)


def run(stage, fr: Frames, size: int = 64):
    out = []
    for c in chunks(fr, size):
        out += stage.push(c)
    return out + stage.flush()


# -- conditioning ---------------------------------------------------------------------------

def test_alignment_removes_first_path_jitter():
    fr = synth_cir(person="empty", seconds=5)
    al = CirAligner(before=4, after=40).push(fr)
    assert al.data.shape == (len(fr), 44) and al.meta["aligned"]
    mag = np.abs(al.data)
    # the direct path lands on column 4 in every frame, to a fraction of a tap
    assert np.all(mag.argmax(axis=1) == 4)
    # static multipath at +17 taps is stationary after alignment (jitter removed)
    col = mag[:, 4 + 17] / mag[:, 4]
    assert col.std() / col.mean() < 0.05
    raw = np.abs(fr.data[:, 745 + 17]) / np.abs(fr.data).max(axis=1)
    assert raw.std() / raw.mean() > 0.3  # without alignment that tap is not stationary
    assert al.meta["range_m"][4] == 0.0


def test_detect_first_path_and_fractional_shift():
    taps = np.arange(200.0)
    rows = np.stack([pulse(taps, 100.3), pulse(taps, 120.7)]).astype(np.complex64)
    fp = detect_first_path(rows, peak_fraction_db=-6)
    assert np.all(np.abs(fp - np.array([100.3, 120.7])) < 1.0)
    moved = fractional_shift(rows, np.array([0.5, -0.7]))
    assert np.argmax(np.abs(moved[0])) in (100, 101)
    assert np.argmax(np.abs(moved[1])) == 120


def test_clutter_removal_keeps_only_what_moves():
    fr = synth_radar(seconds=30)
    out = ClutterRemover(time_constant_s=5).push(fr)
    late = np.abs(out.data[200:]).mean(axis=0)
    r = np.array(fr.meta["range_m"])
    assert late[np.argmin(abs(r - 0.32))] < 0.05 * 300       # static leakage gone
    assert late[np.argmin(abs(r - 0.78))] > 10                # the chest stays
    rt = RangeTimeMap(window_s=10)
    for c in chunks(out, 50):
        rt.push(c)
    t, rng, mag = rt.map()
    assert t[-1] - t[0] <= 10 + 1e-9 and mag.shape == (len(t), 21) and len(rng) == 21


def test_micro_doppler_and_tracker_follow_a_walker():
    fr = synth_cir(person="walking", seconds=20)
    al = ClutterRemover(time_constant_s=2).push(CirAligner(before=4, after=60).push(fr))
    freqs, times, power = doppler_spectrogram(al.data, 20.0, nfft=32, hop=8)
    assert power.shape[1:] == (64, 32) and len(times) == len(power)
    tr = RangeTracker(smooth_s=0.2).push(al)
    ok = tr["valid"] & np.isfinite(tr["range_m"])
    assert ok.mean() > 0.9
    # the body moves 1.2 m in excess path/2 back and forth; the track spans most of it
    assert np.ptp(tr["range_m"][ok]) > 0.6


# -- breathing ------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [9.0, 14.0, 19.0, 26.0])
def test_cir_breathing_rate_mae(rate):
    fr = synth_cir(rate, seconds=50, seed=int(rate))
    dets = run(RangeBinBreathing(), fr)
    assert len(dets) >= 5
    err = np.abs(np.array([d.value for d in dets]) - rate)
    assert err.mean() <= 0.5, [d.value for d in dets]
    # the chest bin is the body echo, 10 taps (1.5 m excess path/2) after the direct path
    assert all(abs(d.extra["range_m"] - 10 * 1.0016e-9 * 299_792_458 / 2) < 0.35 for d in dets)


@pytest.mark.parametrize("rate", [8.0, 16.0, 24.0])
def test_radar_breathing_rate_mae(rate):
    dets = run(RangeBinBreathing(), synth_radar(rate, seconds=50, seed=3))
    assert len(dets) >= 5
    assert np.abs(np.array([d.value for d in dets]) - rate).mean() <= 0.5


def test_breathing_is_chunk_invariant_and_silent_on_an_empty_room():
    fr = synth_cir(17.0, seconds=40, seed=5)
    a = run(RangeBinBreathing(hop_s=2), fr, 7)
    b = run(RangeBinBreathing(hop_s=2), fr, 256)
    assert [(d.offset_s, d.value) for d in a] == [(d.offset_s, d.value) for d in b]
    empty = run(RangeBinBreathing(), synth_cir(person="empty", seconds=40, seed=6))
    assert empty == []


# -- presence -------------------------------------------------------------------------------

@pytest.mark.parametrize("person,expected", [("empty", {"empty"}), ("breathing", {"still"}),
                                             ("walking", {"moving"})])
def test_presence_states(person, expected):
    det = PresenceDetector()
    states = run(det, synth_cir(person=person, seconds=40, seed=11))
    late = [s.state for s in states if s.end_s >= 20]
    assert late and set(late) <= expected, late


def test_presence_on_radar_breathing():
    states = run(PresenceDetector(), synth_radar(seconds=30))
    assert {s.state for s in states} == {"still"}
    empty = run(PresenceDetector(), synth_radar(seconds=30, person="empty"))
    assert {s.state for s in empty} == {"empty"}


# -- real recordings ------------------------------------------------------------------------

@pytest.mark.parametrize("name,vendor_bpm", [("breathing-sitting", 18.7),
                                             ("breathing-sitting-no-presence", 20.7)])
def test_a121_breathing_agrees_with_the_vendor(name, vendor_bpm):
    from sensing.formats import open_capture
    from sensing.uwb.formats.acconeer_h5 import read_vendor_output

    path = shared_path("radar", "acconeer-a121", f"{name}.h5")
    vendor = read_vendor_output(path.with_name(f"{name}.vendor-output.h5"))
    assert np.nanmedian(vendor["breathing_rate_bpm"]) == pytest.approx(vendor_bpm, abs=0.05)
    est = RangeBinBreathing(hop_s=1)
    dets = []
    for fr in open_capture(path):
        dets += est.push(fr)
    assert len(dets) >= 5
    assert abs(np.median([d.value for d in dets]) - vendor_bpm) <= 1.5
    states = run(PresenceDetector(), _concat(open_capture(path)))
    assert states and all(s.state != "empty" for s in states)


def _concat(reader) -> Frames:
    parts = list(reader)
    return Frames(data=np.concatenate([p.data for p in parts]),
                  times_s=np.concatenate([p.times_s for p in parts]), fs_hz=parts[0].fs_hz,
                  modality=parts[0].modality, source="x", meta=parts[0].meta)


def test_range_time_plot_shows_the_chest():
    """The default uwb_cir/radar plot: a bounded range-time summary whose strongest
    moving row is the chest, drawn with breathing events."""
    pytest.importorskip("matplotlib")
    from sensing.plot import PLOTTERS
    from sensing.plot.base import new_figure

    for fr, chest_m in ((synth_radar(seconds=20), 0.78),
                        (synth_cir(seconds=20), 10 * 1.0016e-9 * 299_792_458 / 2)):
        plotter = PLOTTERS.get(fr.modality)()
        s = plotter.summarize(chunks(fr, 50), max_columns=40)
        assert s.magnitude.shape == (len(s.range_m), s.columns) and s.columns <= 40
        row = int(np.nanargmax(np.nanmean(s.magnitude, axis=1)))
        assert abs(s.range_m[row] - chest_m) < 0.2, (fr.modality, s.range_m[row])
        fig = new_figure()
        plotter.draw(s, [{"type": "breathing_rate", "offset_s": 15.0, "value": 15.0},
                         {"type": "presence", "offset_s": 10.0, "value": 1},
                         {"type": "fall", "offset_s": 12.0}], fig)
        assert len(fig.axes) == 3


# -- shared and incremental conditioning: the same numbers, computed once ---------------

def test_pipelines_share_the_conditioning_with_identical_events(monkeypatch):
    from agent.pipelines.shared import SharedStages
    from sensing.uwb.breathing import SlowTimeConditioner
    from sensing.uwb.pipelines.breathing import UwbBreathingPipeline
    from sensing.uwb.pipelines.presence import UwbPresencePipeline

    calls = []
    original = SlowTimeConditioner._condition

    def counted(self, frames):
        calls.append(id(frames))
        return original(self, frames)

    monkeypatch.setattr(SlowTimeConditioner, "_condition", counted)
    fr = synth_cir(14.0, seconds=45, seed=8)
    parts = list(chunks(fr, 50))

    def events(bound):
        pipes = [UwbBreathingPipeline(hop_s=2.0), UwbPresencePipeline()]
        if bound:
            shared = SharedStages()
            for p in pipes:
                p.bind(shared)
        out = {p.name: [] for p in pipes}
        for c in parts:
            for p in pipes:
                out[p.name] += p.push(c)
        return out

    calls.clear()
    alone = events(False)
    assert len(calls) == 2 * len(parts)  # each pipeline aligns every chunk once
    calls.clear()
    together = events(True)
    assert len(calls) == len(parts)      # bound: one alignment per chunk for both
    assert together == alone
    assert alone["uwb_breathing"] and alone["uwb_presence"]


def _reference_window(rows, times, end_s, length_s, p, rate):
    """The slow-time window as a plain list-of-chunks history computes it."""
    from sensing.uwb.breathing import _interp_cols

    t = np.concatenate(times)
    x = np.concatenate(rows)
    sel = (t >= end_s - length_s - 1e-9) & (t <= end_s + 1e-9)
    if sel.sum() < 16:
        return None
    t, x = t[sel], x[sel]
    span = t[-1] - t[0]
    if span < p.min_coverage * length_s:
        return None
    fs = min(rate, p.max_rate_hz)
    n = max(int(np.floor(span * fs)) + 1, 8)
    grid = t[0] + np.arange(n) / fs
    grid = grid[grid <= t[-1] + 1e-9]
    if np.max(np.diff(t), initial=0.0) > 30.0 / p.max_bpm:
        return None
    if len(grid) == len(t) and np.allclose(grid, t, atol=0.25 / fs):
        return x
    slow = np.empty((len(grid), x.shape[1]), np.complex64)
    slow.real = _interp_cols(grid, t, x.real)
    slow.imag = _interp_cols(grid, t, x.imag)
    return slow


@pytest.mark.parametrize("fs,shuffle", [(20.0, False), (50.0, False), (20.0, True)])
def test_slow_time_window_equals_a_plain_history(fs, shuffle):
    """The in-place history (appended rows, whole chunks dropped, windows by search) gives
    the windows of a plain list of chunks bit for bit, times out of order included."""
    from sensing.uwb.breathing import SlowTimeWindow, UwbBreathingParams

    rng = np.random.default_rng(4)
    p = UwbBreathingParams(window_s=10.0, hop_s=2.0)
    win = SlowTimeWindow(p)
    radar = synth_radar(seconds=60, fs=fs, seed=9)
    t = radar.times_s + rng.uniform(0, 0.2 / fs, len(radar))  # irregular
    if shuffle:
        k = rng.integers(0, len(t) - 1, 20)
        t[k], t[k + 1] = t[k + 1].copy(), t[k].copy()
    rows, times, a, checked = [], [], 0, 0
    while a < len(t):
        b = min(len(t), a + int(rng.integers(1, 90)))
        part = Frames(data=radar.data[a:b], times_s=t[a:b], fs_hz=fs, modality="radar",
                      source="s", meta=radar.meta)
        win.push(part)
        rows.append(radar.data[a:b][:, win.columns])
        times.append(t[a:b])
        while len(times) > 1 and times[1][0] < t[b - 1] - win.keep_s:
            rows.pop(0)
            times.pop(0)
        end = float(t[b - 1])
        for length in (p.window_s, 3.0):
            got = win.window(end, length)
            ref = _reference_window(rows, times, end, length, p, fs)
            assert (got is None) == (ref is None)
            if ref is not None:
                assert got[0].dtype == np.complex64
                np.testing.assert_array_equal(got[0], ref)
                checked += 1
        a = b
    assert checked > 20


def test_presence_noise_level_equals_robust_std():
    from sensing.dsp.outliers import robust_std
    from sensing.uwb.presence import _robust_std_cols

    rng = np.random.default_rng(6)
    for n in (2, 3, 50, 199, 200):
        for dtype in (np.float32, np.float64):
            y = (rng.normal(size=(n, 9)) * 20).astype(dtype)
            y[:, 2] = 3.0                      # ties
            y[::2, 4] = y[0, 4]
            got = _robust_std_cols(y)
            assert got.dtype == robust_std(y, axis=0).dtype
            np.testing.assert_array_equal(got, robust_std(y, axis=0))
    y[1, 5] = np.nan
    np.testing.assert_array_equal(_robust_std_cols(y), robust_std(y, axis=0))
