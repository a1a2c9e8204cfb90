"""Fuzzing the binary CSI readers: random, truncated and mutated bytes may only ever give
counted rejects, :class:`CaptureFormatError` or :class:`UnsupportedFormatError`."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensing.errors import CaptureFormatError, UnsupportedFormatError
from sensing.formats.intel5300 import Intel5300Reader
from sensing.formats.nexmon_pcap import NexmonPcapReader, decode_payloads
from sensing.formats.picoscenes import PicoScenesReader
from tests.conftest import shared_path

SEEDS = {
    "intel5300": (Intel5300Reader, ("csikit-intel5300", "log.all_csi.6.7.6.dat")),
    "nexmon_pcap": (NexmonPcapReader, ("csikit-pi4-nexmon", "40mhz_1600085286.pcap")),
    "picoscenes": (PicoScenesReader, ("csikit-picoscenes", "picoscenes_iwl5300_example.csi")),
}
SEED_BYTES = 6000
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def seed(name: str) -> bytes:
    return shared_path("csi", *SEEDS[name][1]).read_bytes()[:SEED_BYTES]


def read_ok(cls, blob: bytes) -> None:
    """Read ``blob`` fully; only the documented errors may escape; results are sane."""
    fd, path = tempfile.mkstemp(suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        reader = cls(path, chunk_size=16)
        frames = 0
        try:
            for fr in reader:
                assert 0 < len(fr) <= 16
                assert fr.data.dtype == np.complex64 and fr.data.ndim == 4
                assert np.isfinite(fr.times_s).all()
                assert len(fr.subcarriers) == fr.data.shape[1]
                frames += len(fr)
        except (CaptureFormatError, UnsupportedFormatError) as exc:
            assert path in str(exc)
            return
        rejects = reader.rejects
        # the first rejects are described (file, position, reason), not only counted
        assert bool(rejects.first) == (rejects.total > 0), rejects.as_dict()
        assert all(r.path == path and str(r).startswith(path) for r in rejects.first)
        # the same bytes read again give the same frames and the same rejects
        again = cls(path, chunk_size=16)
        assert sum(len(fr) for fr in again) == frames
        assert again.rejects.as_dict() == rejects.as_dict()
    finally:
        os.unlink(path)


mutations = st.lists(st.tuples(st.integers(0, SEED_BYTES - 1), st.integers(0, 255)),
                     min_size=1, max_size=12)


@pytest.mark.parametrize("name", sorted(SEEDS))
@FUZZ
@given(cut=st.integers(0, SEED_BYTES), edits=mutations)
def test_mutated_and_truncated_real_files(name, cut, edits):
    blob = bytearray(seed(name))
    for pos, val in edits:
        if pos < len(blob):
            blob[pos] = val
    read_ok(SEEDS[name][0], bytes(blob[:cut]))


@pytest.mark.parametrize("name", sorted(SEEDS))
@FUZZ
@given(tail=st.binary(min_size=0, max_size=3000))
def test_valid_header_then_random_bytes(name, tail):
    """Keep the file/first-record header (so detection passes) and append garbage."""
    head = seed(name)[: {"intel5300": 0, "nexmon_pcap": 24, "picoscenes": 0}[name]]
    read_ok(SEEDS[name][0], head + tail)


@FUZZ
@given(rows=st.lists(st.binary(min_size=0, max_size=600), min_size=1, max_size=8))
def test_decode_payloads_never_crashes(rows):
    """The UDP path decodes arbitrary datagrams: bad ones become (row, reason, …) tuples."""
    width = max(len(r) for r in rows)
    for magic in (b"", b"\x11\x11", b"\x11\x11\x11\x11"):
        data = [magic + r for r in rows]
        w = width + len(magic)
        pay = np.zeros((len(data), w), np.uint8)
        for i, r in enumerate(data):
            pay[i, : len(r)] = np.frombuffer(r, np.uint8)
        lengths = np.array([len(r) for r in data])
        out, good, bad = decode_payloads(pay, lengths)
        assert len(good) + len(bad) == len(data)
        if len(good):
            assert out["csi"].shape[0] == len(good)
