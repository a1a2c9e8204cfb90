"""Body-kinematics WiFi CSI simulator: a person walking, sitting, lying down, picking
something up or falling, seen by an ESP32 (HT20 LLTF, one antenna).

Physical model
--------------
* Channel 6 (2.437 GHz), the 52 occupied LLTF subcarriers k = ±1..±26 (312.5 kHz apart); the
  null/guard tones are written as 0 like real ESP32 buffers.
* Room 5 × 4 × 2.7 m; access point on a wall, receiver elsewhere. Static multipath = line of
  sight + the six first-order wall/floor/ceiling image paths (reflection coefficients
  0.3–0.6) + 4 furniture point scatterers. Each path contributes
  ``A · exp(-j 2π f d / c)`` with ``A ∝ 1/d`` (``1/(d1·d2)`` for scatterers).
* The person is 7 point scatterers (head, chest, pelvis, two hands, two knees) with radar
  cross-section weights (chest 1, pelvis 0.8, knees 0.35, head 0.3, hands 0.15). Their
  positions follow posture key frames (standing, sitting, bent over, lying on a bed at
  0.5 m, lying on the floor) and activity trajectories:

  - ``walk``: 0.5–1.4 m/s along a straight path inside the room, legs/arms swinging at the
    stride frequency (0.8–1.1 Hz), vertical bob at twice that;
  - ``sit`` / ``stand_up``: 1.0–2.5 s smooth (raised-cosine) transition standing ↔ sitting;
  - ``lie_down`` / ``get_up``: 2.5–6 s standing → sitting → lying on the bed (and back);
  - ``pick_up``: bend over in 0.7–1.5 s, hold 0.3–1.5 s, straighten up in 0.7–1.5 s;
  - ``fall``: standing (or walking) → lying on the floor in 0.5–1.0 s with a gravity-like
    accelerating profile ``s = (t/T)²`` plus a small damped rebound, then lying still;
  - ``still``: stand/sit/lie still; breathing moves the chest ±3–6 mm at 0.2–0.35 Hz and
    standing people sway ±1 cm.

* Receiver impairments per packet (models of :mod:`sensing.simulate.radio`): random common
  phase (CFO), linear phase slope from a random timing offset (±50 ns), slow AGC gain drift
  with occasional 1–3 dB steps, fixed per-device subcarrier ripple, complex Gaussian noise
  (SNR 27–38 dB), scaling to int8 and clipping; packet times with gamma jitter and
  Bernoulli+burst loss.

The in-memory generator :func:`stream_activity` yields the same chunks that the registered
``csi-activity`` simulator writes as real ESP32 ``CSI_DATA`` lines, so features can be
generated for long simulated periods without writing files.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import field_validator

from sensing.formats.esp32_csi import format_csi_line, lltf20_buffer_index
from sensing.params import Params, param
from sensing.simulate import radio, simulator, write_truth

C = 299_792_458.0  # m/s
FC_HZ = 2.437e9  # channel 6
SC_SPACING_HZ = 312.5e3
#: Occupied LLTF subcarriers (HT20); others are null.
OCCUPIED = np.r_[np.arange(-26, 0), np.arange(1, 27)]
ALL_SC = np.arange(-32, 32)
ROOM = np.array([5.0, 4.0, 2.7])  # m
#: Scatterer names and radar-cross-section weights.
BODY_POINTS = ("head", "chest", "pelvis", "hand_l", "hand_r", "knee_l", "knee_r")
BODY_RCS = np.array([0.3, 1.0, 0.8, 0.15, 0.15, 0.35, 0.35])
#: Activity labels the simulator produces.
LABELS = ("walk", "sit", "stand_up", "lie_down", "get_up", "pick_up", "fall", "still")
#: Activities a script may choose (fall only when requested).
ORDINARY = ("walk", "sit", "lie_down", "pick_up", "still")


# ----------------------------------------------------------------------------- postures


def posture(name: str, xy: np.ndarray, heading: float, bed_h: float = 0.5) -> np.ndarray:
    """Scatterer positions (7, 3) in m for a posture at floor position ``xy`` facing ``heading``.

    ``name`` is one of ``standing``, ``sitting``, ``bent``, ``lying_bed``, ``lying_floor``.
    """
    fwd = np.array([np.cos(heading), np.sin(heading), 0.0])
    side = np.array([-np.sin(heading), np.cos(heading), 0.0])
    base = np.array([xy[0], xy[1], 0.0])
    # (forward, side, up) offsets per point: head, chest, pelvis, hand_l, hand_r, knee_l, knee_r
    table = {
        "standing": [(0, 0, 1.65), (0, 0, 1.3), (0, 0, 0.95), (0.05, 0.25, 0.85),
                     (0.05, -0.25, 0.85), (0.02, 0.1, 0.5), (0.02, -0.1, 0.5)],
        "sitting": [(0.05, 0, 1.2), (0.02, 0, 0.85), (-0.1, 0, 0.5), (0.3, 0.2, 0.6),
                    (0.3, -0.2, 0.6), (0.4, 0.1, 0.5), (0.4, -0.1, 0.5)],
        "bent": [(0.55, 0, 0.75), (0.35, 0, 0.85), (-0.05, 0, 0.9), (0.55, 0.12, 0.1),
                 (0.55, -0.12, 0.1), (0.1, 0.1, 0.48), (0.1, -0.1, 0.48)],
        "lying_bed": [(0.8, 0, bed_h + 0.12), (0.45, 0, bed_h + 0.15), (0, 0, bed_h + 0.12),
                      (0.3, 0.3, bed_h + 0.1), (0.3, -0.3, bed_h + 0.1),
                      (-0.45, 0.1, bed_h + 0.1), (-0.45, -0.1, bed_h + 0.1)],
        "lying_floor": [(0.8, 0, 0.1), (0.45, 0, 0.13), (0, 0, 0.12), (0.3, 0.32, 0.06),
                        (0.3, -0.32, 0.06), (-0.45, 0.1, 0.08), (-0.45, -0.1, 0.08)],
    }
    off = np.asarray(table[name], dtype=float)
    return base + off[:, :1] * fwd + off[:, 1:2] * side + off[:, 2:3] * np.array([0, 0, 1.0])


def _raised_cosine(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * s)


# ----------------------------------------------------------------------------- script


@dataclass
class Segment:
    """One activity interval of the script.

    Attributes
    ----------
    label : str
        Activity label (one of :data:`LABELS`).
    start_s, end_s : float
        Interval (s from stream start).
    kind : str
        ``hold`` (posture still), ``move`` (key-frame transition), ``walk``.
    keys : list of (float, numpy.ndarray)
        ``move``: (time fraction, 7×3 posture) key frames; ``hold``: one posture.
    profile : str
        Transition profile for ``move``: ``smooth`` or ``fall``.
    params : dict
        Walk path, gait, breathing parameters.
    end_state : str
        Posture at the end (``standing``, ``sitting``, ``lying_bed``, ``lying_floor``).
    """

    label: str
    start_s: float
    end_s: float
    kind: str
    keys: list[tuple[float, np.ndarray]]
    profile: str = "smooth"
    params: dict[str, Any] = field(default_factory=dict)
    end_state: str = "standing"

    def points(self, t: np.ndarray) -> np.ndarray:
        """Scatterer positions ``(len(t), 7, 3)`` in m at stream times ``t`` (s)."""
        dur = max(self.end_s - self.start_s, 1e-6)
        u = (t - self.start_s) / dur
        p = self.params
        if self.kind == "hold":
            pts = np.broadcast_to(self.keys[0][1], (len(t), 7, 3)).copy()
        elif self.kind == "walk":
            a, b = p["from"], p["to"]
            s = np.clip(u, 0, 1)[:, None]
            xy = a[None] + (b - a)[None] * s
            pts = np.empty((len(t), 7, 3))
            hd = p["heading"]
            fwd = np.array([np.cos(hd), np.sin(hd), 0.0])
            stand = posture("standing", np.zeros(2), hd)
            pts[:] = stand
            pts[:, :, :2] += xy[:, None, :]
            ph = 2 * np.pi * p["stride_hz"] * (t - self.start_s) + p["phase"]
            swing = np.sin(ph)[:, None]
            pts[:, 5] += 0.3 * swing * fwd  # knees
            pts[:, 6] -= 0.3 * swing * fwd
            pts[:, 3] -= 0.2 * swing * fwd  # arms opposite to legs
            pts[:, 4] += 0.2 * swing * fwd
            pts[:, :3, 2] += 0.03 * np.sin(2 * ph)[:, None]
        else:  # move between key frames
            if self.profile == "fall":
                s = np.clip(u / p["descent_frac"], 0, 1)
                s = s**2
                # damped rebound after impact (few cm), then still
                after = np.clip((u - p["descent_frac"]) * dur, 0, None)
                rebound = 0.04 * np.exp(-after / 0.15) * np.abs(np.sin(2 * np.pi * 3.0 * after))
                rebound[u < p["descent_frac"]] = 0.0
            else:
                s = _raised_cosine(u)
                rebound = None
            fr = np.array([k for k, _ in self.keys])
            poses = np.stack([q for _, q in self.keys])
            pts = _interp_keys(s, fr, poses)
            if rebound is not None:
                pts[:, :, 2] += rebound[:, None]
        # breathing and sway (always present, small)
        br = p.get("breath_mm", 4.0) * 1e-3 * np.sin(
            2 * np.pi * p.get("breath_hz", 0.25) * t + p.get("breath_ph", 0.0))
        pts[:, 1, 0] += br
        pts[:, 1, 1] += 0.5 * br
        if self.end_state == "standing" and self.kind == "hold":
            sway = 0.01 * np.sin(2 * np.pi * 0.15 * t + p.get("sway_ph", 0.0))
            pts[:, :3, 0] += sway[:, None]
        return pts


def _interp_keys(s: np.ndarray, fr: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation of key-frame postures at progress ``s`` ∈ [0, 1]."""
    idx = np.clip(np.searchsorted(fr, s, side="right") - 1, 0, len(fr) - 2)
    lo, hi = fr[idx], fr[idx + 1]
    w = ((s - lo) / np.maximum(hi - lo, 1e-9))[:, None, None]
    return poses[idx] * (1 - w) + poses[idx + 1] * w


