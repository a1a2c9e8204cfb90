"""The ``ambisense:probe``: what the speaker played while the microphone recorded.

One JSON object, stored in the SigMF global object (key ``"ambisense:probe"``) or, for a
WAV file ``NAME.wav``, in the sidecar ``NAME.wav.json`` as ``{"ambisense:probe": {…}}``.

FMCW (linear chirps, repeated)::

    {"type": "fmcw", "f0_hz": 18000, "f1_hz": 22000, "chirp_s": 0.01, "period_s": 0.01,
     "start_s": 0.0, "amplitude": 0.5, "window": "none"}

Chirp ``k`` starts at ``start_s + k·period_s`` (seconds from the first sample of the
recording) and sweeps linearly from ``f0_hz`` to ``f1_hz`` in ``chirp_s``; the speaker is
silent for the rest of the period (``period_s − chirp_s``) and before ``start_s``.

CW (continuous tones)::

    {"type": "cw", "tones_hz": [18000, 19000, 20000], "amplitude": 0.5}

>>> p = probe_from_json({"type": "cw", "tones_hz": [20000]}, where="demo")
>>> probe_to_json(p)
{'type': 'cw', 'tones_hz': [20000.0], 'start_s': 0.0, 'amplitude': 0.5, 'window': 'none'}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import field_validator, model_validator

from sensing.params import OptionError, Params, param

__all__ = ["Probe", "PROBE_KEY", "probe_from_json", "probe_to_json", "ProbeError"]

#: Key of the probe object in the SigMF global object and in a WAV sidecar.
PROBE_KEY = "ambisense:probe"

_FMCW_FIELDS = ("f0_hz", "f1_hz", "chirp_s", "period_s")


class ProbeError(OptionError):
    """An ``ambisense:probe`` object is malformed (message names where and which field)."""


class Probe(Params):
    """The transmitted probe signal (see the module docstring for the JSON form).

    Attributes
    ----------
    type : {"fmcw", "cw"}
        Linear frequency-modulated chirps or continuous tones.
    f0_hz, f1_hz : float
        FMCW: start and end frequency of each sweep (Hz); ``f1_hz < f0_hz`` is a down
        chirp. Required for ``fmcw``, absent for ``cw``.
    chirp_s : float
        FMCW: sweep duration (s).
    period_s : float
        FMCW: chirp repetition period (s), ≥ ``chirp_s``.
    tones_hz : tuple of float
        CW: the tone frequencies (Hz), distinct. Required for ``cw``, absent for ``fmcw``.
    start_s : float
        Offset of the first chirp (FMCW) or of the tones' onset (CW) from the first sample
        of the recording (s); the phase of every tone is 0 at ``start_s``.
    amplitude : float
        Peak amplitude of the played signal, as a fraction of the output's full scale
        (0–1; with several tones, of their sum).
    window : {"none", "hann", "tukey"}
        Amplitude window over each chirp (FMCW; ``tukey`` has 10 % tapers) to reduce the
        audible click at chirp boundaries; ignored for CW.
    """

    type: Literal["fmcw", "cw"] = param(..., doc="probe kind: FMCW chirps or CW tones")
    f0_hz: float | None = param(None, unit="Hz", gt=0, le=1e6,
                                doc="FMCW: sweep start frequency")
    f1_hz: float | None = param(None, unit="Hz", gt=0, le=1e6,
                                doc="FMCW: sweep end frequency")
    chirp_s: float | None = param(None, unit="s", gt=0, le=60, doc="FMCW: sweep duration")
    period_s: float | None = param(None, unit="s", gt=0, le=60,
                                   doc="FMCW: chirp repetition period (>= chirp_s)")
    tones_hz: tuple[float, ...] | None = param(None, unit="Hz",
                                               doc="CW: tone frequencies (distinct, > 0)")
    start_s: float = param(0.0, unit="s", ge=0, doc="offset of the first chirp / tone onset")
    amplitude: float = param(0.5, gt=0, le=1, doc="peak amplitude, fraction of full scale")
    window: Literal["none", "hann", "tukey"] = param(
        "none", doc="FMCW: amplitude window over each chirp")

    @field_validator("tones_hz", mode="before")
    @classmethod
    def _list_to_tuple(cls, v: Any) -> Any:
        """A list (JSON, TOML, Python) fills the tuple; numbers stay strictly numbers."""
        if isinstance(v, list):
            return tuple(v)
        if isinstance(v, np.ndarray):
            return tuple(v.tolist())
        return v

    @model_validator(mode="after")
    def _check_kind(self) -> Probe:
        if self.type == "fmcw":
            missing = [f for f in _FMCW_FIELDS if getattr(self, f) is None]
            if missing:
                raise ValueError(f"an fmcw probe needs {', '.join(missing)}")
            if self.tones_hz is not None:
                raise ValueError("tones_hz is for a cw probe, not fmcw")
            if self.f0_hz == self.f1_hz:
                raise ValueError(f"f0_hz and f1_hz must differ (both {self.f0_hz:g} Hz)")
            if self.period_s < self.chirp_s - 1e-12:  # type: ignore[operator]
                raise ValueError(f"period_s ({self.period_s:g} s) must be >= chirp_s "
                                 f"({self.chirp_s:g} s)")
        else:
            extra = [f for f in _FMCW_FIELDS if getattr(self, f) is not None]
            if extra:
                raise ValueError(f"only an fmcw probe has {', '.join(extra)} (this one is cw)")
            if not self.tones_hz:
                raise ValueError("a cw probe needs tones_hz (a non-empty list of Hz)")
            if any(not (0 < f <= 1e6) for f in self.tones_hz):
                raise ValueError(f"tones_hz must be in (0, 1e6] Hz, got {list(self.tones_hz)}")
            if len(set(self.tones_hz)) != len(self.tones_hz):
                raise ValueError(f"tones_hz must be distinct, got {list(self.tones_hz)}")
        return self

    @classmethod
    def _message(cls, exc: Any, where: str) -> str:
        """Cross-field errors (from the type check) read as one plain sentence."""
        errs = exc.errors(include_url=False)
        if errs and all(not e["loc"] for e in errs):
            pre = f"{where}: " if where else ""
            msgs = [str(e["msg"]).removeprefix("Value error, ") for e in errs]
            return f"{pre}{'; '.join(msgs)}"
        return super()._message(exc, where)

    # ------------------------------------------------------------------ helpers
    @property
    def max_hz(self) -> float:
        """Highest frequency the probe contains (Hz)."""
        if self.type == "fmcw":
            return float(max(self.f0_hz, self.f1_hz))  # type: ignore[type-var]
        return float(max(self.tones_hz))  # type: ignore[arg-type]

    @property
    def min_hz(self) -> float:
        """Lowest frequency the probe contains (Hz)."""
        if self.type == "fmcw":
            return float(min(self.f0_hz, self.f1_hz))  # type: ignore[type-var]
        return float(min(self.tones_hz))  # type: ignore[arg-type]

    @property
    def slope_hz_per_s(self) -> float:
        """FMCW sweep slope ``(f1 − f0) / chirp_s`` (Hz/s); 0 for CW."""
        if self.type != "fmcw":
            return 0.0
        return (self.f1_hz - self.f0_hz) / self.chirp_s  # type: ignore[operator]

    def check_rate(self, fs_hz: float, where: str = "probe") -> None:
        """Raise :class:`ProbeError` when the probe does not fit below Nyquist at ``fs_hz``."""
        if self.max_hz >= fs_hz / 2:
            raise ProbeError(f"{where}: probe reaches {self.max_hz:g} Hz, at or above the "
                             f"Nyquist frequency {fs_hz / 2:g} Hz of a {fs_hz:g} Hz recording")

    def waveform(self, fs_hz: float, start: int, n: int) -> np.ndarray:
        """The played signal for samples ``start … start + n − 1`` at ``fs_hz``.

        Deterministic in the absolute sample index, so a live callback can synthesise it
        block by block (the phase is continuous across blocks).

        Returns
        -------
        numpy.ndarray
            float64 ``(n,)`` in full-scale units (peak ``amplitude``).
        """
        t = (start + np.arange(n, dtype=np.float64)) / fs_hz - self.start_s
        out = np.zeros(n)
        on = t >= 0
        if self.type == "cw":
            tones = np.asarray(self.tones_hz, float)
            # phase from the integer sample index modulo the tone period keeps precision
            for f in tones:
                out += np.cos(2 * np.pi * ((f * t) % 1.0))
            out *= self.amplitude / len(tones)
            out[~on] = 0.0
            return out
        period, chirp = float(self.period_s), float(self.chirp_s)  # type: ignore[arg-type]
        tau = np.mod(t, period)
        inside = on & (tau < chirp)
        tt = tau[inside]
        ph = self.f0_hz * tt + 0.5 * self.slope_hz_per_s * tt * tt  # type: ignore[operator]
        w = _chirp_window(self.window, tt / chirp)
        out[inside] = self.amplitude * w * np.cos(2 * np.pi * (ph % 1.0))
        return out


def _chirp_window(kind: str, u: np.ndarray) -> np.ndarray | float:
    """Window value at the fraction ``u`` (0–1) of the chirp."""
    if kind == "hann":
        return 0.5 - 0.5 * np.cos(2 * np.pi * u)
    if kind == "tukey":
        a = 0.1
        w = np.ones_like(u)
        lo, hi = u < a / 2, u > 1 - a / 2
        w[lo] = 0.5 * (1 - np.cos(2 * np.pi * u[lo] / a))
        w[hi] = 0.5 * (1 - np.cos(2 * np.pi * (1 - u[hi]) / a))
        return w
    return 1.0


def probe_from_json(obj: Any, where: str = "ambisense:probe") -> Probe:
    """Validate a decoded ``ambisense:probe`` JSON object.

    Parameters
    ----------
    obj : mapping
        The object (``{"type": "fmcw", …}``).
    where : str
        Where it came from (file and key), used in messages.

    Raises
    ------
    ProbeError
        Not an object, an unknown field, a wrong type or range, or fields that do not fit
        the probe type; the message names ``where`` and lists the valid fields.
    """
    if not isinstance(obj, Mapping):
        raise ProbeError(f"{where}: expected a JSON object with \"type\" \"fmcw\" or \"cw\", "
                         f"got {type(obj).__name__} {str(obj)[:60]!r}")
    try:
        return Probe.from_options(dict(obj), where=where)
    except OptionError as exc:
        raise ProbeError(str(exc)) from None


def probe_to_json(probe: Probe) -> dict[str, Any]:
    """The JSON object of ``probe`` (fields of the other probe type left out; tuples as
    lists), the inverse of :func:`probe_from_json`."""
    d = probe.model_dump()
    out: dict[str, Any] = {"type": d.pop("type")}
    for k, v in d.items():
        if v is None:
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out
