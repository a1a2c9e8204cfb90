"""``ambisense simulate uwb-activity`` and ``uwb-breathing``: a person in a bathroom or
bedroom seen by a UWB link, written as a DecaRanging CIR log or an ``.npz`` archive.

The physics is in :mod:`sensing.uwb.simulators.body` (the person: 7 point scatterers on
kinematic trajectories per activity, falls included) and
:mod:`sensing.uwb.simulators.cir` (room, devices, pulse, clutter, NLOS, first-path jitter,
noise floor grounded on the DW1000 logs). :func:`simulate` gives the same capture as a
stream of :class:`~sensing.frames.Frames` without writing anything (training and the
benchmark stream simulated days through it chunk by chunk).

Output by extension: ``.npz`` → :func:`sensing.uwb.formats.npz.write_npz`; anything else
→ :func:`sensing.uwb.formats.decaranging.write_decaranging` (a DecaRanging text log:
~12 bytes per tap, so keep those to short clips). Both hold the whole capture in memory
while writing; long captures are for :func:`simulate`. Ground truth: ``<out>.truth.json``
(:func:`sensing.simulate.write_truth`): activity ``intervals`` (falls with ``onset_s``,
``impact_s``, ``v_peak_m_s``, ``cleared_s``), ``falls`` (the same, falls only),
``breathing_bpm``, the scene and the settings. Frame times start at 0 (reader time ==
script time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import field_validator

from sensing.frames import Frames
from sensing.params import Params, param
from sensing.simulate import simulator, write_truth
from sensing.uwb.simulators.body import ORDINARY, Segment, make_script, script_intervals
from sensing.uwb.simulators.cir import TAP_S, Scene, stream_cir

#: Ordinary activities the CLI accepts.
ACTIVITIES = ORDINARY
#: Frames synthesised per block (the random draws are per block: fixed, so the frames do
#: not depend on how they are chunked).
BLOCK_FRAMES = 1000


class UwbActivityParams(Params):
    """Options of ``ambisense simulate uwb-activity`` (:func:`uwb_activity`)."""

    seed: int = param(0, ge=0, doc="random seed (scene, script, noise); same options and "
                                    "seed give identical files")
    duration_s: float = param(60.0, unit="s", gt=0, le=86_400,
                              doc="minimum length of the script (the last activity is "
                                  "completed)")
    fs_hz: float = param(100.0, unit="Hz", ge=10, le=1000, doc="CIR frame rate")
    falls: int = param(1, ge=0, le=1000, doc="number of falls in the script")
    get_up: float = param(0.5, ge=0, le=1,
                          doc="probability that a fallen person gets up again (fall_cleared)")
    activities: str = param(",".join(ACTIVITIES),
                            doc=f"comma-separated ordinary activities ({', '.join(ACTIVITIES)})")
    scene: Literal["random", "bathroom", "bedroom"] = param(
        "random", doc="room kind (bathroom: toilet, sink, shower; bedroom: bed, chair)")
    geometry: Literal["random", "bistatic", "monostatic"] = param(
        "random", doc="two boards on two walls, or one board (radar-like)")
    nlos: Literal["random", "los", "nlos"] = param(
        "random", doc="direct path through a door (10-25 dB, 0.3-1.5 ns late) or not")
    channel: int = param(0, ge=0, le=9, doc="UWB channel (2, 5, 9; 0 = drawn)")
    noise_db: float = param(0.0, unit="dB", ge=0, le=80,
                            doc="noise floor below the peak (0 = drawn in 38-43 dB)")
    breath_bpm: float = param(0.0, unit="bpm", ge=0, le=60,
                              doc="breathing rate (0 = drawn in 10-24 bpm)")
    n_taps: int = param(64, ge=16, le=1016,
                        doc="taps per CIR: 1016 = whole accumulator, fewer = a window "
                            "around the first path")
    pre_taps: int = param(8, ge=2, le=32, doc="window taps before the first path")

    @field_validator("activities")
    @classmethod
    def _known(cls, v: str) -> str:
        acts = [a.strip() for a in v.split(",") if a.strip()]
        bad = [a for a in acts if a not in ACTIVITIES]
        if not acts or bad:
            raise ValueError(f"expected names from {', '.join(ACTIVITIES)}, got {v!r}")
        return v


class UwbBreathingParams(Params):
    """Options of ``ambisense simulate uwb-breathing`` (:func:`uwb_breathing`)."""

    seed: int = param(0, ge=0, doc="random seed")
    duration_s: float = param(120.0, unit="s", gt=0, le=86_400, doc="length")
    fs_hz: float = param(50.0, unit="Hz", ge=5, le=1000, doc="CIR frame rate")
    rate_bpm: float = param(15.0, unit="bpm", gt=0, le=60, doc="breathing rate")
    depth_mm: float = param(4.0, unit="mm", gt=0, le=20, doc="chest displacement (peak)")
    posture: Literal["sitting", "lying_bed", "standing"] = param(
        "lying_bed", doc="posture held while breathing")
    geometry: Literal["random", "bistatic", "monostatic"] = param("random", doc="as uwb-activity")
    nlos: Literal["random", "los", "nlos"] = param("los", doc="as uwb-activity")
    channel: int = param(0, ge=0, le=9, doc="UWB channel (0 = drawn)")
    n_taps: int = param(64, ge=16, le=1016, doc="taps per CIR")


@dataclass
class Capture:
    """A simulated capture before it is written: scene, script, breathing, settings."""

    scene: Scene
    segments: list[Segment]
    breath: dict[str, float]
    fs_hz: float
    duration_s: float
    n_taps: int
    pre_taps: int
    seed: int
    settings: dict[str, Any]

    def chunks(self, chunk_s: float = 10.0) -> Iterator[Frames]:
        """The capture as ``uwb_cir`` Frames, ``chunk_s`` seconds each (streamed). The
        frames do not depend on ``chunk_s``: they are synthesised in fixed blocks of
        :data:`BLOCK_FRAMES` and regrouped."""
        rng = np.random.default_rng([self.seed, 1])
        meta = {"format": "uwb-sim", "tap_s": TAP_S, "prf_mhz": 64, "chip": "DW3000",
                "channel": self.scene.channel, "frame_rate_hz": self.fs_hz}
        want = max(1, int(round(chunk_s * self.fs_hz)))
        buf: list[Any] = []
        n_buf = 0

        def emit(parts: list[Any]) -> Frames:
            return Frames(np.concatenate([c.cir for c in parts]),
                          np.concatenate([c.times_s for c in parts]), self.fs_hz, "uwb_cir",
                          "uwb-sim",
                          fields={"first_path_index": np.concatenate(
                              [c.first_path_index for c in parts]),
                              "rxpacc": np.concatenate([c.rxpacc for c in parts])},
                          meta=dict(meta))

        for ch in stream_cir(self.scene, self.segments, self.breath, rng, fs_hz=self.fs_hz,
                             duration_s=self.duration_s, n_taps=self.n_taps,
                             pre_taps=self.pre_taps, chunk_frames=BLOCK_FRAMES):
            buf.append(ch)
            n_buf += len(ch.times_s)
            while n_buf >= want:
                allp = emit(buf)
                head = Frames(allp.data[:want], allp.times_s[:want], self.fs_hz, "uwb_cir",
                              "uwb-sim", fields={k: v[:want] for k, v in allp.fields.items()},
                              meta=dict(meta))
                rest = len(allp) - want
                buf = [type(ch)(allp.times_s[want:], allp.data[want:],
                                allp.fields["first_path_index"][want:],
                                allp.fields["rxpacc"][want:])] if rest else []
                n_buf = rest
                yield head
        if n_buf:
            yield emit(buf)

    def truth(self) -> dict[str, Any]:
        """Ground truth (the JSON of ``<out>.truth.json``)."""
        iv = script_intervals(self.segments)
        return {"simulator": self.settings.get("simulator", "uwb-activity"),
                "seed": self.seed, "duration_s": round(self.duration_s, 4),
                "fs_hz": self.fs_hz, "n_taps": self.n_taps,
                "time_origin": "first frame at script time 0 s (reader time == script time)",
                "breathing_bpm": round(self.breath["hz"] * 60.0, 3),
                "breathing_depth_mm": round(self.breath["amp_m"] * 1e3, 3),
                "falls": [d for d in iv if d["label"] == "fall"],
                "intervals": iv, "scene": self.scene.summary(), "settings": self.settings}


def make_capture(p: UwbActivityParams) -> Capture:
    """The :class:`Capture` of ``uwb-activity`` options ``p`` (nothing written)."""
    rng = np.random.default_rng(p.seed)
    scene = Scene.random(rng, kind=None if p.scene == "random" else p.scene,
                         geometry=None if p.geometry == "random" else p.geometry,
                         nlos=None if p.nlos == "random" else p.nlos == "nlos",
                         channel=p.channel or None, noise_db=p.noise_db or None)
    acts = tuple(a.strip() for a in p.activities.split(",") if a.strip())
    bpm = p.breath_bpm or float(rng.uniform(10.0, 24.0))
    breath = {"amp_m": float(rng.uniform(0.002, 0.005)), "hz": bpm / 60.0,
              "phase": float(rng.uniform(0, 2 * np.pi))}
    segments = make_script(rng, scene.room, scene.spots, p.duration_s, activities=acts,
                           falls=p.falls, get_up=p.get_up)
    duration = max(p.duration_s, segments[-1].end_s)
    return Capture(scene, segments, breath, p.fs_hz, duration, p.n_taps, p.pre_taps, p.seed,
                   {"simulator": "uwb-activity", **p.model_dump()})


def simulate(params: UwbActivityParams | None = None, **options: Any) -> Capture:
    """A ``uwb-activity`` capture in memory: ``capture.chunks()`` streams its Frames,
    ``capture.truth()`` is its ground truth."""
    return make_capture(UwbActivityParams.build(params, options, where="uwb-activity"))


def write_capture(out: str | os.PathLike, cap: Capture) -> dict[str, Any]:
    """Write ``cap`` to ``out`` (``.npz`` or DecaRanging log) plus its truth sidecar."""
    parts = list(cap.chunks(chunk_s=30.0))
    cir = np.concatenate([f.data for f in parts]) if parts else np.zeros((0, cap.n_taps),
                                                                        np.complex64)
    times = np.concatenate([f.times_s for f in parts]) if parts else np.zeros(0)
    fp = np.concatenate([f.fields["first_path_index"] for f in parts]) if parts else np.zeros(0)
    acc = np.concatenate([f.fields["rxpacc"] for f in parts]) if parts else np.zeros(0, int)
    if os.fspath(out).lower().endswith(".npz"):
        from sensing.uwb.formats.npz import write_npz

        write_npz(out, cir, times, modality="uwb_cir", fs_hz=cap.fs_hz,
                  fields={"first_path_index": fp, "rxpacc": acc}, tap_s=TAP_S, prf_mhz=64,
                  chip="DW3000", channel=cap.scene.channel, frame_rate_hz=cap.fs_hz,
                  simulator=cap.settings.get("simulator"), seed=cap.seed)
    else:
        from sensing.uwb.formats.decaranging import write_decaranging

        write_decaranging(out, cir, first_path_index=fp, rxpacc=acc, times_s=times,
                          prf_mhz=64, channel=cap.scene.channel, chip="DW3000",
                          frame_rate_hz=cap.fs_hz)
    truth = cap.truth()
    truth["frames"] = int(len(times))
    write_truth(out, truth)
    return truth


@simulator("uwb-activity", UwbActivityParams)
def uwb_activity(out: str | os.PathLike, params: UwbActivityParams | None = None,
                 **options: Any) -> dict[str, Any]:
    """A person's daily activities (and falls) in a bathroom/bedroom as UWB CIRs.

    Writes ``out`` (``.npz`` archive, otherwise a DecaRanging log) and
    ``<out>.truth.json``. See :class:`UwbActivityParams` for the options and
    ``docs/uwb-fall.md`` for the model.
    """
    return write_capture(out, simulate(params, **options))


@simulator("uwb-breathing", UwbBreathingParams)
def uwb_breathing(out: str | os.PathLike, params: UwbBreathingParams | None = None,
                  **options: Any) -> dict[str, Any]:
    """A still person breathing at a known rate (sitting, lying on a bed or standing)."""
    p = UwbBreathingParams.build(params, options, where="uwb-breathing")
    scene_kind = "bedroom" if p.posture == "lying_bed" else "bathroom"
    ap = UwbActivityParams(seed=p.seed, duration_s=p.duration_s, fs_hz=p.fs_hz, falls=0,
                           activities="still", scene=scene_kind, geometry=p.geometry,
                           nlos=p.nlos, channel=p.channel, breath_bpm=p.rate_bpm,
                           n_taps=p.n_taps)
    cap = make_capture(ap)
    from sensing.uwb.simulators.body import ScriptBuilder

    rng = np.random.default_rng([p.seed, 2])
    b = ScriptBuilder(rng, cap.scene.room, cap.scene.spots)
    if p.posture == "lying_bed":
        b.xy = np.asarray(cap.scene.spots["bed"], float)
        b.state = "lying_bed"
    elif p.posture == "sitting":
        b.xy = np.asarray(cap.scene.spots["seat"], float)
        b.state = "sitting"
    b.hold(p.duration_s, sway=False)
    cap.segments = b.segments
    cap.duration_s = p.duration_s
    cap.breath["amp_m"] = p.depth_mm * 1e-3
    cap.settings = {"simulator": "uwb-breathing", **p.model_dump()}
    return write_capture(out, cap)
