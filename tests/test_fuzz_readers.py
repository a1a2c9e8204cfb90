"""Property-based fuzzing of EVERY registered capture reader (``sensing.formats.FORMATS``).

A new reader joins automatically: its seed is the smallest real or bundled file the
conformance test finds for it (``tests/test_format_conformance.py``). From that seed,
hypothesis derives random bytes, truncations, bit flips, inserted garbage, zeroed blocks,
huge length fields, wrong magic numbers and NaN/Inf samples. Whatever the bytes:

* only the documented errors come out (:class:`~sensing.errors.CaptureFormatError`,
  :class:`~sensing.errors.UnsupportedFormatError`, naming the file) or counted rejects;
* no hang: each case runs in a forked child killed after ``CASE_TIMEOUT_S``;
* no allocation sized by an untrusted length field: the child's address space is capped
  (``RLIMIT_AS``: its size at fork plus ``MEMORY_HEADROOM``), so such an allocation is a
  ``MemoryError`` — a failure — instead of a lazily overcommitted array;
* no crash of the interpreter (a signal kills the child, not the test run);
* no silently wrong values: chunks are bounded, times finite, data finite (a NaN/Inf
  sample in the file is rejected or made explicit, never passed on silently) and the
  same bytes read twice give the same frames and rejects.

Examples per property: ``AMBISENSE_FUZZ_EXAMPLES`` (default 12 in CI; e.g. 2000 for a
long run: ``AMBISENSE_FUZZ_EXAMPLES=2000 python -m pytest tests/test_fuzz_readers.py``).
"""

from __future__ import annotations

import faulthandler
import functools
import math
import os
import pickle
import re
import resource
import select
import shutil
import signal
import struct
import tempfile
import time
import traceback
from glob import escape as glob_escape
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats import FORMATS, SNIFF_BYTES, detect_format
from tests.test_format_conformance import FOUND

