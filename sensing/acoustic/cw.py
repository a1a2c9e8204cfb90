"""CW (continuous-tone) sonar: demodulation to I/Q per tone, static/leakage removal, a
Doppler spectrogram, motion vs stillness and the walking Doppler.

A speaker plays one or more tones (17–22 kHz); the microphone hears the direct path
(leakage, often 50–65 dB over the floor), static reflections and the Doppler-shifted
echoes of whatever moves. A reflector moving at radial speed ``v`` shifts a tone ``f`` by
``f_d = 2·v·f / c`` (c = 343 m/s): 1 m/s at 20 kHz is 117 Hz; a chest breathing moves
≈ 5 mm/s (≈ 0.6 Hz), a hand 0.2–1.5 m/s, a walker's torso 0.5–1.5 m/s.

Stages (each streams: filter states carried across chunks, so chunk boundaries do not
change the results):

:class:`CwDemodulator`
    Per tone, mixes every channel with ``exp(−j·2π·f·n/fs)`` (phase from the absolute
    sample index), low-passes at ``bandwidth_hz`` (history carried across chunks) and
    decimates by an integer factor to ≈ ``out_rate_hz`` (a linear-phase Kaiser FIR
    evaluated only at the kept samples; its group delay is removed from the times); then tracks the static vector
    (leakage + static reflections) with a one-pole average of time constant ``dc_tau_s``
    and subtracts it. API::

        demod = CwDemodulator(fs_hz=48000, tones_hz=(20000,))
        bb = demod.push(frames)        # or demod.push_array(x (n, ch), start_sample)
        bb.times_s                     # (m,) times of the baseband samples (s)
        bb.iq                          # (m, n_tones, n_ch) complex64: raw baseband (with
                                       #   the static part: its phase → displacement)
        bb.dynamic                     # (m, n_tones, n_ch) complex64: iq − static estimate
        demod.out_rate_hz              # baseband sample rate (Hz)

    A sonar stage can track the phase of ``iq`` (displacement ``Δd = −λ·Δφ / (4π)``,
    ``λ = c / f``) after removing the static vector its own way; ``dynamic`` feeds the
    Doppler spectrogram.
:class:`DopplerSpectrogram`
    Hann-windowed FFT frames of ``frame_s`` every ``hop_s`` of the ``dynamic`` baseband,
    power summed over tones and channels: :class:`DopplerFrame` (signed Doppler axis,
    Hz), with the motion score (mean power in ``min_doppler_hz``–``max_doppler_hz`` over
    the mean power of the high-Doppler reference band, dB: ≈ 0 dB for leakage + noise)
    and the dominant Doppler (the strongest bin of the motion band) as a speed in m/s
    (positive: approaching).
:class:`CwMotionDetector`
    Debounces the score into motion episodes (on after ``on_frames`` frames ≥
    ``threshold_db``, off after ``hold_s`` below ``off_threshold_db``) and reports each
    episode's dominant speed (median over its frames of the peak-bin speed, weighted to
    frames with clear motion), its maximum and direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import signal

from sensing.detections import Detection
from sensing.dsp.buffers import SosStream
from sensing.dsp.debounce import Debouncer
from sensing.frames import Frames
from sensing.params import Params, param

__all__ = ["SPEED_OF_SOUND_M_S", "CwBaseband", "CwDemodulator", "DopplerFrame",
           "DopplerSpectrogram", "CwMotionParams", "CwMotionDetector", "doppler_to_speed"]

#: Speed of sound in air at ~20 °C (m/s).
SPEED_OF_SOUND_M_S = 343.0

#: Baseband left out at the start of a stream (s); see :class:`CwDemodulator`.
START_S = 0.05


def doppler_to_speed(doppler_hz: np.ndarray | float, tone_hz: float) -> np.ndarray | float:
    """Radial speed (m/s, positive approaching) of a reflector shifting ``tone_hz`` by
    ``doppler_hz`` (two-way path: ``v = f_d · c / (2 f)``)."""
    return np.asarray(doppler_hz) * SPEED_OF_SOUND_M_S / (2.0 * tone_hz)


@dataclass
class CwBaseband:
    """A block of demodulated baseband (see :class:`CwDemodulator`).

    Attributes
    ----------
    times_s : numpy.ndarray
        ``(m,)`` float64 sample times (s from the start of the stream).
    iq : numpy.ndarray
        ``(m, n_tones, n_channels)`` complex64 baseband, static part included.
    dynamic : numpy.ndarray
        ``(m, n_tones, n_channels)`` complex64 baseband minus the tracked static vector.
    fs_hz : float
        Baseband sample rate (Hz).
    tones_hz : tuple of float
        The tones, in the order of axis 1.
    """

    times_s: np.ndarray
    iq: np.ndarray
    dynamic: np.ndarray
    fs_hz: float
    tones_hz: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.times_s)


class CwDemodulator:
    """I/Q demodulation of CW tones with static-vector removal (module docstring).

    Parameters
    ----------
    fs_hz : float
        Audio sample rate (Hz).
    tones_hz : sequence of float
        Tone frequencies (Hz), each below ``fs_hz / 2 − bandwidth_hz``.
    bandwidth_hz : float
        Baseband low-pass cut-off (Hz): the largest Doppler kept (600 Hz ≈ 5 m/s at 20 kHz).
    out_rate_hz : float
        Approximate baseband rate (Hz); the decimation factor is ``round(fs / out_rate)``.
    dc_tau_s : float
        Time constant of the static-vector tracker (s); motion slower than ~1/(2π·τ) Hz
        Doppler is treated as static.
    fll_tau_s : float
        Time constant of the carrier-offset tracker (s): the static vector (dominated by
        the direct leakage) rotates at the tone's frequency error (a detected tone off by
        a fraction of a Hz, speaker/microphone clock offset: 20 ppm = 0.4 Hz at 20 kHz);
        its rotation rate is averaged over this time and removed before the static
        vector is subtracted (``dynamic``; ``iq`` stays as mixed).
    """

    def __init__(self, fs_hz: float, tones_hz, *, bandwidth_hz: float = 600.0,
                 out_rate_hz: float = 2000.0, dc_tau_s: float = 0.5,
                 fll_tau_s: float = 2.0) -> None:
        self.fs_hz = float(fs_hz)
        self.tones_hz = tuple(float(t) for t in tones_hz)
        if not self.tones_hz:
            raise ValueError("CwDemodulator needs at least one tone")
        for t in self.tones_hz:
            if not 0 < t < self.fs_hz / 2:
                raise ValueError(f"tone {t:g} Hz is not below Nyquist ({self.fs_hz / 2:g} Hz)")
        self.q = max(1, int(round(self.fs_hz / out_rate_hz)))
        self.out_rate_hz = self.fs_hz / self.q
        bw = min(float(bandwidth_hz), 0.45 * self.out_rate_hz)
        self.bandwidth_hz = bw
        # linear-phase FIR low-pass evaluated only at the decimated outputs (polyphase):
        # flat to bandwidth_hz, ≥ 60 dB from the decimated Nyquist on (no aliasing;
        # neighbouring tones ≥ out_rate/2 away are suppressed too)
        stop = max(min(0.5 * self.out_rate_hz, 1.67 * bw), 1.05 * bw)
        ntaps, beta = signal.kaiserord(65.0, (stop - bw) / (0.5 * self.fs_hz))
        ntaps |= 1
        self.taps = signal.firwin(ntaps, 0.5 * (bw + stop), window=("kaiser", beta),
                                  fs=self.fs_hz) * 2.0  # ×2: a tone of amplitude A → |iq| = A
        self.delay_s = (ntaps - 1) / 2 / self.fs_hz  # group delay, removed from the times
        self._lo: dict[tuple[float, int], np.ndarray] = {}
        self._tail: np.ndarray | None = None
        self.alpha = 1.0 - np.exp(-1.0 / (dc_tau_s * self.out_rate_hz))
        self.fll_tau_s = float(fll_tau_s)
        self._dc: np.ndarray | None = None
        self._w: np.ndarray | None = None  # carrier offset per column (rad/sample)
        self._ph: np.ndarray | None = None  # derotation phase (rad)
        self._prev: np.ndarray | None = None
        # the filter's start-up, and at least the first 50 ms: when the tone starts with the
        # recording, the room's echoes build up over tens of ms and bend its phase, which
        # would bias the first carrier-offset estimate (and look like motion until the
        # tracker has converged)
        self._skip = int(np.ceil(max(2 * self.delay_s, START_S) * self.out_rate_hz))
        self._n = 0  # absolute index of the next input sample

    def push(self, frames: Frames) -> CwBaseband:
        """Demodulate the next chunk of ``audio`` frames."""
        return self.push_array(np.asarray(frames.data), self._n)

    def push_array(self, x: np.ndarray, start: int | None = None) -> CwBaseband:
        """Demodulate samples ``x`` (``(n, n_channels)`` float, full scale) that follow the
        previous ones (``start``: their absolute index, checked when given)."""
        x = np.asarray(x, np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if start is not None and start != self._n:
            raise ValueError(f"samples start at {start}, expected {self._n} (a gap)")
        n, n_ch = x.shape
        nt = len(self.tones_hz)
        mixed = np.empty((n, nt * n_ch), np.complex128)
        for i, f in enumerate(self.tones_hz):
            lo = self._lo.get((f, n))
            if lo is None:  # cached per chunk length: the phase ramp of one chunk
                lo = np.exp(-2j * np.pi * (f / self.fs_hz) * np.arange(n))
                if len(self._lo) < 16:
                    self._lo[(f, n)] = lo
            lo0 = np.exp(-2j * np.pi * ((self._n * (f / self.fs_hz)) % 1.0))
            mixed[:, i * n_ch:(i + 1) * n_ch] = x * (lo0 * lo)[:, None]
        taps = len(self.taps)
        if self._tail is None:
            self._tail = np.zeros((taps - 1, nt * n_ch), np.complex128)
        buf = np.concatenate([self._tail, mixed])  # buf[j] is input sample _n - taps + 1 + j
        first = (-self._n) % self.q  # first index of this chunk on the decimation grid
        keep = np.arange(first, n, self.q)
        pos = keep + taps - 1
        win = buf[pos[:, None] - np.arange(taps)[None, :]]  # (m, taps, cols)
        bb = np.einsum("mtc,t->mc", win, self.taps) if len(keep) else np.zeros(
            (0, nt * n_ch), np.complex128)
        self._tail = buf[len(buf) - (taps - 1):]
        times = (self._n + keep) / self.fs_hz - self.delay_s
        self._n += n
        dyn = self._remove_static(bb)
        shape = (len(keep), nt, n_ch)
        return CwBaseband(times, bb.reshape(shape).astype(np.complex64),
                          dyn.reshape(shape).astype(np.complex64), self.out_rate_hz,
                          self.tones_hz)

    def _remove_static(self, bb: np.ndarray) -> np.ndarray:
        if self._skip > 0 and len(bb):  # the low-pass filter's start-up: no dynamic part yet
            k = min(self._skip, len(bb))
            self._skip -= k
            if k:
                self._prev = bb[k - 1].copy()
            return np.concatenate([np.zeros_like(bb[:k]), self._remove_static(bb[k:])])
        if not len(bb):
            return bb
        if self._w is None:  # first estimate: mean phase step of the leakage-dominated
            # block, within the block (the sample before it is still the filter's start-up)
            z = (bb[1:] * np.conj(bb[:-1])).sum(axis=0) if len(bb) > 1 else np.ones(bb.shape[1])
            self._w = np.angle(z)
            self._ph = np.zeros(bb.shape[1])
        self._prev = bb[-1].copy()
        ph = self._ph[None, :] + self._w[None, :] * np.arange(1, len(bb) + 1)[:, None]
        self._ph = np.mod(ph[-1], 2 * np.pi)
        rot = bb * np.exp(-1j * ph)
        if self._dc is None:  # start at the first block's mean: no start-up transient
            self._dc = rot[: max(1, min(len(rot), int(0.05 * self.out_rate_hz)))].mean(axis=0)
        a = self.alpha
        dc0 = self._dc
        dc, _ = signal.lfilter([a], [1.0, a - 1.0], rot, axis=0,
                               zi=((1 - a) * self._dc)[None, :])
        self._dc = dc[-1]
        # frequency-locked loop on the static vector alone (the tracker averages the
        # Doppler out): its residual rotation over the block corrects the offset
        resid = np.angle(self._dc * np.conj(dc0)) / len(bb)
        beta = min(1.0, len(bb) / (self.fll_tau_s * self.out_rate_hz))
        self._w = self._w + 4 * beta * resid
        return rot - dc

    @property
    def carrier_offset_hz(self) -> np.ndarray | None:
        """Tracked frequency offset of each tone × channel's static vector (Hz)."""
        return None if self._w is None else self._w * self.out_rate_hz / (2 * np.pi)

    @property
    def static(self) -> np.ndarray | None:
        """The current static-vector estimate ``(n_tones · n_channels,)`` (complex)."""
        return self._dc


