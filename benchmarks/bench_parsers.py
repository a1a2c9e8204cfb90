"""Parse throughput of the CSI readers, side by side with csiread on the same files.

The same measurement, for every format and every shared file, is the ``parsers`` section
of ``ambisense bench`` (:mod:`agent.bench.sections.parsers`, whose readers this script
uses); this script keeps its best-of-N table and the ``--memory`` streaming check.

Usage::

    pip install -e .[bench]            # csiread (C-accelerated reference parser)
    python benchmarks/bench_parsers.py [--repeat 15] [--chunk-size 4096] [--memory] [--only NAME]

For every file both parsers read the whole capture, alternately, ``--repeat`` times; the
best CPU time (``time.process_time``, so other processes on a shared machine matter less)
of each is reported as packets per second (UDP packets for Nexmon, records for
Intel 5300, frames for PicoScenes, lines for ESP32). Ours streams chunk by chunk through
``CaptureReader.chunks()`` (bounded memory); csiread loads the whole file into arrays.
``--memory`` also streams large synthetic captures (a real file repeated to 10 and 80 MiB)
and reports the peak traced allocation, which must not grow with the capture length.

Files come from ``../shared/data/csi`` (``AMBISENSE_SHARED_DATA`` overrides the data root);
the cleaned ESP32 file (no header line, no short line — csiread cannot read the original)
is written to a temporary directory. ``--only`` keeps the files whose name contains a text.
The readers are imported from the checkout this script belongs to.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("AMBISENSE_SHARED_DATA", REPO.parent / "shared" / "data")) / "csi"
sys.path.insert(0, str(REPO))  # benchmark this checkout's readers, whatever is installed


from agent.bench.sections.parsers import clean_esp32, csiread_runner, ours  # noqa: E402

_ours, _csiread = ours, csiread_runner


def _clean_esp32(src: Path, out_dir: Path) -> Path:
    """Header-less copy keeping only lines with 128 values (what csiread.ESP32 accepts)."""
    out = clean_esp32(src, out_dir)
    return out.rename(out_dir / "example_100hz_pitraffic.clean.csv")


def cases(tmp: Path) -> list[tuple[str, str, Path, Callable | None]]:
    """(label, our format, file, csiread runner)."""
    out = [
        ("Intel 5300", "intel5300", DATA / "csiread" / "sample_0x5_64_3000.dat",
         _csiread("intel")),
        ("Intel 5300", "intel5300",
         DATA / "csikit-intel5300-labeled" / "activity" / "sleeping_post_1597163585.dat",
         _csiread("intel")),
        ("Nexmon pcap", "nexmon_pcap", DATA / "csikit-nexmon" / "example_4339.pcap",
         _csiread("nexmon", chip="4339", bw=80)),
        ("Nexmon pcap", "nexmon_pcap", DATA / "nexmon_csi" / "output-40.pcap",
         _csiread("nexmon", chip="43455c0", bw=40)),
        ("Nexmon pcap", "nexmon_pcap", DATA / "nexmon_csi" / "output-rssi.pcap",
         _csiread("nexmon46", chip="43455c0", bw=80)),
        ("PicoScenes", "picoscenes", DATA / "csikit-picoscenes" / "picoscenes_ax200_example.csi",
         _csiread("picoscenes", pl_size={"CSI": [56, 2, 1]})),
        ("PicoScenes", "picoscenes", DATA / "csiread" / "rx_by_qca9300.csi",
         _csiread("picoscenes", pl_size={"CSI": [56, 3, 1]})),
        ("PicoScenes", "picoscenes", DATA / "csiread" / "rx_by_iwl5300.csi",
         _csiread("picoscenes", pl_size={"CSI": [30, 3, 3]})),
        ("PicoScenes", "picoscenes",
         DATA / "csikit-picoscenes" / "picoscenes_iwl5300_example.csi",
         _csiread("picoscenes", pl_size={"CSI": [30, 3, 3]})),
    ]
    esp = DATA / "csikit-esp32" / "example_100hz_pitraffic.csv"
    if esp.exists():
        out.append(("ESP32 CSV (cleaned)", "esp32_csi", _clean_esp32(esp, tmp),
                    _csiread("esp32")))
    return [c for c in out if c[2].exists()]


def best_of(fn: Callable[[Path], int], path: Path, repeat: int) -> tuple[int, float]:
    """Packets and best CPU time (``time.process_time``: robust on a shared machine)."""
    n, best = 0, float("inf")
    for _ in range(repeat):
        t = time.process_time()
        n = fn(path)
        best = min(best, time.process_time() - t)
    return n, best


def memory(fmt: str, src: Path, tmp: Path, target_bytes: int = 40 << 20) -> tuple[int, int, float]:
    """Stream ``src`` repeated to ``target_bytes``; return (packets, file bytes, peak MiB)."""
    from sensing.formats import FORMATS

    blob = src.read_bytes()
    head = 24 if fmt == "nexmon_pcap" else 0  # pcap global header appears once
    big = tmp / f"big{src.suffix}"
    with open(big, "wb") as fh:
        fh.write(blob)
        while fh.tell() < target_bytes:
            fh.write(blob[head:])
    tracemalloc.start()
    n = sum(len(fr) for fr in FORMATS.get(fmt)(big, chunk_size=256).chunks())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size = big.stat().st_size
    big.unlink()
    return n, size, peak / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--memory", action="store_true", help="also measure peak memory")
    ap.add_argument("--only", default="", help="only files whose name contains this text")
    args = ap.parse_args(argv)
    if not DATA.exists():
        print(f"no data at {DATA}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        print("| format | file | packets | ours ms | ours k pkt/s | csiread ms | "
              "csiread k pkt/s | ours / csiread |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for label, fmt, path, ref in cases(tmp):
            if args.only not in path.name:
                continue
            ours = _ours(fmt, args.chunk_size)
            ours(path)  # warm up (imports, page cache)
            t_ours = t_ref = float("inf")
            n = n_ref = 0
            for _ in range(args.repeat):  # alternate so load changes hit both alike
                n, t = best_of(ours, path, 1)
                t_ours = min(t_ours, t)
                if ref is not None:
                    n_ref, t = best_of(ref, path, 1)
                    t_ref = min(t_ref, t)
            row = f"| {label} | {path.name} | {n} | {t_ours * 1e3:.1f} | {n / t_ours / 1e3:.0f} | "
            if ref is not None:
                row += (f"{t_ref * 1e3:.1f} | {n_ref / t_ref / 1e3:.0f} | "
                        f"{(n / t_ours) / (n_ref / t_ref):.2f} |")
            else:
                row += "– | – | – |"
            print(row, flush=True)
        if args.memory:
            print("\n| format | streamed file | packets | peak traced MiB |")
            print("|---|---:|---:|---:|")
            for fmt, src in (("intel5300", DATA / "csiread" / "sample_0x5_64_3000.dat"),
                             ("nexmon_pcap", DATA / "nexmon_csi" / "output-40.pcap"),
                             ("picoscenes", DATA / "csiread" / "rx_by_qca9300.csi")):
                if not src.exists():
                    continue
                for target_mib in (10, 80):  # the peak must not grow with the length
                    n, size, peak = memory(fmt, src, tmp, target_mib << 20)
                    print(f"| {fmt} | {size / 2**20:.0f} MiB | {n} | {peak:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
