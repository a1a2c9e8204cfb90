"""Channel impulse responses of a UWB link in a room with a moving person (DW1000/DW3000).

Physical model (every number below is a per-capture draw of :meth:`Scene.random`; the
ones marked *measured* come from the seven DW1000 logs of
``shared/data/uwb/kolakowski-uwb-cirs-2018``, see ``docs/uwb-fall.md``):

* **Geometry**: bistatic (70 %: transmitter and receiver on two walls, range = path length
  TX → scatterer → RX) or monostatic (30 %: one board, TX and RX 5 cm apart; the first
  path is then the antenna coupling). Devices mounted high (1.8–2.4 m) as fall sensors are.
* **Pulse**: the received 499.2 MHz pulse sampled at 998.4 MHz (1.0016 ns taps, 64 MHz
  PRF, 1016-tap accumulator) is a Gaussian of σ = 1.0 tap in amplitude, and the chip's
  first-path index (``HLP``/FP_INDEX) sits on its leading edge 1.2 taps before its peak
  (*measured*: median first-path-aligned LOS profile 0.08, 0.51, 0.94 at −1, 0, +1 taps).
* **Paths**: direct path (amplitude 1 at distance d0) and, for a reflector at distances
  d1 (from TX) and d2 (to RX), ``g · d0 / (d1 d2)`` (bistatic radar equation in amplitude;
  monostatic: ``g / (d1 d2)``, coupling 1), phase ``exp(−j 2π f_c L / c)``. Static
  reflectors: the 6 first-order images of walls (reflection coefficient 0.2–0.5), floor
  and ceiling (0.1–0.3: vertical antennas radiate little up and down), 4–6 fixtures
  (bathroom: bathtub/shower tray, sink, toilet, mirror, door; bedroom: bed, wardrobe,
  chair, door; g −26…−12 dB) and a diffuse exponential tail (−22…−14 dB, τ 3–8 ns). With
  these the direct path is the strongest tap in most LOS scenes, as in the LOS logs
  (first path within 0–1.7 dB of the peak). The body's 7 points have g = torso −20…−12 dB
  (bistatic; monostatic −14…−6 dB) times :data:`~sensing.uwb.simulators.body.POINT_GAIN`.
* **NLOS through a door** (25 %): direct path 10–25 dB weaker and 0.3–1.5 ns late; the
  body seen 2–8 dB weaker.
* **First-path jitter** (*measured*): the accumulator content moves from frame to frame by
  N(0, 1.7) taps, plus 3 % of frames by +3…+100 taps (late first-path detection); the
  reported first-path index follows the content to N(0, 0.1) taps (edge − HLP sd 0.07–0.2
  taps in the LOS/NLOS logs); 0.5 % of frames report an index 2–8 taps off (misdetection).
  A window read-out (``n_taps`` < 1016) starts ``pre_taps`` before the floor of the
  reported index, as CIR-capture firmware reads the accumulator around FP_INDEX.
* **Carrier phase**: uniform random per frame (*measured*: circular mean resultant of the
  first-path phase 0.01–0.09 over each log).
* **Amplitude**: accumulator counts ∝ RXPACC (preamble symbols accumulated: N(300–450, 25)
  per frame; *measured* median 277–452 in LOS/NLOS logs), peak 11 000–21 000 counts
  (*measured* median 17 000–20 000).
* **Noise floor** (*measured*): complex Gaussian, mean power 38–43 dB below the peak
  (mean noise power over taps 0–650, relative to the peak tap: median −38.1…−41.1 dB in
  the LOS/NLOS logs, −29.7 dB in the NDP-NLOS log 51).

Everything is vectorised over the frames of a chunk; :func:`stream_cir` yields chunks of
a script of any length without holding it in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from sensing.uwb.simulators.body import POINT_GAIN, Segment, points_at

C_M_S = 299_792_458.0
#: Accumulator tap (s): one sample at 998.4 MHz.
TAP_S = 1.0 / 998.4e6
#: Path length per tap (m).
TAP_M = C_M_S * TAP_S
#: Centre frequencies of the UWB channels (Hz).
CHANNEL_HZ = {1: 3.4944e9, 2: 3.9936e9, 3: 4.4928e9, 4: 3.9936e9, 5: 6.4896e9, 7: 6.4896e9,
              9: 7.9872e9}
#: Gaussian amplitude σ of the received pulse (taps), measured.
PULSE_SIGMA_TAPS = 1.0
#: The reported first-path index sits this many taps before the pulse peak, measured.
FP_TO_PEAK_TAPS = 1.2
#: Nominal first-path index in a 1016-tap accumulator (measured median 745–748).
FP_NOMINAL = 747.0
FULL_TAPS = 1016
_FINE = 64            # static CIR on a 1/64-tap grid
_SUPPORT = np.arange(-3, 5)


@dataclass
class Scene:
    """Room, devices, static reflectors and radio settings of one capture (see the module
    docstring; :meth:`random` draws one)."""

    kind: str
    room: np.ndarray
    tx: np.ndarray
    rx: np.ndarray
    monostatic: bool
    channel: int
    spots: dict[str, Any]
    reflectors: np.ndarray            # (m, 3) static point reflectors
    reflector_gain: np.ndarray        # (m,) g (amplitude)
    images: list[tuple[float, float]]  # (excess path m, amplitude) of wall images
    tail_db: float
    tail_ns: float
    nlos: bool
    nlos_db: float
    nlos_excess_ns: float
    nlos_body_db: float
    body_db: float
    noise_db: float
    peak_counts: float
    rxpacc_mean: float
    fp_sd: float = 1.7
    fp_outlier: float = 0.03
    hlp_err_sd: float = 0.1
    misdetect: float = 0.005
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, complex))

    @property
    def fc_hz(self) -> float:
        return CHANNEL_HZ[self.channel]

    @property
    def d0(self) -> float:
        """Direct (LOS) path length TX → RX (m)."""
        return float(np.linalg.norm(self.tx - self.rx))

    @classmethod
    def random(cls, rng: np.random.Generator, *, kind: str | None = None,
               geometry: str | None = None, nlos: bool | None = None,
               channel: int | None = None, noise_db: float | None = None) -> Scene:
        """Draw a scene (fixed draw order: reproducible from the generator state)."""
        kind = kind or ("bathroom" if rng.random() < 0.6 else "bedroom")
        if kind == "bathroom":
            room = np.array([rng.uniform(2.0, 3.5), rng.uniform(1.8, 3.0), rng.uniform(2.4, 2.7)])
        else:
            room = np.array([rng.uniform(3.0, 4.5), rng.uniform(3.0, 4.0), rng.uniform(2.4, 2.7)])
        mono_draw = rng.random() < 0.3
        monostatic = mono_draw if geometry is None else geometry == "monostatic"
        # TX on the wall y = 0 (or x = 0), high
        tx = np.array([rng.uniform(0.2, room[0] - 0.2), 0.05, rng.uniform(1.8, 2.4)])
        if monostatic:
            rx = tx + np.array([0.05, 0.0, 0.0])
        elif rng.random() < 0.5:  # opposite wall
            rx = np.array([rng.uniform(0.2, room[0] - 0.2), room[1] - 0.05, rng.uniform(0.8, 2.4)])
        else:  # side wall
            rx = np.array([room[0] - 0.05, rng.uniform(0.5, room[1] - 0.2), rng.uniform(0.8, 2.4)])
        ch_draw = rng.random()
        ch = channel or (5 if ch_draw < 0.6 else 9 if ch_draw < 0.8 else 2)
        W, D = room[0], room[1]
        if kind == "bathroom":
            spots = {"seat": np.array([rng.uniform(0.4, W - 0.4), D - 0.45]),
                     "seat_heading": -np.pi / 2,
                     "sink": np.array([0.45, rng.uniform(0.5, D - 0.5)]),
                     "shower": np.array([W - 0.5, 0.5]), "shower_h": float(rng.uniform(1.9, 2.1))}
            fixtures = [[W - 0.5, 0.5, 0.05], [0.3, spots["sink"][1], 0.85],
                        [spots["seat"][0], D - 0.25, 0.4], [0.05, spots["sink"][1], 1.4],
                        [W / 2, D - 0.02, 1.0]]
        else:
            spots = {"bed": np.array([rng.uniform(1.0, W - 1.0), D - 1.1]),
                     "bed_h": float(rng.uniform(0.45, 0.6)),
                     "seat": np.array([0.5, rng.uniform(0.5, D - 1.5)]),
                     "seat_heading": 0.0}
            fixtures = [[spots["bed"][0], spots["bed"][1], spots["bed_h"]],
                        [W - 0.3, 0.8, 1.0], [0.5, spots["seat"][1], 0.5], [W / 2, 0.02, 1.0]]
        if rng.random() < 0.5:
            fixtures.append([rng.uniform(0.3, W - 0.3), rng.uniform(0.3, D - 0.3), 0.02])
        refl = np.asarray(fixtures, float)
        gain = 10 ** (rng.uniform(-26, -12, len(refl)) / 20)
        # first-order images of the 6 walls: excess path over the direct path, amplitude
        images = []
        for axis in range(3):
            for wall in (0.0, room[axis]):
                img = tx.copy()
                img[axis] = 2 * wall - tx[axis]
                L = float(np.linalg.norm(img - rx))
                # walls 0.2-0.5; floor and ceiling 0.1-0.3 (the boards' vertical antennas
                # radiate little up and down)
                coef = rng.uniform(0.2, 0.5) if axis < 2 else rng.uniform(0.1, 0.3)
                images.append((L, coef * max(np.linalg.norm(tx - rx), 1.0) / L
                               if not monostatic else coef * 0.3 / L))
        is_nlos = (rng.random() < 0.25) if nlos is None else bool(nlos)
        nd = rng.uniform(10.0, 25.0)
        ne = rng.uniform(0.3, 1.5)
        nb = rng.uniform(2.0, 8.0)
        body_db = rng.uniform(-14, -6) if monostatic else rng.uniform(-20, -12)
        nz = rng.uniform(38.0, 43.0) if noise_db is None else float(noise_db)
        peak = rng.uniform(11_000, 21_000)
        rxp = rng.uniform(300, 450)
        tail_db, tail_ns = rng.uniform(-22, -14), rng.uniform(3.0, 8.0)
        tail = (rng.standard_normal(80) + 1j * rng.standard_normal(80)) / np.sqrt(2)
        return cls(kind, room, tx, rx, bool(monostatic), int(ch), spots, refl, gain, images,
                   tail_db, tail_ns, is_nlos, nd, ne, nb, body_db, nz, peak, rxp, tail=tail)

    # ------------------------------------------------------------------ paths
    def _bistatic(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Path length (m) and geometric amplitude factor of scatterers at ``pos`` (..., 3)."""
        d1 = np.linalg.norm(pos - self.tx, axis=-1)
        d2 = np.linalg.norm(pos - self.rx, axis=-1)
        d1 = np.maximum(d1, 0.1)
        d2 = np.maximum(d2, 0.1)
        ref = 1.0 if self.monostatic else self.d0
        return d1 + d2, ref / (d1 * d2)

    def excess_taps(self, L: np.ndarray) -> np.ndarray:
        """Delay (taps) of a path of length ``L`` (m) after the first path."""
        e = (L - self.d0) / TAP_M
        if self.nlos:
            e = e - self.nlos_excess_ns * 1e-9 / TAP_S
        return e

    def static_fine(self) -> tuple[np.ndarray, float]:
        """The static CIR (unit direct-path amplitude) on a 1/64-tap grid relative to the
        first path's pulse centre, and the grid's first position (taps)."""
        u0 = -8.0
        u = u0 + np.arange(int((FULL_TAPS - FP_NOMINAL + 16) * _FINE)) / _FINE
        k = 2 * np.pi * self.fc_hz / C_M_S
        delays = [0.0]
        amps: list[complex] = [10 ** (-self.nlos_db / 20) if self.nlos else 1.0]
        if self.nlos:
            delays[0] = 0.0  # the (late, weak) direct path defines the first path
        for L, a in self.images:
            delays.append(float(self.excess_taps(np.array(L))))
            amps.append(a * np.exp(-1j * k * L))
        Lr, ar = self._bistatic(self.reflectors)
        for L, a, g in zip(Lr, ar, self.reflector_gain, strict=True):
            delays.append(float(self.excess_taps(np.array(L))))
            amps.append(g * a * np.exp(-1j * k * L))
        s2 = 2 * PULSE_SIGMA_TAPS**2
        h = np.zeros(len(u), complex)
        for d, a in zip(delays, amps, strict=True):
            if d < -6:
                continue
            m = np.abs(u - d) < 5
            h[m] += a * np.exp(-(u[m] - d) ** 2 / s2)
        # diffuse tail: one random complex tap per tap after the first path
        tail_amp = 10 ** (self.tail_db / 20) * np.exp(-np.arange(len(self.tail)) * TAP_S * 1e9
                                                       / self.tail_ns / 2)
        for j, (c, a) in enumerate(zip(self.tail, tail_amp, strict=True)):
            d = 1.0 + j
            m = np.abs(u - d) < 5
            h[m] += a * c * np.exp(-(u[m] - d) ** 2 / s2)
        return h, u0

    def body_paths(self, pts: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Delays (taps after the first path) and complex amplitudes of the body's points
        ``pts`` (n, 7, 3)."""
        L, geo = self._bistatic(pts)
        g = 10 ** (self.body_db / 20) * POINT_GAIN[None, :] * geo * present[:, None]
        if self.nlos:
            g = g * 10 ** (-self.nlos_body_db / 20)
        ph = np.exp(-1j * 2 * np.pi * self.fc_hz / C_M_S * L)
        return self.excess_taps(L), g * ph

    def extra_paths(self, pos: np.ndarray, amp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Delays and amplitudes of extra scatterers (water drops) at ``pos`` (n, m, 3)."""
        L, geo = self._bistatic(pos)
        g = 10 ** (self.body_db / 20) * amp[None, :] * geo
        ph = np.exp(-1j * 2 * np.pi * self.fc_hz / C_M_S * L)
        return self.excess_taps(L), g * ph

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for the truth file."""
        r = lambda a: np.round(np.asarray(a, float), 3).tolist()  # noqa: E731
        return {"kind": self.kind, "room_m": r(self.room), "tx_m": r(self.tx),
                "rx_m": r(self.rx), "monostatic": self.monostatic, "channel": self.channel,
                "fc_hz": self.fc_hz, "nlos": self.nlos,
                "nlos_db": round(self.nlos_db, 2) if self.nlos else 0.0,
                "nlos_excess_ns": round(self.nlos_excess_ns, 3) if self.nlos else 0.0,
                "body_db": round(self.body_db, 2), "noise_db": round(self.noise_db, 2),
                "peak_counts": round(self.peak_counts, 1),
                "rxpacc_mean": round(self.rxpacc_mean, 1),
                "spots": {k: (r(v) if isinstance(v, np.ndarray) else round(float(v), 3))
                          for k, v in self.spots.items()},
                "fixtures_m": r(self.reflectors)}


class CirChunk(NamedTuple):
    """One chunk of simulated CIR frames."""

    times_s: np.ndarray            # (n,) s
    cir: np.ndarray                # (n, n_taps) complex64 accumulator counts
    first_path_index: np.ndarray   # (n,) reported first-path index (taps, in the window)
    rxpacc: np.ndarray             # (n,) int


def _add_paths(out: np.ndarray, centre: np.ndarray, delay: np.ndarray, amp: np.ndarray) -> None:
    """Add pulses of ``amp`` (n, s) at taps ``centre[:, None] + delay`` into ``out`` (n, T)."""
    n, T = out.shape
    tau = centre[:, None] + delay                       # (n, s)
    K = np.floor(tau).astype(np.int64)[..., None] + _SUPPORT   # (n, s, 8)
    val = amp[..., None] * np.exp(-(K - tau[..., None]) ** 2 / (2 * PULSE_SIGMA_TAPS**2))
    ok = (K >= 0) & (K < T)
    flat = (np.arange(n)[:, None, None] * T + K)[ok]
    v = val[ok]
    out += (np.bincount(flat, v.real, n * T) + 1j * np.bincount(flat, v.imag, n * T)
            ).reshape(n, T)


def stream_cir(scene: Scene, segments: list[Segment], breath: dict[str, float],
               rng: np.random.Generator, *, fs_hz: float, duration_s: float,
               n_taps: int = 64, pre_taps: int = 8, chunk_frames: int = 1000
               ) -> Iterator[CirChunk]:
    """Simulated CIR frames at ``fs_hz`` for ``duration_s`` seconds, chunk by chunk.

    Parameters
    ----------
    scene : Scene
        Room, devices and radio.
    segments : list of Segment
        The person's activity script (:func:`~sensing.uwb.simulators.body.make_script`).
    breath : dict
        ``amp_m`` (m), ``hz``, ``phase`` (rad) of the breathing motion.
    rng : numpy.random.Generator
        Per-frame draws (jitter, carrier phase, RXPACC, noise), in that order per chunk.
    fs_hz : float
        Frame rate (Hz).
    duration_s : float
        Length (s); frames at ``i / fs_hz``.
    n_taps : int
        Taps per frame: 1016 = the whole accumulator (first path near tap 747);
        fewer = a window starting ``pre_taps`` before the reported first path.
    chunk_frames : int
        Frames per yielded chunk.
    """
    static, u0 = scene.static_fine()
    full = n_taps >= FULL_TAPS
    n_total = int(np.floor(duration_s * fs_hz + 1e-9))
    noise_sd = 10 ** (-scene.noise_db / 20) * float(np.abs(static).max())
    scale = scene.peak_counts / (float(np.abs(static).max()) * scene.rxpacc_mean)
    taps = np.arange(n_taps)
    for i0 in range(0, n_total, chunk_frames):
        n = min(chunk_frames, n_total - i0)
        t = (i0 + np.arange(n)) / fs_hz
        shift = scene.fp_sd * rng.standard_normal(n)
        late = rng.random(n) < scene.fp_outlier
        shift = shift + late * rng.uniform(3.0, 100.0, n)
        edge = FP_NOMINAL + shift                          # true first-path edge
        hlp = edge + scene.hlp_err_sd * rng.standard_normal(n)
        bad = rng.random(n) < scene.misdetect
        hlp = hlp + bad * rng.choice([-1.0, 1.0], n) * rng.uniform(2.0, 8.0, n)
        phase = rng.uniform(-np.pi, np.pi, n)
        rxpacc = np.clip(np.rint(scene.rxpacc_mean + 25 * rng.standard_normal(n)), 64, 2048)
        if full:
            hlp = np.clip(hlp, 8.0, FULL_TAPS - 30.0)
            centre = np.clip(edge, 8.0, FULL_TAPS - 30.0) + FP_TO_PEAK_TAPS
            fp_out = hlp
        else:
            w = np.floor(hlp) - pre_taps
            centre = edge - w + FP_TO_PEAK_TAPS
            fp_out = hlp - w
        j = np.rint((taps[None, :] - centre[:, None] - u0) * _FINE).astype(np.int64)
        ok = (j >= 0) & (j < len(static))
        h = np.where(ok, static[np.clip(j, 0, len(static) - 1)], 0)
        pts, present, extras = points_at(segments, t, breath)
        d, a = scene.body_paths(pts, present)
        _add_paths(h, centre, d, a)
        for m, pos, amp in extras:
            d, a = scene.extra_paths(pos, amp)
            hm = h[m]
            _add_paths(hm, centre[m], d, a)
            h[m] = hm
        noise = (rng.standard_normal((n, n_taps)) + 1j * rng.standard_normal((n, n_taps))
                 ) * (noise_sd / np.sqrt(2))
        g = (scale * rxpacc * np.exp(1j * phase))[:, None]
        counts = (h + noise) * g
        cir = (np.rint(counts.real) + 1j * np.rint(counts.imag)).astype(np.complex64)
        yield CirChunk(t, cir, fp_out.astype(np.float64), rxpacc.astype(np.int64))
