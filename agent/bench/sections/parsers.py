"""Parse throughput of every format on the real files in ``../shared/data``, side by side
with csiread (the C-accelerated reference CSI parser) where it reads the same file."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.bench.base import Result, Skip, section
from agent.bench.util import median, repeats, shared_data

#: Files larger than this are left out of the per-file table (MB).
MAX_FILE_MB = 200.0


def ours(fmt: str, chunk_size: int = 4096) -> Callable[[Path], int]:
    """Stream a whole file through our reader of ``fmt``; returns the rows read (packets,
    records, frames, lines or samples, as the reader's chunks count them)."""
    from sensing.formats import FORMATS

    cls = FORMATS.get(fmt)

    def run(path: Path) -> int:
        return sum(len(fr) for fr in cls(path, chunk_size=chunk_size).chunks())

    return run


def csiread_runner(kind: str, **kw: Any) -> Callable[[Path], int] | None:
    """A csiread reader of the whole file (``None`` when csiread is not installed)."""
    try:
        import csiread
    except ImportError:
        return None

    def run(path: Path) -> int:
        if kind == "intel":
            r = csiread.Intel(str(path), nrxnum=3, ntxnum=3, if_report=False)
        elif kind == "nexmon":
            r = csiread.Nexmon(str(path), if_report=False, **kw)
        elif kind == "nexmon46":
            r = csiread.NexmonPull46(str(path), if_report=False, **kw)
        elif kind == "picoscenes":
            r = csiread.Picoscenes(str(path), if_report=False, **kw)
        elif kind == "esp32":
            r = csiread.ESP32(str(path), if_report=False, maxlen=128)
        else:
            raise ValueError(kind)
        r.read()
        return len(r.raw) if kind == "picoscenes" else len(r.csi)

    return run


#: csiread's reader (and options) for the shared files it can read, by path under the
#: data root.
CSIREAD_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "csi/csiread/sample_0x5_64_3000.dat": ("intel", {}),
    "csi/csiread/sample_0x1_ap.dat": ("intel", {}),
    "csi/csikit-intel5300/example.dat": ("intel", {}),
    "csi/csikit-intel5300/log.all_csi.6.7.6.dat": ("intel", {}),
    "csi/csikit-intel5300-labeled/activity/sleeping_post_1597163585.dat": ("intel", {}),
    "csi/csikit-nexmon/example_4339.pcap": ("nexmon", {"chip": "4339", "bw": 80}),
    "csi/nexmon_csi/output-40.pcap": ("nexmon", {"chip": "43455c0", "bw": 40}),
    "csi/nexmon_csi/output-rssi.pcap": ("nexmon46", {"chip": "43455c0", "bw": 80}),
    "csi/csikit-picoscenes/picoscenes_ax200_example.csi":
        ("picoscenes", {"pl_size": {"CSI": [56, 2, 1]}}),
    "csi/csiread/rx_by_qca9300.csi": ("picoscenes", {"pl_size": {"CSI": [56, 3, 1]}}),
    "csi/csiread/rx_by_iwl5300.csi": ("picoscenes", {"pl_size": {"CSI": [30, 3, 3]}}),
    "csi/csikit-picoscenes/picoscenes_iwl5300_example.csi":
        ("picoscenes", {"pl_size": {"CSI": [30, 3, 3]}}),
}


def clean_esp32(src: Path, out_dir: Path) -> Path:
    """Header-less copy keeping only lines with 128 values (what csiread.ESP32 accepts)."""
    out = out_dir / (src.stem + ".clean.csv")
    keep = []
    for line in src.read_text(errors="replace").splitlines():
        if line.startswith("CSI_DATA") and line.count("[") == 1:
            body = line[line.index("[") + 1: line.rindex("]")].split()
            if len(body) == 128:
                keep.append(line)
    out.write_text("\n".join(keep) + "\n")
    return out


def discover(root: Path, per_format: int) -> dict[str, list[Path]]:
    """Registered format → real files of ``root`` it recognises (content sniffing, as
    ``ambisense replay`` does), at most ``per_format`` each (the largest first)."""
    from sensing.formats import detect_format

    found: dict[str, list[Path]] = {}
    for p in sorted(root.rglob("*")):
        if (not p.is_file() or p.name.endswith((".ref.npz", ".mat", ".md", ".json"))
                or p.stat().st_size > MAX_FILE_MB * 1e6 or p.name in ("LICENSE",)):
            continue
        try:
            fmt = detect_format(p).name
        except Exception:  # not a capture (labels, annotations, sidecars)
            continue
        found.setdefault(fmt, []).append(p)
    return {f: sorted(ps, key=lambda q: -q.stat().st_size)[:per_format]
            for f, ps in sorted(found.items())}


def timed(fn: Callable[[Path], int], path: Path) -> tuple[int, float]:
    t = time.process_time()
    n = fn(path)
    return n, time.process_time() - t


