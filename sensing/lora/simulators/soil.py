"""``lora-soil``: a far LoRa transmitter received by two antennas buried at two depths.

Physics (independent of the Topp inverse the estimator uses, so a test is not circular):

* **Soil permittivity** from water content by a four-phase Lichtenecker–Rother mixing
  model (exponent ``mixing_exponent``; 0.5 is CRIM): solid (ε = 4.7), air, bound water
  (``min(θ, 0.1 · clay)``, ε = 30 − 3j) and free water (Debye relaxation with the
  temperature-dependent static permittivity and relaxation time of Peplinski et al. 1995,
  plus the pore water's conductivity ``pore_conductivity_s_m`` as loss ``σ/(ωε0)``), and a
  surface conductivity of clay (0.05 S/m × clay fraction) added to the bulk loss.
* **Propagation**: plane wave entering at normal incidence (transmission ``2/(1+√ε)``),
  ``exp(−γ d)`` with ``γ = j k0 √ε``, plus the wave reflected by a layer at
  ``reflector_depth_m`` (coefficient ``reflector_coeff``: rock, water table), i.e.
  ``E(d) = T (e^{−γd} + Γ e^{−γ(2D − d)})``. The phase difference between the depths wraps
  once per soil wavelength (5–15 cm at 868 MHz).
* **Link**: transmitter ``distance_m`` away (free-space loss + ``excess_loss_db``), thermal
  noise of a receiver with ``noise_figure_db``, per-packet CFO drift and start phase,
  receiver phase noise (shared :mod:`sensing.simulate.radio` impairments, common to both
  antennas), and a per-**site** antenna/cable mismatch (gain ``mismatch_gain_db``, phase
  ``mismatch_phase_deg``, Gaussian standard deviations, drawn from the site name and the
  seed: the same for every reading of a site).
* **Series** (``readings`` > 1): readings spread over ``days``; rain or irrigation events
  (Poisson, ``wetting_per_day``) raise the water content by 5–20 % VWC (capped at
  ``saturation_vwc_pct``), between them it dries down exponentially towards
  ``residual_vwc_pct`` with time constant ``drydown_days``; the soil temperature follows a
  daily cycle of ``diurnal_c``.

Output: one SigMF recording per reading (``OUT`` itself for one reading, ``OUT_000``,
``OUT_001`` … for a series) with ``ambisense:soil`` = ``{"depths_m": [d0, d1], "site": …}``
and, on the reading ``reference_index``, ``"reference_vwc"`` (the true water content in %);
the truth (``OUT.truth.json``) lists every reading's water content and permittivity.
"""

from __future__ import annotations

import math
import os
import zlib
from typing import Any, Literal

import numpy as np

from sensing.lora.simulators._chirps import common_waveform, packet, packet_starts
from sensing.params import Params, param
from sensing.simulate import radio, simulator, write_truth

__all__ = ["SoilSimParams", "simulate_soil", "soil_permittivity", "field_at_depths"]

C0 = 299_792_458.0
EPS0 = 8.854187817e-12


