"""Simulated ESP32 CSI of a room with a breathing person (``ambisense simulate csi-breathing``).

Physical model (narrow-band multipath, per subcarrier ``k`` at ``f_c + k·312.5 kHz``)::

    H_k(t) = Σ_static a_p e^{-j2π f_k L_p/c}            LOS + ~8 room reflections
           + a_c e^{-j2π f_k (L_c + ΔL(t))/c}           chest, ΔL = 2 cos(β/2) δ(t)
           + Σ_fidget a_i(t) e^{-j2π f_k L_i(t)/c}      arms/torso while fidgeting

* Geometry: receiver at the origin, transmitter 2.5–5 m away, the person ``distance_m``
  from the receiver off the link; reflection amplitudes follow the bistatic radar equation
  relative to the line of sight (``√(σ/4π)·D/(d_rx·d_tx)``, chest σ ≈ 0.5 m²), so the chest
  signal falls with distance. β is the bistatic angle.
* Breathing ``δ(t)``: asymmetric cycles (inhale ≈ 40 % of the cycle, a slower exhale),
  chest excursion ``depth_mm`` ± 15 % per breath, breath-to-breath period variability
  (coefficient of variation 5 %) and an optional linear rate drift.
* Radio impairments per packet (models of :mod:`sensing.simulate.radio`): random common
  phase (CFO), random timing offset (linear phase across subcarriers, ± 50 ns), AGC gain
  steps (Poisson, 1–6 dB) plus gain jitter,
  complex Gaussian noise at ``snr_db`` (per subcarrier, before AGC), int8 rounding and
  clipping, guard subcarriers at 0 and garbage at DC, packet-interval jitter and bursty
  (Gilbert–Elliott) loss, a slowly drifting environment path.
* Fidgets: 2–6 s of arm/torso scatterers moving at ~0.4 m/s; afterwards the chest rests
  a few centimetres away (new multipath phase). Absence: no person at all.

The in-memory generator (:func:`generate`) yields exactly the :class:`Frames` the ESP32
reader produces from the written file, so fast tests can skip the text round trip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import numpy as np
from pydantic import field_validator

from sensing.formats.esp32_csi import format_csi_line, lltf20_buffer_index
from sensing.frames import Frames
from sensing.params import OptionError, Params, param
from sensing.simulate import parse_intervals, radio, simulator, write_truth

C = 299_792_458.0  #: speed of light, m/s
SUBCARRIER_SPACING_HZ = 312.5e3
#: ESP32 LLTF subcarrier indices in ascending order (what the reader outputs).
SUBCARRIERS = np.arange(-32, 32)
_DC = SUBCARRIERS == 0
#: Ascending-order → firmware buffer order (0..31 then -32..-1).
_TO_BUFFER = lltf20_buffer_index()

BLOCK = 4096  #: packets simulated at a time (bounds memory for long captures)
_INHALE_FRACTION = 0.4
_RATE_CV = 0.05  # breath-to-breath period variability (coefficient of variation)
_DEPTH_CV = 0.15
_CHEST_RCS_M2 = 0.5
_BODY_RCS_M2 = 1.0


#: ``file_format`` → name of the capture format written (the reader's, as ``ambisense info``
#: reports it).
FILE_FORMATS = {"esp32": "esp32_csi", "intel5300": "intel5300", "nexmon": "nexmon_pcap"}
#: Receive antennas each file format can hold.
MAX_RX = {"esp32": 1, "intel5300": 3, "nexmon": 8}
#: Options recorded as the scenario in ``truth["params"]`` (the file format and layout are
#: recorded separately), in this order.
TRUTH_PARAMS = ("duration_s", "rate_bpm", "distance_m", "snr_db", "packet_rate_hz", "seed",
                "fidgets", "empty", "absent_s", "drift_bpm_per_min", "depth_mm", "jitter",
                "loss", "agc_jumps_per_min", "channel", "n_rx", "data_tones")


class ScenarioParams(Params):
    """Options of one simulated capture: ``ambisense simulate csi-breathing``,
    :func:`simulate_csi_breathing` and :func:`generate`."""

    seed: int = param(0, ge=0, doc="random seed; the same options and seed give "
                                    "byte-identical files")
    duration_s: float = param(60.0, unit="s", gt=0, doc="capture length")
    rate_bpm: float = param(15.0, unit="breaths/min", ge=2, le=80,
                            doc="mean breathing rate at the start")
    distance_m: float = param(2.0, unit="m", gt=0.2,
                              doc="person–receiver distance; the chest reflection weakens "
                                  "with distance")
    snr_db: float = param(30.0, unit="dB", ge=-20, le=80,
                          doc="per-subcarrier signal-to-noise ratio before AGC and "
                              "quantisation")
    packet_rate_hz: float = param(100.0, unit="Hz", ge=1, le=2000,
                                  doc="nominal packet rate; intervals are jittered and "
                                      "packets lost in bursts")
    layout: Literal["esp-csi", "esp32-csi-tool"] = param(
        "esp-csi", doc="column layout of the ESP32 lines (file_format esp32)")
    fidgets: int = param(0, ge=0, le=1000, doc="number of 2–6 s body-motion episodes")
    empty: bool = param(False, doc="empty room: nobody present, no breathing at all")
    absent_s: str = param("", unit="s",
                          doc='intervals with nobody present, "START-END,…" in seconds')
    drift_bpm_per_min: float = param(0.0, unit="breaths/min per min", ge=-30, le=30,
                                     doc="linear drift of the breathing rate")
    depth_mm: float = param(5.0, unit="mm", ge=0, le=50,
                            doc="chest excursion, peak to trough (± 15 % per breath)")
    jitter: float = param(0.2, unit="× period", ge=0, le=5,
                          doc="standard deviation of packet intervals relative to the "
                              "nominal period")
    loss: float = param(0.03, ge=0, lt=0.9, doc="fraction of packets lost (bursty)")
    agc_jumps_per_min: float = param(1.0, unit="1/min", ge=0, le=600,
                                     doc="mean number of AGC gain steps (1–6 dB) per minute")
    channel: int = param(6, ge=1, le=14, doc="2.4 GHz WiFi channel")
    file_format: Literal["esp32", "intel5300", "nexmon"] = param(
        "esp32", doc="file written: ESP32 CSI_DATA log, Intel 5300 .dat or Nexmon pcap")
    n_rx: int = param(1, ge=1, le=8, doc="receive antennas (esp32: 1; intel5300: 1–3; "
                                         "nexmon: 1–8 spatial streams)")
    data_tones: int | None = param(
        None, ge=1, le=31, doc="occupied subcarriers ±1…±N (default: 26, the ESP32 LLTF, "
                               "for esp32; 28, HT20, for intel5300 and nexmon)")

    @field_validator("absent_s")
    @classmethod
    def _intervals(cls, v: str) -> str:
        parse_intervals(v, "absent_s")
        return v

    @property
    def tones(self) -> int:
        """Occupied subcarriers ±1…±``tones``: ``data_tones``, or the file format's."""
        if self.data_tones is not None:
            return self.data_tones
        return 26 if self.file_format == "esp32" else 28

    def scenario(self) -> dict[str, Any]:
        """The options recorded as ``truth["params"]`` (:data:`TRUTH_PARAMS`)."""
        return {k: self.tones if k == "data_tones" else getattr(self, k)
                for k in TRUTH_PARAMS}


