"""Soil moisture from the chirp ratio of two buried antennas: permittivity, then Topp.

Set-up (``ambisense:soil``): channel 0's antenna at depth ``d0``, channel 1's at ``d1 > d0``
below the surface, one receiver (one clock); the transmitter above ground and far away, so
the wave travels down through the soil nearly vertically (refraction into ε ≫ 1).

Method
------
1. **Chirp ratio.** ``r = A1 / A0`` of every chirp (from the stream's shared packet
   receiver, :func:`sensing.lora.receiver.frame_chirps`; :mod:`sensing.lora.chirp_amplitude`
   when the sample rate is not a whole multiple of the bandwidth):
   the transmitter's power, carrier and timing offsets and the receiver's phase noise are
   common to both antennas and cancel; what is left is the soil between the depths,
   ``r = m · exp(−γ Δd)`` with ``Δd = d1 − d0``, ``γ = α + jβ`` the propagation constant of
   the lossy soil and ``m`` the antennas' and cables' mismatch (1 for identical ones). The
   chirps' ratios are averaged (outliers beyond 5 robust deviations dropped).
2. **Propagation constant.** ``α = −ln|r| / Δd`` (Np/m), ``β = (−arg r + 2πk) / Δd`` (rad/m)
   for a wrap count ``k`` (the phase wraps once per soil wavelength of spacing).
   With ``k0 = 2πf/c``: ``γ = j k0 √ε`` gives ``ε′ = (β² − α²)/k0²``, ``ε″ = 2αβ/k0²`` and the
   **apparent permittivity** ``Ka = (β/k0)²`` (what a TDR probe measures, the Topp input).
3. **Phase wrapping.** Every ``k`` whose ``Ka`` lies in the plausible window
   (``ka_range``, default 1.5–50: air-dry sand to saturated loam) is a candidate. With a
   spacing ``Δd ≤ λ0 / (√50 − √1.5) ≈ 6 cm`` at 868 MHz there is one. Otherwise the
   **amplitude** is the coarse estimate: the candidate whose loss tangent ``ε″/ε′`` (from
   α and that candidate's β) is nearest the site's (measured at its calibration
   reference) or, uncalibrated, the typical 0.1 of moist mineral soils near 900 MHz; a
   caller may give a prior ``Ka`` instead (a slowly changing series). ``ambiguous`` says
   when the choice was not unique; it is unreliable (see the spacing sweep in
   docs/lora-sensing.md): bury the antennas at most 6 cm apart.
4. **Water content**: Topp et al. (1980) ``θ = −5.3e−2 + 2.92e−2 Ka − 5.5e−4 Ka² +
   4.3e−6 Ka³`` (m³/m³; reported in % VWC).

Calibration
-----------
A reference reading of a site with a known water content ``θ_ref`` (``reference_vwc`` in
``ambisense:soil``) gives the phase the ratio should have, ``−k0 √Ka(θ_ref) Δd`` with
``Ka(θ_ref)`` Topp inverted; the difference to the measured phase is the site's **phase
offset**. It corrects, at once, the antennas' and cables' phase mismatch (cable length,
antenna detuning by the soil) and — exactly at the reference moisture, approximately near
it — the site soil's deviation from Topp (clay, organic matter). Two or more references at
different water contents also fit a linear correction of the water content
(``θ = a + b·θ_Topp``), which follows a deviation from Topp that grows with moisture.
The amplitude mismatch ``|m|`` cannot be told from the soil's loss with one reading: it is
not corrected; it only biases ε″ (reported) and the amplitude-based wrap choice.

Limits
------
* **Conductivity / salinity**: the loss raises ``Ka`` above ε′ (``Ka = ε′(1+√(1+tan²δ))/2``)
  and the water content with it; saline soils (pore water > 1 S/m) read wet.
* **Clay and organic soils**: bound water and a different solid permittivity put them off
  the Topp curve (plain Topp has an RMSE of about 10 % VWC on real measured soils, clay
  soils biased high; Mendoza Veirana et al., Geoderma 2023): calibrate such sites.
* **Temperature**: free water's permittivity falls about 0.4 per °C; Topp has no
  temperature term, so a 10 °C change reads as roughly 1 % VWC in wet soil.
* A reflecting layer (rock, water table) below the antennas adds a standing wave that
  perturbs the ratio in dry (low-loss) soil; uneven soil between the antennas, roots and
  stones, and frequency-dependent antenna detuning are not modelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensing.dsp.outliers import robust_std
from sensing.frames import Frames
from sensing.lora.chirp_amplitude import ChirpAmplitudeExtractor, ChirpAmplitudes

__all__ = ["C0", "topp_vwc", "topp_inverse", "SoilSetup", "soil_setup", "RatioAccumulator",
           "PermittivityEstimate", "permittivity_from_ratio", "SiteCalibration",
           "calibrate_site", "DEFAULT_FREQ_HZ"]

C0 = 299_792_458.0
#: Carrier assumed when a recording states none (EU868 channel 1).
DEFAULT_FREQ_HZ = 868.1e6
#: Typical loss tangent of moist mineral soil near 900 MHz (the amplitude-based wrap choice).
TYPICAL_LOSS_TANGENT = 0.1

_TOPP = (-5.3e-2, 2.92e-2, -5.5e-4, 4.3e-6)


def topp_vwc(ka: float | np.ndarray) -> float | np.ndarray:
    """Topp et al. (1980): volumetric water content (m³/m³) from the apparent relative
    permittivity ``ka``."""
    a, b, c, d = _TOPP
    return a + b * ka + c * ka**2 + d * ka**3


def topp_inverse(theta: float) -> float:
    """Apparent permittivity whose Topp water content is ``theta`` (m³/m³). Topp's cubic
    rises monotonically (its derivative has no real root), so the root is unique."""
    a, b, c, d = _TOPP
    roots = np.roots([d, c, b, a - theta])
    real = roots[np.abs(roots.imag) < 1e-9].real
    return float(real[np.argmin(np.abs(real - 20.0))])


@dataclass(frozen=True)
class SoilSetup:
    """The ``ambisense:soil`` object of a recording.

    Attributes
    ----------
    depths_m : (float, float)
        Depths of channel 0's and channel 1's antennas below the surface (m), ``d1 > d0``.
    site : str
        Site name (calibrations are per site).
    reference_vwc : float or None
        Water content measured by other means at the time of the recording (% VWC): the
        recording calibrates its site.
    """

    depths_m: tuple[float, float]
    site: str
    reference_vwc: float | None = None

    @property
    def spacing_m(self) -> float:
        return self.depths_m[1] - self.depths_m[0]


def soil_setup(obj: Any) -> SoilSetup:
    """Validate an ``ambisense:soil`` dict.

    Raises
    ------
    ValueError
        Missing or bad ``depths_m``, or a bad ``reference_vwc``; the message says which.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"ambisense:soil must be an object, got {type(obj).__name__}")
    d = obj.get("depths_m")
    if (not isinstance(d, (list, tuple)) or len(d) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d)):
        raise ValueError(f"ambisense:soil depths_m must be [d0, d1] in m, got {d!r}")
    d0, d1 = float(d[0]), float(d[1])
    if not (0 <= d0 < d1 <= 10):
        raise ValueError(f"ambisense:soil depths_m must satisfy 0 <= d0 < d1 <= 10 m, "
                         f"got {[d0, d1]}")
    ref = obj.get("reference_vwc")
    if ref is not None and (not isinstance(ref, (int, float)) or isinstance(ref, bool)
                            or not 0 <= ref <= 100):
        raise ValueError(f"ambisense:soil reference_vwc must be a % VWC in 0..100, got {ref!r}")
    return SoilSetup((d0, d1), str(obj.get("site", "default")),
                     None if ref is None else float(ref))


