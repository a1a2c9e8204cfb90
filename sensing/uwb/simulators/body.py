"""Body kinematics for the UWB activity simulator: a person as 7 point scatterers.

Points (:data:`POINTS`): head, torso (chest), pelvis, two hands, two legs (knees), with
relative scattering amplitudes :data:`POINT_GAIN` (torso 1). A posture places them by
(forward, side, up) offsets from a floor position and heading (:func:`posture`); an
activity script (:class:`ScriptBuilder`) is a list of :class:`Segment` objects that are
evaluated at any array of times (:func:`points_at`), so a day of activity is generated
chunk by chunk and never held in memory.

Activities (labels in :data:`LABELS`)
-------------------------------------
============  ============================================================================
walk          0.4–1.2 m/s between spots of the room, legs/arms swing at the stride rate
              (0.8–1.1 Hz), 3 cm vertical bob
still         standing (±1 cm sway) or the posture held (sitting, lying), breathing
sit / stand   1.0–2.5 s raised-cosine transition standing ↔ sitting (toilet/chair 0.42–0.5
              m); 20 % of sit-downs are fast "plops" (0.6–1.0 s)
lie_down      on the bed (0.45–0.6 m): via sitting on its edge, 3–6 s; get_up 3–7 s
squat         0.8–2.0 s down, hold 1–8 s, 0.8–2.0 s up
bend          0.7–1.5 s down (torso 1.15 → 1.0 m, head forward), hold 0.5–3 s, up
pick_up       deep bend (hands to the floor) 0.7–1.5 s, hold 0.3–1.5 s, up 0.7–1.5 s
shower        standing under the shower with washing arm motion (0.5–1.5 Hz, ±15 cm), and
              24 water drops falling at 3–6 m/s (:class:`Segment` ``extra``)
absent        nobody in the room (body scatterers switched off)
fall          standing (or walking) → lying on the floor: a loss-of-balance phase
              (0.05–0.6 s, the first 10 % of the way) then a gravity-like descent (progress ∝ t²)
              whose torso peak speed is drawn in 2–4 m/s (descent 0.48–0.95 s; total
              0.53–1.5 s), torso 1.15 m → 0.2 m, body displaced 0.3–1.0 m, 2–4 cm damped
              rebound; then lying still and breathing (``fall_still``); optionally
              getting up again (floor → sitting → kneeling → standing, 4–10 s:
              ``get_up_floor``, the truth's ``cleared_s``)
============  ============================================================================

Breathing: the torso moves 2–5 mm (peak) at the capture's breathing rate (10–24 bpm),
forward when upright and vertically when lying; the head moves 30 % as much.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

POINTS = ("head", "torso", "pelvis", "hand_l", "hand_r", "leg_l", "leg_r")
#: Relative scattering amplitude of each point (torso = 1).
POINT_GAIN = np.array([0.35, 1.0, 0.7, 0.2, 0.2, 0.4, 0.4])
N_POINTS = len(POINTS)
#: Activity labels of the truth intervals.
LABELS = ("walk", "still", "sit", "stand", "lie_down", "get_up", "squat", "bend",
          "pick_up", "shower", "absent", "fall", "fall_still", "get_up_floor")
#: Activities an ordinary script draws from (``lie_down`` needs a bed, ``shower`` a shower).
ORDINARY = ("walk", "still", "sit", "squat", "bend", "pick_up", "lie_down", "shower",
            "absent")
#: Number of water-drop scatterers during a shower.
N_DROPS = 24

_POSTURES: dict[str, list[tuple[float, float, float]]] = {
    # (forward, side, up) m: head, torso, pelvis, hand_l, hand_r, leg_l, leg_r
    "standing": [(0, 0, 1.62), (0, 0, 1.15), (0, 0, 0.92), (0.05, 0.25, 0.85),
                 (0.05, -0.25, 0.85), (0.02, 0.1, 0.45), (0.02, -0.1, 0.45)],
    "sitting": [(0.05, 0, 1.18), (0.03, 0, 0.8), (-0.08, 0, 0.52), (0.3, 0.2, 0.62),
                (0.3, -0.2, 0.62), (0.4, 0.1, 0.42), (0.4, -0.1, 0.42)],
    "squat": [(0.15, 0, 0.95), (0.1, 0, 0.65), (-0.1, 0, 0.45), (0.35, 0.2, 0.45),
              (0.35, -0.2, 0.45), (0.3, 0.12, 0.42), (0.3, -0.12, 0.42)],
    "bent": [(0.5, 0, 1.0), (0.3, 0, 1.0), (-0.05, 0, 0.92), (0.45, 0.15, 0.5),
             (0.45, -0.15, 0.5), (0.02, 0.1, 0.45), (0.02, -0.1, 0.45)],
    "pick": [(0.55, 0, 0.7), (0.35, 0, 0.8), (-0.1, 0, 0.85), (0.55, 0.12, 0.08),
             (0.55, -0.12, 0.08), (0.1, 0.1, 0.42), (0.1, -0.1, 0.42)],
    "sitting_floor": [(0.1, 0, 0.85), (0.05, 0, 0.5), (-0.1, 0, 0.15), (0.0, 0.3, 0.1),
                      (0.0, -0.3, 0.1), (0.5, 0.1, 0.15), (0.5, -0.1, 0.15)],
    "kneeling": [(0.2, 0, 1.15), (0.15, 0, 0.8), (0, 0, 0.6), (0.35, 0.2, 0.5),
                 (0.35, -0.2, 0.5), (0.1, 0.1, 0.1), (0.1, -0.1, 0.1)],
}
_LYING = [(0.8, 0, 0.1), (0.45, 0, 0.13), (0, 0, 0.12), (0.35, 0.3, 0.08),
          (0.35, -0.3, 0.08), (-0.45, 0.1, 0.08), (-0.45, -0.1, 0.08)]


def posture(name: str, xy: np.ndarray, heading: float, bed_h: float = 0.5) -> np.ndarray:
    """Scatterer positions ``(7, 3)`` (m) of a posture at floor position ``xy`` (m),
    facing ``heading`` (rad).

    ``name``: ``standing``, ``sitting``, ``squat``, ``bent``, ``pick``, ``sitting_floor``,
    ``kneeling``, ``lying_bed`` (on a bed of height ``bed_h`` m) or ``lying_floor``
    (torso 0.2 m above the floor).
    """
    if name == "lying_floor":
        off = np.asarray(_LYING, float) + np.array([0, 0, 0.07])
    elif name == "lying_bed":
        off = np.asarray(_LYING, float) + np.array([0, 0, bed_h])
    else:
        off = np.asarray(_POSTURES[name], float)
    fwd = np.array([np.cos(heading), np.sin(heading), 0.0])
    side = np.array([-np.sin(heading), np.cos(heading), 0.0])
    base = np.array([xy[0], xy[1], 0.0])
    return base + off[:, :1] * fwd + off[:, 1:2] * side + off[:, 2:3] * np.array([0, 0, 1.0])


def _raised_cosine(s: np.ndarray) -> np.ndarray:
    s = np.clip(s, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * s)


@dataclass
class Segment:
    """One activity interval of a script.

    Attributes
    ----------
    label : str
        One of :data:`LABELS`.
    start_s, end_s : float
        Interval (s from the stream start).
    kind : str
        ``hold`` (posture held), ``move`` (key-frame transition), ``walk``, ``absent``.
    keys : list of (float, numpy.ndarray)
        ``move``: (time fraction, 7×3 posture) key frames; ``hold``: one posture.
    profile : str
        ``smooth`` (raised cosine) or ``fall`` (see the module docstring).
    params : dict
        Walk path, gait, arm motion, shower, fall timing.
    lying : bool
        The posture is lying (breathing moves the torso vertically).
    """

    label: str
    start_s: float
    end_s: float
    kind: str
    keys: list[tuple[float, np.ndarray]]
    profile: str = "smooth"
    params: dict[str, Any] = field(default_factory=dict)
    lying: bool = False

    def points(self, t: np.ndarray, breath: dict[str, float]) -> np.ndarray:
        """Scatterer positions ``(len(t), 7, 3)`` (m) at stream times ``t`` (s)."""
        dur = max(self.end_s - self.start_s, 1e-6)
        u = (t - self.start_s) / dur
        p = self.params
        n = len(t)
        if self.kind in ("hold", "absent"):
            pts = np.broadcast_to(self.keys[0][1], (n, N_POINTS, 3)).copy()
        elif self.kind == "walk":
            a, b = p["from"], p["to"]
            s = np.clip(u, 0, 1)[:, None]
            xy = a[None] + (b - a)[None] * s
            hd = p["heading"]
            fwd = np.array([np.cos(hd), np.sin(hd), 0.0])
            pts = np.broadcast_to(posture("standing", np.zeros(2), hd),
                                  (n, N_POINTS, 3)).copy()
            pts[:, :, :2] += xy[:, None, :]
            ph = 2 * np.pi * p["stride_hz"] * (t - self.start_s) + p["phase"]
            # the gait starts and stops over 0.3 s (no jump to the next segment's posture)
            taper = np.clip(np.minimum(u, 1 - u) * dur / 0.3, 0, 1)[:, None]
            swing = np.sin(ph)[:, None] * taper
            pts[:, 5] += 0.3 * swing * fwd
            pts[:, 6] -= 0.3 * swing * fwd
            pts[:, 3] -= 0.2 * swing * fwd
            pts[:, 4] += 0.2 * swing * fwd
            pts[:, :3, 2] += 0.03 * np.sin(2 * ph)[:, None] * taper
        else:
            rebound = None
            if self.profile == "fall":
                pre, desc = p["pre_s"], p["descent_s"]
                tl = t - self.start_s
                s = np.where(tl < pre, 0.1 * _raised_cosine(tl / max(pre, 1e-6)),
                             0.1 + 0.9 * np.clip((tl - pre) / desc, 0, 1) ** 2)
                after = np.clip(tl - pre - desc, 0, None)
                rebound = p["rebound_m"] * np.exp(-after / 0.12) * np.abs(
                    np.sin(2 * np.pi * 3.0 * after))
                rebound[tl < pre + desc] = 0.0
            else:
                s = _raised_cosine(u)
            fr = np.array([k for k, _ in self.keys])
            poses = np.stack([q for _, q in self.keys])
            idx = np.clip(np.searchsorted(fr, s, side="right") - 1, 0, len(fr) - 2)
            lo, hi = fr[idx], fr[idx + 1]
            w = ((s - lo) / np.maximum(hi - lo, 1e-9))[:, None, None]
            pts = poses[idx] * (1 - w) + poses[idx + 1] * w
            if rebound is not None:
                pts[:, :, 2] += rebound[:, None]
        if "arm_hz" in p:  # washing / gesturing arms
            ph = 2 * np.pi * p["arm_hz"] * t + p["arm_ph"]
            pts[:, 3, 2] += p["arm_m"] * np.sin(ph)
            pts[:, 4, 2] += p["arm_m"] * np.sin(ph + 2.0)
            pts[:, 3, 0] += 0.5 * p["arm_m"] * np.cos(ph)
        # breathing (torso, head 30 %) and standing sway
        br = breath["amp_m"] * np.sin(2 * np.pi * breath["hz"] * t + breath["phase"])
        if self.lying:
            pts[:, 1, 2] += br
            pts[:, 0, 2] += 0.3 * br
        else:
            hd = p.get("heading", 0.0)
            pts[:, 1, 0] += br * np.cos(hd)
            pts[:, 1, 1] += br * np.sin(hd)
            pts[:, 0, 0] += 0.3 * br * np.cos(hd)
            pts[:, 0, 1] += 0.3 * br * np.sin(hd)
        if self.kind == "hold" and not self.lying and p.get("sway", True):
            sway = 0.01 * np.sin(2 * np.pi * 0.15 * t + p.get("sway_ph", 0.0))
            pts[:, :3, 0] += sway[:, None]
        return pts

    def extra(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Extra scatterers (water drops) ``(positions (n, m, 3) m, amplitudes (m,))``."""
        p = self.params
        if "drops" not in p:
            return None
        d = p["drops"]
        z = d["z0"] - d["v"][None, :] * np.mod(t[:, None] + d["ph"][None, :], d["period"][None, :])
        pos = np.empty((len(t), len(d["v"]), 3))
        pos[:, :, 0] = d["x"][None, :]
        pos[:, :, 1] = d["y"][None, :]
        pos[:, :, 2] = z
        return pos, d["amp"]


