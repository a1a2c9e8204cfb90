"""``lora_soil``: soil moisture (% VWC) from two buried antennas' chirp ratio.

Applies to ``lora_iq`` streams whose metadata carries the soil set-up
(``meta["soil"]``, the ``ambisense:soil`` object of a SigMF recording) and two channels;
otherwise it emits nothing and says why (:meth:`LoraSoilPipeline.quiet_reason`). The
chirps come from the stream's shared packet receiver (the one ``lora_packet`` uses), or,
when the sample rate is not a whole multiple of the bandwidth, from a chirp extractor of
its own. Method,
calibration and limits: :mod:`sensing.lora.soil` and ``docs/lora-sensing.md``.

Calibration reaches a recording from, in order: the run (a recording of the same site
with ``reference_vwc``, replayed earlier in the same ``ambisense replay`` run or streamed
earlier in the same agent process: ``run_context["lora_soil"]``), then the option
``calibration`` (``{SITE = {phase_offset_rad = …, vwc_offset = …, vwc_gain = …}}``, the
``calibration`` extra a reference reading's event prints).
"""

from __future__ import annotations

import math
from typing import Any

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.lora.receiver import (
    ReceiverParams,
    frame_chirps,
    shared_receiver,
    shared_receiver_flush,
    whole_oversampling,
)
from sensing.lora.soil import (
    DEFAULT_FREQ_HZ,
    RatioAccumulator,
    SiteCalibration,
    SoilSetup,
    calibrate_site,
    permittivity_from_ratio,
    soil_setup,
)
from sensing.params import Params, param

NAME = "lora_soil"


class SoilParams(Params):
    """Options of the ``lora_soil`` pipeline."""

    window_s: float = param(60.0, unit="s", gt=0, le=86400,
                            doc="one reading per window of a long recording (a shorter "
                                "recording, or the rest, is one reading at its end)")
    min_chirps: int = param(20, ge=1, le=1_000_000, doc="chirps a reading needs")
    min_peak_db: float = param(15.0, unit="dB", ge=3, le=80,
                               doc="dechirped peak over the median bin for a chirp")
    ka_min: float = param(1.5, gt=1, lt=80, doc="lowest plausible apparent permittivity")
    ka_max: float = param(50.0, gt=1, le=90, doc="highest plausible apparent permittivity")
    freq_hz: float | None = param(None, unit="Hz", gt=1e6, le=1e10,
                                  doc="carrier when the recording states none (else 868.1 MHz)")
    sf: int | None = param(None, ge=7, le=12, doc="spreading factor if not in the recording")
    bw_hz: int | None = param(None, unit="Hz", ge=7800, le=500000,
                              doc="LoRa bandwidth if not in the recording")
    calibration: dict[str, dict[str, float]] = param(
        {}, doc="per-site calibration {SITE: {phase_offset_rad, vwc_offset, vwc_gain, "
                "loss_tangent}} (what a reference reading's event prints)")


def _from_config(d: dict[str, float]) -> SiteCalibration:
    tan = d.get("loss_tangent")
    return SiteCalibration(float(d.get("phase_offset_rad", 0.0)),
                           float(d.get("vwc_offset", 0.0)), float(d.get("vwc_gain", 1.0)),
                           loss_tangent=None if tan is None else float(tan))


