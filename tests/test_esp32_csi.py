"""ESP32 CSI_DATA reader: real files against their reference parses, layouts, rejects."""

from __future__ import annotations

import numpy as np
import pytest

from sensing.errors import UnsupportedFormatError
from sensing.formats import detect_format, open_capture
from sensing.formats.esp32_csi import Esp32CsiReader, buffer_layout, format_csi_line
from tests.conftest import shared_path

REAL_FILES = [
    "esp32-csi-tool/example_csi.csv",
    "csikit-esp32/example_data.csv",
    "csikit-esp32/example_100hz_pitraffic.csv",
]


def read_all(path, **kw):
    reader = open_capture(path, **kw)
    frames = list(reader.chunks())
    data = np.concatenate([f.data for f in frames])
    times = np.concatenate([f.times_s for f in frames])
    rssi = np.concatenate([f.fields["rssi"] for f in frames])
    return reader, frames, data, times, rssi


def to_buffer_order(sorted_csi: np.ndarray, subcarriers: np.ndarray, layout_idx: np.ndarray):
    """Undo the reader's ascending-subcarrier order back into firmware buffer order."""
    pos = {int(s): i for i, s in enumerate(subcarriers)}
    return sorted_csi[:, [pos[int(s)] for s in layout_idx]]


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_file_matches_reference(name):
    path = shared_path("csi", name)
    ref = np.load(str(path) + ".ref.npz")
    reader, frames, data, times, rssi = read_all(path)
    assert isinstance(reader, Esp32CsiReader)
    n = int(ref["csiread_n"])
    assert len(data) == n
    assert data.shape[1:] == (64, 1, 1)
    # values: csiread (ESP-IDF imag-then-real order) and plain numpy agree exactly
    fr0 = frames[0]
    # all three files are either 20 MHz or HT40; rebuild the buffer order from the layout
    cwb_above = fr0.meta["bandwidth_mhz"] == 40
    layout = buffer_layout(1, 1, 1, 0)[0][1] if cwb_above else buffer_layout(0, 0, 0, 0)[0][1]
    head = to_buffer_order(data[:5, :, 0, 0], fr0.subcarriers, layout)
    np.testing.assert_array_equal(head, ref["csiread_csi_head"])
    np.testing.assert_array_equal(head, ref["numpy_csi_head"])
    # CSIKit swaps real and imaginary parts: equal after the swap
    swapped = ref["csikit_csi_head"].imag + 1j * ref["csikit_csi_head"].real
    np.testing.assert_array_equal(head, swapped)
    np.testing.assert_array_equal(rssi, ref["csiread_rssi"])
    ts = ref["csiread_local_timestamp"].astype(np.int64)
    np.testing.assert_allclose(times, (ts - ts[0]) * 1e-6, atol=1e-9)
    assert np.all(np.diff(times) >= 0)


def test_short_line_is_a_counted_reject():
    path = shared_path("csi", "csikit-esp32", "example_100hz_pitraffic.csv")
    reader, *_ = read_all(path)
    assert reader.rejects.total == 1
    rej = reader.rejects.first[0]
    assert rej.reason == "odd_value_count"
    assert rej.where == "line 19"
    assert "127" in rej.got and str(path) in str(rej)
    info = open_capture(path).info()
    assert info["frames"] == 833 and info["rejects"] == 1
    assert info["rate_hz"] == pytest.approx(63.3, abs=0.5)


def test_header_line_is_not_a_reject():
    path = shared_path("csi", "csikit-esp32", "example_data.csv")
    reader, *_ = read_all(path)
    assert reader.rejects.total == 0


