"""Live ESP32 CSI over serial: loop:// and a real pty, with garbage and split lines."""

from __future__ import annotations

import os
import threading
import time
import tty

import numpy as np
import pytest
import serial

from sensing.errors import SourceUnavailableError
from sensing.formats.esp32_csi import format_csi_line
from sensing.sources.serial import Esp32SerialSource


def make_lines(n: int, seed: int = 0) -> tuple[list[bytes], np.ndarray]:
    rng = np.random.default_rng(seed)
    bufs = rng.integers(-90, 90, (n, 64)) + 1j * rng.integers(-90, 90, (n, 64))
    lines = [
        (format_csi_line(b, local_timestamp_us=10_000 * i, seq=i) + "\n").encode()
        for i, b in enumerate(bufs)
    ]
    return lines, np.concatenate([bufs[:, 32:], bufs[:, :32]], axis=1).astype(np.complex64)


def noisy_stream(lines: list[bytes], seed: int = 1) -> list[bytes]:
    """Pieces to write: garbage between lines, lines split at random points, a reset banner."""
    rng = np.random.default_rng(seed)
    pieces: list[bytes] = [b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n", b"\xff\x00\xfe"]
    for i, line in enumerate(lines):
        if i % 7 == 3:
            pieces.append(bytes(rng.integers(0, 256, 5).astype(np.uint8).tolist()).replace(b"\n", b"") + b"\n")
        if i % 5 == 2:
            pieces.append(b"\x00\x13garbage")  # garbage glued to the front of the next line
        cut = int(rng.integers(1, len(line) - 1))
        pieces += [line[:cut], line[cut:]]
    return pieces


def collect(src: Esp32SerialSource, n_expected: int, timeout_s: float = 20.0):
    got = []
    deadline = time.monotonic() + timeout_s
    for fr in src.chunks(stop=lambda: time.monotonic() > deadline):
        got.append(fr)
        if sum(len(f) for f in got) >= n_expected:
            src.close()
    return got


def test_loop_url_with_garbage_and_split_lines():
    lines, expected = make_lines(120)
    port = serial.serial_for_url("loop://", timeout=0.05)
    # loop:// has a small internal queue: write from another thread, as a device would
    t = threading.Thread(target=lambda: [port.write(p) for p in noisy_stream(lines)], daemon=True)
    t.start()
    src = Esp32SerialSource("loop://", port=port, chunk_size=50, source="esp32-test")
    frames = collect(src, len(lines))
    t.join(timeout=5)
    data = np.concatenate([f.data[:, :, 0, 0] for f in frames])
    times = np.concatenate([f.times_s for f in frames])
    assert len(data) == 120
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_allclose(times, np.arange(120) * 0.01, atol=1e-9)
    assert all(f.source == "esp32-test" and f.meta["live"] for f in frames)
    assert src.rejects.total == 0  # garbage lines hold no CSI_DATA marker: skipped, not rejected
    port.close()


def test_pty_device_path_with_partial_writes():
    master, slave = os.openpty()
    tty.setraw(slave)  # a USB-serial adapter is raw: no line discipline, no XON/XOFF
    path = os.ttyname(slave)
    lines, expected = make_lines(80, seed=3)
    # a corrupted CSI line in the middle is a counted reject; the stream goes on
    lines.insert(40, b'CSI_DATA,0,AA:BB:CC:DD:EE:FF,-40,11,0,0,0,1,1,0,0,0,0,-92,0,6,0,1,0,80,0,128,0,"[1,2,#,4]"\n')

    def writer():
        for piece in noisy_stream(lines, seed=4):
            os.write(master, piece)
            time.sleep(0.0005)

    src = Esp32SerialSource(path, baudrate=921600, chunk_size=32, max_latency_s=0.1)
    src.open()  # pyserial flushes pending input on open: open before the device talks
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    frames = collect(src, 80)
    t.join(timeout=5)
    data = np.concatenate([f.data[:, :, 0, 0] for f in frames])
    assert len(data) == 80
    np.testing.assert_array_equal(data, expected)
    assert dict(src.rejects.counts) == {"bad_value": 1}
    os.close(master)
    os.close(slave)


def test_low_rate_stream_is_emitted_without_waiting_for_a_full_chunk():
    lines, _ = make_lines(3)
    port = serial.serial_for_url("loop://", timeout=0.05)
    for line in lines:
        port.write(line)
    src = Esp32SerialSource("loop://", port=port, chunk_size=1000, max_latency_s=0.05)
    frames = collect(src, 3, timeout_s=5)
    assert sum(len(f) for f in frames) == 3


def test_missing_port_is_a_clear_error():
    src = Esp32SerialSource("/dev/ttyUSB_does_not_exist", baudrate=921600)
    with pytest.raises(SourceUnavailableError, match="ttyUSB_does_not_exist.*921600"):
        next(src.chunks())