class RatioAccumulator:
    """Streams ``lora_iq`` frames into the chirp ratios ``ch1 / ch0`` of a reading.

    Parameters
    ----------
    sf, bw_hz, fs_hz
        LoRa spreading factor, bandwidth (Hz) and the stream's sample rate (Hz).
    min_peak_db : float
        Peak test of a chirp (:class:`~sensing.lora.chirp_amplitude.ChirpAmplitudeExtractor`).
    extractor : bool
        Find the chirps with an extractor of its own (``push(frames)``); False: the caller
        gives them (``push(frames, chirps)``, from the packet receiver).
    """

    def __init__(self, sf: int, bw_hz: float, fs_hz: float, *, min_peak_db: float = 15.0,
                 extractor: bool = True):
        self.extractor = (ChirpAmplitudeExtractor(sf, bw_hz, fs_hz, min_peak_db=min_peak_db)
                          if extractor else None)
        self._ratios: list[np.ndarray] = []
        self._peaks: list[np.ndarray] = []
        self.end_s = 0.0

    def push(self, frames: Frames | None, chirps: ChirpAmplitudes | None = None) -> None:
        """Add a chunk's chirps (found by the extractor, else ``chirps``)."""
        if self.extractor is not None and frames is not None:
            chirps = self.extractor.push(frames.data[:, :2])
        if chirps is not None and len(chirps):
            ok = np.abs(chirps.amp[:, 0]) > 0
            self._ratios.append(chirps.ratio()[ok])
            self._peaks.append(chirps.peak_db[ok])
        if frames is not None and len(frames):
            self.end_s = frames.end_s

    @property
    def chirps(self) -> int:
        return int(sum(len(r) for r in self._ratios))

    def take(self) -> tuple[complex, float, int, float]:
        """The reading so far, then start a new one: (mean ratio, phase spread of the
        chirps' ratios (rad), chirps used, median chirp peak (dB))."""
        r = np.concatenate(self._ratios) if self._ratios else np.zeros(0, complex)
        peaks = np.concatenate(self._peaks) if self._peaks else np.zeros(0)
        self._ratios, self._peaks = [], []
        if not len(r):
            return complex("nan"), float("nan"), 0, float("nan")
        med = complex(np.median(r.real), np.median(r.imag))
        dev = np.abs(r - med)
        scale = max(float(robust_std(np.concatenate([(r - med).real, (r - med).imag]))), 1e-12)
        keep = dev <= 5 * scale * math.sqrt(2) + 1e-12
        mean = complex(np.mean(r[keep]))
        spread = float(np.std(np.angle(r[keep] / mean))) if keep.sum() > 1 else 0.0
        return mean, spread, int(keep.sum()), float(np.median(peaks))