class SoilSimParams(Params):
    """Options of ``ambisense simulate lora-soil``."""

    seed: int = param(0, doc="random seed")
    vwc_pct: float = param(25.0, unit="%", ge=0, le=60,
                           doc="water content of a single reading (start of a series)")
    readings: int = param(1, ge=1, le=1000, doc="readings (one recording each); > 1: series")
    days: float = param(10.0, unit="d", gt=0, le=365, doc="length of a series")
    wetting_per_day: float = param(0.3, ge=0, le=10, doc="rain/irrigation events per day")
    drydown_days: float = param(4.0, unit="d", gt=0, doc="dry-down time constant")
    residual_vwc_pct: float = param(5.0, unit="%", ge=0, le=30, doc="dry-down floor")
    saturation_vwc_pct: float = param(45.0, unit="%", gt=0, le=60, doc="wetting cap")
    reference_index: int = param(-1, ge=-1, doc="reading carrying reference_vwc (-1: none)")
    site: str = param("field-a", min_length=1, doc="site name (mismatch drawn from it)")
    d0_m: float = param(0.10, unit="m", ge=0, le=2, doc="depth of channel 0's antenna")
    d1_m: float = param(0.15, unit="m", gt=0, le=2, doc="depth of channel 1's antenna")
    sand: float = param(0.4, ge=0, le=1, doc="sand mass fraction")
    clay: float = param(0.2, ge=0, le=1, doc="clay mass fraction")
    bulk_density: float = param(1.4, unit="g/cm3", ge=0.8, le=2.0, doc="dry bulk density")
    pore_conductivity_s_m: float = param(0.1, unit="S/m", ge=0, le=10,
                                         doc="pore water conductivity (salinity)")
    mixing_exponent: float = param(0.5, gt=0.2, lt=1.0,
                                   doc="Lichtenecker-Rother exponent (0.5: CRIM)")
    temperature_c: float = param(20.0, unit="degC", ge=-5, le=50, doc="soil temperature")
    diurnal_c: float = param(3.0, unit="degC", ge=0, le=20,
                             doc="daily temperature swing amplitude at the antennas")
    reflector_depth_m: float = param(1.0, unit="m", gt=0, le=20,
                                     doc="depth of a reflecting layer")
    reflector_coeff: float = param(-0.3, ge=-1, le=1, doc="its reflection coefficient")
    mismatch_gain_db: float = param(0.5, unit="dB", ge=0, le=10,
                                    doc="sd of the antennas' gain mismatch per site")
    mismatch_phase_deg: float = param(3.0, unit="deg", ge=0, le=180,
                                      doc="sd of the antennas'/cables' phase mismatch per site")
    distance_m: float = param(100.0, unit="m", gt=0, le=20000, doc="transmitter distance")
    tx_power_dbm: float = param(14.0, unit="dBm", ge=-10, le=30, doc="transmit power")
    excess_loss_db: float = param(15.0, unit="dB", ge=0, le=80,
                                  doc="loss beyond free space (terrain, vegetation)")
    noise_figure_db: float = param(6.0, unit="dB", ge=0, le=30, doc="receiver noise figure")
    sf: int = param(7, ge=7, le=12, doc="spreading factor")
    bw_hz: Literal[125000, 250000, 500000] = param(125000, unit="Hz", doc="LoRa bandwidth")
    fs_hz: float = param(125000.0, unit="Hz", gt=0, le=10e6, doc="sample rate")
    center_hz: float = param(868.1e6, unit="Hz", gt=1e8, le=6e9, doc="carrier frequency")
    duration_s: float = param(0.5, unit="s", gt=0, le=600, doc="length of each recording")
    packet_interval_s: float = param(0.1, unit="s", gt=0, le=60, doc="packet period")
    preamble_len: int = param(8, ge=6, le=1000, doc="preamble up-chirps per packet")
    payload_symbols: int = param(8, ge=0, le=1000,
                                 doc="random payload symbols per packet when not real_frames")
    real_frames: bool = param(True, doc="real LoRa frames (2-byte counter payload, CRC; "
                                        "lora_packet decodes them) instead of random symbols")
    cfo_hz: float = param(3000.0, unit="Hz", ge=-50000, le=50000, doc="carrier offset")
    linewidth_hz: float = param(1.0, unit="Hz", ge=0, doc="receiver phase-noise linewidth")
    datatype: Literal["cf32_le", "ci16_le"] = param("cf32_le", doc="SigMF sample type")


def water_permittivity(freq_hz: float, temperature_c: float,
                       conductivity_s_m: float) -> complex:
    """Free water: Debye relaxation (static permittivity and relaxation time of Peplinski
    et al. 1995) plus the ionic loss of ``conductivity_s_m``; ``ε′ − jε″``."""
    t = temperature_c
    e0 = 88.045 - 0.4147 * t + 6.295e-4 * t**2 + 1.075e-5 * t**3
    tau2pi = 1.1109e-10 - 3.824e-12 * t + 6.938e-14 * t**2 - 5.096e-16 * t**3
    einf = 4.9
    w = 2 * math.pi * freq_hz
    return (einf + (e0 - einf) / (1 + 1j * freq_hz * tau2pi)
            - 1j * conductivity_s_m / (w * EPS0))