class ScriptBuilder:
    """Builds a physically consistent random activity script for one person.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.xy = rng.uniform([0.8, 0.8], ROOM[:2] - 0.8)
        self.heading = float(rng.uniform(-np.pi, np.pi))
        self.state = "standing"
        self.bed_xy = rng.uniform([0.8, 0.8], ROOM[:2] - 0.8)
        self.breath = dict(breath_hz=float(rng.uniform(0.2, 0.35)),
                           breath_mm=float(rng.uniform(3, 6)),
                           breath_ph=float(rng.uniform(0, 2 * np.pi)))
        self.t = 0.0
        self.segments: list[Segment] = []

    def _pose(self, name: str | None = None) -> np.ndarray:
        return posture(name or self.state, self.xy, self.heading)

    def _add(self, label: str, dur: float, kind: str, keys, *, profile: str = "smooth",
             end_state: str | None = None, **params) -> None:
        params = {**self.breath, "sway_ph": float(self.rng.uniform(0, 6.3)), **params}
        end_state = end_state or self.state
        self.segments.append(Segment(label, self.t, self.t + dur, kind, keys, profile,
                                     params, end_state))
        self.t += dur
        self.state = end_state

    def still(self, dur: float) -> None:
        self._add("still", dur, "hold", [(0.0, self._pose())])

    def walk(self, dur: float | None = None) -> None:
        if self.state != "standing":
            self.stand_up()
        speed = float(self.rng.uniform(0.5, 1.4))
        # pick a destination inside the room, at least 1.5 m away
        for _ in range(20):
            dest = self.rng.uniform([0.5, 0.5], ROOM[:2] - 0.5)
            if np.linalg.norm(dest - self.xy) > 1.5:
                break
        dist = float(np.linalg.norm(dest - self.xy))
        dur = dist / speed if dur is None else dur
        dest = self.xy + (dest - self.xy) * min(1.0, speed * dur / dist)
        hd = float(np.arctan2(*(dest - self.xy)[::-1]))
        self.heading = hd
        self._add("walk", dur, "walk", [], **{
            "from": self.xy.copy(), "to": dest.copy(), "heading": hd,
            "stride_hz": float(self.rng.uniform(0.8, 1.1)),
            "phase": float(self.rng.uniform(0, 6.3))})
        self.xy = dest

    def sit(self) -> None:
        if self.state != "standing":
            self.stand_up()
        dur = float(self.rng.uniform(1.0, 2.5))
        self._add("sit", dur, "move", [(0.0, self._pose("standing")),
                                       (1.0, self._pose("sitting"))], end_state="sitting")

    def stand_up(self) -> None:
        if self.state == "standing":
            return
        if self.state == "sitting":
            dur = float(self.rng.uniform(1.0, 2.5))
            keys = [(0.0, self._pose("sitting")), (1.0, self._pose("standing"))]
            self._add("stand_up", dur, "move", keys, end_state="standing")
        else:  # lying: get up through sitting
            dur = float(self.rng.uniform(3.0, 7.0))
            keys = [(0.0, self._pose()), (0.55, self._pose("sitting")),
                    (1.0, self._pose("standing"))]
            self._add("get_up", dur, "move", keys, end_state="standing")

    def lie_down(self) -> None:
        if self.state != "standing":
            self.stand_up()
        self.walk_to(self.bed_xy)
        dur = float(self.rng.uniform(2.5, 6.0))
        keys = [(0.0, self._pose("standing")), (0.4, self._pose("sitting")),
                (1.0, self._pose("lying_bed"))]
        self._add("lie_down", dur, "move", keys, end_state="lying_bed")

    def walk_to(self, xy: np.ndarray) -> None:
        dist = float(np.linalg.norm(xy - self.xy))
        if dist < 0.3:
            return
        speed = float(self.rng.uniform(0.5, 1.2))
        hd = float(np.arctan2(*(xy - self.xy)[::-1]))
        self.heading = hd
        self._add("walk", dist / speed, "walk", [], **{
            "from": self.xy.copy(), "to": np.asarray(xy, float).copy(), "heading": hd,
            "stride_hz": float(self.rng.uniform(0.8, 1.1)),
            "phase": float(self.rng.uniform(0, 6.3))})
        self.xy = np.asarray(xy, float).copy()

    def pick_up(self) -> None:
        if self.state != "standing":
            self.stand_up()
        down = float(self.rng.uniform(0.7, 1.5))
        hold = float(self.rng.uniform(0.3, 1.5))
        up = float(self.rng.uniform(0.7, 1.5))
        tot = down + hold + up
        keys = [(0.0, self._pose("standing")), (down / tot, self._pose("bent")),
                ((down + hold) / tot, self._pose("bent")), (1.0, self._pose("standing"))]
        self._add("pick_up", tot, "move", keys)

    def fall(self, still_s: float) -> None:
        if self.state != "standing":
            self.stand_up()
        descent = float(self.rng.uniform(0.5, 1.0))
        settle = 1.0
        end_heading = self.heading + float(self.rng.uniform(-0.6, 0.6))
        # the body pivots around the feet: lying centre ~0.8 m ahead of the standing point
        fwd = np.array([np.cos(end_heading), np.sin(end_heading)])
        land_xy = np.clip(self.xy + 0.5 * fwd, 0.3, ROOM[:2] - 0.3)
        lying = posture("lying_floor", land_xy, end_heading)
        keys = [(0.0, self._pose("standing")), (1.0, lying)]
        self._add("fall", descent + settle, "move", keys, profile="fall",
                  end_state="lying_floor", descent_frac=descent / (descent + settle),
                  descent_s=descent)
        self.xy, self.heading = land_xy, end_heading
        self.still(still_s)

    def ordinary(self, label: str) -> None:
        """Append one ordinary activity followed by a still period."""
        rng = self.rng
        if label == "walk":
            for _ in range(int(rng.integers(1, 5))):  # 1-4 legs across the room
                self.walk()
            self.still(float(rng.uniform(1.0, 8.0)))
        elif label == "sit":
            self.sit()
            self.still(float(rng.uniform(3.0, 30.0)))
        elif label == "lie_down":
            self.lie_down()
            self.still(float(rng.uniform(5.0, 40.0)))
        elif label == "pick_up":
            self.pick_up()
            self.still(float(rng.uniform(1.0, 8.0)))
        elif label == "still":
            self.still(float(rng.uniform(2.0, 20.0)))
        else:
            raise ValueError(f"unknown activity {label!r}")


def make_script(
    rng: np.random.Generator,
    duration_s: float,
    *,
    activities: tuple[str, ...] = ORDINARY,
    falls: int = 0,
    fall_still_s: tuple[float, float] = (15.0, 40.0),
) -> list[Segment]:
    """A random script of at least ``duration_s`` seconds.

    Parameters
    ----------
    rng : numpy.random.Generator
    duration_s : float
        Minimum script length (s); the last activity is completed.
    activities : tuple of str
        Ordinary activities to draw from (uniformly).
    falls : int
        Falls to place at random points of the script (each followed by ``fall_still_s``
        seconds lying still, then getting up).
    """
    b = ScriptBuilder(rng)
    b.still(float(rng.uniform(2.0, 5.0)))
    fall_at = sorted(rng.uniform(0.1, 0.8, size=falls) * duration_s) if falls else []
    while b.t < duration_s or fall_at:
        if fall_at and b.t >= fall_at[0]:
            fall_at.pop(0)
            if rng.random() < 0.5:  # half of the falls happen while walking
                b.walk(dur=float(rng.uniform(1.0, 3.0)))
            b.fall(float(rng.uniform(*fall_still_s)))
            b.stand_up()
            b.still(float(rng.uniform(2.0, 6.0)))
            continue
        b.ordinary(str(rng.choice(list(activities))))
    return b.segments


def script_intervals(segments: list[Segment]) -> list[dict[str, Any]]:
    """Truth intervals ``[{label, start_s, end_s, …}]`` of a script (JSON-ready)."""
    out = []
    for s in segments:
        d: dict[str, Any] = {"label": s.label, "start_s": round(s.start_s, 4),
                             "end_s": round(s.end_s, 4), "posture_after": s.end_state}
        if s.label == "fall":
            d["descent_s"] = round(float(s.params["descent_s"]), 4)
            d["impact_s"] = round(s.start_s + float(s.params["descent_s"]), 4)
        out.append(d)
    return out


def points_at(segments: list[Segment], t: np.ndarray) -> np.ndarray:
    """Scatterer positions ``(len(t), 7, 3)`` (m) of a script at times ``t`` (s)."""
    starts = np.array([s.start_s for s in segments])
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(segments) - 1)
    out = np.empty((len(t), 7, 3))
    for i in np.unique(idx):
        m = idx == i
        out[m] = segments[i].points(t[m])
    return out


# ----------------------------------------------------------------------------- channel


@dataclass
class Channel:
    """Room geometry, static multipath and receiver impairments of one simulated device.

    Build with :meth:`random`.
    """

    tx: np.ndarray
    rx: np.ndarray
    static: np.ndarray  # (52,) complex static channel
    scatter_gain: float
    ripple: np.ndarray  # (52,) real
    snr_db: float
    target_amp: float  # int8 counts of the mean |H|
    gain_locked: bool
    rx_images: np.ndarray  # (3, 3) receiver mirrored in the nearest walls and the floor
    freqs: np.ndarray = field(default_factory=lambda: FC_HZ + OCCUPIED * SC_SPACING_HZ)

    @classmethod
    def random(cls, rng: np.random.Generator) -> Channel:
        tx = np.array([rng.uniform(0.2, 1.0), 0.1, rng.uniform(1.5, 2.2)])
        rx = np.array([rng.uniform(3.0, 4.8), rng.uniform(2.0, 3.9), rng.uniform(0.7, 1.5)])
        freqs = FC_HZ + OCCUPIED * SC_SPACING_HZ
        k = 2 * np.pi * freqs / C
        d0 = np.linalg.norm(rx - tx)
        h = np.exp(-1j * k * d0) / d0
        for axis in range(3):  # first-order image sources of the six walls
            for wall in (0.0, ROOM[axis]):
                img = tx.copy()
                img[axis] = 2 * wall - tx[axis]
                d = np.linalg.norm(rx - img)
                h = h + rng.uniform(0.3, 0.6) * np.exp(-1j * (k * d + rng.uniform(0, np.pi))) / d
        for _ in range(4):  # furniture
            p = rng.uniform([0.2, 0.2, 0.2], ROOM - 0.2)
            d1, d2 = np.linalg.norm(p - tx), np.linalg.norm(rx - p)
            h = h + rng.uniform(0.1, 0.3) * np.exp(-1j * k * (d1 + d2)) / (d1 * d2)
        # diffuse tail of higher-order reflections: exponential power-delay profile
        tau_rms = rng.uniform(20e-9, 50e-9)
        taus = rng.exponential(tau_rms, 30)
        amps = rng.rayleigh(1.0, 30) * np.exp(-taus / (2 * tau_rms)) * 0.35 / d0
        h = h + (amps[:, None] * np.exp(-1j * (k[None] * (d0 + C * taus[:, None])
                                                + rng.uniform(0, 2 * np.pi, (30, 1))))).sum(0)
        # receiver images for the body's wall bounces: nearest x wall, nearest y wall, floor
        images = []
        for axis in range(3):
            wall = 0.0 if (axis == 2 or rx[axis] < ROOM[axis] / 2) else ROOM[axis]
            img = rx.copy()
            img[axis] = 2 * wall - rx[axis]
            images.append(img)
        return cls(
            tx=tx, rx=rx, static=h, scatter_gain=float(rng.uniform(0.15, 0.4)),
            ripple=1.0 + 0.15 * np.convolve(rng.normal(size=60), np.ones(9) / 3, "same")[4:56],
            snr_db=float(rng.uniform(27.0, 38.0)), target_amp=float(rng.uniform(18.0, 40.0)),
            gain_locked=bool(rng.random() < 0.4), rx_images=np.array(images),
        )

    def person(self, pts: np.ndarray) -> np.ndarray:
        """Channel contribution ``(n, 52)`` of the body scatterers at positions ``(n, 7, 3)``:
        direct scattering to the receiver plus one wall/floor bounce (coefficient 0.5) via
        the receiver's images."""
        d1 = np.linalg.norm(pts - self.tx, axis=2)  # (n, 7)
        rxs = np.concatenate([self.rx[None], self.rx_images])  # (4, 3)
        d2 = np.linalg.norm(pts[:, :, None, :] - rxs[None, None], axis=3)  # (n, 7, 4)
        coef = np.array([1.0, 0.5, 0.5, 0.5])
        amp = self.scatter_gain * np.sqrt(BODY_RCS)[None, :, None] * coef / (d1[..., None] * d2)
        amp = amp.reshape(len(pts), -1)
        dist = (d1[..., None] + d2).reshape(len(pts), -1)
        # exp(-j k_m d) on evenly spaced subcarriers: base phase × (step phase)^m
        k0 = 2 * np.pi * self.freqs[0] / C
        dk = 2 * np.pi * SC_SPACING_HZ / C
        m = OCCUPIED - OCCUPIED[0]
        base = (amp * np.exp(-1j * k0 * dist)).astype(np.complex64)
        step = np.exp(-1j * dk * dist).astype(np.complex64)
        ramp = np.empty(dist.shape + (len(m),), np.complex64)
        ramp[..., 0] = 1.0
        ramp[..., 1:] = step[..., None]
        np.cumprod(ramp, axis=-1, out=ramp)  # step**m, 4x faster than exp per subcarrier
        return np.einsum("np,npk->nk", base, ramp)