EXAMPLES = int(os.environ.get("AMBISENSE_FUZZ_EXAMPLES", "12"))
#: Wall-clock bound of one case (read twice, detect, sniff) in seconds.
CASE_TIMEOUT_S = float(os.environ.get("AMBISENSE_FUZZ_TIMEOUT_S", "20"))
#: Address space a case may add to what the process had at fork.
MEMORY_HEADROOM = 768 * 2**20
#: Seeds are cut to this many bytes (keeps every case fast).
SEED_MAX = 96 * 1024
CHUNK = 16
#: Largest chunk a reader may choose itself (whole records), in rows.
MAX_ROWS = 1 << 20
#: Shrinking forks hundreds of children: off unless AMBISENSE_FUZZ_SHRINK=1 (the failing
#: example's draws are printed either way).
PHASES = ([Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
          if os.environ.get("AMBISENSE_FUZZ_SHRINK") == "1"
          else [Phase.explicit, Phase.reuse, Phase.generate])
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                phases=PHASES, report_multiple_bugs=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NAMES = FORMATS.names()


def seed_of(name: str) -> tuple[bytes, Path]:
    """(first bytes, path) of the smallest real/bundled file of ``name``; skip without one."""
    files = FOUND.get(name)
    if not files:
        pytest.skip(f"no real or bundled file of format {name} to derive fuzz cases from")
    path = files[0]
    with open(path, "rb") as fh:
        blob = fh.read(SEED_MAX)
    _warm(name, str(path))
    return blob, path


@functools.cache
def _warm(name: str, path: str) -> None:
    """Read the real seed once in this process: every module the reader needs (mne,
    h5py …) is imported before the first fork, never inside a forked child."""
    try:
        for _ in FORMATS.get(name)(path, chunk_size=CHUNK).chunks():
            pass
    except (CaptureFormatError, UnsupportedFormatError):
        pass


def _stage(blob: bytes, seed: Path, tmp: str) -> str:
    """Write ``blob`` as ``<tmp>/fuzz<the seed's suffixes>`` with the seed's companion
    files (same stem: a SigMF ``.sigmf-data`` beside its ``.sigmf-meta``) linked beside."""
    stem = seed.name.split(".", 1)[0]
    target = os.path.join(tmp, "fuzz" + seed.name[len(stem):])
    with open(target, "wb") as fh:
        fh.write(blob)
    if seed.parent.is_dir():
        for sib in seed.parent.glob(glob_escape(stem) + ".*"):
            if sib.name != seed.name and not sib.name.endswith(".truth.json"):
                os.symlink(sib.resolve(), os.path.join(tmp, "fuzz" + sib.name[len(stem):]))
    return target


# ------------------------------------------------------------------ the case, in a child

def _vm_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _read_all(name: str, path: str) -> dict:
    cls = FORMATS.get(name)
    frames, nonfinite, digest = 0, 0, 0.0
    error = None
    reader = None
    try:
        reader = cls(path, chunk_size=CHUNK)  # a reader may check the header at open
        for fr in reader.chunks():
            # a reader may round chunk_size to whole records (EDF with mixed rates); it
            # says so in its chunk_size, which must stay bounded
            bound = max(CHUNK, int(getattr(reader, "chunk_size", CHUNK)))
            assert bound <= MAX_ROWS, f"chunk_size {bound} rows from a header"
            assert 0 < len(fr) <= bound, f"chunk of {len(fr)} rows (chunk_size {bound})"
            assert len(fr.times_s) == len(fr) and np.isfinite(fr.times_s).all(), "bad times"
            assert fr.modality == cls.modality
            data = np.asarray(fr.data)
            if data.dtype.kind in "fc":
                bad = int(np.count_nonzero(~np.isfinite(data)))
                nonfinite += bad
                digest += float(np.nansum(np.abs(data[np.isfinite(data)]))) if bad else \
                    float(np.abs(data).sum())
            frames += len(fr)
    except (CaptureFormatError, UnsupportedFormatError) as exc:
        # names the file (or its companion: a SigMF .sigmf-data beside the .sigmf-meta)
        stem = path.rsplit("/", 1)[0] + "/fuzz"
        assert stem in str(exc), f"{type(exc).__name__} does not name the file: {exc}"
        error = type(exc).__name__
    if reader is None:
        return {"frames": 0, "nonfinite": 0, "rejects": {}, "error": error, "digest": 0.0}
    rejects = reader.rejects
    assert all(str(r).startswith(path.rsplit("/", 1)[0] + "/fuzz") for r in rejects.first), \
        "reject without the file"
    assert bool(rejects.first) == (rejects.total > 0), "rejects counted but none described"
    return {"frames": frames, "nonfinite": nonfinite, "rejects": rejects.as_dict(),
            "error": error, "digest": round(digest, 3) if math.isfinite(digest) else -1}


def _case(name: str, path: str) -> dict:
    """What the child runs: detection and sniffing on the bytes, then two full reads."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    assert isinstance(FORMATS.get(name).sniff(head, path), bool | np.bool_)
    try:
        detected = detect_format(path).name
    except UnsupportedFormatError:
        detected = None
    first = _read_all(name, path)
    second = _read_all(name, path)
    assert first == second, f"the same bytes read twice differ: {first} vs {second}"
    first["detected"] = detected
    return first


def run_case(name: str, blob: bytes, seed: Path) -> dict:
    """Run :func:`_case` on ``blob`` (standing in for ``seed``) in a forked child
    bounded in time and memory."""
    tmp = tempfile.mkdtemp(prefix="ambisense-fuzz-")
    path = _stage(blob, seed, tmp)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            limit = _vm_bytes() + MEMORY_HEADROOM
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            out = pickle.dumps({"ok": _case(name, path)})
        except BaseException:  # noqa: BLE001 - everything is reported to the parent
            out = pickle.dumps({"crash": traceback.format_exc(limit=8)})
            code = 1
        try:
            view = memoryview(out)
            while view:
                view = view[os.write(w, view):]
        finally:
            os._exit(code)
    os.close(w)
    chunks: list[bytes] = []
    deadline = time.monotonic() + CASE_TIMEOUT_S
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"{name}: reading {len(blob)} fuzzed bytes did not finish within "
                            f"{CASE_TIMEOUT_S:g} s (hang)")
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                part = os.read(r, 1 << 16)
                if not part:
                    break
                chunks.append(part)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(r)
        shutil.rmtree(tmp, ignore_errors=True)
    if os.WIFSIGNALED(status):
        pytest.fail(f"{name}: the reader killed the interpreter with signal "
                    f"{signal.Signals(os.WTERMSIG(status)).name} on {len(blob)} fuzzed bytes")
    result = pickle.loads(b"".join(chunks))
    if "crash" in result:
        pytest.fail(f"{name}: undocumented failure on {len(blob)} fuzzed bytes:\n"
                    f"{result['crash']}")
    res = result["ok"]
    # NaN/Inf in the output only when the reader made them explicit (counted a reject)
    assert res["nonfinite"] == 0 or res["rejects"], (
        f"{name}: {res['nonfinite']} NaN/Inf values passed on silently (reject the record "
        f"or the file, or count a reject for them)")
    return res


# ------------------------------------------------------------------ mutations

@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_truncated_at_any_offset(name, data):
    blob, seed = seed_of(name)
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    run_case(name, blob[:cut], seed)


@pytest.mark.parametrize("name", NAMES)
def test_truncation_sweep(name):
    """Every one of the first 24 bytes, and 24 offsets spread over the file."""
    blob, seed = seed_of(name)
    cuts = sorted(set(range(min(24, len(blob)))) |
                  {int(x) for x in np.linspace(24, len(blob), 24)})
    for cut in cuts:
        run_case(name, blob[:cut], seed)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_bit_flips(name, data):
    blob, seed = seed_of(name)
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 7)),
                               min_size=1, max_size=24), label="flips")
    out = bytearray(blob)
    for pos, bit in flips:
        out[pos] ^= 1 << bit
    run_case(name, bytes(out), seed)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_inserted_garbage_and_zeroed_blocks(name, data):
    blob, seed = seed_of(name)
    out = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        pos = data.draw(st.integers(0, len(out)), label="pos")
        if data.draw(st.booleans(), label="insert"):
            out[pos:pos] = data.draw(st.binary(min_size=1, max_size=300), label="garbage")
        else:
            n = data.draw(st.integers(1, 4096), label="zeroed")
            out[pos:pos + n] = bytes(len(out[pos:pos + n]))
    run_case(name, bytes(out), seed)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_huge_length_fields(name, data):
    """Overwrite 2/4/8-byte fields of the headers (the first 2 KiB and the first bytes of
    records further on) with huge or negative values, both byte orders."""
    blob, seed = seed_of(name)
    out = bytearray(blob)
    for _ in range(data.draw(st.integers(1, 6), label="fields")):
        width = data.draw(st.sampled_from([2, 4, 8]), label="width")
        region = data.draw(st.sampled_from([min(len(out), 2048), len(out)]), label="region")
        pos = data.draw(st.integers(0, max(region - width, 0)), label="pos")
        big = data.draw(st.sampled_from(["max", "half", "neg", "zero"]), label="value")
        value = {"max": 2 ** (8 * width) - 1, "half": 2 ** (8 * width - 1),
                 "neg": 2 ** (8 * width) - 2, "zero": 0}[big]
        order = data.draw(st.sampled_from(["little", "big"]), label="order")
        out[pos:pos + width] = value.to_bytes(width, order)
    run_case(name, bytes(out[:len(blob)]), seed)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_wrong_magic(name, data):
    """A damaged magic number / first bytes: refused (UnsupportedFormatError or a
    CaptureFormatError), detected as no format or as another one, never a crash."""
    blob, seed = seed_of(name)
    n = data.draw(st.integers(1, 16), label="n")
    magic = data.draw(st.binary(min_size=n, max_size=n), label="magic")
    run_case(name, magic + blob[n:], seed)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_random_bytes(name, data):
    _, seed = seed_of(name)
    run_case(name, data.draw(st.binary(min_size=0, max_size=4096), label="bytes"), seed)


_NUMBER = re.compile(rb"(?<![A-Za-z0-9_.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![A-Za-z0-9_])")
NONFINITE_TEXT = [b"nan", b"NaN", b"inf", b"-inf", b"Infinity", b"1e999", b"-1e999"]
NONFINITE_BIN = [struct.pack("<f", math.nan), struct.pack("<f", math.inf),
                 struct.pack("<f", -math.inf), struct.pack("<d", math.nan),
                 struct.pack("<d", math.inf), struct.pack(">f", math.nan),
                 struct.pack(">d", -math.inf)]


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_nan_and_inf_samples(name, data):
    """Text formats: numbers replaced by nan/inf/1e999; binary formats: IEEE NaN/Inf
    patterns written over samples. Either rejected or finite: never passed on."""
    blob, seed = seed_of(name)
    numbers = [m.span() for m in _NUMBER.finditer(blob[:SEED_MAX])]
    text = sum(c in b"\t\n\r ,;-.0123456789[]" for c in blob[:4096]) > 0.8 * min(len(blob), 4096)
    out = bytearray(blob)
    if text and numbers:
        picks = data.draw(st.lists(st.integers(0, len(numbers) - 1), min_size=1, max_size=8,
                                   unique=True), label="numbers")
        for i in sorted(picks, reverse=True):
            a, b = numbers[i]
            out[a:b] = data.draw(st.sampled_from(NONFINITE_TEXT), label="token")
    else:
        for _ in range(data.draw(st.integers(1, 8), label="n")):
            pat = data.draw(st.sampled_from(NONFINITE_BIN), label="pattern")
            pos = data.draw(st.integers(0, max(len(out) - len(pat), 0)), label="pos") & ~3
            out[pos:pos + len(pat)] = pat
    run_case(name, bytes(out), seed)


# ------------------------------------------------------------------ headers that lie

def _edf_field(blob: bytearray, offset: int, width: int, text: str) -> None:
    blob[offset:offset + width] = text.ljust(width).encode("ascii")[:width]


@pytest.mark.parametrize("lie", ["records", "samples_per_record", "signals", "header_bytes",
                                 "negative_records", "duration"])
def test_edf_header_claims_more_than_the_file_holds(lie):
    """EDF: the header's record count, samples per record, signal count, header size and
    record duration edited to claim more than the file holds (or nonsense)."""
    if "edf" not in NAMES:
        pytest.skip("no EDF reader registered")
    blob, seed = seed_of("edf")
    out = bytearray(blob)
    ns = int(out[252:256].decode("ascii").strip())
    if lie == "records":
        _edf_field(out, 236, 8, "99999999")
    elif lie == "negative_records":
        _edf_field(out, 236, 8, "-5")
    elif lie == "samples_per_record":
        base = 256 + ns * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
        _edf_field(out, base, 8, "99999999")
    elif lie == "signals":
        _edf_field(out, 252, 4, "9999")
    elif lie == "header_bytes":
        _edf_field(out, 184, 8, "99999999")
    elif lie == "duration":
        _edf_field(out, 244, 8, "0")
    res = run_case("edf", bytes(out), seed)
    honest = run_case("edf", blob, seed)
    # never more samples than the file holds (no made-up rows from a lying header)
    assert res["frames"] <= honest["frames"], (res, honest)


def test_fuzz_harness_catches_hangs_crashes_and_big_allocations(monkeypatch):
    """The harness itself: a hang, an undocumented exception, a segfault-like death and
    an allocation sized by a length field all fail the case."""
    import tests.test_fuzz_readers as me

    monkeypatch.setattr(me, "CASE_TIMEOUT_S", 2.0)
    cases = {
        "hang": lambda name, path: time.sleep(60),
        "exception": lambda name, path: {}["missing"],
        "signal": lambda name, path: (faulthandler.disable(),
                                      os.kill(os.getpid(), signal.SIGSEGV)),
        "allocation": lambda name, path: np.ones(2**40, np.uint8),
    }
    for what, fn in cases.items():
        monkeypatch.setattr(me, "_case", fn)
        with pytest.raises(pytest.fail.Exception) as info:
            me.run_case("esp32_csi", b"x", Path("/nonexistent/seed.csv"))
        text = str(info.value)
        assert {"hang": "did not finish", "exception": "KeyError",
                "signal": "SIGSEGV", "allocation": "MemoryError"}[what] in text, (what, text)


def test_every_registered_format_has_a_seed_or_is_reported():
    """A format without any real or bundled file cannot be fuzzed: list them (skip)."""
    missing = [n for n in NAMES if not FOUND.get(n)]
    if missing:
        pytest.skip(f"no seed file for: {', '.join(missing)}")
    assert Path(__file__).exists()