def test_tool_real_timestamp_gives_absolute_time(tmp_path):
    p = tmp_path / "tool.csv"
    buf = np.arange(64) + 1j * np.arange(64)
    lines = [
        format_csi_line(buf, local_timestamp_us=1000 + 10_000 * i, layout="esp32-csi-tool",
                        real_timestamp=1_700_000_000.0 + 0.01 * i)
        for i in range(5)
    ]
    p.write_text("\n".join(lines) + "\n")
    fr = next(open_capture(p).chunks())
    assert fr.t0 is not None and fr.t0.timestamp() == pytest.approx(1_700_000_000.0, abs=1e-3)


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_esp_csi_layout_roundtrip_and_timestamp_wrap(tmp_path):
    rng = np.random.default_rng(1)
    bufs = rng.integers(-100, 100, (300, 64)) + 1j * rng.integers(-100, 100, (300, 64))
    start = (1 << 32) - 1_000_000  # the uint32 µs counter wraps 1 s into the capture
    lines = [format_csi_line(b, local_timestamp_us=start + 10_000 * i, seq=i) for i, b in enumerate(bufs)]
    _, frames, data, times, _ = read_all(_write(tmp_path / "wrap.csv", lines), chunk_size=64)
    assert [len(f) for f in frames] == [64, 64, 64, 64, 44]
    np.testing.assert_allclose(times, np.arange(300) * 0.01, atol=1e-9)
    expected = np.concatenate([bufs[:, 32:], bufs[:, :32]], axis=1)  # ascending -32..31
    np.testing.assert_array_equal(data[:, :, 0, 0], expected.astype(np.complex64))
    np.testing.assert_array_equal(frames[0].subcarriers, np.arange(-32, 32))


def test_c5c6_layout_and_first_word_invalid(tmp_path):
    vals = ",".join(str(v) for v in [7, 9] * 64)
    line = f'CSI_DATA,3,AA:BB:CC:DD:EE:FF,-40,11,-92,0,0,6,123456,80,0,128,1,"[{vals}]"'
    _, frames, data, _, rssi = read_all(_write(tmp_path / "c6.csv", [line, line.replace("123456", "133456")]))
    assert data.shape == (2, 64, 1, 1) and rssi.tolist() == [-40, -40]
    sc = frames[0].subcarriers
    row = data[0, :, 0, 0]
    # first_word_invalid: the first 4 bytes (subcarriers 0 and 1) are zeroed
    assert row[sc == 0][0] == 0 and row[sc == 1][0] == 0
    assert row[sc == 2][0] == 9 + 7j


def test_htltf_segment_selection(tmp_path):
    # HT20 STBC packet: LLTF, HT-LTF and STBC-HT-LTF, 64 subcarriers each (384 int8 values)
    lltf = np.full(64, 1 + 1j)
    ht = np.full(64, 2 + 2j)
    stbc = np.full(64, 3 + 3j)
    buf = np.concatenate([lltf, ht, stbc])
    line = format_csi_line(buf, local_timestamp_us=5, sig_mode=1, stbc=1)
    p = _write(tmp_path / "ht.csv", [line])
    for ltf, value in [("lltf", 1 + 1j), ("htltf", 2 + 2j), ("stbc_htltf", 3 + 3j)]:
        _, _, data, _, _ = read_all(p, ltf=ltf)
        assert np.all(data == value)


def test_ht40_layouts():
    above = buffer_layout(1, 1, 1, 0)
    below = buffer_layout(1, 1, 2, 0)
    assert above[0][1].tolist() == list(range(-64, 0))
    assert below[0][1].tolist() == list(range(0, 64))
    assert len(above[1][1]) == 128
    stbc = buffer_layout(1, 1, 2, 1)
    assert [len(i) for _, i in stbc] == [64, 121, 121]  # 612 bytes in all


