"""Scenes of the acoustic sonar simulators: a room with a breathing person
(``acoustic-sonar``), a face blinking in front of a phone (``acoustic-blink``) and a
closed car cabin with or without a breathing occupant (``acoustic-cabin``).

Every scene has the same speaker and microphone model (:mod:`.render`): direct leakage
``leak_db`` above the in-band noise floor, roll-off above ``rolloff_hz``, clock offset
``clock_ppm`` drifting by ``clock_drift_ppm_per_min``; static multipath (walls as image
sources with frequency-dependent loss, furniture or seats as point reflectors); and the
person as moving reflectors:

* chest + abdomen: asymmetric breathing cycles (inhale 40 % of the cycle, slower exhale),
  peak-to-peak ``depth_mm`` ± 15 % per breath, breath-to-breath period variability (CV
  5 %), linear drift ``drift_bpm_per_min``, and a slow random body wander (≈ 0.5 mm);
* the face (nose, forehead, cheeks, chin: ≈ 1 cm² … 20 cm² cross-sections within one
  range cell) with breathing-coupled head sway ``head_sway_mm`` and small head motions
  (Poisson, ``head_moves_per_min``: 1–4 mm translation and a turn to a new yaw within ±2°
  over 0.4–1.5 s);
* the eyes: two weak reflectors (``eye_rcs_cm2``) in the face's range cell; a blink
  closes the lid over ``blink_s`` (0.1–0.4 s: closing ≈ 35 %, reopening ≈ 65 %), moving
  the reflection ``eyelid_path_mm`` closer and scaling it by the lid's reflectivity
  ``lid_reflectivity``.

Ground truth (``<out>.truth.json``, and SigMF annotations): breath onsets and rates, blink
onsets and durations, head-motion intervals, occupant presence intervals, the clock offset
over time and the echo levels.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from sensing.acoustic.probe import Probe, probe_to_json
from sensing.acoustic.simulators.render import (
    BLOCK,
    MOTION_FS,
    Clock,
    NoiseGen,
    Reflector,
    Renderer,
    point_amp,
)
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.simulate import parse_intervals, simulator, write_truth

_INHALE_FRACTION = 0.4
_RATE_CV = 0.05
_DEPTH_CV = 0.15
A_LEAK = 1.0  #: leakage amplitude relative to the played signal


class SonarSimParams(Params):
    """Options common to the acoustic sonar simulators."""

    seed: int = param(0, ge=0, doc="random seed; the same options and seed give "
                                    "identical files")
    duration_s: float = param(60.0, unit="s", gt=0, le=36_000, doc="capture length")
    fs_hz: int = param(48_000, unit="Hz", ge=44_100, le=192_000,
                       doc="microphone sample rate")
    probe_type: Literal["fmcw", "cw"] = param("fmcw", doc="probe: FMCW chirps or CW tones")
    f0_hz: float = param(18_000.0, unit="Hz", gt=0, doc="FMCW sweep start")
    f1_hz: float = param(22_000.0, unit="Hz", gt=0, doc="FMCW sweep end")
    chirp_s: float = param(0.01, unit="s", gt=0, le=1, doc="FMCW sweep length")
    period_s: float = param(0.02, unit="s", gt=0, le=1,
                            doc="FMCW chirp repetition period (>= chirp_s)")
    tones_hz: str = param("20000", unit="Hz", doc="CW tone frequencies, comma separated")
    window: Literal["none", "hann", "tukey"] = param("tukey",
                                                     doc="amplitude window of each chirp")
    amplitude: float = param(0.5, gt=0, le=1, doc="played amplitude (fraction of full scale)")
    start_s: float = param(0.0, unit="s", ge=0, le=10, doc="first chirp after the start")
    leak_db: float = param(65.0, unit="dB", ge=10, le=100,
                           doc="direct speaker→microphone leakage above the white noise "
                               "floor, both in the probe band")
    speaker_mic_m: float = param(0.12, unit="m", gt=0.005, le=1,
                                 doc="speaker–microphone distance (leakage path)")
    rolloff_hz: float = param(20_000.0, unit="Hz", gt=1000,
                              doc="speaker and microphone roll-off (4th order each)")
    clock_ppm: float = param(40.0, unit="ppm", ge=-500, le=500,
                             doc="speaker clock offset against the microphone's")
    clock_drift_ppm_per_min: float = param(0.5, unit="ppm/min", ge=-50, le=50,
                                           doc="linear drift of the clock offset")
    speech_dbfs: float | None = param(None, unit="dBFS", le=0,
                                      doc="speech noise RMS level (None: off)")
    engine_dbfs: float | None = param(None, unit="dBFS", le=0,
                                      doc="engine noise (20–200 Hz + harmonics) RMS level")
    road_dbfs: float | None = param(None, unit="dBFS", le=0, doc="road noise RMS level")
    temp_drift_c_per_h: float = param(0.0, unit="°C/h", ge=-50, le=50,
                                      doc="air temperature drift (stretches every path)")
    file_format: Literal["wav", "sigmf"] = param("wav", doc="WAV + sidecar or SigMF")
    subtype: Literal["int16", "int24", "int32", "float32"] = param(
        "int16", doc="sample encoding (WAV; SigMF: int16 → ri16_le, float32 → rf32_le)")

    @field_validator("tones_hz")
    @classmethod
    def _tones(cls, v: str) -> str:
        _parse_floats(v)
        return v

    def probe(self) -> Probe:
        if self.probe_type == "cw":
            return Probe(type="cw", tones_hz=tuple(_parse_floats(self.tones_hz)),
                         start_s=self.start_s, amplitude=self.amplitude)
        return Probe(type="fmcw", f0_hz=self.f0_hz, f1_hz=self.f1_hz, chirp_s=self.chirp_s,
                     period_s=max(self.period_s, self.chirp_s), start_s=self.start_s,
                     amplitude=self.amplitude, window=self.window)


class BreathingSimParams(SonarSimParams):
    """``acoustic-sonar``: a breathing person in a room in front of the phone."""

    distance_m: float = param(0.6, unit="m", ge=0.1, le=3, doc="phone–chest distance")
    rate_bpm: float = param(15.0, unit="breaths/min", ge=3, le=60, doc="mean breathing rate")
    drift_bpm_per_min: float = param(0.0, unit="breaths/min per min", ge=-20, le=20,
                                     doc="linear drift of the rate")
    depth_mm: float = param(8.0, unit="mm", ge=0, le=40,
                            doc="chest excursion peak to peak (± 15 % per breath)")
    chest_rcs_m2: float = param(0.03, unit="m²", gt=0, le=1, doc="chest cross-section")
    head_sway_mm: float = param(1.0, unit="mm", ge=0, le=20,
                                doc="breathing-coupled head sway, peak to peak")
    empty: bool = param(False, doc="nobody there (static room only)")


class BlinkSimParams(BreathingSimParams):
    """``acoustic-blink``: a face 20–60 cm from the phone, blinking and breathing."""

    distance_m: float = param(0.4, unit="m", ge=0.1, le=1.5, doc="phone–face distance")
    chest_offset_m: float = param(0.25, unit="m", ge=0.05, le=1,
                                  doc="chest behind the face (range difference)")
    blink_rate_per_min: float = param(17.0, unit="1/min", ge=0, le=60,
                                      doc="mean blink rate")
    blink_s: float = param(0.2, unit="s", ge=0.05, le=2,
                           doc="mean blink duration (closing + reopening)")
    drowsy: bool = param(False, doc="drowsy: blinks last 1.8× longer, 30 % are long "
                                    "(0.5–1 s), rate −20 %")
    eyelid_path_mm: float = param(3.0, unit="mm", ge=0, le=20,
                                  doc="path change of the eye reflection when closed")
    lid_reflectivity: float = param(0.6, ge=0, le=2,
                                    doc="closed-lid / open-eye reflection amplitude")
    eye_rcs_cm2: float = param(1.5, unit="cm²", gt=0, le=100,
                               doc="cross-section of each eye reflection")
    face_rcs_cm2: float = param(60.0, unit="cm²", gt=0, le=1000,
                                doc="total cross-section of the face")
    head_moves_per_min: float = param(2.0, unit="1/min", ge=0, le=60,
                                      doc="small head motions (1–4 mm, yaw within ±2°)")


class CabinSimParams(SonarSimParams):
    """``acoustic-cabin``: a closed car cabin, optionally a breathing occupant."""

    period_s: float = param(0.04, unit="s", gt=0, le=1,
                            doc="FMCW chirp repetition period (>= chirp_s)")
    occupant: bool = param(True, doc="a breathing occupant (e.g. a child in the back)")
    present_s: str = param("", unit="s", doc='occupant present only in "START-END,…" '
                                             "(default: the whole capture)")
    occupant_m: float = param(1.3, unit="m", ge=0.3, le=2.5, doc="device–chest distance")
    rate_bpm: float = param(24.0, unit="breaths/min", ge=3, le=70, doc="breathing rate")
    drift_bpm_per_min: float = param(0.0, unit="breaths/min per min", ge=-20, le=20,
                                     doc="linear drift of the rate")
    depth_mm: float = param(5.0, unit="mm", ge=0, le=40, doc="chest excursion p-p")
    chest_rcs_m2: float = param(0.015, unit="m²", gt=0, le=1,
                                doc="chest cross-section (a child: ~0.015)")
    speech_dbfs: float | None = param(-30.0, unit="dBFS", le=0,
                                      doc="speech noise RMS level (None: off)")
    engine_dbfs: float | None = param(-25.0, unit="dBFS", le=0,
                                      doc="engine noise (20–200 Hz + harmonics) RMS level")
    road_dbfs: float | None = param(-30.0, unit="dBFS", le=0, doc="road noise RMS level")
    temp_drift_c_per_h: float = param(5.0, unit="°C/h", ge=-50, le=50,
                                      doc="air temperature drift (stretches every path)")

    @field_validator("present_s")
    @classmethod
    def _intervals(cls, v: str) -> str:
        parse_intervals(v, "present_s")
        return v


def _parse_floats(text: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals:
        raise ValueError("expected at least one number")
    return vals


# ---------------------------------------------------------------------------- motions
class Motions:
    """Motion tracks on the :data:`MOTION_FS` grid of one capture."""

    def __init__(self, rng: np.random.Generator, duration_s: float) -> None:
        self.rng = rng
        self.n = int(np.ceil(duration_s * MOTION_FS)) + 3
        self.t = np.arange(self.n) / MOTION_FS

    def wander(self, rms_m: float, tau_s: float) -> np.ndarray:
        """Slow random wander, RMS ``rms_m``: white noise through two first-order low-passes
        of time constant ``tau_s`` (a body has inertia: the spectrum falls as 1/f⁴ above
        1/(2π tau_s))."""
        from scipy import signal

        a = np.exp(-1.0 / (tau_s * MOTION_FS))
        x = self.rng.standard_normal(self.n + int(5 * tau_s * MOTION_FS))
        x = signal.lfilter([1 - a], [1, -a], signal.lfilter([1 - a], [1, -a], x))
        x = x[-self.n:]
        sd = float(np.std(x))
        return rms_m * x / sd if sd > 0 else x

    def breathing(self, rate_bpm: float, drift_bpm_per_min: float, depth_m: float
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Chest displacement (m, 0 = exhaled; positive toward the phone) and the onsets."""
        rng = self.rng
        onsets = [float(-rng.uniform(0, 60.0 / rate_bpm))]
        end = self.t[-1] + 1.0
        while onsets[-1] < end:
            r = np.clip(rate_bpm + drift_bpm_per_min * onsets[-1] / 60.0, 3.0, 80.0)
            onsets.append(onsets[-1] + 60.0 / r * max(0.6, 1 + _RATE_CV * rng.standard_normal()))
        on = np.asarray(onsets)
        depths = depth_m * np.clip(1 + _DEPTH_CV * rng.standard_normal(len(on)), 0.4, None)
        ph = np.interp(self.t, on, np.arange(len(on), dtype=float))
        cyc = np.clip(np.floor(ph).astype(int), 0, len(depths) - 1)
        x = ph - np.floor(ph)
        ri = _INHALE_FRACTION
        w = np.where(x < ri, 0.5 * (1 - np.cos(np.pi * x / ri)),
                     0.5 * (1 + np.cos(np.pi * (x - ri) / (1 - ri))))
        return depths[cyc] * w, on

    def delayed(self, x: np.ndarray, delay_s: float) -> np.ndarray:
        k = int(round(delay_s * MOTION_FS))
        return np.concatenate([np.full(k, x[0]), x[:len(x) - k]]) if k > 0 else x

    def smooth_step(self, start_s: float, dur_s: float) -> np.ndarray:
        """0 before ``start_s``, raised-cosine rise to 1 over ``dur_s``."""
        u = np.clip((self.t - start_s) / dur_s, 0, 1)
        return 0.5 - 0.5 * np.cos(np.pi * u)

    def intervals_mask(self, intervals: list[tuple[float, float]]) -> np.ndarray:
        m = np.zeros(self.n)
        for a, b in intervals:
            m[(self.t >= a) & (self.t < b)] = 1.0
        return m