def packet_times(rng: np.random.Generator, t_start: float, t_end: float, rate_hz: float,
                 loss: float) -> np.ndarray:
    """Packet arrival times (s) in ``[t_start, t_end)`` at ``rate_hz`` with gamma jitter
    (:func:`~sensing.simulate.radio.gamma_intervals`) and Bernoulli + burst loss
    (:func:`~sensing.simulate.radio.bernoulli_burst_keep`, ``loss`` = mean lost fraction)."""
    n = int((t_end - t_start) * rate_hz * 1.2) + 4
    t = t_start + np.cumsum(radio.gamma_intervals(rng, n, rate_hz, shape=8.0))
    t = t[t < t_end]
    return t[radio.bernoulli_burst_keep(rng, len(t), loss, single=0.7, burst_start=0.03,
                                        burst_len=10)]


def stream_activity(
    segments: list[Segment],
    channel: Channel,
    rng: np.random.Generator,
    *,
    rate_hz: float = 100.0,
    loss: float = 0.02,
    chunk_s: float = 2.0,
    t_end: float | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Simulated CSI chunk by chunk: ``(times_s (n,), csi (n, 64) complex)``.

    ``csi`` holds int8-valued complex numbers on subcarriers -32..31 (ascending, nulls 0),
    i.e. what the ESP32 reader outputs for the written file. Memory per chunk is bounded by
    ``chunk_s``.
    """
    agc = radio.AgcDrift(rng, locked=channel.gain_locked, walk_db=0.01, step_db=(1.0, 3.0),
                         interval_s=(5.0, 30.0), range_db=(-6.0, 6.0))
    t_end = segments[-1].end_s if t_end is None else t_end
    mean_amp = float(np.mean(np.abs(channel.static)))
    noise_sd = radio.noise_sd(channel.snr_db, amplitude=mean_amp)
    occ = np.searchsorted(ALL_SC, OCCUPIED)
    t0 = 0.0
    while t0 < t_end:
        t1 = min(t0 + chunk_s, t_end)
        t = packet_times(rng, t0, t1, rate_hz, loss)
        if t0 == 0.0:  # first packet at 0 s: reader stream time == script time
            t = np.r_[0.0, t]
        t0 = t1
        if not len(t):
            continue
        h = channel.static[None] + channel.person(points_at(segments, t))
        h = h * channel.ripple[None]
        n = len(t)
        h = h + radio.awgn(rng, h.shape, noise_sd)
        # CFO common phase and timing-offset phase slope per packet
        tau = radio.timing_offsets(rng, n, 50e-9)
        ph = (radio.common_phase(rng, n, 0, 2 * np.pi)[:, None]
              - radio.timing_phase(tau, OCCUPIED, SC_SPACING_HZ))
        gain = radio.db_to_amplitude(agc.gains_db(t)) * channel.target_amp / mean_amp
        h = h * np.exp(1j * ph) * gain[:, None]
        out = np.zeros((n, 64), dtype=np.complex64)
        out[:, occ] = radio.quantise(h, "int8")
        yield t, out


class ActivityParams(Params):
    """Options of ``ambisense simulate csi-activity`` (:func:`csi_activity`)."""

    seed: int = param(0, ge=0, doc="random seed (geometry, script, noise); the same options "
                                    "and seed give byte-identical files")
    duration_s: float = param(120.0, unit="s", gt=0,
                              doc="minimum length of the activity script (the last activity "
                                  "is completed)")
    rate_hz: float = param(100.0, unit="Hz", ge=1, le=2000,
                           doc="nominal packet rate (gamma-jittered intervals)")
    falls: int = param(1, ge=0, le=1000, doc="number of falls in the script")
    loss: float = param(0.02, ge=0, lt=1, doc="mean fraction of lost packets (70 % single, "
                                               "30 % in bursts of 10)")
    activities: str = param(",".join(ORDINARY),
                            doc="comma-separated ordinary activities to draw from "
                                f"({', '.join(ORDINARY)})")

    @field_validator("activities")
    @classmethod
    def _known(cls, v: str) -> str:
        acts = [a.strip() for a in v.split(",") if a.strip()]
        bad = [a for a in acts if a not in ORDINARY]
        if not acts or bad:
            raise ValueError(f"expected names from {', '.join(ORDINARY)}, got {v!r}")
        return v


@simulator("csi-activity", ActivityParams)
def csi_activity(out: str | os.PathLike, params: ActivityParams | None = None,
                 **options: Any) -> dict[str, Any]:
    """Person doing daily activities (and falling) in a room, as ESP32 CSI_DATA lines.

    Writes an esp-csi ``CSI_DATA`` log (HT20 LLTF, one antenna) and a truth sidecar with the
    labelled activity intervals (``intervals``: label, start_s, end_s; falls also carry
    ``impact_s``). See the module docstring for the physical model.

    Parameters
    ----------
    out : path
        Capture file to write.
    params : ActivityParams, optional
        The options (default: the defaults), with ``options`` applied.
    **options
        Fields of :class:`ActivityParams` (``seed``, ``duration_s``, ``rate_hz``,
        ``falls``, ``loss``, ``activities``), each documented there with unit and range.

    Raises
    ------
    OptionError
        An unknown option or a value out of range.
    """
    p = ActivityParams.build(params, options, where="csi-activity")
    seed, duration_s, rate_hz, falls, loss = p.seed, p.duration_s, p.rate_hz, p.falls, p.loss
    activities = p.activities
    rng = np.random.default_rng(seed)
    acts = tuple(a.strip() for a in activities.split(",") if a.strip())
    channel = Channel.random(rng)
    segments = make_script(rng, duration_s, activities=acts, falls=falls)
    order = lltf20_buffer_index()
    n = 0
    with open(out, "w", encoding="ascii", newline="\n") as fh:
        for t, csi in stream_activity(segments, channel, rng, rate_hz=rate_hz, loss=loss):
            buf = csi[:, order]
            lines = [
                format_csi_line(buf[i], local_timestamp_us=int(round(t[i] * 1e6)) + 1_000_000,
                                rssi=-45, channel=6, seq=n + i)
                for i in range(len(t))
            ]
            fh.write("\n".join(lines) + "\n")
            n += len(t)
    truth = {
        "simulator": "csi-activity",
        "seed": seed,
        "duration_s": round(segments[-1].end_s, 4),
        "rate_hz": rate_hz,
        "packets": n,
        "loss": loss,
        "falls": sum(s.label == "fall" for s in segments),
        "time_origin": "first packet at script time 0 s, so reader stream time == script time",
        "geometry": {"room_m": ROOM.tolist(), "tx_m": channel.tx.round(3).tolist(),
                     "rx_m": channel.rx.round(3).tolist(), "snr_db": round(channel.snr_db, 2),
                     "gain_locked": channel.gain_locked},
        "intervals": script_intervals(segments),
    }
    write_truth(out, truth)
    return truth
