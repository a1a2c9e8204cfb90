"""``lora-breathing``: a breathing person tens of metres away behind walls, seen by a LoRa
receiver with two antennas (one clock) and a transmitter of periodic chirps.

Geometry (plan view, metres): the receiver's two antennas at ``(0, ±λ/4)`` (half a
wavelength apart), the transmitter ``tx_rx_m`` away at a random bearing, the person's chest
``distance_m`` from the receiver at a bearing within ±50°, behind ``walls`` walls of
``wall_loss_db`` each (crossed twice: in and out). The chest moves along the line to the
receiver by the breathing displacement (``depth_mm`` peak to peak, an asymmetric waveform:
fundamental plus a 2nd harmonic, the rate wandering by ``rate_wander_bpm``).

Channel of antenna k: the direct path (free space), ``multipath`` static reflectors (3–15 m,
RCS 1–10 m²), the chest (bistatic radar equation, RCS ``rcs_m2``) and ``movers`` other
people walking (random walk at 0.4–1.2 m/s, moving a fraction ``mover_active`` of the
time) around ``mover_distance_m`` behind ``mover_walls`` walls; each path
``a · exp(−j 2π L_k / λ)`` with its length ``L_k`` to antenna k, flat over the LoRa band
(delay spread ≪ 1/bw). Common to both antennas (one receiver clock and oscillator):
per-packet carrier offset drift, start phase and timing jitter, receiver phase noise (the
shared :mod:`sensing.simulate.radio` impairments). Per antenna: thermal noise
(``noise_figure_db``) plus a floor ``dynamic_range_db`` below the received power (ADC,
spurs). Written as SigMF (``ci16_le`` by default) with ``ambisense:lora``; truth: the
breathing rate per second, the displacement and the geometry.
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal

import numpy as np

from sensing.lora.simulators._chirps import common_waveform, packet, packet_starts
from sensing.params import Params, param
from sensing.simulate import simulator, write_truth

__all__ = ["BreathingSimParams", "simulate_breathing", "breathing_channels"]

C0 = 299_792_458.0
#: Channel evaluation rate (Hz); interpolated to the samples of each packet.
GRID_HZ = 1000.0


class BreathingSimParams(Params):
    """Options of ``ambisense simulate lora-breathing``."""

    seed: int = param(0, doc="random seed")
    duration_s: float = param(60.0, unit="s", gt=1, le=3600, doc="capture length")
    present: bool = param(True, doc="a breathing person is there (False: empty room)")
    rate_bpm: float = param(15.0, unit="bpm", ge=4, le=60, doc="mean breathing rate")
    rate_wander_bpm: float = param(0.5, unit="bpm", ge=0, le=10,
                                   doc="sd of the slow wander of the rate")
    depth_mm: float = param(6.0, unit="mm", ge=0, le=50,
                            doc="chest displacement, peak to peak")
    distance_m: float = param(20.0, unit="m", gt=0.5, le=200, doc="receiver-to-chest distance")
    walls: int = param(1, ge=0, le=10, doc="walls between the link and the person")
    wall_loss_db: float = param(8.0, unit="dB", ge=0, le=40, doc="one-way loss per wall")
    rcs_m2: float = param(1.0, unit="m2", gt=0, le=10, doc="radar cross-section of the chest")
    tx_rx_m: float = param(5.0, unit="m", gt=0.1, le=200, doc="transmitter-to-receiver distance")
    tx_power_dbm: float = param(14.0, unit="dBm", ge=-10, le=30, doc="transmit power")
    noise_figure_db: float = param(6.0, unit="dB", ge=0, le=30, doc="receiver noise figure")
    dynamic_range_db: float = param(70.0, unit="dB", ge=20, le=120,
                                    doc="noise floor below the received power (ADC, spurs)")
    multipath: int = param(6, ge=0, le=50, doc="static reflectors")
    movers: int = param(1, ge=0, le=10, doc="other people walking")
    mover_distance_m: float = param(30.0, unit="m", gt=1, le=200, doc="their distance")
    mover_walls: int = param(1, ge=0, le=10, doc="walls between the link and them")
    mover_active: float = param(0.5, ge=0, le=1, doc="fraction of the time they walk")
    sf: int = param(7, ge=7, le=12, doc="spreading factor")
    bw_hz: Literal[125000, 250000, 500000] = param(125000, unit="Hz", doc="LoRa bandwidth")
    fs_hz: float = param(125000.0, unit="Hz", gt=0, le=10e6, doc="sample rate")
    center_hz: float = param(868.1e6, unit="Hz", gt=1e8, le=6e9, doc="carrier frequency")
    packet_interval_s: float = param(0.1, unit="s", gt=0.005, le=10, doc="packet period")
    preamble_len: int = param(8, ge=6, le=1000, doc="preamble up-chirps per packet")
    payload_symbols: int = param(8, ge=0, le=1000,
                                 doc="random payload symbols per packet when not real_frames")
    real_frames: bool = param(True, doc="real LoRa frames (2-byte counter payload, CRC; "
                                        "lora_packet decodes them) instead of random symbols")
    cfo_hz: float = param(5000.0, unit="Hz", ge=-50000, le=50000, doc="carrier offset")
    cfo_drift_hz: float = param(30.0, unit="Hz", ge=0, le=5000,
                                doc="sd of the CFO random walk per packet")
    linewidth_hz: float = param(1.0, unit="Hz", ge=0, le=1e5,
                                doc="receiver phase-noise linewidth")
    datatype: Literal["cf32_le", "ci16_le"] = param("ci16_le", doc="SigMF sample type")


def _path_amp(lam: float, r1: float, r2: float, rcs: float, loss_db: float) -> float:
    """Bistatic radar equation, amplitude (√W per √W transmitted, isotropic antennas)."""
    return (lam * math.sqrt(rcs) / ((4 * math.pi) ** 1.5 * r1 * r2)
            * 10 ** (-loss_db / 20))


def _breathing(rng: np.random.Generator, t: np.ndarray, p: BreathingSimParams):
    """Displacement (m) and instantaneous rate (bpm) on the grid ``t``."""
    n = len(t)
    # slow wander of the rate: smoothed random walk, sd rate_wander_bpm
    w = np.cumsum(rng.standard_normal(n))
    w -= np.linspace(w[0], w[-1], n)
    w = w / max(np.std(w), 1e-12) * p.rate_wander_bpm
    bpm = np.clip(p.rate_bpm + w, 3.0, 70.0)
    phase = 2 * np.pi * np.cumsum(bpm / 60.0) / GRID_HZ + rng.uniform(0, 2 * np.pi)
    amp = 1 + 0.1 * np.sin(2 * np.pi * t / rng.uniform(20, 40))
    shape = np.cos(phase) + 0.25 * np.cos(2 * phase + 0.7)
    shape /= np.ptp(shape[: int(GRID_HZ * 60 / p.rate_bpm) * 3 or None])
    return p.depth_mm / 1000 * amp * shape, bpm


def _walk(rng: np.random.Generator, t: np.ndarray, centre: np.ndarray, active: float):
    """A person walking around ``centre`` (m) on grid ``t``: (n, 2) positions."""
    n = len(t)
    dt = 1 / GRID_HZ
    pos = np.empty((n, 2))
    p0 = centre.copy()
    heading = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(0.4, 1.2)
    moving = rng.random() < active
    left = rng.exponential(5.0)
    i = 0
    while i < n:
        m = min(n - i, max(1, int(left / dt)))
        if moving:
            turn = np.cumsum(rng.normal(0, 0.02, m))
            hd = heading + turn
            step = speed * dt * np.stack([np.cos(hd), np.sin(hd)], 1)
            pos[i:i + m] = p0 + np.cumsum(step, 0)
            heading = hd[-1]
            # stay within 4 m of the centre: turn back
            if np.linalg.norm(pos[i + m - 1] - centre) > 4:
                heading = math.atan2(*(centre - pos[i + m - 1])[::-1])
        else:
            pos[i:i + m] = p0
        p0 = pos[i + m - 1].copy()
        i += m
        moving = (not moving) if rng.random() < 0.8 else moving
        mean = 5.0 * (active if moving else 1 - active) / 0.5 + 0.5
        left = rng.exponential(mean)
    return pos


def breathing_channels(p: BreathingSimParams, rng: np.random.Generator, t: np.ndarray):
    """Per-antenna channel gains on grid ``t`` (complex ``(n, 2)``, √W per √W) and truth.

    Draw order: geometry (bearings, reflectors), breathing, movers."""
    lam = C0 / p.center_hz
    ants = np.array([[0.0, lam / 4], [0.0, -lam / 4]])
    b_tx = rng.uniform(-np.pi, np.pi)
    tx = p.tx_rx_m * np.array([math.cos(b_tx), math.sin(b_tx)])
    k = 2 * np.pi / lam

    def paths_from(point: np.ndarray) -> np.ndarray:  # (..., 2) -> (..., n_ant) lengths
        r1 = np.linalg.norm(point - tx, axis=-1)[..., None]
        r2 = np.linalg.norm(point[..., None, :] - ants, axis=-1)
        return r1 + r2, r1, r2

    direct_len = np.linalg.norm(tx - ants, axis=-1)
    h_static = lam / (4 * np.pi * direct_len) * np.exp(-1j * k * direct_len)
    for _ in range(p.multipath):
        r = rng.uniform(3, 15)
        b = rng.uniform(-np.pi, np.pi)
        pt = r * np.array([math.cos(b), math.sin(b)])
        ln, r1, r2 = paths_from(pt)
        loss = p.wall_loss_db * 2 if rng.random() < 0.3 else 0.0
        a = _path_amp(lam, float(r1[0]), float(r2.mean()), rng.uniform(1, 10), loss)
        h_static = h_static + a * np.exp(-1j * (k * ln + rng.uniform(0, 2 * np.pi)))
    b_c = rng.uniform(-np.radians(50), np.radians(50))
    u = np.array([math.cos(b_c), math.sin(b_c)])
    x, bpm = _breathing(rng, t, p)
    h = np.repeat(h_static[None, :], len(t), 0).astype(complex)
    truth: dict[str, Any] = {"bearing_deg": round(math.degrees(b_c), 2)}
    if p.present:
        chest = p.distance_m * u[None, :] - u[None, :] * x[:, None]
        ln, r1, r2 = paths_from(chest)
        a = _path_amp(lam, float(r1.mean()), float(r2.mean()), p.rcs_m2,
                      2 * p.walls * p.wall_loss_db)
        h += a * np.exp(-1j * (k * ln + rng.uniform(0, 2 * np.pi)))
        truth["chest_to_direct_db"] = round(20 * math.log10(a / abs(h_static[0])), 2)
    for _ in range(p.movers):
        b = rng.uniform(-np.pi, np.pi)
        centre = p.mover_distance_m * np.array([math.cos(b), math.sin(b)])
        pos = _walk(rng, t, centre, p.mover_active)
        ln, r1, r2 = paths_from(pos)
        a = _path_amp(lam, float(r1.mean()), float(r2.mean()), 1.0,
                      2 * p.mover_walls * p.wall_loss_db)
        h += a * np.exp(-1j * (k * ln + rng.uniform(0, 2 * np.pi)))
    return h, x, bpm, truth


def _base(out: str | os.PathLike) -> str:
    base = os.fspath(out)
    for ext in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base


def simulate_iq(p: BreathingSimParams) -> tuple[np.ndarray, dict[str, Any]]:
    """The two-antenna IQ (complex64 ``(n, 2)``, peak about 0.5 full scale) and truth,
    without writing anything (the benchmark's sweeps use this)."""
    rng = np.random.default_rng(p.seed)
    n_total = int(round(p.duration_s * p.fs_hz))
    t = np.arange(int(p.duration_s * GRID_HZ) + 2) / GRID_HZ
    h, x, bpm, geo = breathing_channels(p, rng, t)
    pk = packet(p.sf, p.bw_hz, p.fs_hz, np.random.default_rng(0), preamble_len=p.preamble_len,
                payload_symbols=p.payload_symbols, payload=b"\0\0" if p.real_frames else None)
    starts = packet_starts(rng, p.duration_s, p.packet_interval_s, p.fs_hz, len(pk))
    pkts = [packet(p.sf, p.bw_hz, p.fs_hz, rng, preamble_len=p.preamble_len,
                   payload_symbols=p.payload_symbols,
                   payload=(i % 65536).to_bytes(2, "big") if p.real_frames else None)
            for i in range(len(starts))]
    s, cfo = common_waveform(rng, n_total, p.fs_hz, starts, pkts, cfo_hz=p.cfo_hz,
                             cfo_drift_hz=p.cfo_drift_hz, linewidth_hz=p.linewidth_hz)
    p_tx = 10 ** ((p.tx_power_dbm - 30) / 10)
    y = np.zeros((n_total, 2), np.complex64)
    idx = np.concatenate([np.arange(st, st + len(pk)) for st in starts]) if len(starts) \
        else np.zeros(0, np.int64)
    ts = idx / p.fs_hz
    for ch in range(2):
        hc = np.interp(ts, t, h[:, ch].real) + 1j * np.interp(ts, t, h[:, ch].imag)
        y[idx, ch] = s[idx] * (hc * math.sqrt(p_tx)).astype(np.complex64)
    p_rx = float(np.mean(np.abs(h[:, 0]) ** 2)) * p_tx
    noise_w = (1.380649e-23 * 290 * p.fs_hz * 10 ** (p.noise_figure_db / 10)
               + p_rx * 10 ** (-p.dynamic_range_db / 10))
    # complex white noise as radio.awgn (real parts, then imaginary parts), drawn in float32:
    # millions of samples per second of capture
    sd = np.float32(math.sqrt(noise_w / 2))
    y.real += sd * rng.standard_normal(y.shape, dtype=np.float32)
    y.imag += sd * rng.standard_normal(y.shape, dtype=np.float32)
    y *= np.float32(0.5 / (math.sqrt(p_rx) * 2.5))
    sec = np.arange(int(p.duration_s))
    truth = {
        "simulator": "lora-breathing", "params": p.model_dump(), "present": p.present,
        "rate_bpm_per_s": [round(float(v), 4) for v in
                           np.interp(sec + 0.5, t, bpm)] if p.present else [],
        "mean_rate_bpm": round(float(bpm.mean()), 4) if p.present else None,
        "depth_mm_p2p": round(float(np.ptp(x[: int(GRID_HZ * 30)]) * 1000), 3)
        if p.present else 0.0,
        "snr_db": round(10 * math.log10(p_rx / noise_w), 2),
        "packets": int(len(starts)), "cfo_hz_range": [round(float(cfo.min()), 1),
                                                      round(float(cfo.max()), 1)]
        if len(cfo) else [],
        **geo,
    }
    return y, truth


def truth_rate(truth: dict[str, Any], start_s: float, end_s: float) -> float:
    """Mean true rate (bpm) over ``[start_s, end_s)``."""
    r = np.asarray(truth["rate_bpm_per_s"])
    a, b = max(int(math.floor(start_s)), 0), min(int(math.ceil(end_s)), len(r))
    return float(r[a:b].mean()) if b > a else float("nan")


@simulator("lora-breathing", BreathingSimParams)
def simulate_breathing(out: str | os.PathLike, params: BreathingSimParams | None = None,
                       **options: Any) -> dict[str, Any]:
    """Write ``OUT.sigmf-meta`` / ``.sigmf-data`` and ``OUT.truth.json`` (see the module doc).

    Returns
    -------
    dict
        Truth: ``rate_bpm_per_s`` (the rate in each second), ``mean_rate_bpm``,
        ``depth_mm_p2p``, ``present``, ``snr_db``, ``chest_to_direct_db``, geometry.
    """
    from sensing.lora.formats.sigmf_iq import write_sigmf_iq

    p = BreathingSimParams.build(params, options, where="lora-breathing")
    y, truth = simulate_iq(p)
    base = _base(out)
    lora = {"sf": p.sf, "bw_hz": p.bw_hz, "sync_word": 0x12, "preamble_len": p.preamble_len,
            "cr": 1}
    meta_path, _ = write_sigmf_iq(
        base, y, p.fs_hz, center_hz=p.center_hz, datatype=p.datatype, lora=lora,
        extra_global={"core:description": "ambisense lora-breathing simulation"})
    truth["path"] = meta_path
    write_truth(base, truth)
    return truth
