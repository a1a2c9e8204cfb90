"""One conformance test for every registered capture format (MNE-style).

Each registered reader must recognise at least one real or bundled file, and on each
of them: stream bounded chunks of its declared modality with non-decreasing times,
re-read identically, agree with its own ``info()``, and survive truncation with counted
rejects or a :class:`CaptureFormatError` — never another exception.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats import FORMATS, detect_format
from sensing.frames import MODALITIES, Frames
from tests.conftest import REPO, SHARED_DATA

MODALITY_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")  # any new modality's name

SKIP_SUFFIXES = (".md", ".ref.npz", ".mat", ".json", ".py", ".toml")
CHUNK = 64
PER_FORMAT = 3


def candidate_files() -> list[Path]:
    roots = [REPO / "agent" / "samples"]
    if SHARED_DATA.exists():
        roots.append(SHARED_DATA)
    out = []
    for root in roots:
        for dirpath, _, files in os.walk(root):
            out += [Path(dirpath) / f for f in files if not f.endswith(SKIP_SUFFIXES)]
    return sorted(out)


def files_by_format() -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = defaultdict(list)
    for path in candidate_files():
        try:
            cls = detect_format(path)
        except (UnsupportedFormatError, OSError):
            continue
        found[cls.name].append(path)
    # the smallest files first keep the test quick
    return {k: sorted(v, key=lambda p: p.stat().st_size)[:PER_FORMAT] for k, v in found.items()}


FOUND = files_by_format()


def read(cls, path):
    reader = cls(path, chunk_size=CHUNK)
    chunks = list(reader.chunks())
    return reader, chunks


@pytest.mark.parametrize("name", FORMATS.names())
def test_format_conformance(name):
    cls = FORMATS.get(name)
    assert cls.name == name and cls.description
    assert cls.modality in MODALITIES or MODALITY_NAME.fullmatch(cls.modality)
    files = FOUND.get(name)
    if not files:
        if not SHARED_DATA.exists():
            pytest.skip(f"no bundled sample for {name} and ../shared/data is absent")
        pytest.fail(f"format {name!r}: no real or bundled file recognised for the conformance test")
    for path in files:
        reader, chunks = read(cls, path)
        assert chunks, f"{path}: no data"
        last = -np.inf
        total = 0
        for fr in chunks:
            assert fr.modality == cls.modality
            assert 0 < len(fr) <= CHUNK, f"{path}: chunk of {len(fr)} rows > chunk_size {CHUNK}"
            assert fr.times_s.dtype == np.float64
            assert fr.times_s[0] >= last - 1e-9 and np.all(np.diff(fr.times_s) >= -1e-9), path
            last = fr.times_s[-1]
            total += len(fr)
        _, again = read(cls, path)
        assert len(again) == len(chunks)
        for a, b in zip(chunks, again, strict=True):
            np.testing.assert_array_equal(a.data, b.data)
        info = cls(path).info()
        assert info["frames"] == total and info["format"] == name


@pytest.mark.parametrize("name", FORMATS.names())
def test_truncated_file_is_a_counted_reject_or_clear_error(name, tmp_path):
    files = FOUND.get(name)
    if not files:
        pytest.skip(f"no file for {name}")
    path = files[0]
    blob = path.read_bytes()
    full_reader, full = read(FORMATS.get(name), path)
    full_rows = [row for c in full for row in c.data]
    full_times = np.concatenate([c.times_s for c in full])
    for frac in (0.5, 0.9):
        cut = tmp_path / f"cut{frac}{''.join(path.suffixes)}"
        cut.write_bytes(blob[: int(len(blob) * frac)])
        try:
            reader, chunks = read(FORMATS.get(name), cut)
        except CaptureFormatError as exc:
            assert str(cut) in str(exc)
            continue
        rows = [row for c in chunks for row in c.data]
        n = len(rows)
        # the lost part shows: fewer frames, or one more counted reject (a frame grouped
        # from several records, e.g. Nexmon cores, can survive with a record missing)
        assert n < len(full_rows) or reader.rejects.total > full_reader.rejects.total, (
            f"{cut}: {n} of {len(full_rows)} frames and no reject after losing "
            f"{1 - frac:.0%} of the bytes")
        # what was read is the start of the full read: same times, and the same data for
        # every frame but the last (which the cut may have shortened)
        times = np.concatenate([c.times_s for c in chunks]) if chunks else np.zeros(0)
        np.testing.assert_array_equal(times, full_times[:n], err_msg=str(cut))
        for i, (a, b) in enumerate(zip(rows[:-1], full_rows, strict=False)):
            np.testing.assert_array_equal(a, b, err_msg=f"{cut}: frame {i}")


def test_prevalidated_frames_equal_checked_frames():
    import dataclasses

    data, times = np.zeros((3, 4, 1, 1), np.complex64), np.arange(3.0)
    common = {"fs_hz": None, "modality": "wifi_csi", "source": "x"}
    a = Frames.prevalidated(common, data=data, times_s=times)
    b = Frames(data=data, times_s=times, **common)
    for f in dataclasses.fields(Frames):
        assert getattr(a, f.name) is getattr(b, f.name) or getattr(a, f.name) == getattr(b, f.name)
    c = Frames.prevalidated(common, data=data, times_s=times)
    a.meta["k"] = 1
    a.fields["rssi"] = np.zeros(3)
    assert c.meta == {} and c.fields == {}  # fresh dicts, as default_factory gives