@dataclass(frozen=True)
class DopplerFrame:
    """One Doppler spectrum.

    Attributes
    ----------
    t_s : float
        Centre time of the frame (s).
    score_db : float
        Motion-band power over reference-band power (dB; ≈ 0 for leakage + noise).
    doppler_hz : float
        Signed Doppler of the strongest motion-band bin (Hz; positive: approaching).
    speed_m_s : float
        That Doppler as a radial speed (m/s, at the mean tone).
    power : numpy.ndarray
        ``(n_bins,)`` power, summed over tones and channels, in order of :attr:`freqs_hz`.
    freqs_hz : numpy.ndarray
        Signed Doppler axis (Hz), ascending.
    """

    t_s: float
    score_db: float
    doppler_hz: float
    speed_m_s: float
    power: np.ndarray = field(repr=False)
    freqs_hz: np.ndarray = field(repr=False)


class DopplerSpectrogram:
    """Streaming Doppler spectrogram of :class:`CwBaseband` blocks (module docstring).

    Parameters
    ----------
    fs_hz : float
        Baseband rate (Hz).
    tones_hz : sequence of float
        The tones (for the speed axis).
    frame_s, hop_s : float
        FFT frame length and hop (s).
    min_doppler_hz, max_doppler_hz : float
        The motion band (|Doppler|, Hz).
    reference_hz : (float, float)
        The reference (noise) band (|Doppler|, Hz), above any body motion.
    highpass_hz : float, optional
        Cut-off of a 4th-order Butterworth high-pass applied to the baseband before the
        FFT (default half of ``min_doppler_hz``; 0: none). A breathing chest's echo is
        strong and slow (a Doppler below ~2 Hz, 20–40 dB over the floor); without it, the
        window's side lobes carry it into the motion band, and every breath reads as
        motion.
    """

    def __init__(self, fs_hz: float, tones_hz, *, frame_s: float = 0.128,
                 hop_s: float = 0.032, min_doppler_hz: float = 12.0,
                 max_doppler_hz: float = 300.0,
                 reference_hz: tuple[float, float] = (400.0, 560.0),
                 highpass_hz: float | None = None) -> None:
        self.fs_hz = float(fs_hz)
        self.tones_hz = tuple(float(t) for t in tones_hz)
        self.n = max(16, int(round(frame_s * self.fs_hz)))
        self.hop = max(1, int(round(hop_s * self.fs_hz)))
        self.window = signal.windows.hann(self.n, sym=False)
        f = np.fft.fftshift(np.fft.fftfreq(self.n, 1 / self.fs_hz))
        self.freqs_hz = f
        af = np.abs(f)
        self._motion = (af >= min_doppler_hz) & (af <= max_doppler_hz)
        ref_hi = min(reference_hz[1], 0.48 * self.fs_hz)
        self._ref = (af >= min(reference_hz[0], 0.8 * ref_hi)) & (af <= ref_hi)
        if not self._motion.any() or not self._ref.any():
            raise ValueError("Doppler bands are empty at this baseband rate")
        self._buf: np.ndarray | None = None
        self._t0: float | None = None  # time of _buf[0]
        self._mean_tone = float(np.mean(self.tones_hz))
        hp = 0.5 * min_doppler_hz if highpass_hz is None else float(highpass_hz)
        self._hp = (SosStream(signal.butter(4, hp, "highpass", fs=self.fs_hz, output="sos"),
                              axis=0, steady_state=False) if hp > 0 else None)

    def push(self, bb: CwBaseband) -> list[DopplerFrame]:
        """Add a baseband block; return the frames it completed."""
        if not len(bb):
            return []
        d = bb.dynamic.reshape(len(bb), -1).astype(np.complex128)
        if self._hp is not None:
            d = self._hp.push(d)
        if self._buf is None:
            self._buf = d
            self._t0 = float(bb.times_s[0])
        else:
            self._buf = np.concatenate([self._buf, d])
        m = len(self._buf)
        if m < self.n:
            return []
        starts = np.arange(0, m - self.n + 1, self.hop)
        idx = starts[:, None] + np.arange(self.n)[None, :]
        seg = self._buf[idx] * self.window[None, :, None]  # (frames, n, chans)
        spec = np.fft.fftshift(np.fft.fft(seg, axis=1), axes=1)
        power = (spec.real ** 2 + spec.imag ** 2).sum(axis=2)  # (frames, n)
        ref = power[:, self._ref].mean(axis=1)
        mot = power[:, self._motion].mean(axis=1)
        score = 10 * np.log10(np.maximum(mot, 1e-30) / np.maximum(ref, 1e-30))
        mf = self.freqs_hz[self._motion]
        peak = mf[np.argmax(power[:, self._motion], axis=1)]
        times = self._t0 + (starts + self.n / 2) / self.fs_hz
        out = [DopplerFrame(float(times[i]), float(score[i]), float(peak[i]),
                            float(doppler_to_speed(peak[i], self._mean_tone)), power[i],
                            self.freqs_hz) for i in range(len(starts))]
        used = int(starts[-1] + self.hop)
        self._buf = self._buf[used:]
        self._t0 += used / self.fs_hz
        return out


