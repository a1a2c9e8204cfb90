"""``eeg-seizure``: multichannel EEG in EDF+ with seizures, artefacts and a truth sidecar.

Background: per electrode, 1/f ("pink") noise plus a posterior alpha rhythm, with a component
shared between neighbouring electrodes, 10–40 µV. Derivations (bipolar or referential) are
computed from the electrodes, so bipolar channels behave like real ones (a shared signal cancels,
an electrode artefact appears in both derivations that use the electrode).

Seizures: rhythmic spike-and-wave discharges that start focally (one hemisphere), spread,
evolve from 6–8 Hz down to about 3 Hz and grow to a few hundred µV, then stop.

Artefacts (placed away from seizures; each written to the truth and as an EDF+ annotation):
eye blinks (frontal), EMG bursts (temporal, broadband 20–100 Hz), chewing (EMG bursts at
about 1.3 Hz), electrode pops (step + exponential decay on one electrode), movement (large slow
swings on all channels), a flat (disconnected) electrode, amplifier clipping, and 50 Hz mains
hum throughout.

The file is written in 10-s blocks by :class:`~sensing.formats.edf.writer.EdfWriter`: memory does
not grow with ``duration_s`` (used to write the 24-hour benchmark file).
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np

from sensing.formats.edf.montage import DOUBLE_BANANA, NEONATAL_BIPOLAR
from sensing.formats.edf.writer import EdfWriter
from sensing.params import Params, param
from sensing.simulate import simulator, write_truth

#: 10-20 electrodes simulated (10-10 names) and their hemisphere (-1 left, 0 mid, 1 right).
ELECTRODES: dict[str, int] = {
    "FP1": -1, "FP2": 1, "F7": -1, "F3": -1, "FZ": 0, "F4": 1, "F8": 1, "T7": -1, "C3": -1,
    "CZ": 0, "C4": 1, "T8": 1, "P7": -1, "P3": -1, "PZ": 0, "P4": 1, "P8": 1, "O1": -1, "O2": 1,
    "FT9": -1, "FT10": 1,
}

#: CHB-MIT channel list (23 bipolar derivations, ``T8-P8`` recorded twice, as in the real files).
#: Approximate scalp positions (x: left → right, y: back → front), head radius ≈ 1.
POSITIONS: dict[str, tuple[float, float]] = {
    "FP1": (-0.3, 1.0), "FP2": (0.3, 1.0), "F7": (-0.8, 0.6), "F3": (-0.4, 0.5), "FZ": (0.0, 0.5),
    "F4": (0.4, 0.5), "F8": (0.8, 0.6), "T7": (-1.0, 0.0), "C3": (-0.5, 0.0), "CZ": (0.0, 0.0),
    "C4": (0.5, 0.0), "T8": (1.0, 0.0), "P7": (-0.8, -0.6), "P3": (-0.4, -0.5), "PZ": (0.0, -0.5),
    "P4": (0.4, -0.5), "P8": (0.8, -0.6), "O1": (-0.3, -1.0), "O2": (0.3, -1.0),
    "FT9": (-1.05, 0.3), "FT10": (1.05, 0.3),
}

CHBMIT_PAIRS: tuple[tuple[str, str], ...] = (*DOUBLE_BANANA[:16], ("FZ", "CZ"), ("CZ", "PZ"),
                                             ("P7", "T7"), ("T7", "FT9"), ("FT9", "FT10"),
                                             ("FT10", "T8"), ("T8", "P8"))

ARTEFACT_KINDS = ("blink", "emg", "chewing", "pop", "movement", "flat", "clipping")

BLOCK_S = 10.0


def _layout(layout: str) -> tuple[list[str], np.ndarray]:
    """Channel labels and the (n_channels, n_electrodes) derivation matrix."""
    el = list(ELECTRODES)
    if layout == "referential":
        names = [e for e in el if e not in ("FT9", "FT10")]
        m = np.zeros((len(names), len(el)))
        for i, e in enumerate(names):
            m[i, el.index(e)] = 1.0
        return [f"EEG {e.capitalize()}-REF" for e in names], m
    pairs = {"chbmit": CHBMIT_PAIRS, "neonatal": NEONATAL_BIPOLAR,
             "double_banana": DOUBLE_BANANA}.get(layout)
    if pairs is None:
        raise ValueError(f"layout must be chbmit, double_banana, neonatal or referential, "
                         f"got {layout!r}")
    m = np.zeros((len(pairs), len(el)))
    for i, (a, b) in enumerate(pairs):
        m[i, el.index(a)], m[i, el.index(b)] = 1.0, -1.0
    return [f"{a}-{b}" for a, b in pairs], m


def _schedule(rng: np.random.Generator, duration_s: float, n_seizures: int,
              n_artefacts: int) -> tuple[list[dict], list[dict]]:
    """Non-overlapping seizure and artefact intervals (≥ 60 s between any seizure and others)."""
    taken: list[tuple[float, float]] = []

    def free(a: float, b: float, margin: float) -> bool:
        return all(b + margin <= x or a - margin >= y for x, y in taken)

    seizures = []
    for _ in range(n_seizures):
        for _try in range(200):
            dur = float(rng.uniform(25.0, 70.0))
            a = float(rng.uniform(20.0, max(21.0, duration_s - dur - 20.0)))
            if free(a, a + dur, 90.0):
                focus = str(rng.choice(["T7", "T8", "F7", "F8", "C3", "C4", "P7", "P8"]))
                seizures.append({"onset_s": round(a, 3), "duration_s": round(dur, 3),
                                 "focus": focus})
                taken.append((a, a + dur))
                break
    artefacts = []
    kinds = [ARTEFACT_KINDS[i % len(ARTEFACT_KINDS)] for i in range(n_artefacts)]
    for kind in kinds:
        for _try in range(200):
            dur = {"blink": 0.4, "pop": 1.5, "flat": 15.0, "clipping": 6.0}.get(
                kind, float(rng.uniform(4.0, 12.0)))
            a = float(rng.uniform(5.0, max(6.0, duration_s - dur - 5.0)))
            if free(a, a + dur, 10.0):
                elec = str(rng.choice(list(ELECTRODES)))
                artefacts.append({"kind": kind, "onset_s": round(a, 3),
                                  "duration_s": round(dur, 3), "electrode": elec})
                taken.append((a, a + dur))
                break
    seizures.sort(key=lambda s: s["onset_s"])
    artefacts.sort(key=lambda s: s["onset_s"])
    return seizures, artefacts


class _Background:
    """Streaming pink noise + alpha per electrode (filter state carried across blocks)."""

    def __init__(self, rng: np.random.Generator, fs: float, n_el: int) -> None:
        from scipy import signal  # here, not at import: `ambisense simulate --help` stays fast

        self.rng = rng
        # 1/f approximation: cascade of first-order low-passes (Kellet-style), as SOS
        b, a = [0.049922035, -0.095993537, 0.050612699, -0.004408786], \
            [1, -2.494956002, 2.017265875, -0.522189400]
        self.sos = signal.tf2sos(b, a)
        self.zi = np.zeros((self.sos.shape[0], 2, n_el))
        self.alpha_sos = signal.butter(2, [8.5, 11.5], btype="bandpass", fs=fs, output="sos")
        self.alpha_zi = np.zeros((self.alpha_sos.shape[0], 2, n_el))
        self.hp = signal.butter(1, 0.3, btype="highpass", fs=fs, output="sos")
        self.hp_zi = np.zeros((self.hp.shape[0], 2, n_el))
        post = np.array([1.0 if e in ("O1", "O2", "P3", "P4", "PZ", "P7", "P8") else 0.3
                         for e in ELECTRODES])
        self.alpha_gain = post
        self.n_el = n_el

    def block(self, n: int) -> np.ndarray:
        w = self.rng.standard_normal((n, self.n_el))
        shared = self.rng.standard_normal((n, 1))
        w = 0.7 * w + 0.7 * shared
        from scipy import signal

        pink, self.zi = signal.sosfilt(self.sos, w, axis=0, zi=self.zi)
        pink, self.hp_zi = signal.sosfilt(self.hp, pink, axis=0, zi=self.hp_zi)
        alpha, self.alpha_zi = signal.sosfilt(self.alpha_sos, self.rng.standard_normal(
            (n, self.n_el)), axis=0, zi=self.alpha_zi)
        return 60.0 * pink + 25.0 * alpha * self.alpha_gain


def _seizure_wave(t: np.ndarray, dur: float, rng_phase: float) -> tuple[np.ndarray, np.ndarray]:
    """Spike-and-wave discharge at relative time ``t`` (s) of a seizure lasting ``dur`` s.

    Returns the waveform (unit amplitude) and the envelope (0–1).
    """
    # instantaneous frequency 7 Hz → 3 Hz (linear chirp): phase = 2π(7 t − 2 t² / dur)
    phase = 2 * np.pi * (7.0 * t - 2.0 * np.clip(t, 0, dur) ** 2 / dur) + rng_phase
    # spike-and-wave: sharp negative spike + slow wave (harmonics)
    wave = -(np.sin(phase) + 0.5 * np.sin(2 * phase + 0.6) + 0.25 * np.sin(3 * phase + 1.2))
    env = np.minimum(1.0, t / 4.0) * np.minimum(1.0, (dur - t) / 3.0)
    return wave, np.clip(env, 0, 1)


class EegSeizureParams(Params):
    """Options of ``ambisense simulate eeg-seizure`` (:func:`simulate_eeg_seizure`)."""

    seed: int = param(0, ge=0, doc="random seed; the same options and seed give "
                                    "byte-identical files")
    duration_s: float = param(600.0, unit="s", gt=0,
                              doc="recording length (written in 10-s blocks: any length, "
                                  "bounded memory)")
    fs_hz: float = param(256.0, unit="Hz", ge=64, le=8192, doc="sampling rate")
    layout: Literal["chbmit", "double_banana", "neonatal", "referential"] = param(
        "chbmit", doc="channels: chbmit (23 bipolar, T8-P8 twice), double_banana (18 "
                      "bipolar), neonatal (12 bipolar), referential (19 EEG Xx-REF)")
    n_seizures: int = param(2, ge=0, le=1000, doc="number of seizures")
    n_artefacts: int = param(7, ge=0, le=10000,
                             doc="number of artefact episodes (kinds cycle through blink, "
                                 "EMG, chewing, pop, movement, flat electrode, clipping)")
    seizure_uv: float = param(300.0, unit="µV", ge=0, le=3000,
                              doc="peak amplitude of the discharge at the focus")
    mains_uv: float = param(20.0, unit="µV", ge=0, le=3000,
                            doc="mains hum amplitude on every electrode")
    mains_hz: float = param(50.0, unit="Hz", gt=0, le=1000, doc="mains hum frequency")


@simulator("eeg-seizure", EegSeizureParams)
def simulate_eeg_seizure(out: str | os.PathLike, params: EegSeizureParams | None = None,
                         **options: Any) -> dict[str, Any]:
    """Multichannel scalp EEG (EDF+) with seizures and artefacts, plus ground truth.

    Parameters
    ----------
    out : path-like
        EDF file to write.
    params : EegSeizureParams, optional
        The options (default: the defaults), with ``options`` applied.
    **options
        Fields of :class:`EegSeizureParams` (``seed``, ``duration_s``, ``fs_hz``,
        ``layout``, ``n_seizures``, ``n_artefacts``, ``seizure_uv``, ``mains_uv``,
        ``mains_hz``), each documented there with unit and range.

    Raises
    ------
    OptionError
        An unknown option or a value out of range.
    """
    from scipy import signal

    p = EegSeizureParams.build(params, options, where="eeg-seizure")
    seed, duration_s, fs_hz, layout = p.seed, p.duration_s, p.fs_hz, p.layout
    n_seizures, n_artefacts, seizure_uv = p.n_seizures, p.n_artefacts, p.seizure_uv
    mains_uv, mains_hz = p.mains_uv, p.mains_hz
    rng = np.random.default_rng(seed)
    names, deriv = _layout(layout)
    el = list(ELECTRODES)
    n_el = len(el)
    seizures, artefacts = _schedule(rng, duration_s, n_seizures, n_artefacts)
    bg = _Background(rng, fs_hz, n_el)
    phases = {i: float(rng.uniform(0, 2 * np.pi)) for i in range(len(seizures))}
    mains_phase = rng.uniform(0, 2 * np.pi, n_el)
    clip_uv = 800.0
    n_total = int(round(duration_s * fs_hz))
    block = int(round(BLOCK_S * fs_hz))
    with EdfWriter(out, names, fs_hz, record_s=1.0, annotation_bytes=120,
                   phys_range_uv=(-3276.8, 3276.7)) as w:
        for s in seizures:
            w.annotate(s["onset_s"], s["duration_s"], "seizure")
        for a in artefacts:
            w.annotate(a["onset_s"], a["duration_s"], f"artefact {a['kind']}")
        for start in range(0, n_total, block):
            n = min(block, n_total - start)
            t = (start + np.arange(n)) / fs_hz
            x = bg.block(n)
            x += mains_uv * np.sin(2 * np.pi * mains_hz * t[:, None] + mains_phase[None, :])
            t0, t1 = t[0], t[-1]
            for i, s in enumerate(seizures):
                a, d = s["onset_s"], s["duration_s"]
                if t1 < a or t0 > a + d:
                    continue
                m = (t >= a) & (t <= a + d)
                if not m.any():
                    continue
                # field centred on a focus electrode, widening as the seizure spreads; the
                # discharge reaches far electrodes later (propagation), so bipolar
                # derivations see amplitude gradients and phase differences
                focus = np.array(POSITIONS[s["focus"]])
                dist = np.array([np.hypot(*(np.array(POSITIONS[e]) - focus)) for e in el])
                tt = t[m] - a
                width = 0.45 + 0.55 * np.clip((tt - 5.0) / 15.0, 0, 1)
                gain = np.exp(-(dist[None, :] ** 2) / (2 * width[:, None] ** 2))
                for j in range(n_el):
                    wave, env = _seizure_wave(tt - 0.06 * dist[j], d, phases[i])
                    x[m, j] += seizure_uv * wave * env * gain[:, j]
            for art in artefacts:
                a, d = art["onset_s"], art["duration_s"]
                if t1 < a or t0 > a + d:
                    continue
                m = (t >= a) & (t <= a + d)
                if not m.any():
                    continue
                tt = t[m] - a
                k = el.index(art["electrode"])
                kind = art["kind"]
                if kind == "blink":
                    shape = 250.0 * np.sin(np.pi * np.clip(tt / d, 0, 1)) ** 2
                    for e, g in (("FP1", 1.0), ("FP2", 1.0), ("F3", 0.3), ("F4", 0.3),
                                 ("F7", 0.4), ("F8", 0.4)):
                        x[m, el.index(e)] += g * shape
                elif kind == "emg":
                    burst = rng.standard_normal((m.sum(), n_el))
                    burst = signal.sosfilt(signal.butter(4, [20, min(100, 0.45 * fs_hz)],
                                           "bandpass", fs=fs_hz, output="sos"), burst, axis=0)
                    tg = np.array([1.0 if e in ("T7", "T8", "F7", "F8", "FT9", "FT10", "P7",
                                                "P8") else 0.2 for e in el])
                    x[m] += 60.0 * burst * tg[None, :]
                elif kind == "chewing":
                    burst = rng.standard_normal((m.sum(), n_el))
                    burst = signal.sosfilt(signal.butter(4, [25, min(100, 0.45 * fs_hz)],
                                           "bandpass", fs=fs_hz, output="sos"), burst, axis=0)
                    gate = (np.sin(2 * np.pi * 1.3 * tt) > 0.3).astype(float)
                    tg = np.array([1.0 if e in ("T7", "T8", "F7", "F8", "FT9", "FT10") else 0.15
                                   for e in el])
                    x[m] += 80.0 * (burst * gate[:, None]) * tg[None, :]
                elif kind == "pop":
                    x[m, k] += 400.0 * np.exp(-tt / 0.25) * (tt >= 0)
                elif kind == "movement":
                    sway = 400.0 * np.sin(2 * np.pi * 0.4 * tt) * np.sin(np.pi * tt / d)
                    x[m] += sway[:, None] * (0.6 + 0.4 * rng.random(n_el))[None, :]
                elif kind == "flat":
                    x[m, k] = 0.0
                    # a disconnected electrode leaves its derivations = minus the partner
                elif kind == "clipping":
                    pass  # applied after the derivation (amplifier saturation)
            y = x @ deriv.T
            for art in artefacts:
                if art["kind"] != "clipping":
                    continue
                a, d = art["onset_s"], art["duration_s"]
                m = (t >= a) & (t <= a + d)
                if m.any():
                    y[m] = np.clip(y[m] + 900.0 * np.sin(2 * np.pi * 0.5 * (t[m] - a))[:, None],
                                   -clip_uv, clip_uv)
            w.write(y)
    base = os.path.basename(os.fspath(out))
    truth = {
        "capture": base,
        "simulator": "eeg-seizure",
        "seed": seed,
        "duration_s": duration_s,
        "fs_hz": fs_hz,
        "layout": layout,
        "channels": names,
        "n_seizures": len(seizures),
        "n_artefacts": len(artefacts),
        "seizures": seizures,
        "artefacts": artefacts,
        "mains_hz": mains_hz,
        "mains_uv": mains_uv,
    }
    write_truth(out, truth)
    return truth
