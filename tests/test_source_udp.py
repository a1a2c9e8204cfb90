"""Live Nexmon UDP source on 127.0.0.1, fed with real packets taken from a pcap."""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest

from sensing.errors import SourceUnavailableError
from sensing.formats.nexmon_pcap import NexmonPcapReader
from sensing.sources.udp import NexmonUdpSource
from tests.conftest import shared_path


def udp_payloads(path) -> list[bytes]:
    """UDP payloads (the bytes the firmware sends) of every packet of a pcap, exactly as
    bounded by the UDP length field (drops the 4-byte Ethernet trailers)."""
    blob = path.read_bytes()
    pos, out = 24, []
    while pos + 16 <= len(blob):
        incl = struct.unpack_from("<I", blob, pos + 8)[0]
        pkt = blob[pos + 16: pos + 16 + incl]
        ulen = int.from_bytes(pkt[38:40], "big")
        out.append(pkt[42: 34 + ulen])
        pos += 16 + incl
    return out


def sender(payloads: list[bytes]):
    """A ``send(addr)`` for :func:`run` that transmits ``payloads`` in bursts of 20."""

    def send(addr) -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for i, p in enumerate(payloads):
                tx.sendto(p, addr)
                if i % 20 == 19:
                    time.sleep(0.005)  # stay well inside the receive buffer
        return len(payloads)

    return send


def run(source: NexmonUdpSource, send, timeout_s: float = 10.0):
    """Consume ``source`` in a thread while ``send(addr)`` transmits; return the chunks."""
    addr = source.bind()
    chunks, errors = [], []
    done = threading.Event()

    def consume():
        try:
            for fr in source.chunks(stop=done.is_set):
                chunks.append(fr)
        except Exception as exc:  # surfaced in the test thread
            errors.append(exc)

    th = threading.Thread(target=consume, daemon=True)
    th.start()
    expected = send(addr)
    deadline = time.monotonic() + timeout_s
    while sum(len(c) for c in chunks) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    done.set()
    th.join(5)
    assert not errors, errors
    return chunks


def test_live_chunks_equal_pcap_replay():
    path = shared_path("csi", "csikit-nexmon", "example_43455c0.pcap")
    payloads = udp_payloads(path)[:150]
    replay = [c for c in NexmonPcapReader(path, chunk_size=1000)][0]
    src = NexmonUdpSource("127.0.0.1", 0, chunk_size=32, max_latency_s=0.2)

    chunks = run(src, sender(payloads))
    assert sum(len(c) for c in chunks) == 150 and max(len(c) for c in chunks) <= 32
    data = np.concatenate([c.data for c in chunks])
    np.testing.assert_array_equal(data, replay.data[:150])
    for k in ("seq", "core", "spatial", "chanspec", "chip_version", "rssi", "fc", "src_mac"):
        got = np.concatenate([c.fields[k] for c in chunks])
        np.testing.assert_array_equal(got, replay.fields[k][:150], err_msg=k)
    np.testing.assert_array_equal(chunks[0].subcarriers, replay.subcarriers)
    t = np.concatenate([c.times_s for c in chunks])
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0) and t[-1] < 10
    assert chunks[0].meta["chip"] == "bcm43455c0" and chunks[0].meta["bandwidth_mhz"] == 80
    assert chunks[0].t0 is not None and src.packets == 150 and src.rejects.total == 0


def test_partial_chunk_after_max_latency_and_rejects():
    path = shared_path("csi", "nexmon_csi", "output-40.pcap")
    good = udp_payloads(path)[:3]
    src = NexmonUdpSource("127.0.0.1", 0, chunk_size=64, max_latency_s=0.1)

    def send(addr):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(b"\x22\x22" + good[0][2:], addr)  # not the Nexmon magic
            tx.sendto(good[0][:100], addr)  # cut short
            for p in good:
                tx.sendto(p, addr)
        return 3

    t_start = time.monotonic()
    chunks = run(src, send)
    assert sum(len(c) for c in chunks) == 3  # emitted long before 64 packets arrived
    assert time.monotonic() - t_start < 5
    assert src.rejects.counts == {"bad_magic": 1, "short_csi": 1}
    where = {r.reason: r.where for r in src.rejects.first}
    assert where == {"bad_magic": "packet 1", "short_csi": "packet 2"}
    assert chunks[0].data.shape[1:] == (128, 1, 1)


def test_port_in_use_is_source_unavailable():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))  # without SO_REUSEADDR: the port cannot be shared
        port = busy.getsockname()[1]
        with pytest.raises(SourceUnavailableError, match=f"127.0.0.1:{port}"):
            NexmonUdpSource("127.0.0.1", port).bind()
    with pytest.raises(SourceUnavailableError, match="cannot bind"):
        NexmonUdpSource("203.0.113.1", 5500).bind()  # address not on this host