BAD_LINES = {
    "no_array": "CSI_DATA,0,AA:BB:CC:DD:EE:FF,-40,11,0,0,0,1,1,0,0,0,0,-92,0,6,0,1000,0,80,0,128,0,",
    "field_count": 'CSI_DATA,0,AA:BB,-40,"[1,2]"',
    "bad_field": 'CSI_DATA,0,AA:BB:CC:DD:EE:FF,x40,11,0,0,0,1,1,0,0,0,0,-92,0,6,0,1000,0,80,0,128,0,"[1,2]"',
    "bad_value": 'CSI_DATA,0,AA:BB:CC:DD:EE:FF,-40,11,0,0,0,1,1,0,0,0,0,-92,0,6,0,1000,0,80,0,128,0,"[1,2,x,4]"',
    "out_of_range": "CSI_DATA,0,AA:BB:CC:DD:EE:FF,-40,11,0,0,0,1,1,0,0,0,0,-92,0,6,0,1000,0,80,0,128,0,"
                    '"[' + ",".join(["300"] * 128) + ']"',
    "short_array": 'CSI_DATA,0,AA:BB:CC:DD:EE:FF,-40,11,0,0,0,1,1,0,0,0,0,-92,0,6,0,1000,0,80,0,128,0,"[1,2]"',
}


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_each_malformed_line_is_counted_and_stream_goes_on(tmp_path, reason):
    good = [format_csi_line(np.ones(64), local_timestamp_us=1000 * i) for i in range(3)]
    p = _write(tmp_path / "bad.csv", [good[0], BAD_LINES[reason], good[1], good[2]])
    reader, _, data, _, _ = read_all(p)
    assert len(data) == 3
    assert dict(reader.rejects.counts) == {reason: 1}
    rej = reader.rejects.first[0]
    assert rej.where == "line 2" and rej.path == str(p)
    assert rej.expected and rej.got


def test_not_a_capture_is_one_clear_error(tmp_path):
    p = tmp_path / "notes.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(UnsupportedFormatError, match="not a recognised capture"):
        detect_format(p)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedFormatError, match="empty file"):
        open_capture(empty)


def test_chunks_restart_and_bounded(tmp_path):
    lines = [format_csi_line(np.ones(64), local_timestamp_us=1000 * i) for i in range(1000)]
    reader = open_capture(_write(tmp_path / "x.csv", lines), chunk_size=100)
    first = [len(f) for f in reader.chunks()]
    second = [len(f) for f in reader.chunks()]
    assert first == second == [100] * 10


def _parse(path, block_lines):
    from sensing.errors import RejectLog
    from sensing.formats.esp32_csi import (
        Esp32LineParser,
        PacketBatcher,
        frames_from_lines,
        iter_lines,
    )

    rejects = RejectLog()
    parser = Esp32LineParser(str(path), rejects)
    with open(path, "rb") as fh:
        frames = list(frames_from_lines(iter_lines(fh), parser, PacketBatcher("s", 50, {}),
                                        block_lines=block_lines))
    return frames, rejects


def test_block_fast_path_equals_line_by_line_parser(tmp_path):
    """The vectorised block parser must give exactly what the per-line parser gives,
    rejects included, on clean blocks, corrupted blocks and mixed layouts."""
    rng = np.random.default_rng(7)
    lines = []
    for i in range(700):
        buf = rng.integers(-128, 128, 64) + 1j * rng.integers(-128, 128, 64)
        layout = "esp32-csi-tool" if 300 <= i < 420 else "esp-csi"
        lines.append(format_csi_line(buf, local_timestamp_us=7_000 * i, seq=i, layout=layout))
    for k in rng.choice(700, 25, replace=False):  # corrupt some lines in assorted ways
        line = lines[k]
        cut = int(rng.integers(10, len(line) - 5))
        lines[k] = [line[:cut], line.replace("[", "[x", 1), "junk " + line, line + " 1"][k % 4]
    p = _write(tmp_path / "mixed.csv", lines)
    fast, fast_rej = _parse(p, 256)
    slow, slow_rej = _parse(p, 1)
    assert [len(f) for f in fast] == [len(f) for f in slow]
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
        np.testing.assert_array_equal(a.times_s, b.times_s)
        np.testing.assert_array_equal(a.fields["rssi"], b.fields["rssi"])
    assert fast_rej.counts == slow_rej.counts and fast_rej.total > 0
    assert [str(r) for r in fast_rej.first] == [str(r) for r in slow_rej.first]


def test_block_fast_path_equals_line_by_line_parser_on_a_real_file():
    real = shared_path("csi", "csikit-esp32", "example_100hz_pitraffic.csv")
    (fa, _), (sl, _) = _parse(real, 256), _parse(real, 1)
    np.testing.assert_array_equal(np.concatenate([f.data for f in fa]),
                                  np.concatenate([f.data for f in sl]))