class ScriptBuilder:
    """Builds a physically consistent random activity script for one person in a room.

    Parameters
    ----------
    rng : numpy.random.Generator
        All random draws.
    room : numpy.ndarray
        ``(3,)`` room size (m).
    spots : dict
        Named floor positions ``(2,)`` (m): ``seat`` (toilet/chair), ``sink``, and when
        present ``shower`` and ``bed`` (the bed's centre; ``bed_h`` its height, m).
    """

    def __init__(self, rng: np.random.Generator, room: np.ndarray,
                 spots: dict[str, Any]) -> None:
        self.rng = rng
        self.room = room
        self.spots = spots
        self.segments: list[Segment] = []
        self.t = 0.0
        self.xy = self._free_xy()
        self.heading = float(rng.uniform(-np.pi, np.pi))
        self.state = "standing"
        self.bed_h = float(spots.get("bed_h", 0.5))

    # ------------------------------------------------------------------ helpers
    def _free_xy(self) -> np.ndarray:
        m = 0.4
        return np.array([self.rng.uniform(m, self.room[0] - m),
                         self.rng.uniform(m, self.room[1] - m)])

    def _pose(self, name: str | None = None, xy: np.ndarray | None = None,
              heading: float | None = None) -> np.ndarray:
        return posture(name or self.state, self.xy if xy is None else xy,
                       self.heading if heading is None else heading, self.bed_h)

    def _add(self, label: str, dur: float, kind: str, keys, *, profile: str = "smooth",
             params: dict[str, Any] | None = None, lying: bool = False) -> Segment:
        prm = {"heading": self.heading, "sway_ph": float(self.rng.uniform(0, 6.3))}
        prm.update(params or {})
        seg = Segment(label, self.t, self.t + dur, kind, keys, profile, prm, lying)
        self.segments.append(seg)
        self.t += dur
        return seg

    def _move(self, label: str, dur: float, names: list[str], fracs: list[float],
              end_state: str, **kw: Any) -> Segment:
        keys = [(f, self._pose(nm)) for f, nm in zip(fracs, names, strict=True)]
        seg = self._add(label, dur, "move", keys, **kw)
        self.state = end_state
        return seg

    # ------------------------------------------------------------------ activities
    def hold(self, dur: float, label: str = "still", **params: Any) -> None:
        """Hold the current posture ``dur`` seconds (breathing)."""
        self._add(label, dur, "hold", [(0.0, self._pose())], params=params,
                  lying=self.state.startswith("lying"))

    def walk_to(self, xy: np.ndarray) -> None:
        """Walk (standing) to ``xy``."""
        if self.state != "standing":
            self.stand_up()
        d = xy - self.xy
        dist = float(np.hypot(*d))
        if dist < 0.2:
            return
        self.heading = float(np.arctan2(d[1], d[0]))
        speed = float(self.rng.uniform(0.4, 1.2))
        self._add("walk", dist / speed, "walk", [(0.0, self._pose())],
                  params={"from": self.xy.copy(), "to": np.asarray(xy, float).copy(),
                          "heading": self.heading,
                          "stride_hz": float(self.rng.uniform(0.8, 1.1)),
                          "phase": float(self.rng.uniform(0, 6.3))})
        self.xy = np.asarray(xy, float).copy()

    def stand_up(self) -> None:
        """Back to standing from whatever posture."""
        r = self.rng
        if self.state == "standing":
            return
        if self.state == "sitting":
            self._move("stand", r.uniform(1.0, 2.5), ["sitting", "standing"], [0, 1],
                       "standing")
        elif self.state == "lying_bed":
            self._move("get_up", r.uniform(3.0, 7.0), ["lying_bed", "sitting", "standing"],
                       [0, 0.6, 1], "standing")
        elif self.state == "lying_floor":
            self._move("get_up_floor", r.uniform(4.0, 10.0),
                       ["lying_floor", "sitting_floor", "kneeling", "standing"],
                       [0, 0.35, 0.7, 1], "standing")
        else:
            self._move("stand", r.uniform(0.8, 2.0), [self.state, "standing"], [0, 1],
                       "standing")

    def sit(self, hold_s: float) -> None:
        """Walk to the seat, sit down (20 % fast), hold, stand up."""
        r = self.rng
        self.walk_to(self.spots["seat"])
        self.heading = float(self.spots.get("seat_heading", self.heading))
        dur = r.uniform(0.6, 1.0) if r.random() < 0.2 else r.uniform(1.0, 2.5)
        self._move("sit", dur, ["standing", "sitting"], [0, 1], "sitting")
        self.hold(hold_s)
        self.stand_up()

    def squat(self) -> None:
        r = self.rng
        self._move("squat", r.uniform(0.8, 2.0), ["standing", "squat"], [0, 1], "squat")
        self.hold(r.uniform(1.0, 8.0))
        self.stand_up()

    def bend(self) -> None:
        r = self.rng
        self._move("bend", r.uniform(0.7, 1.5), ["standing", "bent"], [0, 1], "bent")
        self.hold(r.uniform(0.5, 3.0), label="bend")
        self._move("bend", r.uniform(0.7, 1.5), ["bent", "standing"], [0, 1], "standing")

    def pick_up(self) -> None:
        r = self.rng
        self._move("pick_up", r.uniform(0.7, 1.5), ["standing", "pick"], [0, 1], "pick")
        self.hold(r.uniform(0.3, 1.5), label="pick_up")
        self._move("pick_up", r.uniform(0.7, 1.5), ["pick", "standing"], [0, 1], "standing")

    def lie_down(self, hold_s: float) -> None:
        """Walk to the bed, lie down via sitting on its edge, hold, get up."""
        r = self.rng
        bed = np.asarray(self.spots["bed"], float)
        self.walk_to(bed)
        self._move("lie_down", r.uniform(3.0, 6.0), ["standing", "sitting", "lying_bed"],
                   [0, 0.4, 1], "lying_bed")
        self.hold(hold_s)
        self.stand_up()

    def shower(self, dur: float) -> None:
        """Stand under the shower ``dur`` s: washing arms and falling water drops."""
        r = self.rng
        c = np.asarray(self.spots["shower"], float)
        self.walk_to(c)
        ang = r.uniform(0, 2 * np.pi, N_DROPS)
        rad = 0.25 * np.sqrt(r.uniform(0, 1, N_DROPS))
        v = r.uniform(3.0, 6.0, N_DROPS)
        z0 = float(self.spots.get("shower_h", 2.0))
        drops = {"x": c[0] + 0.15 + rad * np.cos(ang), "y": c[1] + rad * np.sin(ang),
                 "v": v, "period": z0 / v, "ph": r.uniform(0, 1, N_DROPS) * z0 / v,
                 "z0": z0, "amp": r.uniform(0.02, 0.06, N_DROPS)}
        self.hold(dur, label="shower", drops=drops, arm_hz=float(r.uniform(0.5, 1.5)),
                  arm_ph=float(r.uniform(0, 6.3)), arm_m=float(r.uniform(0.08, 0.15)))

    def absent(self, dur: float) -> None:
        """Nobody in the room for ``dur`` s (the person leaves and comes back)."""
        if self.state != "standing":
            self.stand_up()
        self._add("absent", dur, "absent", [(0.0, self._pose())], params={"sway": False})

    def fall(self, still_s: float, get_up: bool) -> Segment:
        """Fall from standing (or the end of a walk) onto the floor, lie ``still_s``,
        optionally get up. Returns the fall segment (its params hold the timing)."""
        r = self.rng
        if self.state != "standing":
            self.stand_up()
        if r.random() < 0.5:  # falls during walking: walk first
            self.walk_to(self._free_xy())
        v_peak = float(r.uniform(2.0, 4.0))
        # the torso drops dz = 0.95 m during the descent as z = 1.15 - dz (t/T)²: peak
        # speed 2 dz / T at the impact
        descent = 2 * (1.15 - 0.2) / v_peak
        pre = float(r.uniform(0.05, min(0.6, 1.5 - descent)))
        heading = self.heading + float(r.choice([0.0, np.pi, np.pi / 2, -np.pi / 2])
                                       + r.uniform(-0.4, 0.4))
        shift = float(r.uniform(0.3, 1.0))
        end_xy = self.xy + shift * np.array([np.cos(heading), np.sin(heading)])
        end_xy = np.clip(end_xy, 0.3, self.room[:2] - 0.3)
        keys = [(0.0, self._pose("standing")),
                (0.1, self._pose("standing", heading=heading) * 0.5
                 + self._pose("standing") * 0.5),
                (1.0, posture("lying_floor", end_xy, heading))]
        seg = self._add("fall", pre + descent + 0.4, "move", keys, profile="fall",
                        params={"pre_s": pre, "descent_s": descent, "v_peak": v_peak,
                                "rebound_m": float(r.uniform(0.02, 0.04))})
        self.xy, self.heading, self.state = end_xy, heading, "lying_floor"
        self._add("fall_still", still_s, "hold", [(0.0, self._pose())], lying=True)
        if get_up:
            self.stand_up()
        return seg

    def ordinary(self, label: str) -> None:
        """One ordinary activity (some activities need a spot: fall back to ``still``)."""
        r = self.rng
        if label == "walk":
            self.walk_to(self._free_xy())
        elif label == "still":
            self.hold(r.uniform(3.0, 40.0))
        elif label == "sit":
            self.sit(r.uniform(5.0, 120.0))
        elif label == "squat":
            self.squat()
        elif label == "bend":
            self.bend()
        elif label == "pick_up":
            self.pick_up()
        elif label == "lie_down" and "bed" in self.spots:
            self.lie_down(r.uniform(10.0, 300.0))
        elif label == "shower" and "shower" in self.spots:
            self.shower(r.uniform(30.0, 400.0))
        elif label == "absent":
            self.absent(r.uniform(10.0, 300.0))
        else:
            self.hold(r.uniform(3.0, 20.0))