class CwMotionParams(Params):
    """Options of :class:`CwMotionDetector` (and the ``acoustic_cw_motion`` pipeline)."""

    tones_hz: list[float] | None = param(
        None, unit="Hz", doc="tones to demodulate (default: the probe's or the detected tone)")
    bandwidth_hz: float = param(600.0, unit="Hz", gt=50, le=5000,
                                doc="baseband low-pass: largest Doppler kept")
    dc_tau_s: float = param(0.5, unit="s", gt=0, le=30, doc="static-vector tracker time constant")
    frame_s: float = param(0.128, unit="s", gt=0.01, le=2, doc="Doppler FFT frame")
    hop_s: float = param(0.032, unit="s", gt=0.001, le=2, doc="Doppler frame hop")
    min_doppler_hz: float = param(12.0, unit="Hz", ge=0, doc="motion band lower edge |Doppler|")
    max_doppler_hz: float = param(300.0, unit="Hz", gt=0, doc="motion band upper edge |Doppler|")
    threshold_db: float = param(8.0, unit="dB", gt=0, le=60,
                                doc="motion band over reference band that is motion")
    off_threshold_db: float = param(5.0, unit="dB", gt=0, le=60,
                                    doc="below this the frame counts as still (hysteresis)")
    on_frames: int = param(3, ge=1, le=100, doc="frames at or above threshold_db to turn on")
    hold_s: float = param(0.4, unit="s", ge=0, le=60, doc="stillness that ends an episode")
    min_speed_db: float = param(12.0, unit="dB", ge=0, le=60,
                                doc="frames at least this far over the reference give the "
                                    "episode's speed")