def compare(path: Path, fmt: str, ref: Callable[[Path], int] | None, repeat: int
            ) -> dict[str, Any]:
    """Median CPU time of ours and of ``ref`` on ``path``, runs alternated."""
    mine = ours(fmt)
    mine(path)  # warm-up: imports, page cache
    if ref is not None:
        ref(path)
    t_ours: list[float] = []
    t_ref: list[float] = []
    n = n_ref = 0
    for _ in range(repeat):
        n, t = timed(mine, path)
        t_ours.append(t)
        if ref is not None:
            n_ref, t = timed(ref, path)
            t_ref.append(t)
    size = path.stat().st_size / 1e6
    to, tr = median(t_ours), median(t_ref)
    row: dict[str, Any] = {"rows": n, "MB": size, "ours ms": to * 1e3,
                           "ours k rows/s": n / to / 1e3 if to > 0 else None,
                           "ours MB/s": size / to if to > 0 else None}
    if ref is not None:
        # the speed ratio on the same bytes: the row counts of the two readers can differ
        # (csiread.Nexmon counts one row per core and spatial stream, ours one frame of all)
        row.update({"csiread ms": tr * 1e3, "csiread rows": n_ref,
                    "csiread k rows/s": n_ref / tr / 1e3,
                    "ours / csiread": tr / to if n_ref and to > 0 else None})
        row["goal ≥ 1×"] = bool(row["ours / csiread"] and row["ours / csiread"] >= 1.0)
    return row


@section("parsers", "Parse throughput (vs csiread)",
         "Every registered format on the real files of `../shared/data` it recognises "
         "(content sniffing; at most a few per format, largest first): rows per second "
         "(packets, records, frames, lines or samples as the reader counts them) and MB/s "
         "from the median process CPU time of whole-file streaming reads through "
         "`CaptureReader.chunks()`. Where csiread reads the same file its reader runs in "
         "the same loop, alternated with ours, and `ours / csiread` is the speed ratio on the "
         "same file, csiread's CPU time over ours (goal ≥ 1×): both read the whole file, "
         "and their rows can differ (csiread.Nexmon counts one row per core and spatial "
         "stream, ours one frame holding all of them). csiread.ESP32 cannot read the raw ESP32 log (header line, "
         "short lines): both read a cleaned copy.", order=10)
def bench_parsers(quick: bool) -> Result:
    root = shared_data()
    if not root.is_dir():
        raise Skip(f"no third-party data at {root} (set AMBISENSE_SHARED_DATA)")
    notes = []
    have_csiread = csiread_runner("intel") is not None
    if not have_csiread:
        notes.append("csiread is not installed (`pip install ambisense[bench]`): no ratios.")
    repeat = repeats(quick, full=9, fast=3)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ambisense-bench-") as td:
        files = discover(root, 2 if quick else 6)
        plan: list[tuple[str, Path, Callable[[Path], int] | None, str]] = []
        for fmt, paths in files.items():
            for p in paths:
                rel = p.relative_to(root).as_posix()
                case = CSIREAD_CASES.get(rel)
                ref = csiread_runner(case[0], **case[1]) if case else None
                plan.append((fmt, p, ref, rel))
        for rel, case in CSIREAD_CASES.items():  # every file csiread reads, not only the top
            p = root / rel
            if p.is_file() and all(q != p for _, q, _, _ in plan):
                fmt = next((f for f, ps in discover_one(p).items()), None)
                if fmt:
                    plan.append((fmt, p, csiread_runner(case[0], **case[1]), rel))
        esp = root / "csi" / "csikit-esp32" / "example_100hz_pitraffic.csv"
        if esp.is_file():
            plan.append(("esp32_csi", clean_esp32(esp, Path(td)), csiread_runner("esp32"),
                         "csi/csikit-esp32/example_100hz_pitraffic.csv (cleaned)"))
        for fmt, p, ref, rel in sorted(plan, key=lambda x: (x[0], x[3])):
            try:
                row = compare(p, fmt, ref, repeat)
            except Exception as exc:  # a reader bug must not stop the table
                rows.append({"format": fmt, "file": rel, "error": f"{type(exc).__name__}: {exc}"})
                continue
            rows.append({"format": fmt, "file": rel, **row})
    ratios = [r["ours / csiread"] for r in rows if r.get("ours / csiread")]
    if ratios:
        below = [f"{r['file']} {r['ours / csiread']:.2f}×" for r in rows
                 if r.get("ours / csiread") and r["ours / csiread"] < 1.0]
        notes.append(f"ours / csiread: min {min(ratios):.2f}×, median {median(ratios):.2f}× "
                     f"over {len(ratios)} files; below 1×: {', '.join(below) or 'none'}.")
    return Result(rows, notes)


def discover_one(path: Path) -> dict[str, list[Path]]:
    """``{format: [path]}`` for one file (empty when no reader recognises it)."""
    from sensing.formats import detect_format

    try:
        return {detect_format(path).name: [path]}
    except Exception:
        return {}