@dataclass(frozen=True)
class PermittivityEstimate:
    """Result of :func:`permittivity_from_ratio`.

    Attributes
    ----------
    eps_real, eps_imag : float
        Complex relative permittivity ``ε′ − jε″`` of the soil between the antennas.
    ka : float
        Apparent permittivity ``(β/k0)²``.
    alpha_np_m, beta_rad_m : float
        Attenuation (Np/m) and phase (rad/m) constants.
    wraps : int
        Phase wraps ``k`` chosen.
    candidates : tuple of float
        ``Ka`` of every wrap count in the plausible window.
    ambiguous : bool
        More than one candidate, chosen by a prior or by the amplitude.
    choice : str
        How the wrap count was chosen: ``"unique"``, ``"prior"``, ``"amplitude"`` or
        ``"nearest_window"`` (no candidate in the window).
    """

    eps_real: float
    eps_imag: float
    ka: float
    alpha_np_m: float
    beta_rad_m: float
    wraps: int
    candidates: tuple[float, ...] = field(default=())
    ambiguous: bool = False
    choice: str = "unique"

    @property
    def vwc_pct(self) -> float:
        """Topp water content in % VWC."""
        return 100.0 * float(topp_vwc(self.ka))


def permittivity_from_ratio(
    ratio: complex, spacing_m: float, freq_hz: float, *,
    ka_range: tuple[float, float] = (1.5, 50.0), prior_ka: float | None = None,
    loss_tangent: float | None = None,
) -> PermittivityEstimate:
    """Complex permittivity of the soil between two antennas from their chirp ratio.

    Parameters
    ----------
    ratio : complex
        ``A(d1) / A(d0)`` (deeper over shallower), mismatch-corrected when calibrated.
    spacing_m : float
        ``d1 − d0`` (m).
    freq_hz : float
        Carrier frequency (Hz).
    ka_range : (float, float)
        Plausible apparent permittivities (the wrap candidates' window).
    prior_ka : float, optional
        Expected ``Ka`` (e.g. the previous reading of a slowly changing site) to choose
        among several candidates.
    loss_tangent : float, optional
        Expected ``ε″/ε′`` for the amplitude-based choice (a site calibration's; default
        :data:`TYPICAL_LOSS_TANGENT`).

    Returns
    -------
    PermittivityEstimate
    """
    k0 = 2 * math.pi * freq_hz / C0
    alpha = -math.log(max(abs(ratio), 1e-300)) / spacing_m
    phi = -math.atan2(ratio.imag, ratio.real)  # = β Δd mod 2π, in (−π, π]
    if phi < 0:
        phi += 2 * math.pi
    b_lo, b_hi = k0 * math.sqrt(ka_range[0]), k0 * math.sqrt(ka_range[1])
    k_lo = max(0, math.ceil((b_lo * spacing_m - phi) / (2 * math.pi)))
    k_hi = math.floor((b_hi * spacing_m - phi) / (2 * math.pi))
    ks = list(range(k_lo, k_hi + 1))
    choice = "unique"
    if not ks:  # nothing in the window: the wrap count whose Ka is nearest it
        choice = "nearest_window"
        cands = [k for k in (k_lo - 1, k_lo, k_hi, k_hi + 1) if k >= 0]

        def dist(k: int) -> float:
            b = (phi + 2 * math.pi * k) / spacing_m
            return min(abs(b - b_lo), abs(b - b_hi))
        k = min(cands, key=dist)
    elif len(ks) == 1:
        k = ks[0]
    elif prior_ka is not None:
        choice = "prior"
        b_prior = k0 * math.sqrt(max(prior_ka, 0.0))
        k = min(ks, key=lambda k: abs((phi + 2 * math.pi * k) / spacing_m - b_prior))
    else:
        choice = "amplitude"

        def loss_miss(k: int) -> float:
            b = (phi + 2 * math.pi * k) / spacing_m
            tan = 2 * max(alpha, 1e-3) * b / max(b * b - alpha * alpha, 1e-9)
            return abs(math.log(tan / (loss_tangent or TYPICAL_LOSS_TANGENT)))
        k = min(ks, key=loss_miss)
    beta = (phi + 2 * math.pi * k) / spacing_m
    cand_ka = tuple(round(((phi + 2 * math.pi * j) / spacing_m / k0) ** 2, 3) for j in ks)
    return PermittivityEstimate(
        eps_real=(beta * beta - alpha * alpha) / k0**2, eps_imag=2 * alpha * beta / k0**2,
        ka=(beta / k0) ** 2, alpha_np_m=alpha, beta_rad_m=beta, wraps=k,
        candidates=cand_ka, ambiguous=len(ks) > 1, choice=choice)