def soil_permittivity(vwc: float, freq_hz: float, *, sand: float = 0.4, clay: float = 0.2,
                      bulk_density: float = 1.4, pore_conductivity_s_m: float = 0.1,
                      temperature_c: float = 20.0, mixing_exponent: float = 0.5) -> complex:
    """Complex relative permittivity ``ε′ − jε″`` of a soil at water content ``vwc``
    (m³/m³), by the mixing model of the module doc."""
    del sand  # texture enters through clay (bound water, surface conductivity)
    rho_s = 2.66
    porosity = 1 - bulk_density / rho_s
    vwc = min(max(vwc, 0.0), porosity)
    bound = min(vwc, 0.1 * clay)
    free = vwc - bound
    a = mixing_exponent
    ew = water_permittivity(freq_hz, temperature_c, pore_conductivity_s_m)
    mix = ((1 - porosity) * 4.7**a + bound * (30 - 3j) ** a + free * ew**a
           + (porosity - vwc) * 1.0)
    eps = complex(mix ** (1 / a))
    surface = 0.05 * clay * (vwc / porosity if porosity > 0 else 0.0)
    return eps - 1j * surface / (2 * math.pi * freq_hz * EPS0)


def field_at_depths(eps: complex, depths_m: tuple[float, ...], freq_hz: float, *,
                    reflector_depth_m: float, reflector_coeff: float) -> np.ndarray:
    """Complex field (relative to the incident wave at the surface) at each depth."""
    k0 = 2 * math.pi * freq_hz / C0
    n = np.sqrt(complex(eps))
    if n.imag > 0:
        n = np.conj(n)
    gamma = 1j * k0 * n  # = α + jβ for n = n' − jκ
    t = 2 / (1 + n)
    d = np.asarray(depths_m, float)
    return t * (np.exp(-gamma * d)
                + reflector_coeff * np.exp(-gamma * (2 * reflector_depth_m - d)))


