"""Which acoustic pipelines apply to a recording, decided from its content.

The rule (``docs/acoustic.md``):

1. the recording declares an ``ambisense:probe`` → **sonar**: ``fmcw_sonar`` for FMCW
   chirps, ``cw_sonar`` for CW tones (the probe's tones);
2. no probe, but a strong stationary tone above :data:`TONE_MIN_HZ` (17 kHz; possible only
   when the sample rate is ≥ 36 kHz) → ``cw_tone``: CW sonar around the detected tone(s);
3. otherwise (e.g. a stethoscope recorded at 4 kHz, a microphone at 16 kHz) →
   ``breath_sounds``.

"Strong stationary tone": in the Welch spectrum (≈ 12 Hz resolution) of the first
``decide_s`` seconds (2 s) of every channel, a narrow peak above 17 kHz that stands
≥ ``min_prominence_db`` (25 dB) over the median level of the 16 kHz–Nyquist band, at the
same frequency (± 2 bins) in each half of the window. A phone's own carrier stands 50–65 dB
over the floor; speech, music and noise have no such line.

The decision is streaming: :class:`ContentGate` holds the chunks of the first seconds
until it has decided, then releases them (and every later chunk) to the pipeline when the
content is the pipeline's, or drops them all when it is not — each pipeline then reports
``quiet_reason()``. :func:`classify` decides from one chunk at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from sensing.acoustic.probe import Probe, ProbeError, probe_from_json
from sensing.frames import Frames

__all__ = ["ContentKind", "ContentDecision", "classify", "decide", "detect_tones",
           "ContentGate", "TONE_MIN_HZ"]

#: Lowest frequency of an inaudible sonar tone (Hz).
TONE_MIN_HZ = 17_000.0
#: The spectrum's reference floor starts here (Hz).
_FLOOR_FROM_HZ = 16_000.0


class ContentKind(StrEnum):
    """What a recording holds, for choosing pipelines."""

    #: A probe of type ``fmcw`` is declared.
    FMCW_SONAR = "fmcw_sonar"
    #: A probe of type ``cw`` is declared.
    CW_SONAR = "cw_sonar"
    #: No probe, but a strong stationary tone above 17 kHz (a CW sonar someone else plays).
    CW_TONE = "cw_tone"
    #: Microphone audio without a probe: breath sounds, speech, room noise.
    BREATH_SOUNDS = "breath_sounds"

    @property
    def is_cw(self) -> bool:
        """CW demodulation applies (declared CW probe or detected tone)."""
        return self in (ContentKind.CW_SONAR, ContentKind.CW_TONE)


@dataclass(frozen=True)
class ContentDecision:
    """The outcome of the content rule.

    Attributes
    ----------
    kind : ContentKind
        Which pipelines apply.
    probe : Probe or None
        The declared probe.
    tones_hz : tuple of float
        CW tones: the probe's (``cw_sonar``) or the detected ones (``cw_tone``, strongest
        first); empty otherwise.
    prominence_db : tuple of float
        Detected tones: level over the band median (dB); empty for a declared probe.
    fs_hz : float
        Sample rate of the recording.
    reason : str
        One sentence saying why (for logs and ``quiet_reason``).
    """

    kind: ContentKind
    probe: Probe | None = None
    tones_hz: tuple[float, ...] = ()
    prominence_db: tuple[float, ...] = ()
    fs_hz: float = float("nan")
    reason: str = ""
    extra: dict = field(default_factory=dict)


def detect_tones(x: np.ndarray, fs_hz: float, *, min_hz: float = TONE_MIN_HZ,
                 min_prominence_db: float = 25.0, max_tones: int = 8,
                 ) -> list[tuple[float, float]]:
    """Strong stationary tones above ``min_hz`` in a block of samples.

    Parameters
    ----------
    x : numpy.ndarray
        ``(n_samples, n_channels)`` or ``(n_samples,)``, ≥ 0.25 s.
    fs_hz : float
        Sample rate (Hz).
    min_hz : float
        Lowest tone frequency (Hz).
    min_prominence_db : float
        Level over the median of the 16 kHz–Nyquist band (dB).
    max_tones : int
        At most this many tones, strongest first.

    Returns
    -------
    list of (frequency Hz, prominence dB)
        Tones present, at the same frequency, in both halves of the block.
    """
    from scipy import signal

    x = np.asarray(x, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = len(x)
    if fs_hz / 2 <= min_hz or n < int(0.25 * fs_hz):
        return []
    nper = int(2 ** np.ceil(np.log2(fs_hz / 12.0)))  # ≈ 12 Hz bins
    nper = min(nper, 1 << int(np.floor(np.log2(n // 2))))
    found = None
    halves = (x[: n // 2], x[n // 2:])
    for part in halves:
        f, p = signal.welch(part, fs_hz, nperseg=nper, axis=0, detrend="constant")
        p = p.mean(axis=1)
        band = f >= min(_FLOOR_FROM_HZ, min_hz)
        floor = np.median(p[band])
        if not floor > 0:
            return []
        db = 10 * np.log10(np.maximum(p, 1e-300) / floor)
        cand = (f >= min_hz) & (f < fs_hz / 2 * 0.995) & (db >= min_prominence_db)
        # local maxima only
        k = np.flatnonzero(cand)
        k = k[(db[k] >= db[np.maximum(k - 1, 0)]) & (db[k] >= db[np.minimum(k + 1, len(db) - 1)])]
        peaks = sorted(((float(db[i]), int(i)) for i in k), reverse=True)
        kept: list[tuple[int, float]] = []
        for d, i in peaks:  # one tone per 200 Hz
            if all(abs(i - j) * (f[1] - f[0]) > 200 for j, _ in kept):
                kept.append((i, d))
        df = f[1] - f[0]
        tones = [(_refine(p, f, i), d) for i, d in kept]
        if found is None:
            found = tones
        else:  # the tone must be in both halves, within 2 bins
            found = [(fr, min(d, d2)) for fr, d in found
                     for fr2, d2 in tones if abs(fr - fr2) <= 2 * df]
    return sorted(found or [], key=lambda t: -t[1])[:max_tones]


def _refine(p: np.ndarray, f: np.ndarray, k: int) -> float:
    """Parabolic interpolation of a spectral peak on the log power (Hz)."""
    if 0 < k < len(p) - 1:
        a, b, c = np.log(np.maximum(p[k - 1:k + 2], 1e-300))
        den = a - 2 * b + c
        delta = 0.5 * (a - c) / den if den < 0 else 0.0
        return float(f[k] + np.clip(delta, -0.5, 0.5) * (f[1] - f[0]))
    return float(f[k])


def _probe_of(frames: Frames) -> Probe | None:
    obj = (frames.meta or {}).get("probe")
    if obj is None:
        return None
    if isinstance(obj, Probe):
        return obj
    try:
        return probe_from_json(obj, where=f"{frames.source}: probe")
    except ProbeError:
        return None


def decide(x: np.ndarray, fs_hz: float, probe: Probe | None = None, *,
           min_prominence_db: float = 25.0) -> ContentDecision:
    """The content rule on a block of samples ``(n, n_channels)`` (see the module)."""
    if probe is not None:
        if probe.type == "fmcw":
            return ContentDecision(ContentKind.FMCW_SONAR, probe, fs_hz=fs_hz,
                                   reason=f"an FMCW probe {probe.f0_hz:g}–{probe.f1_hz:g} Hz "
                                          "is declared")
        return ContentDecision(ContentKind.CW_SONAR, probe, tuple(probe.tones_hz or ()),
                               fs_hz=fs_hz, reason="a CW probe is declared")
    if fs_hz < 2 * TONE_MIN_HZ:
        return ContentDecision(ContentKind.BREATH_SOUNDS, fs_hz=fs_hz,
                               reason=f"no probe and sampled at {fs_hz:g} Hz (< 36 kHz: no "
                                      "ultrasound)")
    tones = detect_tones(x, fs_hz, min_prominence_db=min_prominence_db)
    if tones:
        return ContentDecision(ContentKind.CW_TONE, None, tuple(round(t, 2) for t, _ in tones),
                               tuple(round(d, 1) for _, d in tones), fs_hz,
                               f"no probe; a stationary tone at {tones[0][0]:.0f} Hz stands "
                               f"{tones[0][1]:.0f} dB over the band")
    return ContentDecision(ContentKind.BREATH_SOUNDS, fs_hz=fs_hz,
                           reason="no probe and no strong stationary tone above 17 kHz")


def classify(frames: Frames, *, decide_s: float = 2.0) -> ContentKind:
    """The content kind of one chunk (its first ``decide_s`` seconds)."""
    return classify_frames(frames, decide_s=decide_s).kind


def classify_frames(frames: Frames, *, decide_s: float = 2.0) -> ContentDecision:
    """The full :class:`ContentDecision` of one chunk (its first ``decide_s`` seconds)."""
    fs = float(frames.fs_hz or 0.0)
    x = np.asarray(frames.data)[: int(decide_s * fs) or None]
    return decide(x, fs, _probe_of(frames))


class ContentGate:
    """Holds the first ``decide_s`` seconds of a stream, decides its content, then lets
    the stream through to a pipeline whose content it is.

    Parameters
    ----------
    accepts : callable or set of ContentKind
        The kinds (or a predicate on the decision) the pipeline processes.
    decide_s : float
        Seconds of audio the decision looks at (s). A shorter stream is decided at
        :meth:`flush`.

    Examples
    --------
    >>> gate = ContentGate({ContentKind.BREATH_SOUNDS})          # doctest: +SKIP
    >>> for chunk in gate.push(frames): results += stage.push(chunk)   # doctest: +SKIP
    >>> for chunk in gate.flush(): results += stage.push(chunk)        # doctest: +SKIP
    """

    def __init__(self, accepts, *, decide_s: float = 2.0) -> None:
        self._accepts = accepts if callable(accepts) else (lambda d, k=frozenset(accepts):
                                                           d.kind in k)
        self.decide_s = float(decide_s)
        self.decision: ContentDecision | None = None
        self.accepted: bool | None = None
        self._held: list[Frames] = []
        self._n = 0

    def push(self, frames: Frames) -> list[Frames]:
        """The chunks to process now (none while deciding or when not accepted)."""
        if self.accepted is not None:
            return [frames] if self.accepted else []
        if not len(frames):
            return []
        self._held.append(frames)
        self._n += len(frames)
        fs = float(frames.fs_hz or 0.0)
        if fs > 0 and self._n >= self.decide_s * fs:
            return self._decide()
        return []

    def flush(self) -> list[Frames]:
        """End of stream: decide on what was held (a short stream)."""
        if self.accepted is None and self._held:
            return self._decide()
        return []

    def _decide(self) -> list[Frames]:
        first = self._held[0]
        fs = float(first.fs_hz or 0.0)
        x = np.concatenate([np.asarray(f.data) for f in self._held])[: int(self.decide_s * fs)]
        self.decision = decide(x, fs, _probe_of(first))
        self.accepted = bool(self._accepts(self.decision))
        held, self._held = self._held, []
        return held if self.accepted else []

    def quiet_reason(self, what: str) -> str | None:
        """``"not <what>: <reason>"`` when the content is not this pipeline's, else None."""
        if self.accepted is False and self.decision is not None:
            return f"not {what}: {self.decision.reason} ({self.decision.kind})"
        if self.accepted is None:
            return "no audio"
        return None