@dataclass
class _Episode:
    start_s: float
    scores: list[float] = field(default_factory=list)
    speeds: list[float] = field(default_factory=list)


class CwMotionDetector:
    """Motion episodes from CW Doppler (a :class:`sensing.stage.Stage` on audio frames).

    Parameters
    ----------
    params : CwMotionParams, optional
        Options (positional only).
    tones_hz : sequence of float, optional
        Tones to demodulate when ``params.tones_hz`` is not set (the pipeline passes the
        content decision's).
    **options
        Option values applied over ``params``.

    Notes
    -----
    Emits ``motion`` with value 1 at an episode's onset (``offset_s`` = first active
    frame) and value 0 at its end, the latter with ``duration_s``, ``speed_m_s`` (the
    dominant reflector's median radial speed, m/s, signed: positive approaching),
    ``max_speed_m_s``, ``doppler_hz`` and ``direction``. :attr:`frames` keeps the count
    of Doppler frames and :attr:`still_score_db` the median score of the still ones.
    """

    Params = CwMotionParams

    def __init__(self, params: CwMotionParams | None = None, /, *, tones_hz=None,
                 **options: Any) -> None:
        self.params = CwMotionParams.build(params, options, where="cw_motion")
        self._tones = tuple(self.params.tones_hz or tones_hz or ())
        self.demod: CwDemodulator | None = None
        self.spec: DopplerSpectrogram | None = None
        p = self.params
        self.debounce = Debouncer(p.threshold_db, p.off_threshold_db, on_count=p.on_frames,
                                  hold_s=p.hold_s)
        self._episode: _Episode | None = None
        self._pending: list[float] = []  # scores of the frames leading to an onset
        self.frames = 0
        self.episodes = 0
        self._still: list[float] = []
        self._last_t = 0.0

    def _setup(self, fr: Frames) -> None:
        p = self.params
        if not self._tones:
            raise ValueError(f"{fr.source}: cw_motion needs tones_hz (none given or detected)")
        self.demod = CwDemodulator(float(fr.fs_hz), self._tones, bandwidth_hz=p.bandwidth_hz,
                                   dc_tau_s=p.dc_tau_s)
        bw = self.demod.bandwidth_hz
        self.spec = DopplerSpectrogram(self.demod.out_rate_hz, self._tones, frame_s=p.frame_s,
                                       hop_s=p.hop_s, min_doppler_hz=p.min_doppler_hz,
                                       max_doppler_hz=min(p.max_doppler_hz, 0.6 * bw),
                                       reference_hz=(0.7 * bw, 0.95 * bw))

    def push(self, frames: Frames) -> list[Detection]:
        """Consume a chunk of audio; return the motion transitions it completed."""
        if not len(frames):
            return []
        if self.demod is None:
            self._setup(frames)
        bb = self.demod.push(frames)  # type: ignore[union-attr]
        return self.push_doppler(self.spec.push(bb))  # type: ignore[union-attr]

    def push_doppler(self, dframes: list[DopplerFrame]) -> list[Detection]:
        """Debounce Doppler frames into motion events."""
        out: list[Detection] = []
        p = self.params
        for df in dframes:
            self.frames += 1
            self._last_t = df.t_s
            tr = self.debounce.step(df.t_s, df.score_db, df)
            if self._episode is not None and tr is None:
                self._episode.scores.append(df.score_db)
                if df.score_db >= p.min_speed_db:
                    self._episode.speeds.append(df.speed_m_s)
            elif self._episode is None and tr is None and df.score_db < p.off_threshold_db:
                if len(self._still) < 100_000:
                    self._still.append(df.score_db)
            if tr is None:
                continue
            if tr.kind == "on":
                first = tr.inputs[0].item if tr.inputs else df
                ep = _Episode(first.t_s)
                for inp in tr.inputs:
                    ep.scores.append(inp.item.score_db)
                    if inp.item.score_db >= p.min_speed_db:
                        ep.speeds.append(inp.item.speed_m_s)
                self._episode = ep
                self.episodes += 1
                out.append(Detection("motion", round(ep.start_s, 3), 1, "",
                                     _confidence(max(ep.scores), p.threshold_db),
                                     {"score_db": round(max(ep.scores), 2), "method": "cw_doppler",
                                      "speed_m_s": round(float(np.median(ep.speeds)), 3)
                                      if ep.speeds else None}))
            else:
                out.append(self._end(df.t_s))
        return out

    def _end(self, t_s: float) -> Detection:
        ep = self._episode
        assert ep is not None
        self._episode = None
        sp = np.asarray(ep.speeds)
        extra: dict[str, Any] = {"duration_s": round(t_s - ep.start_s, 3),
                                 "score_db": round(float(np.median(ep.scores)), 2)
                                 if ep.scores else None, "method": "cw_doppler"}
        if len(sp):
            med = float(np.median(np.abs(sp)))
            pos = float(np.mean(sp > 0))
            extra.update({"speed_m_s": round(med if pos >= 0.5 else -med, 3),
                          "max_speed_m_s": round(float(np.max(np.abs(sp))), 3),
                          "doppler_hz": round(float(med * 2 * np.mean(self._tones)
                                                    / SPEED_OF_SOUND_M_S), 1),
                          "direction": "approaching" if pos >= 0.7 else
                          "receding" if pos <= 0.3 else "mixed"})
        else:
            extra.update({"speed_m_s": None, "direction": None})
        conf = _confidence(float(np.median(ep.scores)) if ep.scores else 0.0,
                           self.params.threshold_db)
        return Detection("motion", round(t_s, 3), 0, "", conf, extra)

    def flush(self) -> list[Detection]:
        """End of stream: an open episode ends at the last frame."""
        if self._episode is not None:
            return [self._end(self._last_t)]
        return []

    @property
    def still_score_db(self) -> float | None:
        """Median score of the frames outside motion (dB), None before any."""
        return float(np.median(self._still)) if self._still else None


def _confidence(score_db: float, threshold_db: float) -> float:
    """0.5 at the threshold, → 1 at twice it (dB)."""
    return round(float(np.clip(0.5 + 0.5 * (score_db - threshold_db) / threshold_db, 0, 1)), 3)
