"""ESPectre .npz reader: detection from content, exact values, timing, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from sensing.formats import detect_format, open_capture
from sensing.formats.esp32_csi import buffer_layout
from sensing.formats.espectre_npz import EspectreNpzReader
from tests.conftest import shared_path

TEST_FILE = ("csi", "espectre", "test_c3_64sc_20260329_130804.npz")


def _write(path, raw: np.ndarray, duration_ms: float = 1000.0, **extra) -> None:
    np.savez_compressed(
        path, csi_data=raw, num_subcarriers=np.int64(raw.shape[1] // 2),
        label=np.str_("baseline"), chip=np.str_("c6"),
        collected_at=np.str_("2026-03-10T23:04:14.860927"),
        duration_ms=np.float64(duration_ms), format_version=np.str_("1.0"),
        gain_locked=np.bool_(True), **extra,
    )


def _ascending(raw: np.ndarray) -> np.ndarray:
    """Independent decode: (imag, real) pairs in buffer order → ascending subcarriers."""
    c = raw[:, 1::2].astype(np.float32) + 1j * raw[:, 0::2].astype(np.float32)
    _, idx = buffer_layout(0, 0, 0, 0)[0]
    return c[:, np.argsort(idx)]


def test_real_file_detected_and_matches_reference_parse():
    path = shared_path(*TEST_FILE)
    assert detect_format(path) is EspectreNpzReader
    reader = open_capture(path, chunk_size=500)
    frames = list(reader)
    data = np.concatenate([f.data for f in frames])
    assert data.shape == (6068, 64, 1, 1) and data.dtype == np.complex64
    ref = np.load(str(path) + ".ref.npz")
    head = ref["numpy_csi_head"]  # buffer order, real = raw[1::2], imag = raw[0::2]
    _, idx = buffer_layout(0, 0, 0, 0)[0]
    sc = frames[0].subcarriers
    assert list(sc) == list(range(-32, 32))
    np.testing.assert_array_equal(data[: len(head), :, 0, 0], head[:, np.argsort(idx)])
    times = np.concatenate([f.times_s for f in frames])
    assert times[0] == 0.0 and times[-1] == pytest.approx(59.98926520348, abs=1e-9)
    assert np.allclose(np.diff(times), times[-1] / 6067)
    assert frames[0].fs_hz == pytest.approx(6067 / 59.98926520348)
    assert frames[0].meta["label"] == "test" and frames[0].meta["chip"] == "c3"
    info = reader.info()
    assert info["format"] == "espectre_npz" and info["frames"] == 6068 and info["rejects"] == 0


def test_roundtrip_chunking_and_meta(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.integers(-128, 128, size=(101, 128), dtype=np.int8)
    f = tmp_path / "cap.npz"
    _write(f, raw, duration_ms=2000.0)
    assert detect_format(f) is EspectreNpzReader
    want = _ascending(raw)
    for cs in (1, 7, 256):
        frames = list(open_capture(f, chunk_size=cs))
        assert max(len(x) for x in frames) <= cs
        got = np.concatenate([x.data for x in frames])[:, :, 0, 0]
        np.testing.assert_array_equal(got, want)
        t = np.concatenate([x.times_s for x in frames])
        np.testing.assert_allclose(t, np.arange(101) * 0.02)
    fr = frames[0]
    assert fr.fs_hz == pytest.approx(50.0)
    assert fr.t0 is not None and fr.t0.year == 2026
    assert fr.meta["gain_locked"] is True and fr.meta["chip"] == "c6"


def test_other_npz_and_zip_not_claimed(tmp_path):
    f = tmp_path / "other.npz"
    np.savez(f, x=np.arange(3))
    assert not EspectreNpzReader.sniff(f.read_bytes()[:8192], str(f))
    g = tmp_path / "bad.npz"
    g.write_bytes(b"PK\x03\x04 not really a zip")
    assert not EspectreNpzReader.sniff(g.read_bytes(), str(g))


def test_wrong_width_is_rejected_not_crashing(tmp_path):
    f = tmp_path / "w.npz"
    _write(f, np.zeros((10, 100), np.int8))
    reader = open_capture(f, format="espectre_npz")
    assert list(reader) == []
    assert reader.rejects.total == 1 and "bad_width" in reader.rejects.counts
