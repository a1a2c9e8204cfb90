"""LoRa receiver: frames decoded near each SF's demodulation limit, ours vs softlora, and
replay speed of 2-channel 500 kS/s recordings.

Usage (from the repository root)::

    python benchmarks/bench_lora.py                    # both parts, ~5 min on one core
    python benchmarks/bench_lora.py --part limit --packets 20
    python benchmarks/bench_lora.py --part speed --seconds 30
    python benchmarks/bench_lora.py --json out.json --plot docs/img/lora_limit.png

**Limit.** For SF7…SF10 (125 kHz, 500 kS/s, CR 4/5, 16-byte payloads, explicit header,
CRC) the ``lora-packets`` simulator writes one recording per in-band SNR around the SF's
limit (SF7 −7.5 dB … SF10 −15 dB, ±1 and −2 dB), with a 10 ppm transmitter crystal
(8.7 kHz carrier offset at 868.1 MHz and the same sampling clock offset) and a random
start and phase per frame. The same file is decoded by ``ambisense``'s receiver (through
the SigMF reader, streaming) and by softlora 0.5 (``LoRaDecoder.decode_file`` on the same
samples as a raw ``.cf32`` file, its default settings: Xhonneux sync, hard decoding, SFO
sweep; and its Chase soft decoder). A frame counts when its CRC is valid and its payload is
one the simulator sent. Speed is process CPU seconds per second of capture.

**Speed.** A 2-channel 500 kS/s ``ci16_le`` SigMF recording (SF7 frames every ~0.5 s at
0 dB, noise between) is replayed with ``agent.runner.replay_capture`` (the path
of ``ambisense replay``): the ``lora_packet`` pipeline alone, and every default pipeline
for ``lora_iq``. Target: ≥ 20× real time (capture seconds per CPU second).
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from agent.bench.sections.lora_decode import (  # noqa: E402
    LIMITS,
    decode_ours,
    decode_softlora,
    simulate_pair,
)

OFFSETS = (-2.0, -1.0, 0.0, 1.0)


def limit_part(folder: Path, packets: int, sfs: list[int], chase: bool) -> list[dict]:
    rows = []
    for sf in sfs:
        for off in OFFSETS:
            snr = LIMITS[sf] + off
            meta, raw, truth = simulate_pair(folder, sf, snr, packets,
                                             seed=100 * sf + int(off * 10))
            sent = {p["payload_hex"] for p in truth["packets"]}
            dur = truth["duration_s"]
            row = {"sf": sf, "snr_db": snr, "sent": packets, "capture_s": round(dur, 3)}
            got, cpu = decode_ours(meta)
            row["ours"] = len(got & sent)
            row["ours_false"] = len(got - sent)
            row["ours_cpu_per_s"] = round(cpu / dur, 4)
            got, cpu = decode_softlora(raw, sf, "hard")
            row["softlora"] = len(got & sent)
            row["softlora_cpu_per_s"] = round(cpu / dur, 4)
            if chase:
                got, cpu = decode_softlora(raw, sf, "chase")
                row["softlora_chase"] = len(got & sent)
                row["softlora_chase_cpu_per_s"] = round(cpu / dur, 4)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def speed_part(folder: Path, seconds: float) -> dict:
    import numpy as np

    from agent.runner import replay_capture
    from sensing.lora.formats.sigmf_iq import write_sigmf_iq
    from sensing.lora.simulators.packets import LoraPacketsParams, packets_iq

    fs = 500e3
    rng = np.random.default_rng(7)
    parts = []
    total = 0
    starts: list[float] = []
    i = 0
    while total < seconds * fs:
        p = LoraPacketsParams(sf=7, n_packets=4, channels=2, snr_db=0.0,
                              gap_s=0.45, payload_len=16, seed=i)
        iq, truth = packets_iq(p, rng)
        parts.append(iq)
        starts.extend(total / fs + t["end_s"] for t in truth)
        total += len(iq)
        i += 1
    iq = np.concatenate(parts)[: int(seconds * fs)]
    sent = sum(1 for t in starts if t < len(iq) / fs)
    meta, _ = write_sigmf_iq(folder / "speed", iq, fs, center_hz=868.1e6, datatype="ci16_le",
                             lora={"sf": 7, "bw_hz": 125000})
    dur = len(iq) / fs
    del iq, parts

    class _Count:
        def __init__(self):
            self.n = 0

        def emit(self, event):
            self.n += 1

        def close(self):
            pass

    out = {"capture_s": round(dur, 2), "channels": 2, "fs_hz": fs, "frames_sent": sent}
    for label, names in (("lora_packet", ["lora_packet"]), ("all_default", None)):
        sink = _Count()
        t0, w0 = time.process_time(), time.perf_counter()
        stats = replay_capture(str(meta), [sink], pipeline_names=names, progress=False)
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
        out[label] = {"pipelines": stats.pipelines, "events": sink.n,
                      "cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                      "x_realtime_cpu": round(dur / cpu, 1),
                      "x_realtime_wall": round(dur / wall, 1)}
        print(json.dumps({label: out[label]}), file=sys.stderr, flush=True)
    return out


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sfs = sorted({r["sf"] for r in rows})
    fig, axes = plt.subplots(1, len(sfs), figsize=(3.2 * len(sfs), 3.0), sharey=True)
    axes = [axes] if len(sfs) == 1 else list(axes)
    for ax, sf in zip(axes, sfs, strict=True):
        rr = [r for r in rows if r["sf"] == sf]
        x = [r["snr_db"] for r in rr]
        ax.plot(x, [r["ours"] / r["sent"] for r in rr], "o-", label="ambisense")
        ax.plot(x, [r["softlora"] / r["sent"] for r in rr], "s--", label="softlora (hard)")
        if "softlora_chase" in rr[0]:
            ax.plot(x, [r["softlora_chase"] / r["sent"] for r in rr], "^:",
                    label="softlora (chase)")
        ax.axvline(LIMITS[sf], color="grey", lw=0.8)
        ax.set_title(f"SF{sf}")
        ax.set_xlabel("in-band SNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("frames decoded (CRC valid)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("limit", "speed", "both"), default="both")
    ap.add_argument("--packets", type=int, default=20, help="frames per file (limit part)")
    ap.add_argument("--sf", type=int, action="append", help="SFs (default 7 8 9 10)")
    ap.add_argument("--no-chase", action="store_true", help="skip softlora's Chase decoder")
    ap.add_argument("--seconds", type=float, default=30.0, help="speed recording length")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--plot", help="write the limit figure (PNG) here")
    args = ap.parse_args()
    res: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.part in ("limit", "both"):
            res["limit"] = limit_part(folder, args.packets, args.sf or sorted(LIMITS),
                                      not args.no_chase)
        if args.part in ("speed", "both"):
            res["speed"] = speed_part(folder, args.seconds)
    if args.plot and "limit" in res:
        plot(res["limit"], args.plot)
    text = json.dumps(res, indent=1)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