@dataclass(frozen=True)
class SiteCalibration:
    """A site's calibration (see the module doc).

    Attributes
    ----------
    phase_offset_rad : float
        Measured minus expected ratio phase at the reference(s) (rad); the ratio is
        multiplied by ``exp(−j·offset)`` before the inversion.
    vwc_offset, vwc_gain : float
        Linear correction of the water content (% VWC): ``θ = offset + gain·θ_Topp``
        (0 and 1 with a single reference).
    reference_ka : float or None
        Topp ``Ka`` of the (first) reference.
    loss_tangent : float or None
        ``ε″/ε′`` measured at the (first) reference (the amplitude ratio, with the
        antennas' gain mismatch in it): the site's expected loss tangent for the
        amplitude-based wrap choice.
    references : tuple of (float, str)
        ``(reference_vwc, source)`` of the readings it was fitted on.
    """

    phase_offset_rad: float
    vwc_offset: float = 0.0
    vwc_gain: float = 1.0
    reference_ka: float | None = None
    references: tuple[tuple[float, str], ...] = ()
    loss_tangent: float | None = None

    def correct_ratio(self, ratio: complex) -> complex:
        """The ratio with the site's phase offset removed."""
        return ratio * complex(math.cos(-self.phase_offset_rad), math.sin(-self.phase_offset_rad))

    def correct_vwc(self, vwc_pct: float) -> float:
        """The linear water-content correction (% VWC)."""
        return self.vwc_offset + self.vwc_gain * vwc_pct

    def as_dict(self) -> dict[str, Any]:
        """The agent-config form (``[pipelines.lora_soil] calibration = {SITE = {...}}``)."""
        out = {"phase_offset_rad": round(self.phase_offset_rad, 6),
               "vwc_offset": round(self.vwc_offset, 4), "vwc_gain": round(self.vwc_gain, 6)}
        if self.loss_tangent is not None:
            out["loss_tangent"] = round(self.loss_tangent, 5)
        return out