def _in_intervals(t: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    m = np.zeros(t.shape, bool)
    for a, b in intervals:
        m |= (t >= a) & (t < b)
    return m


@dataclass
class _Path:
    amp: float
    length_m: float
    aoa: float  # angle of arrival (rad), for multi-antenna phase


@dataclass
class Scene:
    """The random realisation of a scenario: geometry, timeline and impairments."""

    p: ScenarioParams
    rng: np.random.Generator
    fc_hz: float = 0.0
    static: list[_Path] = field(default_factory=list)
    chest: _Path | None = None
    bistatic_cos: float = 1.0
    times_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    ts_us: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    onsets_s: np.ndarray = field(default_factory=lambda: np.empty(0))
    depths_m: np.ndarray = field(default_factory=lambda: np.empty(0))
    fidgets: list[tuple[float, float]] = field(default_factory=list)
    absent: list[tuple[float, float]] = field(default_factory=list)
    agc_steps: list[tuple[float, float]] = field(default_factory=list)
    geometry: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, p: ScenarioParams) -> Scene:
        rng = np.random.default_rng(p.seed)
        s = cls(p=p, rng=rng)
        s.fc_hz = 2412e6 + 5e6 * (p.channel - 1) if p.channel < 14 else 2484e6
        link = rng.uniform(2.5, 5.0)
        ang = rng.uniform(np.deg2rad(35), np.deg2rad(145))
        person = p.distance_m * np.array([np.cos(ang), np.sin(ang)])
        d_rx = p.distance_m
        d_tx = float(np.hypot(person[0] - link, person[1]))
        # bistatic angle at the person between the directions to TX and RX
        u_rx, u_tx = -person / d_rx, (np.array([link, 0.0]) - person) / d_tx
        s.bistatic_cos = float(np.sqrt((1 + np.clip(u_rx @ u_tx, -1, 1)) / 2))
        s.geometry = {"link_m": round(link, 3), "person_rx_m": round(d_rx, 3),
                      "person_tx_m": round(d_tx, 3), "bistatic_cos": round(s.bistatic_cos, 3)}
        # static multipath: LOS (amplitude 1) + room reflections (exp. power-delay profile)
        s.static.append(_Path(rng.uniform(0.5, 1.0), link, 0.0))  # furniture may shadow LOS
        for _ in range(int(rng.integers(8, 15))):
            excess = rng.exponential(10.0) + 0.5  # rms delay spread ~30 ns, typical indoors
            refl = rng.uniform(0.3, 0.9)
            s.static.append(_Path(refl * link / (link + excess), link + excess,
                                  rng.uniform(-np.pi, np.pi)))
        radar = link / (d_rx * d_tx)
        aoa_person = float(np.arctan2(person[1], person[0]))
        s.chest = _Path(np.sqrt(_CHEST_RCS_M2 / (4 * np.pi)) * radar, d_rx + d_tx, aoa_person)
        s._body_amp = np.sqrt(_BODY_RCS_M2 / (4 * np.pi)) * radar
        s.absent = [(0.0, p.duration_s + 1.0)] if p.empty else parse_intervals(p.absent_s, "absent_s")
        s._data = (np.abs(SUBCARRIERS) >= 1) & (np.abs(SUBCARRIERS) <= p.tones)
        f = s.fc_hz + SUBCARRIERS[s._data] * SUBCARRIER_SPACING_HZ
        h0 = sum(q.amp * np.exp(-2j * np.pi * f * q.length_m / C) for q in s.static)
        s._static_power = float(np.mean(np.abs(h0) ** 2))
        s._timeline()
        return s

    def _timeline(self) -> None:
        p, rng = self.p, self.rng
        # packet times: jittered intervals, Gilbert–Elliott bursty loss (bursts of ~0.3 s)
        n_nom = int(np.ceil(p.duration_s * p.packet_rate_hz * 1.05)) + 10
        iv = radio.normal_intervals(rng, n_nom, p.packet_rate_hz, p.jitter)
        t = np.concatenate([[0.0], np.cumsum(iv)])
        t = t[t <= p.duration_s]
        burst = max(2.0, 0.3 * p.packet_rate_hz)  # mean burst length, packets
        keep = np.r_[True, radio.gilbert_elliott_keep(rng, len(t) - 1, p.loss, burst)]
        t = t[keep]
        self.ts_us = radio.counter_timestamps(rng, t, tick_hz=1e6, bits=32)
        self.times_s = (self.ts_us - self.ts_us[0]) * 1e-6
        # breaths: sequential cycles with variable period and depth
        onsets = [float(-rng.uniform(0, 60.0 / p.rate_bpm))]
        while onsets[-1] < p.duration_s + 1.0:
            rate = self.nominal_rate(onsets[-1])
            onsets.append(onsets[-1] + 60.0 / rate * max(0.6, 1 + _RATE_CV * rng.standard_normal()))
        self.onsets_s = np.asarray(onsets)
        self.depths_m = p.depth_mm * 1e-3 * np.clip(
            1 + _DEPTH_CV * rng.standard_normal(len(onsets)), 0.4, None)
        # fidgets: non-overlapping 2–6 s episodes, >= 15 s apart, not in the first 5 s
        self.fidgets = []
        tries = 0
        while len(self.fidgets) < p.fidgets and tries < 1000:
            tries += 1
            dur = rng.uniform(2.0, 6.0)
            start = rng.uniform(5.0, max(5.0, p.duration_s - dur))
            if all(start > b + 15 or start + dur < a - 15 for a, b in self.fidgets):
                self.fidgets.append((float(start), float(start + dur)))
        self.fidgets.sort()
        self._fidget_shift = rng.uniform(-0.04, 0.04, len(self.fidgets))
        self._fidget_scat = [
            (rng.uniform(0.5, 1.5, 4) * self._body_amp, rng.uniform(-0.3, 0.3, 4),
             rng.uniform(-np.pi, np.pi, 4), rng.integers(0, 2**31))
            for _ in self.fidgets
        ]
        # AGC: Poisson steps of 1–6 dB, level kept in -8..+4 dB
        self.agc_steps = radio.agc_steps(rng, p.duration_s, p.agc_jumps_per_min,
                                         size_db=(1.0, 6.0), range_db=(-8.0, 4.0))
        self._cfo_seed = int(rng.integers(0, 2**31))
        self._drift_path = _Path(0.15 * self.static[0].amp, self.static[0].length_m + 3.0,
                                 rng.uniform(-np.pi, np.pi))
        self._drift_rate = rng.uniform(-0.02, 0.02) / 60.0  # m/s: ~2 cm per minute

    # ------------------------------------------------------------------ truth
    def nominal_rate(self, t: float | np.ndarray) -> float | np.ndarray:
        """Rate the breathing drifts along (breaths/min) at time ``t`` (s)."""
        r = self.p.rate_bpm + self.p.drift_bpm_per_min * np.asarray(t) / 60.0
        return np.clip(r, 4.0, 45.0)

    def breath_phase(self, t: np.ndarray) -> np.ndarray:
        """Breathing phase in cycles (continuous) at times ``t`` (s)."""
        return np.interp(t, self.onsets_s, np.arange(len(self.onsets_s), dtype=float))

    def chest_displacement(self, t: np.ndarray) -> np.ndarray:
        """Chest excursion δ(t) in metres (0 = fully exhaled)."""
        ph = self.breath_phase(t)
        cyc = np.clip(np.floor(ph).astype(int), 0, len(self.depths_m) - 1)
        x = ph - np.floor(ph)
        ri = _INHALE_FRACTION
        w = np.where(x < ri, 0.5 * (1 - np.cos(np.pi * x / ri)),
                     0.5 * (1 + np.cos(np.pi * (x - ri) / (1 - ri))))
        return self.depths_m[cyc] * w

    def truth(self) -> dict[str, Any]:
        """Ground truth, JSON-serialisable (see :func:`simulate_csi_breathing`)."""
        p = self.p
        dur = float(self.times_s[-1])
        grid = np.arange(0.0, np.floor(dur) + 1.0)
        present = ~_in_intervals(grid, self.absent)
        inst = 60.0 / np.diff(self.onsets_s)
        idx = np.clip(np.searchsorted(self.onsets_s, grid, side="right") - 1, 0, len(inst) - 1)
        rate = np.where(present, np.round(inst[idx], 3), np.nan)
        return {
            "simulator": "csi-breathing",
            "format": FILE_FORMATS[p.file_format],
            "duration_s": round(dur, 6),
            "packets": int(len(self.times_s)),
            "rate_bpm": None if p.empty else p.rate_bpm,
            "breathing": not p.empty,
            "rate_times_s": grid.tolist(),
            "rate_series_bpm": [None if np.isnan(v) else float(v) for v in rate],
            "breath_onsets_s": [round(float(o), 4) for o in self.onsets_s if 0 <= o <= dur],
            "motion_intervals_s": [[round(a, 3), round(b, 3)] for a, b in self.fidgets],
            "absence_intervals_s": [[round(a, 3), round(min(b, dur), 3)] for a, b in self.absent],
            "agc_steps": [[round(a, 3), round(b, 2)] for a, b in self.agc_steps],
            "geometry": self.geometry,
            "params": p.scenario(),
        }

    # ------------------------------------------------------------------ signal
    def csi(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Quantised CSI of packets ``start:stop``: ``(n, 64, n_rx)`` complex64 (ascending
        subcarriers, int-valued) and RSSI (dBm, int16)."""
        p = self.p
        t = self.times_s[start:stop]
        n = len(t)
        f = self.fc_hz + SUBCARRIERS * SUBCARRIER_SPACING_HZ
        lam = C / self.fc_hz
        rx = np.arange(p.n_rx)
        h = np.zeros((n, 64, p.n_rx), complex)
        for path in self.static:
            h += path.amp * self._steer(f, path.length_m, path.aoa, rx)[None]
        dpath = self._drift_path
        dl = dpath.length_m + self._drift_rate * t
        h += dpath.amp * (np.exp(-2j * np.pi * self.fc_hz * dl / C)[:, None, None]
                          * self._steer(f - self.fc_hz, dpath.length_m, dpath.aoa, rx)[None])
        present = ~_in_intervals(t, self.absent)
        if self.chest is not None and present.any():
            # posture after each fidget: chest (and body) rest a few cm away
            shift = np.zeros(n)
            for (a, _b), d in zip(self.fidgets, self._fidget_shift, strict=True):
                shift[t >= a] += d
            dl = 2 * self.bistatic_cos * (self.chest_displacement(t) + shift)
            ph = np.exp(-2j * np.pi * dl / lam) * present
            base = self._steer(f, self.chest.length_m, self.chest.aoa, rx)
            h += self.chest.amp * ph[:, None, None] * base[None]
            body = self._steer(f, self.chest.length_m + 0.15, self.chest.aoa + 0.1, rx)
            hb = np.exp(-2j * np.pi * 2 * self.bistatic_cos * shift / lam) * present
            h += self._body_amp * hb[:, None, None] * body[None]
            for (a, b), (amps, vel, aoas, sd) in zip(self.fidgets, self._fidget_scat, strict=True):
                m = (t >= a - 0.5) & (t < b + 0.5)
                if not m.any():
                    continue
                tm = t[m]
                env = np.clip(np.minimum(tm - a, b - tm) / 0.5 + 1, 0, 1) ** 2
                srng = np.random.default_rng(int(sd))
                for amp, v, aoa in zip(amps, vel, aoas, strict=True):
                    # smooth random motion, ~0.4 m/s, deterministic in time
                    w = srng.uniform(0.5, 2.0, 3)
                    ph0 = srng.uniform(0, 2 * np.pi, 3)
                    disp = v * (tm - a) + sum(0.12 * np.sin(2 * np.pi * wi * (tm - a) + pi)
                                              for wi, pi in zip(w, ph0, strict=True))
                    L = self.chest.length_m + 2 * disp
                    h[m] += (amp * env)[:, None, None] * np.exp(
                        -2j * np.pi * f[None, :, None] * L[:, None, None] / C
                        + 1j * np.pi * np.sin(aoa) * rx[None, None, :])
        # radio impairments, common to all antennas of the NIC
        prng = np.random.default_rng([self._cfo_seed, start])
        h = h + radio.awgn(prng, h.shape, radio.noise_sd(p.snr_db, power=self._static_power))
        cfo = np.exp(1j * radio.common_phase(prng, n, -np.pi, np.pi))
        sto = radio.timing_offsets(prng, n, 50e-9)
        ramp = radio.timing_ramp(sto, SUBCARRIERS, SUBCARRIER_SPACING_HZ)
        gain_db = self.agc_level(t) + radio.gain_jitter_db(prng, n, 0.2)
        # AGC: a fixed calibration (the room's mean power) times the gain steps and jitter
        scale = 20.0 / np.sqrt(self._static_power) * radio.db_to_amplitude(gain_db)
        h = h * (cfo[:, None] * ramp * scale[:, None])[:, :, None]
        h[:, ~self._data] = 0
        garbage = prng.integers(-20, 21, (n, 2, p.n_rx))
        h[:, _DC] = (garbage[:, 0] + 1j * garbage[:, 1])[:, None, :]
        q = radio.quantise(h, "int8")
        rssi = np.round(-40 - 20 * np.log10(self.static[0].length_m)
                        + prng.standard_normal(n)).astype(np.int16)
        return q.astype(np.complex64), rssi

    def blocks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(start, csi, rssi)`` in fixed blocks of :data:`BLOCK` packets (the random
        impairments are seeded per block, so every consumer sees identical packets)."""
        n = len(self.times_s)
        for start in range(0, n, BLOCK):
            q, rssi = self.csi(start, min(start + BLOCK, n))
            yield start, q, rssi

    def _steer(self, f: np.ndarray, length: float, aoa: float, rx: np.ndarray) -> np.ndarray:
        """``(64, n_rx)`` phase of a path of ``length`` m at frequencies ``f`` (Hz); λ/2
        antenna spacing."""
        return np.exp(-2j * np.pi * f[:, None] * length / C + 1j * np.pi * np.sin(aoa) * rx[None])

    def agc_level(self, t: np.ndarray) -> np.ndarray:
        """AGC gain (dB) at times ``t`` (s)."""
        return radio.step_gain_db(t, self.agc_steps)


def generate(
    chunk_packets: int = 2048, params: ScenarioParams | None = None, **options: Any
) -> tuple[dict[str, Any], Iterator[Frames]]:
    """In-memory simulation: the ground truth and the :class:`Frames` the ESP32 reader
    would yield from the written file (``n_rx > 1`` gives multi-antenna frames that no
    ESP32 produces, for testing the CSI-ratio path).

    Parameters
    ----------
    chunk_packets : int
        Packets per yielded chunk.
    params : ScenarioParams, optional
        The scenario (default: the defaults), with ``options`` applied.
    **options
        Fields of :class:`ScenarioParams` (``file_format``, ``layout`` only choose the
        default ``data_tones``).

    Returns
    -------
    truth : dict
        As written to the sidecar by :func:`simulate_csi_breathing`.
    frames : iterator of Frames
        ``data`` complex64 ``(n, 64, n_rx, 1)``, ascending subcarriers −32…31.

    Raises
    ------
    OptionError
        An unknown option or a value out of range.
    """
    scene = Scene.build(ScenarioParams.build(params, options, where="csi-breathing"))
    return scene.truth(), _frames(scene, chunk_packets)


def _frames(scene: Scene, chunk_packets: int) -> Iterator[Frames]:
    for start, q, rssi in scene.blocks():
        for a in range(0, len(q), chunk_packets):
            b = min(a + chunk_packets, len(q))
            yield Frames(
                data=q[a:b, :, :, None], times_s=scene.times_s[start + a : start + b].copy(),
                fs_hz=None, modality="wifi_csi", source="simulated",
                subcarriers=SUBCARRIERS.copy(), fields={"rssi": rssi[a:b]},
                meta={"format": "simulated", "bandwidth_mhz": 20},
            )


@simulator("csi-breathing", ScenarioParams)
def simulate_csi_breathing(out: str | os.PathLike, params: ScenarioParams | None = None,
                           **options: Any) -> dict[str, Any]:
    """CSI capture (ESP32 log, Intel 5300 .dat or Nexmon pcap) of a breathing person (or an
    empty room) with ground truth.

    Writes ``out`` and ``out + ".truth.json"``: with ``file_format="esp32"`` one
    ``CSI_DATA`` line per packet, as ESP32 firmware prints it; ``"intel5300"`` a Linux
    802.11n CSI Tool log (bfee records, 30 subcarrier groups, ``n_rx`` receive antennas);
    ``"nexmon"`` a Nexmon CSI pcap (20 MHz, int16 CSI, one UDP packet per antenna: with
    ``n_rx > 1`` written as bcm4339 spatial streams of one core, else as bcm43455c0, the
    Raspberry Pi's chip).

    Parameters
    ----------
    out : str or path
        Capture file to write.
    params : ScenarioParams, optional
        The options (default: the defaults), with ``options`` applied.
    **options
        Fields of :class:`ScenarioParams` (``seed``, ``duration_s``, ``rate_bpm``,
        ``file_format``, ``n_rx`` …), each documented there with unit and range.

    Returns
    -------
    dict
        The truth: ``format`` (the capture format written: ``esp32_csi``, ``intel5300`` or
        ``nexmon_pcap``), ``rate_times_s``/``rate_series_bpm`` (instantaneous rate each
        second, null while absent), ``breath_onsets_s``, ``motion_intervals_s``,
        ``absence_intervals_s``, ``agc_steps``, ``geometry``, ``params`` (the scenario),
        ``file_format`` (and ``layout`` for esp32) and summary fields.

    Raises
    ------
    OptionError
        An unknown option, a value out of range, or more antennas than the file format
        holds.
    """
    p = ScenarioParams.build(params, options, where="csi-breathing")
    if p.n_rx > MAX_RX[p.file_format]:
        raise OptionError(f"csi-breathing: option 'n_rx': {p.file_format} holds 1..."
                          f"{MAX_RX[p.file_format]} receive antennas, got {p.n_rx}")
    writers = {"esp32": _write_esp32, "intel5300": _write_intel5300, "nexmon": _write_nexmon}
    scene = Scene.build(p)
    tmp = os.fspath(out) + ".part"
    with open(tmp, "wb") as fh:
        writers[p.file_format](scene, fh, layout=p.layout)
    os.replace(tmp, out)
    truth = scene.truth()
    truth["file_format"] = p.file_format
    if p.file_format == "esp32":
        truth["layout"] = p.layout
    write_truth(out, truth)
    return truth


def _t_start(p: ScenarioParams) -> float:
    """Unix time of stream time 0 (2026-01-01T00:00:00Z + seed s)."""
    return 1767225600.0 + p.seed


def _write_esp32(scene: Scene, fh: BinaryIO, *, layout: str) -> None:
    p = scene.p
    mac = "24:0A:C4:" + ":".join(
        f"{int(x):02X}" for x in np.random.default_rng(p.seed).integers(0, 256, 3))
    for start, q, rssi in scene.blocks():
        buf = q[:, _TO_BUFFER, 0]
        lines = []
        for i in range(len(q)):
            j = start + i
            lines.append(format_csi_line(
                buf[i], local_timestamp_us=int(scene.ts_us[j]), rssi=int(rssi[i]),
                channel=p.channel, seq=j % 65536, mac=mac, layout=layout,
                real_timestamp=(_t_start(p) + float(scene.times_s[j]))
                if layout == "esp32-csi-tool" else None,
            ))
        fh.write(("\n".join(lines) + "\n").encode("ascii"))


def _write_intel5300(scene: Scene, fh: BinaryIO, *, layout: str) -> None:
    from sensing.formats.intel5300 import SUBCARRIERS_20MHZ, Intel5300Writer

    w = Intel5300Writer(fh)
    groups = SUBCARRIERS_20MHZ - SUBCARRIERS[0]
    for start, q, rssi in scene.blocks():
        w.write(q[:, groups, :, None], scene.ts_us[start:start + len(q)], rssi)


#: Nexmon int16 CSI scale: the simulated int8-range values × 16 (bcm43455c0 reports
#: magnitudes of a few hundred).
_NEXMON_SCALE = 16


def _write_nexmon(scene: Scene, fh: BinaryIO, *, layout: str) -> None:
    p = scene.p
    from sensing.formats.nexmon_pcap import NexmonPcapWriter

    w = NexmonPcapWriter(fh, chip="bcm4339" if p.n_rx > 1 else "bcm43455c0",
                         channel=p.channel)
    for start, q, rssi in scene.blocks():
        n = len(q)
        w.write(q[:, :, None, :] * _NEXMON_SCALE, scene.times_s[start:start + n],
                np.arange(start, start + n) % 4096, rssi, t0_s=_t_start(p))


def window_truth_bpm(truth: dict[str, Any], end_s: float, window_s: float) -> float:
    """Mean true breathing rate over ``[end_s - window_s, end_s]`` (breaths/min).

    Counts breathing cycles (fractional, from the breath onsets) over the window, the
    quantity a windowed estimator measures. NaN when the window overlaps an absence or the
    capture has no breathing.
    """
    if not truth.get("breathing", False):
        return float("nan")
    start = end_s - window_s
    for a, b in truth.get("absence_intervals_s", []):
        if start < b and end_s > a:
            return float("nan")
    onsets = np.asarray(truth["breath_onsets_s"])
    if len(onsets) < 2:
        return float("nan")
    idx = np.arange(len(onsets), dtype=float)
    # extrapolate linearly beyond the first/last onset
    def cycles(t: float) -> float:
        if t < onsets[0]:
            return (t - onsets[0]) / (onsets[1] - onsets[0])
        if t > onsets[-1]:
            return idx[-1] + (t - onsets[-1]) / (onsets[-1] - onsets[-2])
        return float(np.interp(t, onsets, idx))

    return 60.0 * (cycles(end_s) - cycles(start)) / window_s


def overlaps(intervals: list[list[float]], start: float, end: float, margin_s: float = 0.0) -> bool:
    """True when ``[start, end]`` overlaps any ``[a, b]`` of ``intervals`` (± margin, s)."""
    return any(start < b + margin_s and end > a - margin_s for a, b in intervals)


def score_detections(
    detections: list[Any], truth: dict[str, Any], *, window_s: float = 30.0, hop_s: float = 5.0
) -> dict[str, Any]:
    """Score ``breathing_rate`` detections (objects or event dicts with ``offset_s`` and
    ``value``) against a simulated capture's truth.

    Returns
    -------
    dict
        ``errors`` (estimate − truth, breaths/min, for windows with breathing and no
        motion), ``mae``, ``worst`` (max absolute error), ``expected`` (clean windows in the
        capture), ``coverage`` (scored / expected), ``false`` (estimates where the truth has
        no breathing), ``during_motion`` (estimates whose window overlaps a fidget) and
        ``motion_errors``.
    """
    errors, motion_errors = [], []
    false = 0
    for d in detections:
        off = float(d["offset_s"] if isinstance(d, dict) else d.offset_s)
        val = float(d["value"] if isinstance(d, dict) else d.value)
        ref = window_truth_bpm(truth, off, window_s)
        if not np.isfinite(ref):
            false += 1
        elif overlaps(truth.get("motion_intervals_s", []), off - window_s, off):
            motion_errors.append(val - ref)
        else:
            errors.append(val - ref)
    dur = float(truth["duration_s"])
    ends = np.arange(window_s, dur + 1e-9, hop_s)
    expected = sum(
        1 for e in ends
        if np.isfinite(window_truth_bpm(truth, e, window_s))
        and not overlaps(truth.get("motion_intervals_s", []), e - window_s, e)
    )
    err = np.abs(np.asarray(errors))
    return {
        "errors": [round(float(e), 3) for e in errors],
        "mae": float(err.mean()) if err.size else float("nan"),
        "worst": float(err.max()) if err.size else float("nan"),
        "expected": expected,
        "coverage": len(errors) / expected if expected else float("nan"),
        "false": false,
        "during_motion": len(motion_errors),
        "motion_errors": [round(float(e), 3) for e in motion_errors],
    }