# ---------------------------------------------------------------------------- scenes
class Scene:
    """Reflectors, clock, noise and truth of one simulated capture."""

    def __init__(self, p: SonarSimParams, kind: str) -> None:
        self.p, self.kind = p, kind
        self.rng = np.random.default_rng(p.seed)
        self.mo = Motions(self.rng, p.duration_s)
        self.probe = p.probe()
        self.refl: list[Reflector] = [Reflector(A_LEAK, p.speaker_mic_m, 0.0, "leak")]
        self.truth: dict[str, Any] = {}
        self.echo_db: dict[str, float] = {}

    # static multipath ----------------------------------------------------------------
    def walls(self, dists_m: list[float], beta: tuple[float, float], second_order: int) -> None:
        rng, d_l = self.rng, self.p.speaker_mic_m
        for d in dists_m:
            path = 2 * d
            b = rng.uniform(*beta) * rng.uniform(0.4, 1.0)  # incidence / directivity
            self.refl.append(Reflector(A_LEAK * d_l * b / path, path, rng.uniform(0.3, 1.5),
                                       "wall"))
        for _ in range(second_order):
            i, j = rng.choice(len(dists_m), 2, replace=False)
            path = 2 * (dists_m[i] + dists_m[j]) * rng.uniform(0.8, 1.0)
            b = rng.uniform(*beta) ** 2 * rng.uniform(0.3, 1.0)
            self.refl.append(Reflector(A_LEAK * d_l * b / path, path, rng.uniform(0.5, 2.0),
                                       "wall2"))

    def scatterers(self, n: int, dist: tuple[float, float], rcs: tuple[float, float],
                   name: str = "object") -> None:
        rng, d_l = self.rng, self.p.speaker_mic_m
        for _ in range(n):
            d = rng.uniform(*dist)
            s = np.exp(rng.uniform(np.log(rcs[0]), np.log(rcs[1])))
            self.refl.append(Reflector(point_amp(A_LEAK, d_l, s, d, d), 2 * d,
                                       rng.uniform(0.2, 1.2), name))

    def add_point(self, name: str, d: float, rcs_m2: float, motion: np.ndarray | None,
                  gain: np.ndarray | None = None) -> Reflector:
        r = Reflector(point_amp(A_LEAK, self.p.speaker_mic_m, rcs_m2, d, d), 2 * d,
                      self.rng.uniform(0.2, 0.8), name,
                      None if motion is None else -2.0 * motion, gain)
        self.refl.append(r)
        self.echo_db[name] = round(20 * np.log10(r.amp / A_LEAK), 1)
        return r

    # person --------------------------------------------------------------------------
    def breather(self, d_chest: float, rate: float, drift: float, depth_mm: float,
                 rcs: float, presence: np.ndarray | None = None) -> np.ndarray:
        mo = self.mo
        disp, onsets = mo.breathing(rate, drift, depth_mm * 1e-3)
        body = mo.wander(0.4e-3, 8.0)
        self.add_point("chest", d_chest, rcs, disp + body, presence)
        abd = mo.delayed(disp, 0.25) * 0.7
        self.add_point("abdomen", d_chest + 0.05, rcs * 0.6, abd + body, presence)
        dur = self.p.duration_s
        self.truth["breath_onsets_s"] = [round(float(o), 4) for o in onsets if 0 <= o <= dur]
        self.truth["rate_bpm"] = self.p.rate_bpm  # type: ignore[attr-defined]
        self.truth["depth_mm"] = depth_mm
        return disp

    def face(self, d: float, head: np.ndarray, yaw: np.ndarray, face_rcs_m2: float,
             eye: tuple[np.ndarray, np.ndarray, float] | None) -> None:
        """Face points at range ``d`` moving with ``head`` (m) and ``yaw`` (rad); ``eye``:
        (closure 0–1, lid gain, eye RCS m²)."""
        rng = self.rng
        # (name, range offset m, lateral offset m, share of the face cross-section)
        pts = [("nose", -0.018, 0.0, 0.12), ("forehead", 0.004, 0.0, 0.3),
               ("cheek_l", 0.012, -0.045, 0.2), ("cheek_r", 0.012, 0.045, 0.2),
               ("chin", 0.008, 0.0, 0.18)]
        for name, dr, lat, share in pts:
            m = head + lat * np.sin(yaw) + self.mo.wander(0.1e-3, 1.0)
            self.add_point(name, d + dr + rng.uniform(-3e-3, 3e-3), face_rcs_m2 * share, m)
        if eye is not None:
            closure, gain, rcs = eye
            for name, lat in (("eye_l", -0.032), ("eye_r", 0.032)):
                m = head + lat * np.sin(yaw) + 0.5 * self.p.eyelid_path_mm * 1e-3 * closure  # type: ignore[attr-defined]
                self.add_point(name, d + 0.002 + rng.uniform(-5e-4, 5e-4), rcs, m, gain)

    def head_moves(self, rate_per_min: float) -> tuple[np.ndarray, np.ndarray, list]:
        """Translation (m) and yaw (rad) tracks of small head motions, and their intervals."""
        rng, mo, dur = self.rng, self.mo, self.p.duration_s
        trans, yaw = np.zeros(mo.n), np.zeros(mo.n)
        moves = []
        t = rng.exponential(60.0 / rate_per_min) if rate_per_min > 0 else np.inf
        while t < dur:
            d = rng.uniform(0.4, 1.5)
            step = mo.smooth_step(t, d)
            trans += rng.choice([-1, 1]) * rng.uniform(1e-3, 4e-3) * step
            # the head turns to a new yaw around straight ahead (|yaw| <= 2 degrees)
            target = np.deg2rad(np.clip(rng.normal(0.0, 1.0), -2.0, 2.0))
            yaw += (target - yaw[min(int(t * MOTION_FS), mo.n - 1)]) * step
            moves.append([round(t, 3), round(t + d, 3)])
            t += d + rng.exponential(60.0 / rate_per_min)
        return trans, yaw, moves

    def blinks(self, rate_per_min: float, mean_s: float, drowsy: bool
               ) -> tuple[np.ndarray, list[dict[str, float]]]:
        rng, mo, dur = self.rng, self.mo, self.p.duration_s
        if drowsy:
            rate_per_min, mean_s = rate_per_min * 0.8, mean_s * 1.8
        closure = np.zeros(mo.n)
        out = []
        if rate_per_min <= 0:
            return closure, out
        t = rng.uniform(0.5, 60.0 / rate_per_min)
        while t < dur - 0.5:
            d = float(np.clip(mean_s * np.exp(0.25 * rng.standard_normal()), 0.08, 0.45))
            if drowsy and rng.random() < 0.3:
                d = rng.uniform(0.5, 1.0)
            close = 0.35 * d
            i = (mo.t >= t) & (mo.t < t + d)
            u = mo.t[i] - t
            c = np.where(u < close, 0.5 - 0.5 * np.cos(np.pi * u / close),
                         0.5 + 0.5 * np.cos(np.pi * (u - close) / (d - close)))
            closure[i] = np.maximum(closure[i], c)
            out.append({"onset_s": round(float(t), 4), "duration_s": round(d, 4)})
            # inter-blink interval: gamma (shape 2), at least 0.8 s after the blink ends
            t += d + max(0.8, rng.gamma(2.0, 60.0 / rate_per_min / 2.0))
        return closure, out

    # rendering -----------------------------------------------------------------------
    def renderer(self) -> Renderer:
        p, rng = self.p, self.rng
        pr = self.probe
        band = abs(p.f1_hz - p.f0_hz) if pr.type == "fmcw" else 4000.0
        duty = pr.chirp_s / pr.period_s if pr.type == "fmcw" else 1.0  # type: ignore[operator]
        if pr.type == "fmcw":
            fc = 0.5 * (p.f0_hz + p.f1_hz)
        else:
            fc = float(np.mean(pr.tones_hz))  # type: ignore[arg-type]
        g = 1 / np.sqrt(1 + (fc / p.rolloff_hz) ** 8)
        p_leak = 0.5 * (A_LEAK * p.amplitude * g) ** 2 * duty
        white = np.sqrt(p_leak / 10 ** (p.leak_db / 10) * (p.fs_hz / 2) / band)
        noise = NoiseGen(np.random.default_rng(rng.integers(2**63)), p.fs_hz, white,
                         engine_dbfs=p.engine_dbfs, road_dbfs=p.road_dbfs,
                         speech_dbfs=p.speech_dbfs)
        t0 = rng.uniform(18, 26)
        drift = p.temp_drift_c_per_h / 3600.0

        def temp(t: np.ndarray) -> np.ndarray:
            return t0 + drift * t

        self.clock = Clock(p.clock_ppm, p.clock_drift_ppm_per_min)
        self.truth["temperature_c"] = [round(t0, 2), round(t0 + drift * p.duration_s, 2)]
        return Renderer(pr, p.fs_hz, self.refl, self.clock, noise, p.rolloff_hz, temp)

    def samples(self) -> Iterator[np.ndarray]:
        """The microphone signal in blocks of :data:`BLOCK` samples (float64, quantised like
        the file's ``subtype``)."""
        r = self.renderer()
        total = int(round(self.p.duration_s * self.p.fs_hz))
        bits = {"int16": 16, "int24": 24, "int32": 32}.get(self.p.subtype)
        for n0 in range(0, total, BLOCK):
            y = r.block(n0, min(BLOCK, total - n0))
            if bits is not None:
                full = 2.0 ** (bits - 1)
                y = np.clip(np.round(y * full), -full, full - 1) / full
            yield y

    def full_truth(self) -> dict[str, Any]:
        p = self.p
        tr = {"simulator": f"acoustic-{self.kind}", "duration_s": p.duration_s,
              "fs_hz": p.fs_hz, "probe": probe_to_json(self.probe),
              "clock_ppm": p.clock_ppm, "clock_drift_ppm_per_min": p.clock_drift_ppm_per_min,
              "clock_ppm_end": round(p.clock_ppm + p.clock_drift_ppm_per_min
                                     * p.duration_s / 60.0, 4),
              "leak_db": p.leak_db, "echo_db_re_leak": self.echo_db}
        tr.update(self.truth)
        tr["params"] = p.model_dump()
        return tr

    def annotations(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for b in self.truth.get("blinks", []):
            out.append({"start_s": b["onset_s"], "duration_s": b["duration_s"],
                        "label": "blink"})
        for a, b in self.truth.get("presence_intervals_s", []):
            out.append({"start_s": a, "duration_s": b - a, "label": "occupant"})
        for a, b in self.truth.get("head_moves_s", []):
            out.append({"start_s": a, "duration_s": b - a, "label": "head_motion"})
        return out


def build_breathing(p: BreathingSimParams) -> Scene:
    s = Scene(p, "sonar")
    rng = s.rng
    s.walls([rng.uniform(0.9, 3.5) for _ in range(4)] + [rng.uniform(1.2, 2.0),
                                                         rng.uniform(0.6, 0.9)],
            (0.5, 0.9), 5)
    s.scatterers(int(rng.integers(4, 8)), (0.25, 2.5), (0.003, 0.08))
    s.truth["distance_m"] = p.distance_m
    if not p.empty:
        disp = s.breather(p.distance_m, p.rate_bpm, p.drift_bpm_per_min, p.depth_mm,
                          p.chest_rcs_m2)
        head = p.head_sway_mm / max(p.depth_mm, 1e-9) * s.mo.delayed(disp, 0.15)
        d_face = max(0.1, p.distance_m - rng.uniform(0.05, 0.15))
        s.face(d_face + 0.15, head + s.mo.wander(0.5e-3, 10.0), np.zeros(s.mo.n),
               0.004, None)
        s.truth["presence_intervals_s"] = [[0.0, p.duration_s]]
    else:
        s.truth["rate_bpm"] = None
        s.truth["presence_intervals_s"] = []
    return s


def build_blink(p: BlinkSimParams) -> Scene:
    s = Scene(p, "blink")
    rng, mo = s.rng, s.mo
    s.walls([rng.uniform(0.9, 3.5) for _ in range(4)] + [rng.uniform(1.2, 2.0),
                                                         rng.uniform(0.6, 0.9)],
            (0.5, 0.9), 5)
    s.scatterers(int(rng.integers(3, 6)), (0.3, 2.5), (0.003, 0.08))
    disp = s.breather(p.distance_m + p.chest_offset_m, p.rate_bpm, p.drift_bpm_per_min,
                      p.depth_mm, p.chest_rcs_m2)
    sway = p.head_sway_mm / max(p.depth_mm, 1e-9) * mo.delayed(disp, 0.15)
    trans, yaw, moves = s.head_moves(p.head_moves_per_min)
    head = sway + trans + mo.wander(0.5e-3, 10.0)
    closure, blinks = s.blinks(p.blink_rate_per_min, p.blink_s, p.drowsy)
    gain = 1.0 + (p.lid_reflectivity - 1.0) * closure
    s.face(p.distance_m, head, yaw, p.face_rcs_cm2 * 1e-4,
           (closure, gain, p.eye_rcs_cm2 * 1e-4))
    s.truth.update({"distance_m": p.distance_m, "blinks": blinks, "head_moves_s": moves,
                    "drowsy": p.drowsy, "presence_intervals_s": [[0.0, p.duration_s]]})
    return s


def build_cabin(p: CabinSimParams) -> Scene:
    s = Scene(p, "cabin")
    rng = s.rng
    length = rng.uniform(1.7, 2.3)
    s.walls([rng.uniform(0.15, 0.3), rng.uniform(0.25, 0.4), rng.uniform(0.6, 0.8),
             rng.uniform(0.6, 0.8), rng.uniform(0.8, 1.0), length], (0.75, 0.95), 10)
    s.scatterers(2, (0.35, 0.8), (0.05, 0.2), "front_seat")
    s.scatterers(2, (1.2, 1.9), (0.05, 0.2), "rear_seat")
    s.scatterers(4, (0.3, 2.2), (0.005, 0.05))
    intervals: list[tuple[float, float]] = []
    if p.occupant:
        intervals = parse_intervals(p.present_s, "present_s") or [(0.0, p.duration_s)]
        pres = s.mo.intervals_mask(intervals)
        s.breather(p.occupant_m, p.rate_bpm, p.drift_bpm_per_min, p.depth_mm,
                   p.chest_rcs_m2, pres)
    else:
        s.truth["rate_bpm"] = None
    s.truth["presence_intervals_s"] = [[a, min(b, p.duration_s)] for a, b in intervals]
    s.truth["occupant_m"] = p.occupant_m if p.occupant else None
    return s


_BUILDERS = {"sonar": build_breathing, "blink": build_blink, "cabin": build_cabin}


def generate(kind: str, params: SonarSimParams, *, chunk: int = 4096
             ) -> tuple[dict[str, Any], Iterator[Frames]]:
    """Truth and the chunks A WAV reader would yield for the simulated capture, without
    writing a file (for tests and evaluations).

    Parameters
    ----------
    kind : {"sonar", "blink", "cabin"}
        The scene.
    params : SonarSimParams
        Its options (the matching subclass).
    chunk : int
        Samples per yielded chunk.
    """
    scene = _BUILDERS[kind](params)  # type: ignore[operator]
    truth = scene.full_truth()
    meta = {"format": "memory", "probe": probe_to_json(scene.probe)}
    fs = float(params.fs_hz)

    def chunks() -> Iterator[Frames]:
        buf = np.empty(0)
        n_out = 0
        for y in scene.samples():
            buf = np.concatenate([buf, y])
            while len(buf) >= chunk:
                yield _frames(buf[:chunk], n_out, fs, meta)
                n_out += chunk
                buf = buf[chunk:]
        if len(buf):
            yield _frames(buf, n_out, fs, meta)

    return truth, chunks()


def _frames(y: np.ndarray, n0: int, fs: float, meta: dict[str, Any]) -> Frames:
    return Frames(data=y.astype(np.float32)[:, None], times_s=(n0 + np.arange(len(y))) / fs,
                  fs_hz=fs, modality="audio", source="simulated", channel_names=("mic",),
                  meta=meta)


def write_capture(kind: str, out: str | os.PathLike, params: SonarSimParams) -> dict[str, Any]:
    """Simulate and write one capture (WAV + sidecar, or SigMF) and its truth."""
    from sensing.acoustic.formats import SigmfWriter, WavWriter

    scene = _BUILDERS[kind](params)  # type: ignore[operator]
    truth = scene.full_truth()
    out = os.fspath(out)
    if params.file_format == "wav":
        path = out if out.lower().endswith(".wav") else out + ".wav"
        writer: Any = WavWriter(path, params.fs_hz, 1, subtype=params.subtype,
                                probe=scene.probe)
    else:
        path = out.removesuffix(".sigmf-meta").removesuffix(".sigmf-data")
        dt = "rf32_le" if params.subtype == "float32" else (
            "ri16_le" if params.subtype == "int16" else "ri32_le")
        writer = SigmfWriter(path, params.fs_hz, 1, datatype=dt, probe=scene.probe,
                             annotations=scene.annotations(),
                             description=f"ambisense simulate acoustic-{kind}")
        path = writer.meta_path
    with writer:
        for y in scene.samples():
            writer.write(y)
    truth["file"] = os.path.basename(path)
    write_truth(out, truth)  # <out>.truth.json, where the CLI says it is
    return truth


@simulator("acoustic-sonar", BreathingSimParams)
def simulate_acoustic_sonar(out: str | os.PathLike, params: BreathingSimParams | None = None,
                            **options: Any) -> dict[str, Any]:
    """A phone's FMCW (or CW) sonar recording of a breathing person in a room."""
    return write_capture("sonar", out, BreathingSimParams.build(params, options))


@simulator("acoustic-blink", BlinkSimParams)
def simulate_acoustic_blink(out: str | os.PathLike, params: BlinkSimParams | None = None,
                            **options: Any) -> dict[str, Any]:
    """A phone's sonar recording of a face 20–60 cm away: blinks, breathing, head motion."""
    return write_capture("blink", out, BlinkSimParams.build(params, options))


@simulator("acoustic-cabin", CabinSimParams)
def simulate_acoustic_cabin(out: str | os.PathLike, params: CabinSimParams | None = None,
                            **options: Any) -> dict[str, Any]:
    """A closed car cabin's sonar recording, with or without a breathing occupant, under
    engine, road and speech noise."""
    return write_capture("cabin", out, CabinSimParams.build(params, options))
