"""``ambisense simulate lora-packets``: LoRa frames in noise as a SigMF IQ recording.

Each frame is evaluated in continuous time (:func:`sensing.lora.modem.frame_at_times`) at
the receiver's sample times, with the transmitter's crystal ``ppm`` fast: carrier offset
``ppm · centre frequency`` and the same sampling clock offset, a random start time
(fractional timing offset), a random carrier phase per frame and channel, and complex white
Gaussian noise at the given in-band SNR (noise power measured in the LoRa bandwidth), from
the shared radio impairments (:mod:`sensing.simulate.radio`). Ground truth (payloads, start
times, offsets) goes to ``OUT.truth.json``.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np

from sensing.params import Params, param
from sensing.simulate import radio, simulator, write_truth

__all__ = ["LoraPacketsParams", "simulate_lora_packets", "packets_iq"]


class LoraPacketsParams(Params):
    """Options of the ``lora-packets`` simulator."""

    seed: int = param(0, ge=0, doc="random seed")
    sf: int = param(7, ge=7, le=12, doc="spreading factor")
    bw_hz: Literal[125000, 250000, 500000] = param(125000, unit="Hz", doc="LoRa bandwidth")
    cr: int = param(1, ge=1, le=4, doc="coding rate 4/(4+cr)")
    fs_hz: float = param(500000.0, unit="Hz", gt=0, doc="sample rate (a multiple of bw_hz)")
    channels: int = param(1, ge=1, le=2, doc="receive channels (antennas of one receiver)")
    n_packets: int = param(4, ge=1, le=1000, doc="frames")
    payload_len: int = param(16, ge=1, le=255, unit="B", doc="random payload length")
    payload_hex: str = param("", doc="fixed payload for every frame (hex); empty: random")
    snr_db: float = param(10.0, unit="dB", ge=-40, le=60, doc="in-band SNR per channel")
    ppm: float = param(10.0, unit="ppm", ge=-100, le=100,
                       doc="transmitter crystal offset: carrier offset ppm·centre "
                           "frequency and the same sampling clock offset")
    extra_cfo_hz: float = param(0.0, unit="Hz", ge=-250_000, le=250_000, doc="further carrier offset (not from the "
                                                     "crystal)")
    center_hz: float = param(868.1e6, unit="Hz", gt=0, doc="carrier frequency")
    gap_s: float = param(0.05, unit="s", ge=0, doc="mean silence between frames")
    sync_word: int = param(0x12, ge=0, le=255, doc="sync word")
    preamble_len: int = param(8, ge=6, le=64, doc="preamble up-chirps")
    has_crc: bool = param(True, doc="payload CRC")
    datatype: Literal["cf32_le", "ci16_le", "cu8"] = param("cf32_le",
                                                           doc="SigMF sample type")
    scale: float = param(0.25, gt=0, le=1, doc="signal amplitude (full scale 1; integer "
                                                "types clip beyond)")
    container: Literal["sigmf", "cf32"] = param(
        "sigmf", doc="sigmf: OUT.sigmf-meta + OUT.sigmf-data; cf32: raw complex64 at OUT "
                     "(read with --format lora_raw or a .cf32 name with fsNNNk)")


def packets_iq(p: LoraPacketsParams, rng: np.random.Generator
               ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """IQ ``(n, channels)`` complex64 and the truth of each frame."""
    from sensing.lora import modem

    n_chips = 1 << p.sf
    ldro = n_chips / p.bw_hz > 0.016
    payloads = []
    for _ in range(p.n_packets):
        if p.payload_hex:
            payloads.append(bytes.fromhex(p.payload_hex))
        else:
            payloads.append(rng.integers(0, 256, p.payload_len, dtype=np.uint8).tobytes())
    seqs = [modem.frame_symbols(pl, p.sf, p.cr, sync_word=p.sync_word,
                                preamble_len=p.preamble_len, has_crc=p.has_crc, ldro=ldro)
            for pl in payloads]
    lengths = [(len(v) - 0.75) * n_chips / p.bw_hz for v, _ in seqs]  # s
    gaps = rng.exponential(max(p.gap_s, 1e-6), p.n_packets + 1) + 4 * n_chips / p.bw_hz
    starts = np.cumsum(np.concatenate([[gaps[0]], np.asarray(lengths[:-1]) + gaps[1:-1]]))
    total_s = starts[-1] + lengths[-1] + gaps[-1]
    n = int(np.ceil(total_s * p.fs_hz))
    t = np.arange(n) / p.fs_hz
    cfo_hz = p.ppm * 1e-6 * p.center_hz + p.extra_cfo_hz
    sig = np.zeros((n, p.channels), np.complex128)
    truth = []
    for (values, kinds), pl, t0, dur in zip(seqs, payloads, starts, lengths, strict=True):
        i0, i1 = int(np.floor(t0 * p.fs_hz)), int(np.ceil((t0 + dur) * p.fs_hz)) + 1
        i1 = min(i1, n)
        tt = t[i0:i1]
        chips = (tt - t0) * p.bw_hz * (1 + p.ppm * 1e-6)
        wave = modem.frame_at_times(chips, values, kinds, p.sf)
        wave = radio.cfo_rotate(wave, tt, cfo_hz)
        phases = radio.common_phase(rng, p.channels)
        sig[i0:i1] += wave[:, None] * np.exp(1j * phases)[None, :]
        truth.append({"start_s": float(t0), "end_s": float(t0 + dur), "payload_hex": pl.hex(),
                      "cfo_hz": cfo_hz, "sco_ppm": p.ppm})
    # in-band SNR: the noise power within bw is sd² · 2 · bw / fs
    sd = radio.noise_sd(p.snr_db, power=1.0) * np.sqrt(p.fs_hz / p.bw_hz)
    sig += radio.awgn(rng, sig.shape, sd)
    return (sig * p.scale).astype(np.complex64), truth


@simulator("lora-packets", LoraPacketsParams)
def simulate_lora_packets(out: str | os.PathLike, params: LoraPacketsParams | None = None,
                          **options: Any) -> dict[str, Any]:
    """LoRa frames with random (or given) payloads in noise, as a SigMF recording.

    Parameters
    ----------
    out : path-like
        Recording base path (``OUT.sigmf-meta`` / ``OUT.sigmf-data``; a ``.sigmf-meta``
        ending is kept as the meta file).
    params : LoraPacketsParams, optional
        The options, with ``options`` applied (every field documented there).

    Returns
    -------
    dict
        The ground truth written beside the recording: ``packets`` (``start_s``,
        ``end_s``, ``payload_hex``, ``cfo_hz``, ``sco_ppm``) and the options.
    """
    from sensing.lora.formats.sigmf_iq import write_sigmf_iq
    from sensing.lora.params import LoraParams

    p = LoraPacketsParams.build(params, options, where="lora-packets")
    ratio = p.fs_hz / p.bw_hz
    if abs(ratio - round(ratio)) > 1e-9:
        raise ValueError(f"fs_hz {p.fs_hz:g} must be a whole multiple of bw_hz {p.bw_hz}")
    rng = np.random.default_rng(p.seed)
    iq, packets = packets_iq(p, rng)
    lora = LoraParams(sf=p.sf, bw_hz=p.bw_hz, sync_word=p.sync_word,
                      preamble_len=p.preamble_len, cr=p.cr, has_crc=p.has_crc)
    ann = [{"core:sample_start": int(round(pk["start_s"] * p.fs_hz)),
            "core:sample_count": int(round((pk["end_s"] - pk["start_s"]) * p.fs_hz)),
            "core:label": "lora", "ambisense:payload_hex": pk["payload_hex"]}
           for pk in packets]
    if p.container == "cf32":
        from sensing.lora.formats.raw_iq import write_raw_iq

        meta_path = write_raw_iq(out, iq)
    else:
        meta_path, _ = write_sigmf_iq(out, iq, p.fs_hz, center_hz=p.center_hz,
                                      datatype=p.datatype,
                                      lora=lora.model_dump(exclude_none=True), annotations=ann)
    truth = {"simulator": "lora-packets", "options": p.model_dump(), "packets": packets,
             "duration_s": len(iq) / p.fs_hz}
    write_truth(meta_path, truth)
    return truth
