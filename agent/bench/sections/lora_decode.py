"""LoRa decoding, ours vs softlora: frames decoded near the demodulation limit and CPU
seconds per capture second, on the same simulated samples."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from agent.bench.base import Result, Skip, section
from agent.bench.util import median, repeats

#: In-band SNR (dB) at which each spreading factor is near its demodulation limit.
LIMITS = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0}


def simulate_pair(folder: Path, sf: int, snr_db: float, packets: int, seed: int
                  ) -> tuple[Path, Path, dict[str, Any]]:
    """A ``lora-packets`` SigMF recording (500 kS/s cf32, 125 kHz, CR 4/5, 16-byte
    payloads, 10 ppm crystal) and a raw ``.cf32`` link to the same samples for softlora."""
    from sensing.simulate import SIMULATORS

    base = folder / f"sf{sf}_snr{snr_db:+.1f}"
    truth = SIMULATORS.get("lora-packets")(
        base, sf=sf, snr_db=snr_db, n_packets=packets, payload_len=16, cr=1, fs_hz=500e3,
        ppm=10.0, seed=seed, gap_s=0.02, datatype="cf32_le")
    raw = folder / f"sf{sf}_snr{snr_db:+.1f}.cf32"
    if raw.exists():
        raw.unlink()
    os.symlink(f"{base}.sigmf-data", raw)
    return Path(f"{base}.sigmf-meta"), raw, truth


def decode_ours(meta: Path) -> tuple[set[str], float]:
    """CRC-valid payloads (hex) from our streaming receiver, and its CPU seconds."""
    from sensing.formats import open_capture
    from sensing.lora.receiver import LoraReceiver

    t0 = time.process_time()
    rx = LoraReceiver()
    found = []
    for fr in open_capture(meta):
        found += rx.push(fr)
    found += rx.flush()
    return {f.payload.hex() for f in found if f.crc_ok}, time.process_time() - t0


def decode_softlora(raw: Path, sf: int, mode: str = "hard") -> tuple[set[str], float]:
    """CRC-valid payloads from ``softlora.LoRaDecoder.decode_file`` (its defaults, ``mode``
    decoding: ``"hard"`` or ``"chase"``), and its CPU seconds."""
    import softlora

    logging.getLogger("softlora").setLevel(logging.CRITICAL)
    dec = softlora.LoRaDecoder(sf, 125000, 500000, 868.1e6,
                               settings=softlora.DecoderSettings(decode_mode=mode))
    t0 = time.process_time()
    pk = dec.decode_file(str(raw))
    return {bytes(p.payload_bytes).hex() for p in pk if p.crc_valid}, time.process_time() - t0


@section("lora_decode", "LoRa decoding (vs softlora)",
         "For each spreading factor (125 kHz, 500 kS/s, CR 4/5, 16-byte payloads, explicit "
         "header and CRC, a 10 ppm crystal: 8.7 kHz carrier offset at 868.1 MHz), the "
         "`lora-packets` simulator writes recordings at in-band SNRs around the SF's limit; "
         "the same samples are decoded by our streaming receiver (through the SigMF reader) "
         "and by softlora (`LoRaDecoder.decode_file`, hard decoding, its defaults). "
         "`decoded` counts frames with a valid CRC and a payload the simulator sent; "
         "`CPU s per capture s` is the median process CPU time over the recording's length (lower is "
         "faster; `ours / softlora` < 1 means ours is faster). The full write-up with the "
         "soft (Chase) decoder is `benchmarks/bench_lora.py`.", order=20)
def bench_lora_decode(quick: bool) -> Result:
    try:
        from sensing.lora.receiver import LoraReceiver  # noqa: F401
        from sensing.simulate import SIMULATORS
    except ImportError as exc:
        raise Skip(f"no LoRa receiver in this installation ({exc})") from None
    if "lora-packets" not in SIMULATORS:
        raise Skip("the lora-packets simulator is not registered")
    try:
        import softlora  # noqa: F401
    except ImportError as exc:
        raise Skip(f"softlora is not installed (`pip install ambisense[bench]`): {exc}") from None
    plan = ([(7, 0.0), (7, 1.0), (8, 0.0)] if quick
            else [(sf, off) for sf in LIMITS for off in (-2.0, -1.0, 0.0, 1.0)])
    packets = 6 if quick else 20
    rows = []
    with tempfile.TemporaryDirectory(prefix="ambisense-bench-") as td:
        for sf, off in plan:
            snr = LIMITS[sf] + off
            meta, raw, truth = simulate_pair(Path(td), sf, snr, packets,
                                             seed=100 * sf + int(off * 10))
            sent = {p["payload_hex"] for p in truth["packets"]}
            dur = float(truth["duration_s"])
            if not rows:  # warm-up: imports, FFT plans, first-call costs
                decode_ours(meta)
                decode_softlora(raw, sf)
            cpus, scpus = [], []
            for _ in range(repeats(quick, full=5, fast=3)):
                got, cpu = decode_ours(meta)
                sgot, scpu = decode_softlora(raw, sf)
                cpus.append(cpu)
                scpus.append(scpu)
            cpu, scpu = median(cpus), median(scpus)
            rows.append({"SF": sf, "SNR dB": snr, "sent": len(sent), "capture s": dur,
                         "ours decoded": len(got & sent), "ours false": len(got - sent),
                         "softlora decoded": len(sgot & sent),
                         "softlora false": len(sgot - sent),
                         "ours CPU s per capture s": cpu / dur,
                         "softlora CPU s per capture s": scpu / dur,
                         "ours / softlora (CPU)": cpu / scpu if scpu > 0 else None})
            for p in Path(td).iterdir():
                p.unlink()
    ours = sum(r["ours decoded"] for r in rows)
    theirs = sum(r["softlora decoded"] for r in rows)
    sent_all = sum(r["sent"] for r in rows)
    return Result(rows, [f"decoded in all: ours {ours}/{sent_all}, softlora {theirs}/{sent_all}"])