def make_script(rng: np.random.Generator, room: np.ndarray, spots: dict[str, Any],
                duration_s: float, *, activities: tuple[str, ...] = ORDINARY,
                falls: int = 0, get_up: float = 0.5, lead_s: float = 12.0) -> list[Segment]:
    """A random script of at least ``duration_s`` seconds with ``falls`` falls.

    Falls are spread evenly through the script; each is preceded by ordinary activity and
    followed by 10–40 s lying still, and gets up afterwards with probability ``get_up``.
    The script starts with ``lead_s`` s of standing still (stream start-up).
    """
    b = ScriptBuilder(rng, room, spots)
    b.hold(lead_s)
    fall_at = [duration_s * (k + 0.5) / falls for k in range(falls)] if falls else []
    k = 0
    while b.t < duration_s or k < len(fall_at):
        if k < len(fall_at) and b.t >= fall_at[k] - 15.0:
            b.fall(float(rng.uniform(10.0, 40.0)), bool(rng.random() < get_up))
            k += 1
            b.hold(float(rng.uniform(3.0, 10.0)))
            continue
        b.ordinary(str(rng.choice(activities)))
    return b.segments


def script_intervals(segments: list[Segment]) -> list[dict[str, Any]]:
    """Truth intervals: ``{label, start_s, end_s}``; falls also ``onset_s`` (start of the
    descent), ``impact_s`` (end of the descent: the fall ends), ``v_peak_m_s`` and
    ``cleared_s`` (start of getting up, or None)."""
    out: list[dict[str, Any]] = []
    for i, s in enumerate(segments):
        d: dict[str, Any] = {"label": s.label, "start_s": round(s.start_s, 4),
                             "end_s": round(s.end_s, 4)}
        if s.label == "fall":
            p = s.params
            d["onset_s"] = round(s.start_s, 4)
            d["impact_s"] = round(s.start_s + p["pre_s"] + p["descent_s"], 4)
            d["v_peak_m_s"] = round(p["v_peak"], 3)
            nxt = segments[i + 2] if i + 2 < len(segments) else None
            d["cleared_s"] = (round(nxt.start_s, 4) if nxt is not None
                              and nxt.label == "get_up_floor" else None)
        out.append(d)
    return out


def points_at(segments: list[Segment], t: np.ndarray, breath: dict[str, float]
              ) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Body scatterers at times ``t``: positions ``(n, 7, 3)`` (m), presence ``(n,)``
    (False while absent) and the extra scatterers of the segments overlapping ``t``
    as ``(row mask, positions, amplitudes)``."""
    n = len(t)
    pts = np.zeros((n, N_POINTS, 3))
    present = np.ones(n, bool)
    extras = []
    starts = np.array([s.start_s for s in segments])
    idx = np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(segments) - 1)
    for j in np.unique(idx):
        m = idx == j
        seg = segments[j]
        pts[m] = seg.points(t[m], _BREATH if breath is None else breath)
        if seg.kind == "absent":
            present[m] = False
        ex = seg.extra(t[m])
        if ex is not None:
            extras.append((m, ex[0], ex[1]))
    return pts, present, extras


_BREATH = {"amp_m": 0.003, "hz": 0.25, "phase": 0.0}