def _wrap(phi: float) -> float:
    return (phi + math.pi) % (2 * math.pi) - math.pi


def calibrate_site(readings: list[tuple[complex, float, str]], spacing_m: float,
                   freq_hz: float) -> SiteCalibration:
    """Fit a site's calibration on its reference readings.

    Parameters
    ----------
    readings : list of (complex, float, str)
        ``(mean chirp ratio, reference_vwc in %, source)`` per reference recording.
    spacing_m : float
        Antenna spacing ``d1 − d0`` (m).
    freq_hz : float
        Carrier (Hz).

    Returns
    -------
    SiteCalibration
        The phase offset is the circular mean of the references' offsets; with two or
        more references spanning at least 5 % VWC, the linear VWC correction is fitted
        on their offset-corrected Topp estimates.
    """
    k0 = 2 * math.pi * freq_hz / C0
    offs = []
    for ratio, vwc, _ in readings:
        ka = topp_inverse(vwc / 100.0)
        expected = -k0 * math.sqrt(ka) * spacing_m
        offs.append(_wrap(math.atan2(ratio.imag, ratio.real) - expected))
    off = math.atan2(float(np.mean(np.sin(offs))), float(np.mean(np.cos(offs))))
    ka_ref = topp_inverse(readings[0][1] / 100.0)
    alpha = -math.log(max(abs(readings[0][0]), 1e-300)) / spacing_m
    beta = k0 * math.sqrt(ka_ref)
    tan = float(np.clip(2 * max(alpha, 0.0) * beta / max(beta * beta - alpha * alpha, 1e-9),
                        0.005, 1.0))
    cal = SiteCalibration(off, reference_ka=ka_ref,
                          references=tuple((float(v), s) for _, v, s in readings),
                          loss_tangent=tan)
    vwcs = np.array([v for _, v, _ in readings])
    if len(readings) >= 2 and np.ptp(vwcs) >= 5.0:
        est = np.array([permittivity_from_ratio(cal.correct_ratio(r), spacing_m, freq_hz,
                                                prior_ka=topp_inverse(v / 100)).vwc_pct
                        for r, v, _ in readings])
        gain, offset = np.polyfit(est, vwcs, 1)
        cal = SiteCalibration(off, float(offset), float(gain), ka_ref, cal.references, tan)
    return cal