@PIPELINES.register(NAME)
class LoraSoilPipeline(Pipeline):
    """Soil moisture per reading from a two-antenna buried LoRa receiver.

    Emits ``soil_moisture`` (``value`` % VWC) with extras ``permittivity`` [ε′, ε″],
    ``apparent_permittivity`` (Ka), ``calibrated``, ``site``, ``chirps``,
    ``phase_spread_rad``, ``wrap_choice`` and, on a reference recording, ``reference_vwc``
    and ``calibration`` (the site's fitted calibration, agent-config form).
    """

    name = NAME
    Params = SoilParams
    modalities = ("lora_iq",)
    default = True
    event_types = ("soil_moisture",)
    description = ("soil moisture (% VWC) from two buried antennas: chirp ratio -> complex "
                   "permittivity -> Topp, per-site calibration")

    params: SoilParams

    def __init__(self, params: SoilParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self._setup: SoilSetup | None = None
        self._acc: RatioAccumulator | None = None
        self._quiet: str | None = "no samples"
        self._checked = False
        self._window_start = 0.0
        self._freq = DEFAULT_FREQ_HZ
        self._emitted = 0
        self._source = ""
        self._rx: ReceiverParams | None = None

    # ------------------------------------------------------------------ set-up
    def _check(self, frames: Frames) -> None:
        self._checked = True
        self._source = frames.source
        meta = frames.meta or {}
        soil = meta.get("soil")
        if soil is None:
            self._quiet = "not a soil recording (no ambisense:soil)"
            return
        try:
            self._setup = soil_setup(soil)
        except ValueError as exc:
            self._quiet = str(exc)
            return
        if frames.data.ndim != 2 or frames.data.shape[1] < 2:
            self._quiet = "soil sensing needs two channels (antennas at d0 and d1)"
            self._setup = None
            return
        lora = meta.get("lora") or {}
        sf = self.params.sf or lora.get("sf")
        bw = self.params.bw_hz or lora.get("bw_hz")
        if not sf or not bw or not frames.fs_hz:
            self._quiet = "no LoRa sf/bw_hz (ambisense:lora) or sample rate"
            self._setup = None
            return
        self._freq = float(meta.get("center_hz") or self.params.freq_hz or DEFAULT_FREQ_HZ)
        self._rx = (ReceiverParams(sf=self.params.sf, bw_hz=self.params.bw_hz)
                    if whole_oversampling(frames.fs_hz, bw) else None)
        try:
            self._acc = RatioAccumulator(int(sf), float(bw), float(frames.fs_hz),
                                         min_peak_db=self.params.min_peak_db,
                                         extractor=self._rx is None)
        except ValueError as exc:  # sample rate below the LoRa bandwidth
            self._quiet = str(exc)
            self._setup = None
            return
        self._quiet = None
        self._window_start = frames.start_s

    # ------------------------------------------------------------------ calibration
    def _store(self) -> dict[str, Any]:
        ctx = getattr(self, "run_context", None)
        if not isinstance(ctx, dict):
            return {}
        return ctx.setdefault(NAME, {"references": {}, "sites": {}})

    def _calibration(self, site: str) -> SiteCalibration | None:
        cal = self._store().get("sites", {}).get(site)
        if cal is not None:
            return cal
        cfg = self.params.calibration.get(site)
        return _from_config(cfg) if cfg is not None else None

    # ------------------------------------------------------------------ stream
    def push(self, frames: Frames) -> list[Detection]:
        if not self._checked and len(frames):
            self._check(frames)
        if self._acc is None or not len(frames):
            return []
        if self._rx is None:
            self._acc.push(frames)
        else:
            self._acc.push(frames, frame_chirps(shared_receiver(self, frames, self._rx),
                                                self.params.min_peak_db))
        out: list[Detection] = []
        ref = self._setup is not None and self._setup.reference_vwc is not None
        if not ref and frames.end_s - self._window_start >= self.params.window_s:
            det = self._reading()
            self._window_start = frames.end_s
            if det is not None:
                out.append(det)
        return out

    def flush(self) -> list[Detection]:
        if self._acc is None:
            return []
        if self._rx is not None:
            self._acc.push(None, frame_chirps(shared_receiver_flush(self, self._rx),
                                              self.params.min_peak_db))
        det = self._reading(final=True)
        return [det] if det is not None else []

    def _reading(self, final: bool = False) -> Detection | None:
        assert self._acc is not None and self._setup is not None
        end_s = self._acc.end_s
        ratio, spread, n, peak_db = self._acc.take()
        if n < self.params.min_chirps:
            if not self._emitted and final:
                self._quiet = (f"{n} chirps in the reading, fewer than min_chirps "
                               f"{self.params.min_chirps}")
            return None
        setup, store = self._setup, self._store()
        spacing = setup.spacing_m
        extra: dict[str, Any] = {"site": setup.site}
        if setup.reference_vwc is not None:
            refs = store.get("references", {}).setdefault(setup.site, []) if store else []
            refs.append((ratio, setup.reference_vwc, self._source))
            cal = calibrate_site(refs, spacing, self._freq)
            if store:
                store["sites"][setup.site] = cal
            extra["reference_vwc"] = setup.reference_vwc
            extra["calibration"] = cal.as_dict()
        else:
            cal = self._calibration(setup.site)
        corrected = cal.correct_ratio(ratio) if cal is not None else ratio
        est = permittivity_from_ratio(corrected, spacing, self._freq,
                                      ka_range=(self.params.ka_min, self.params.ka_max),
                                      loss_tangent=cal.loss_tangent if cal is not None else None)
        vwc = est.vwc_pct
        if cal is not None:
            vwc = cal.correct_vwc(vwc)
        # confidence: phase spread of the chirps (noise) and an ambiguous wrap lower it
        conf = math.exp(-spread / 0.05) * (0.5 if est.ambiguous else 1.0)
        if est.choice == "nearest_window":
            conf *= 0.2
        extra.update({
            "permittivity": [round(est.eps_real, 3), round(est.eps_imag, 3)],
            "apparent_permittivity": round(est.ka, 3),
            "calibrated": cal is not None,
            "chirps": n,
            "phase_spread_rad": round(spread, 5),
            "chirp_peak_db": round(peak_db, 1),
            "wrap_choice": est.choice,
            "depths_m": list(setup.depths_m),
        })
        self._emitted += 1
        return Detection("soil_moisture", round(end_s, 3), round(float(vwc), 2), "%",
                         round(float(min(max(conf, 0.0), 1.0)), 3), extra)

    def quiet_reason(self) -> str | None:
        return None if self._emitted else self._quiet
