"""Eye blinks from FMCW sonar at 20–60 cm, their per-minute rate and a drowsiness flag.

The eyes are weak reflectors inside the face's range cell (≈ 4 cm at a 4 kHz sweep): a
blink moves the lid over the eye for 0.1–1 s, changing that reflection by a few mm of
path and in amplitude, while the whole face moves with breathing (head sway, mm) and the
odd small head motion. Per analysis window (:class:`BlinkDetector`):

1. **Face bins.** Candidates: the ``face_candidates`` strongest prominent peaks of motion
   power over range in ``min_range_m … max_range_m`` (≥ ``face_score`` over the noise
   floor and ≥ ``face_share`` of the strongest mover, standing ``face_prominence`` of their
   height above their surroundings, so that the leakage's ramp near the phone is not
   one), each with the bins within ``face_width_m``. The candidate whose blink energy
   (step 3) is the spikiest is kept: a chest or a leakage residue does not blink.
2. **Face model.** :func:`face_residual`: per bin ``z_b = c_b + F_b·exp(jψ) + r_b``, the
   static part, the face echo rotated by the head's common phase ψ (sway, wander;
   low-passed at ``head_lp_hz``) and the rest. A head translation only moves ψ; the rest
   ``r_b / F_b`` in the face's frame is the blink (real part: the eye's share of the
   amplitude, imaginary: its phase). Linear, so it has none of the cusps that
   ``log|z − centre|`` shows when the static estimate is off.
3. **Transient energy.** The residual band-passed (zero phase) over ``hp_hz … lp_hz``
   (1–6 Hz: slow drifts go, a 0.1–1 s blink stays), ``|re|² + phase_weight·|im|²`` summed
   over the face bins (weighted by |F_b|²), smoothed over 0.1 s, divided by its median.
4. **Events.** Each run above ``threshold`` (× median) is traced back and forth to
   ``edge_fraction`` of its peak (or ``onset_level`` × median); onset = rising edge +
   ``onset_bias_s``; duration = ``duration_gain`` × width + ``duration_offset_s`` (the
   zero-phase band-pass spreads a blink's energy by a fixed amount); blinks outside
   ``min_s … max_s`` are dropped, and so is a transient of ≥ ``head_move_s`` after which
   the face's phase has stepped by more than ``max_step_rad`` (:meth:`BlinkDetector._step`,
   wrap-free: a head motion that stays). A blink the previous window already reported is
   not reported again.

Constants were set on simulated scenes (seeds 0–49 with random conditions and 3002–3007);
the figures in ``docs/acoustic-sonar.md`` are on seeds held out from that.

Per-minute ``blink_rate`` (every ``rate_hop_s`` over the last 60 s, with the mean blink
duration and the share of long blinks) and a ``drowsiness`` state (see
:func:`drowsy_rule` for the rule and its sources).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from scipy import signal

from sensing.acoustic.sonar import (
    SlowTime,
    SonarBlock,
    SonarFrontEnd,
    SonarParams,
    circle_centres,
    front_params,
    motion_scores,
)
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.params import param

__all__ = ["BlinkParams", "BlinkDetector", "drowsy_rule", "face_residual"]


class BlinkParams(SonarParams):
    """Options of the sonar blink detector."""

    max_range_m: float = param(0.7, unit="m", gt=0.05, le=5, doc="farthest face range")
    min_range_m: float = param(0.18, unit="m", ge=0, le=5,
                               doc="nearest face range (closer bins hold the leakage's "
                                   "residue)")
    window_s: float = param(12.0, unit="s", ge=4, le=120, doc="analysis window")
    hop_s: float = param(4.0, unit="s", gt=0.5, le=60,
                         doc="new stream time analysed per window (events are delayed by "
                             "up to hop_s + guard_s)")
    guard_s: float = param(1.5, unit="s", ge=0.5, le=10,
                           doc="margin kept at the window's end (filter edge, return check)")
    face_score: float = param(6.0, ge=1, doc="least motion power over the noise floor of the "
                                             "face's peak (linear)")
    face_share: float = param(0.005, gt=0, le=1,
                              doc="… and at least this share of the strongest mover's (the "
                                  "chest moves centimetres, the face millimetres; leakage "
                                  "residue near the phone is weaker still)")
    face_candidates: int = param(4, ge=1, le=10,
                                 doc="strongest motion peaks tried as the face")
    face_prominence: float = param(0.5, gt=0, le=1,
                                   doc="the face is a peak of motion power over range that "
                                       "stands this share of its height above its "
                                       "surroundings (a ramp from the leakage is not)")
    face_width_m: float = param(0.05, unit="m", gt=0, le=0.5,
                                doc="range extent of the face around its strongest bin")
    head_lp_hz: float = param(1.2, unit="Hz", gt=0.1, le=5,
                              doc="low-pass of the face's common phase that follows head "
                                  "sway (the faster rest is left to the blink energy)")
    hp_hz: float = param(1.0, unit="Hz", gt=0.1, le=10,
                         doc="band-pass low edge: separates blinks from head sway")
    lp_hz: float = param(6.0, unit="Hz", gt=0.5, le=20,
                         doc="band-pass high edge: a blink's closing/reopening is slower")
    phase_weight: float = param(0.5, ge=0, le=1,
                                doc="weight of the tangential (phase) against the radial "
                                    "(amplitude) part of the blink energy")
    threshold: float = param(28.0, gt=1, doc="transient energy (× window median) of a blink")
    onset_level: float = param(4.0, gt=1, doc="lowest energy (× median) a blink's edges "
                                              "are traced down to")
    edge_fraction: float = param(0.05, gt=0, lt=1,
                                 doc="a blink's edges: where the energy falls below this "
                                     "fraction of its peak")
    onset_bias_s: float = param(0.16, unit="s", ge=-1, le=1,
                                doc="onset = rising edge + this (the zero-phase band-pass "
                                    "spreads the energy ahead of the blink)")
    duration_gain: float = param(0.81, gt=0, le=5,
                                 doc="duration = gain × edge-to-edge width + offset")
    duration_offset_s: float = param(-0.19, unit="s", ge=-2, le=2,
                                     doc="duration offset (see duration_gain)")
    min_s: float = param(0.05, unit="s", ge=0, le=2, doc="shortest blink")
    max_s: float = param(1.2, unit="s", gt=0.1, le=5, doc="longest blink")
    max_step_rad: float = param(1.0, unit="rad", ge=0,
                                doc="a transient after which the face's phase has stepped by "
                                    "more than this (≈ 1.4 mm at 20 kHz) …")
    head_move_s: float = param(0.88, unit="s", gt=0, le=5,
                               doc="… and that lasts at least this long (edge to edge) is a "
                                   "head motion, not a blink")
    step_fit_s: float = param(0.25, unit="s", gt=0.05, le=2,
                              doc="stretch before and after a transient the step test uses")
    rate_window_s: float = param(60.0, unit="s", ge=10, le=600,
                                 doc="window of blink_rate and drowsiness")
    rate_hop_s: float = param(10.0, unit="s", gt=0, le=600,
                              doc="time between blink_rate reports")
    drowsy_mean_s: float = param(0.3, unit="s", gt=0, le=5,
                                 doc="drowsy when the mean blink duration reaches this")
    long_blink_s: float = param(0.5, unit="s", gt=0, le=5, doc="a long blink lasts this long")
    drowsy_long_share: float = param(0.15, gt=0, le=1,
                                     doc="drowsy when this share of blinks is long")
    min_blinks: int = param(4, ge=1, le=100, doc="blinks needed in the window for a "
                                                 "drowsiness verdict")


def drowsy_rule(durations_s: list[float], p: BlinkParams) -> tuple[bool | None, dict[str, Any]]:
    """Drowsiness from the blinks of the last ``rate_window_s``.

    Rule: drowsy when, with at least ``min_blinks`` blinks, the mean blink duration is
    ≥ ``drowsy_mean_s`` (0.3 s) or the share of long blinks (≥ ``long_blink_s``, 0.5 s) is
    ≥ ``drowsy_long_share`` (15 %); None (no verdict) with fewer blinks.

    Sources: blink duration and reopening time increase reliably with drowsiness and the
    proportion of long-closure blinks is informative (Caffier, Erdmann & Ullsperger 2003,
    Eur J Appl Physiol 89:319–325); blink duration and delayed lid reopening are the best
    oculomotor sleepiness indicators (Schleicher et al. 2008, Ergonomics 51(7):982–1010);
    the time share of eye closure (PERCLOS, Wierwille & Ellsworth 1994; Dinges et al. 1998)
    is reported alongside (``closed_share``). The thresholds are ours: alert blinks last
    ≈ 0.1–0.3 s, and closures ≥ 0.5 s are the long blinks/microsleep onsets the studies
    count; they are options, not published cut-offs.
    """
    n = len(durations_s)
    d = np.asarray(durations_s, float)
    info = {"blinks": n, "mean_duration_s": round(float(d.mean()), 3) if n else None,
            "long_share": round(float((d >= p.long_blink_s).mean()), 3) if n else None}
    if n < p.min_blinks:
        return None, info
    drowsy = bool(d.mean() >= p.drowsy_mean_s
                  or (d >= p.long_blink_s).mean() >= p.drowsy_long_share)
    return drowsy, info


def face_residual(zf: np.ndarray, fs: float, head_lp_hz: float
                  ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """What of the face bins' profiles is not the face moving as a whole.

    Model per bin ``z_b(t) = c_b + F_b·exp(jψ(t)) + r_b(t)``: a static part ``c_b``, the
    face echo ``F_b`` rotated by the head's common phase ψ (breathing sway, wander; low-passed
    at ``head_lp_hz``) and the rest ``r_b`` (the blink). ψ starts from the circle centres
    (:func:`~sensing.acoustic.sonar.circle_centres`), ``c_b, F_b`` are then a linear least
    squares fit given ψ, and ψ is re-estimated once from ``z_b − c_b``; the common phase is
    taken from the power-weighted coherent sum over the bins, low-passed at 5 Hz before
    unwrapping (noise does not slip it).

    Parameters
    ----------
    zf : numpy.ndarray
        ``(T, B)`` complex profiles of the face bins.
    fs : float
        Profile rate (Hz).
    head_lp_hz : float
        Bandwidth of the head's motion (Hz).

    Returns
    -------
    res : numpy.ndarray or None
        ``(T, B)`` the rest rotated back to the face frame and divided by ``F_b``: real part
        = relative amplitude change (radial), imaginary = phase (tangential). None when the
        face echo vanishes.
    w : numpy.ndarray
        ``(B,)`` bin weights (face echo power, sum 1).
    u : numpy.ndarray
        ``(T,)`` unit phasors of the face's common phase (unfiltered, for the step test).
    """
    d = zf - circle_centres(zf)
    amp = np.abs(d).mean(axis=0)
    if not np.all(amp > 0):
        return None, amp, np.ones(len(zf), complex)
    w = amp ** 2 / np.sum(amp ** 2)
    lp_ref = signal.butter(2, min(5.0, 0.4 * fs), fs=fs, output="sos")
    lp_head = signal.butter(2, min(head_lp_hz, 0.4 * fs), fs=fs, output="sos")
    dm = d.mean(axis=0)
    psi = np.unwrap(np.angle(signal.sosfiltfilt(lp_ref, d @ (w * np.conj(dm) / amp))))
    for final in (False, True):
        rot = np.exp(1j * signal.sosfiltfilt(lp_head, psi))
        X = np.stack([np.ones(len(zf)), rot], axis=1)
        coef, *_ = np.linalg.lstsq(X, zf, rcond=None)  # (2, B): c_b, F_b
        F = coef[1]
        amp = np.abs(F)
        if not np.all(amp > 0):
            return None, amp, np.ones(len(zf), complex)
        w = amp ** 2 / np.sum(amp ** 2)
        if final:
            res = (zf - X @ coef) * np.conj(rot)[:, None] / F[None, :]
            return res, w, np.exp(1j * psi)
        psi = np.unwrap(np.angle(signal.sosfiltfilt(lp_ref, (zf - coef[0]) @ (w * np.conj(F)
                                                                               / amp))))
    raise AssertionError("unreachable")


class BlinkDetector:
    """Streaming blink detector on FMCW sonar (see the module docstring).

    ``push(frames)`` (audio with an FMCW probe) or :meth:`push_blocks` (front-end blocks)
    return ``blink`` (onset in ``offset_s``, ``duration_s``), ``blink_rate`` (1/min) and
    ``drowsiness`` (1/0, on change) detections.
    """

    Params = BlinkParams

    def __init__(self, params: BlinkParams | None = None, /, **options: Any) -> None:
        self.params = BlinkParams.build(params, options, where="blink")
        p = self.params
        self.front = SonarFrontEnd(front_params(p))
        self.buf = SlowTime(p.window_s + 1.0, p.min_range_m, p.max_range_m)
        self._seg_end: float | None = None   # end of the next segment to analyse
        self._t0: float | None = None
        self._next_rate: float | None = None
        self._recent: deque[tuple[float, float]] = deque()
        self._drowsy: bool | None = None
        self._reported = False
        self.stats = {"windows": 0, "no_face": 0, "blinks": 0, "rejected_step": 0,
                      "rejected_duration": 0}

    def push(self, frames: Frames) -> list[Detection]:
        return self.push_blocks(self.front.push(frames))

    def flush(self) -> list[Detection]:
        return self.push_blocks(self.front.flush()) + self.finish()

    def finish(self) -> list[Detection]:
        """End of the block stream: the last partial segment and rate."""
        out: list[Detection] = []
        if self._seg_end is not None and self.buf.end_s > self._seg_end - self.params.hop_s:
            out += self._analyse(self._seg_end, last=True)
            out += self._rates(self.buf.end_s, final=True)
        return out

    def push_blocks(self, blocks: list[SonarBlock]) -> list[Detection]:
        p = self.params
        out: list[Detection] = []
        for b in blocks:
            self.buf.add(b)
            if self._seg_end is None:
                self._t0 = float(b.times_s[0])
                self._seg_end = self._t0 + p.hop_s
                self._next_rate = self._t0 + p.rate_window_s
            while self.buf.end_s >= self._seg_end + p.guard_s:
                out += self._analyse(self._seg_end)
                out += self._rates(self._seg_end)
                self._seg_end += p.hop_s
        return out

    # --------------------------------------------------------------- rate and drowsiness
    def _rates(self, covered: float, final: bool = False) -> list[Detection]:
        """``blink_rate`` (and ``drowsiness`` changes) at every report time up to
        ``covered`` (the stream time up to which blinks are known)."""
        p = self.params
        assert self._next_rate is not None and self._t0 is not None
        ends = []
        while self._next_rate <= covered + 1e-9:
            ends.append(self._next_rate)
            self._next_rate += p.rate_hop_s
        if final and not ends and not self._reported and covered - self._t0 >= 10.0:
            ends.append(covered)  # a short capture still gets one rate
        out: list[Detection] = []
        if not self.stats["blinks"]:
            ends = []  # no blinking face seen yet: no rate (see quiet_reason)
        for end in ends:
            span = min(p.rate_window_s, end - self._t0)
            durs = [d for t, d in self._recent if end - span <= t < end]
            rate = len(durs) * 60.0 / span
            drowsy, info = drowsy_rule(durs, p)
            closed = round(float(np.sum(durs)) / span, 4)
            self._reported = True
            out.append(Detection("blink_rate", round(end, 3), round(rate, 2), "1/min", 1.0,
                                 {"window_s": round(span, 3), **info, "closed_share": closed}))
            if drowsy is not None and drowsy != self._drowsy:
                self._drowsy = drowsy
                out.append(Detection("drowsiness", round(end, 3), int(drowsy), "", 0.8,
                                     {"window_s": round(span, 3), **info,
                                      "closed_share": closed,
                                      "rule": f"mean blink >= {p.drowsy_mean_s:g} s or "
                                              f">= {p.drowsy_long_share:.0%} of blinks >= "
                                              f"{p.long_blink_s:g} s"}))
        horizon = self._next_rate - p.rate_window_s
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
        return out

    # --------------------------------------------------------------- blinks
    def _analyse(self, seg_end: float, last: bool = False) -> list[Detection]:
        p = self.params
        self.stats["windows"] += 1
        end = self.buf.end_s + 1e-9 if last else seg_end + p.guard_s
        t, z = self.buf.window(end - p.window_s, end)
        seg = (seg_end - p.hop_s, self.buf.end_s + 1e-9 if last else seg_end)
        fs = self.buf.rate_hz
        if len(t) < int(3 * fs) or z.shape[1] == 0:
            return []
        score, _ = motion_scores(z)
        faces = self._face_bins(score)
        if not faces:
            self.stats["no_face"] += 1
            return []
        best: tuple[float, np.ndarray, np.ndarray] | None = None
        for face in faces:
            got = self._energy(z[:, face], fs)
            if got is None:
                continue
            e, u = got
            spiky = float(np.percentile(e, 99.5))  # blinks make the energy spiky
            if best is None or spiky > best[0]:
                best = (spiky, e, u)
        if best is None:
            return []
        _, e, u = best
        return self._events(t, e, u, seg)

    def _energy(self, zf: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Blink energy (× its median) of one set of face bins and the face's common
        phase (unit phasors), None when the face echo vanishes."""
        p = self.params
        res, w, u = face_residual(zf.astype(np.complex128), fs, p.head_lp_hz)
        if res is None:
            return None
        sos = signal.butter(2, [p.hp_hz, p.lp_hz], "bandpass", fs=fs, output="sos")
        h = signal.sosfiltfilt(sos, res, axis=0)
        # radial part: the eye's share of the face echo (amplitude); tangential: its phase
        e = np.sum(w[None, :] * (h.real ** 2 + p.phase_weight * h.imag ** 2), axis=1)
        k = max(1, int(round(0.1 * fs)))
        e = np.convolve(e, np.ones(k) / k, mode="same")
        med = float(np.median(e))
        if med <= 0:
            return None
        return e / med, u

    def _face_bins(self, score: np.ndarray) -> list[np.ndarray]:
        """Where the face may be: the ``face_candidates`` nearest prominent peaks of motion
        power over range (the face is in front of the chest, which moves centimetres and
        is the strongest), each with the bins within ``face_width_m``; the analysis keeps
        the one whose blink energy is the spikiest."""
        p = self.params
        assert self.buf.range_m is not None
        r = self.buf.range_m
        s = np.convolve(score, np.ones(3) / 3, mode="same")
        floor = max(p.face_score, p.face_share * float(s.max()))
        peaks, props = signal.find_peaks(s, prominence=0.0)  # (not the range edges)
        ok = (s[peaks] >= floor) & (props["prominences"] >= p.face_prominence * s[peaks])
        cand = peaks[ok]
        cand = np.sort(cand[np.argsort(s[cand])[::-1][:p.face_candidates]])
        return [np.flatnonzero(np.abs(r - r[int(c)]) <= p.face_width_m) for c in cand]

    def _events(self, t: np.ndarray, e: np.ndarray, track: np.ndarray,
                seg: tuple[float, float]) -> list[Detection]:
        p = self.params
        fs = self.buf.rate_hz
        out: list[Detection] = []
        above = e >= p.threshold
        edges = np.flatnonzero(np.diff(np.r_[0, above.astype(np.int8), 0]))
        spans: list[tuple[int, int, float]] = []
        for a0, b0 in zip(edges[0::2], edges[1::2], strict=True):
            k = int(a0 + np.argmax(e[a0:b0]))
            peak = float(e[k])
            level = max(p.edge_fraction * peak, p.onset_level)
            a, b = k, k
            while a > 0 and e[a - 1] > level:
                a -= 1
            while b < len(e) - 1 and e[b + 1] > level:
                b += 1
            if spans and a <= spans[-1][1]:  # the same transient (a side lobe)
                pa, pb, pp = spans[-1]
                if peak > pp:
                    spans[-1] = (pa, max(pb, b), peak)
                else:
                    spans[-1] = (pa, max(pb, b), pp)
                continue
            spans.append((a, b, peak))
        for a, b, peak in spans:
            onset = float(t[a]) + p.onset_bias_s
            if not (seg[0] <= onset < seg[1]):
                continue
            dur = max(0.05, p.duration_gain * (b + 1 - a) / fs + p.duration_offset_s)
            if not (p.min_s <= dur <= p.max_s):
                self.stats["rejected_duration"] += 1
                continue
            if ((b + 1 - a) / fs >= p.head_move_s
                    and self._step(track, a, b + 1) > p.max_step_rad):
                self.stats["rejected_step"] += 1
                continue
            if self._recent and onset < self._recent[-1][0] + max(self._recent[-1][1], 0.2):
                continue  # the blink the previous window reported (window edges differ)
            self.stats["blinks"] += 1
            self._recent.append((onset, dur))
            conf = float(np.clip(0.5 + 0.5 * np.log10(peak / p.threshold), 0, 1))
            out.append(Detection("blink", round(onset, 3), round(dur, 3), "s", round(conf, 3),
                                 {"duration_s": round(dur, 3), "strength": round(peak, 1)}))
        return out

    def _step(self, u: np.ndarray, a: int, b: int) -> float:
        """How far (rad) the face's common phase ``u`` (unit phasors) has stepped across
        samples ``a:b``: the mean phasors over ``step_fit_s`` before and after, each
        referred to its centre with the local sway slope (the mean of the two stretches'
        slopes) removed, compared. Wrap-free (a phase slip of 2π while a blink dims a weak
        face echo is not a step); ≈ 0 for a blink, the displacement (4π d/λ) for a head
        motion that stays."""
        fs = self.buf.rate_hz
        n = max(3, int(self.params.step_fit_s * fs))
        pre = np.arange(max(0, a - n), a)
        post = np.arange(b, min(len(u), b + n))
        if len(pre) < 3 or len(post) < 3:
            return 0.0
        slope = 0.5 * sum(np.polyfit(ix / fs, np.unwrap(np.angle(u[ix])), 1)[0]
                          for ix in (pre, post))
        tp, tq = pre.mean() / fs, post.mean() / fs
        m_pre = np.mean(u[pre] * np.exp(-1j * slope * (pre / fs - tp)))
        m_post = np.mean(u[post] * np.exp(-1j * slope * (post / fs - tq)))
        return float(abs(np.angle(m_post * np.conj(m_pre) * np.exp(-1j * slope * (tq - tp)))))

    def quiet_reason(self) -> str | None:
        if self.stats["blinks"]:
            return None
        if self.front.no_probe:
            return "no FMCW probe in the capture (no ambisense:probe of type fmcw)"
        if self.stats["windows"] == 0:
            return f"capture shorter than {self.params.hop_s + self.params.guard_s:g} s"
        if self.stats["no_face"] == self.stats["windows"]:
            return (f"no face (moving reflector) at {self.params.min_range_m:g}–"
                    f"{self.params.max_range_m:g} m")
        return f"no blink in {self.stats['windows']} windows"