def _series(p: SoilSimParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Reading times (days) and water contents (m³/m³)."""
    t = np.linspace(0, p.days, p.readings, endpoint=p.readings == 1) if p.readings > 1 \
        else np.zeros(1)
    n_ev = rng.poisson(p.wetting_per_day * p.days) if p.readings > 1 else 0
    ev_t = np.sort(rng.uniform(0, p.days, n_ev))
    ev_a = rng.uniform(0.05, 0.20, n_ev)
    res, sat = p.residual_vwc_pct / 100, p.saturation_vwc_pct / 100
    theta, now, out = p.vwc_pct / 100, 0.0, []
    j = 0
    for ti in t:
        while j < n_ev and ev_t[j] <= ti:
            theta = res + (theta - res) * math.exp(-(ev_t[j] - now) / p.drydown_days)
            theta, now = min(theta + ev_a[j], sat), ev_t[j]
            j += 1
        theta = res + (theta - res) * math.exp(-(ti - now) / p.drydown_days)
        now = ti
        out.append(theta)
    return t, np.array(out)


def _site_mismatch(p: SoilSimParams) -> complex:
    rng = np.random.default_rng([p.seed, zlib.crc32(p.site.encode())])
    g = rng.normal(0, p.mismatch_gain_db)
    ph = math.radians(rng.normal(0, p.mismatch_phase_deg))
    return complex(radio.db_to_amplitude(g) * np.exp(1j * ph))


def _base(out: str | os.PathLike) -> str:
    base = os.fspath(out)
    for ext in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base


@simulator("lora-soil", SoilSimParams)
def simulate_soil(out: str | os.PathLike, params: SoilSimParams | None = None,
                  **options: Any) -> dict[str, Any]:
    """Write one SigMF recording per reading (see the module doc) and the truth.

    Returns
    -------
    dict
        Truth: ``readings`` (``path``, ``t_days``, ``vwc_pct``, ``permittivity`` [ε′, ε″],
        ``ka``, ``temperature_c``, ``reference``), ``site``, ``depths_m``, ``mismatch``.
    """
    from sensing.lora.formats.sigmf_iq import write_sigmf_iq

    p = SoilSimParams.build(params, options, where="lora-soil")
    if p.d1_m <= p.d0_m:
        raise ValueError(f"d1_m ({p.d1_m}) must be deeper than d0_m ({p.d0_m})")
    rng = np.random.default_rng(p.seed)
    t_days, theta = _series(p, rng)
    mismatch = _site_mismatch(p)
    base = _base(out)
    k0 = 2 * math.pi * p.center_hz / C0
    fspl_db = 20 * math.log10(4 * math.pi * p.distance_m * p.center_hz / C0)
    p_rx_w = 10 ** ((p.tx_power_dbm - fspl_db - p.excess_loss_db - 30) / 10)
    noise_w = 1.380649e-23 * 290 * p.fs_hz * 10 ** (p.noise_figure_db / 10)
    readings = []
    lora = {"sf": p.sf, "bw_hz": p.bw_hz, "sync_word": 0x12, "preamble_len": p.preamble_len,
            "cr": 1}
    for i, (td, th) in enumerate(zip(t_days, theta, strict=True)):
        temp = p.temperature_c + p.diurnal_c * math.sin(2 * math.pi * (td % 1.0 - 0.375))
        eps = soil_permittivity(th, p.center_hz, sand=p.sand, clay=p.clay,
                                bulk_density=p.bulk_density,
                                pore_conductivity_s_m=p.pore_conductivity_s_m,
                                temperature_c=temp, mixing_exponent=p.mixing_exponent)
        e = field_at_depths(eps, (p.d0_m, p.d1_m), p.center_hz,
                            reflector_depth_m=p.reflector_depth_m,
                            reflector_coeff=p.reflector_coeff)
        h = np.array([e[0], e[1] * mismatch]) * math.sqrt(p_rx_w / noise_w)  # noise = 1
        r_rng = np.random.default_rng([p.seed, i, 7])
        pkt_len = len(packet(p.sf, p.bw_hz, p.fs_hz, np.random.default_rng(0),
                             preamble_len=p.preamble_len, payload_symbols=p.payload_symbols,
                             payload=b"\0\0" if p.real_frames else None))
        n_total = int(round(p.duration_s * p.fs_hz))
        starts = packet_starts(r_rng, p.duration_s, p.packet_interval_s, p.fs_hz, pkt_len)
        pkts = [packet(p.sf, p.bw_hz, p.fs_hz, r_rng, preamble_len=p.preamble_len,
                       payload_symbols=p.payload_symbols,
                       payload=(j % 65536).to_bytes(2, "big") if p.real_frames else None)
                for j in range(len(starts))]
        s, _ = common_waveform(r_rng, n_total, p.fs_hz, starts, pkts, cfo_hz=p.cfo_hz,
                               cfo_drift_hz=20.0, linewidth_hz=p.linewidth_hz)
        y = s[:, None] * h[None, :].astype(np.complex64)
        y += radio.awgn(r_rng, y.shape, math.sqrt(0.5)).astype(np.complex64)
        y *= np.float32(0.25 / max(float(np.abs(h).max()), 1.0))
        soil = {"depths_m": [p.d0_m, p.d1_m], "site": p.site}
        ref = i == p.reference_index
        if ref:
            soil["reference_vwc"] = round(100 * th, 3)
        path = base if p.readings == 1 else f"{base}_{i:03d}"
        meta_path, _ = write_sigmf_iq(
            path, y, p.fs_hz, center_hz=p.center_hz, datatype=p.datatype, lora=lora,
            soil=soil, extra_global={"core:description": "ambisense lora-soil simulation"})
        n_soil = np.sqrt(eps)
        readings.append({
            "path": meta_path, "t_days": round(float(td), 6), "vwc_pct": round(100 * th, 4),
            "permittivity": [round(eps.real, 4), round(-eps.imag, 4)],
            "ka": round(float((abs(n_soil.real)) ** 2), 4),
            "temperature_c": round(temp, 3), "reference": ref,
            "ratio_true": [round(float((e[1] / e[0]).real), 6),
                           round(float((e[1] / e[0]).imag), 6)],
            "snr_db": round(10 * math.log10(float(np.abs(h[0]) ** 2)), 2)})
    truth = {"simulator": "lora-soil", "params": p.model_dump(), "site": p.site,
             "depths_m": [p.d0_m, p.d1_m],
             "mismatch": [round(abs(mismatch), 6), round(math.degrees(np.angle(mismatch)), 4)],
             "k0_rad_m": round(k0, 6), "readings": readings}
    write_truth(base, truth)
    return truth
