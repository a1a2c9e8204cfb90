"""``lora-module-log``: a LoRa module's packet log (RSSI, SNR, frequency error per packet)
on a link that people cross from time to time.

The link's received power is steady while nobody moves (RSSI reported as an integer dBm,
so the quantisation and a 0.4 dB jitter are all that varies); during the motion episodes
(Poisson, ``episodes_per_hour``, ``episode_s`` long on average) a person walking near the
link makes the multipath fade: a Rician channel whose scattered part changes at the
walking Doppler (a few Hz), several dB of RSSI variation. The SNR follows the RSSI over a
noise floor of ``noise_floor_dbm`` (capped at +12 dB as SX127x reports); the frequency
error drifts slowly with the crystal temperature. Written with
:func:`sensing.lora.formats.module_log.write_module_log` in one of its styles; truth: the
motion episodes.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np

from sensing.params import Params, param
from sensing.simulate import simulator, write_truth

__all__ = ["ModuleLogSimParams", "simulate_module_log"]


class ModuleLogSimParams(Params):
    """Options of ``ambisense simulate lora-module-log``."""

    seed: int = param(0, doc="random seed")
    duration_s: float = param(600.0, unit="s", gt=0, le=7 * 86400, doc="log length")
    interval_s: float = param(1.0, unit="s", gt=0.01, le=3600, doc="packet period")
    rssi_dbm: float = param(-100.0, unit="dBm", ge=-140, le=0, doc="mean RSSI")
    noise_floor_dbm: float = param(-110.0, unit="dBm", ge=-140, le=-60,
                                   doc="noise floor for the SNR")
    episodes_per_hour: float = param(12.0, ge=0, le=600, doc="motion episodes per hour")
    episode_s: float = param(20.0, unit="s", gt=0, le=3600, doc="mean episode length")
    k_factor_db: float = param(6.0, unit="dB", ge=-10, le=30,
                               doc="Rician K factor of the link while someone moves")
    freq_error_hz: float = param(-1500.0, unit="Hz", ge=-50000, le=50000,
                                 doc="mean frequency error")
    style: Literal["ambisense", "radiolib", "arduino_lora"] = param(
        "ambisense", doc="line style of the log")


@simulator("lora-module-log", ModuleLogSimParams)
def simulate_module_log(out: str | os.PathLike, params: ModuleLogSimParams | None = None,
                        **options: Any) -> dict[str, Any]:
    """Write the log to ``out`` and the truth to ``out.truth.json``.

    Returns
    -------
    dict
        Truth: ``episodes`` ([start_s, end_s] of each motion episode), ``packets``.
    """
    from sensing.lora.formats.module_log import write_module_log

    p = ModuleLogSimParams.build(params, options, where="lora-module-log")
    rng = np.random.default_rng(p.seed)
    t = np.arange(0.0, p.duration_s, p.interval_s) + rng.uniform(0, 0.05, 1)
    t = np.sort(t + rng.uniform(-0.02, 0.02, len(t)) * p.interval_s)
    n_ep = rng.poisson(p.episodes_per_hour * p.duration_s / 3600)
    starts = np.sort(rng.uniform(0, p.duration_s, n_ep))
    episodes = []
    for s in starts:
        e = min(s + rng.exponential(p.episode_s) + 3.0, p.duration_s)
        if episodes and s <= episodes[-1][1]:
            episodes[-1][1] = max(episodes[-1][1], e)
        else:
            episodes.append([float(s), float(e)])
    moving = np.zeros(len(t), bool)
    for s, e in episodes:
        moving |= (t >= s) & (t < e)
    # scattered part: complex Gaussian low-passed to a few Hz (walking), sampled per packet
    k = 10 ** (p.k_factor_db / 10)
    fine = np.arange(0, p.duration_s + 1, 0.05)
    g = rng.standard_normal(len(fine)) + 1j * rng.standard_normal(len(fine))
    g = np.convolve(g, np.ones(5) / np.sqrt(5 * 2), "same")
    scat = np.interp(t, fine, g.real) + 1j * np.interp(t, fine, g.imag)
    h = np.where(moving, (np.sqrt(k) + scat) / np.sqrt(k + 1), 1.0)
    rssi = p.rssi_dbm + 20 * np.log10(np.abs(h)) + rng.normal(0, 0.4, len(t))
    snr = np.clip(rssi - p.noise_floor_dbm + rng.normal(0, 0.5, len(t)), -20, 12)
    snr = np.round(snr * 4) / 4
    drift = np.cumsum(rng.normal(0, 2.0, len(t)))
    ferr = p.freq_error_hz + drift - drift.mean() + rng.normal(0, 15, len(t))
    path = write_module_log(out, t, np.round(rssi), snr, ferr, style=p.style,
                            header=["LoRa receiver ready", "listening ..."])
    truth = {"simulator": "lora-module-log", "params": p.model_dump(), "path": path,
             "packets": int(len(t)), "episodes": episodes}
    write_truth(out, truth)
    return truth
