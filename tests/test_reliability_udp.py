"""A flood of malformed Nexmon CSI datagrams on loopback: the UDP source counts every one
as a reject, keeps decoding the valid packets mixed in, and its CPU and memory stay
bounded (figures printed; the bounds asserted are generous, the speed target lives in
``benchmarks/soak.py``).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import tracemalloc

import numpy as np

from sensing.formats.nexmon_pcap import NexmonPcapWriter
from sensing.sources.udp import NexmonUdpSource
from tests.test_source_udp import udp_payloads

FLOOD = 12_000  # malformed datagrams
VALID_EVERY = 40  # one valid packet after every 40 malformed ones


def valid_payloads(tmp_path, n: int) -> list[bytes]:
    """``n`` real Nexmon UDP payloads (bcm43455c0, 20 MHz), written by our pcap writer."""
    rng = np.random.default_rng(1)
    csi = (rng.integers(-500, 500, (n, 64, 1, 1))
           + 1j * rng.integers(-500, 500, (n, 64, 1, 1))).astype(np.complex64)
    path = tmp_path / "valid.pcap"
    with open(path, "wb") as fh:
        NexmonPcapWriter(fh).write(csi, np.arange(n) * 0.01, np.arange(n),
                                   np.full(n, -50))
    return udp_payloads(path)


def malformed(i: int, good: bytes, rng: np.random.Generator) -> bytes:
    """Every kind of broken datagram, in turn."""
    kind = i % 8
    if kind == 0:
        return bytes(rng.integers(0, 256, int(rng.integers(1, 1500)), dtype=np.uint8))
    if kind == 1:
        return good[: int(rng.integers(0, 18))]  # shorter than the 18-byte header
    if kind == 2:
        return b"\x22\x22" + good[2:]  # wrong magic
    if kind == 3:
        return good[:18] + good[18: 18 + int(rng.integers(1, 200))]  # CSI cut short
    if kind == 4:  # chanspec with an impossible bandwidth
        b = bytearray(good)
        struct.pack_into("<H", b, 14, 0xFFFF)
        return bytes(b)
    if kind == 5:
        return b"\x11\x11" + bytes(60_000)  # huge, magic only
    if kind == 6:
        return b""  # an empty datagram
    b = bytearray(good)  # random header bytes after the magic (may happen to be valid)
    b[2:18] = bytes(rng.integers(0, 256, 16, dtype=np.uint8))
    return bytes(b)


def test_malformed_flood_is_counted_bounded_and_valid_packets_still_decode(tmp_path):
    goods = valid_payloads(tmp_path, FLOOD // VALID_EVERY + 1)
    rng = np.random.default_rng(2)
    src = NexmonUdpSource("127.0.0.1", 0, chunk_size=64, max_latency_s=0.05, assemble=False,
                          recv_buffer_bytes=1 << 23)
    addr = src.bind()
    rows = [0]
    errors: list[BaseException] = []
    cpu = {}
    stop = threading.Event()
    mem = {}

    def consume() -> None:
        t0 = time.thread_time()
        tracemalloc.start()
        try:
            for fr in src.chunks(stop=stop.is_set):
                rows[0] += len(fr)
        except BaseException as exc:  # noqa: BLE001 - surfaced in the test thread
            errors.append(exc)
        finally:
            mem["peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            cpu["s"] = time.thread_time() - t0

    th = threading.Thread(target=consume, daemon=True)
    th.start()
    sent_bad = sent_good = 0
    volume = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(FLOOD):
            d = malformed(i, goods[0], rng)
            tx.sendto(d, addr)
            sent_bad += 1
            volume += len(d)
            if i % VALID_EVERY == VALID_EVERY - 1:
                tx.sendto(goods[sent_good], addr)
                sent_good += 1
            if i % 200 == 199:
                time.sleep(0.002)  # ~ a flood, but inside the kernel's receive buffer
    sent = sent_bad + sent_good
    deadline = time.monotonic() + 30
    while src.packets + (src.kernel_drops() or 0) < sent and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    drops = src.kernel_drops()
    stop.set()
    th.join(10)
    assert not errors, errors
    received = src.packets
    rejects = src.rejects.total
    # every datagram that arrived is accounted for: a decoded row or a counted reject
    assert rejects + rows[0] == received, (rejects, rows[0], received)
    # ... and every datagram sent either arrived or was dropped by the kernel (counted:
    # the receive buffer overflowed, which is how a flood is bounded)
    assert drops is not None and received + drops == sent, (received, drops, sent)
    # (random header fields after a good magic can form a decodable packet: kind 7)
    assert 0 < rows[0] <= sent_good + FLOOD // 8, "valid packets decoded amid the flood"
    counts = src.rejects.as_dict()
    assert {"bad_magic", "short_payload", "short_csi", "bad_chanspec"} <= set(counts), counts
    assert len(src.rejects.first) == src.rejects.keep, "the first rejects are described"
    per_packet_us = 1e6 * cpu["s"] / received
    print(f"\nUDP flood: {sent_bad} malformed + {sent_good} valid datagrams "
          f"({volume / 2**20:.1f} MiB), {received} received, {drops} dropped by the kernel, {rejects} rejects "
          f"{counts}, {rows[0]} rows decoded; reader CPU {cpu['s']:.2f} s "
          f"({per_packet_us:.0f} µs/datagram), peak traced memory "
          f"{mem['peak'] / 2**20:.1f} MiB")
    # bounded: memory does not grow with the flood (at most chunk_size datagrams held)
    assert mem["peak"] < 16 * 2**20, mem
    # generous CPU bound (x20 above what a Pi 4 needs): a flood cannot pin the core
    assert per_packet_us < 2000, per_packet_us
