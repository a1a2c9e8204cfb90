"""Nexmon CSI live from a UDP socket (Raspberry Pi 3B+/4 with nexmon_csi, or any Nexmon chip).

The firmware broadcasts one UDP datagram per received frame (per core and spatial stream)
to port 5500 (see :mod:`sensing.formats.nexmon_pcap` for the payload). This source binds
that port and yields exactly the chunks the pcap reader yields for the same packets —
same decoder (:func:`~sensing.formats.nexmon_pcap.decode_payloads`), same per-link
assembly into multi-antenna rows (:class:`~sensing.formats.nexmon_pcap.LinkAssembler`),
same layout and fields — except that times are arrival times on this host (``time.monotonic``) relative
to the first packet, with ``t0`` its UTC wall-clock time, and ``extra_bytes`` never
includes an Ethernet trailer (the kernel hands over the UDP payload only).

Memory is bounded: at most ``chunk_size`` datagrams are held before they are decoded.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np

from sensing.errors import Reject, RejectLog, SourceUnavailableError
from sensing.formats.nexmon_pcap import (
    NEXMON_PORT,
    LinkAssembler,
    decode_payloads,
    frames_from_rows,
    select_stream,
)
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.sources import SOURCES

#: Largest UDP payload accepted (160 MHz CSI is 18 + 2048 bytes).
MAX_DATAGRAM = 65535


class NexmonUdpParams(Params):
    """Options of a ``nexmon_udp`` source."""

    host: str = param("0.0.0.0", min_length=1, doc="address to listen on")
    port: int = param(NEXMON_PORT, ge=1, le=65535, doc="UDP port nexmon_csi sends to")
    chunk_size: int = param(64, ge=1, le=100_000, doc="packets per chunk at most")
    max_latency_s: float = param(0.5, unit="s", gt=0, le=60,
                                 doc="a partial chunk is emitted after this long")
    chip: str | None = param(None, min_length=1,
                             doc="force the chip (e.g. bcm43455c0) instead of reading the "
                                 "chip version field")


@SOURCES.register("nexmon_udp")
class NexmonUdpSource:
    """Live Nexmon CSI from a bound UDP socket.

    Parameters
    ----------
    host : str
        Address to bind (``"0.0.0.0"`` receives the firmware's broadcasts).
    port : int
        UDP port (5500; 0 picks a free port, see :meth:`bind`).
    chunk_size : int
        Packets per chunk at most.
    max_latency_s : float
        A partial chunk is emitted once this many seconds passed since the last one.
    source : str, optional
        Name put in every chunk (default ``udp://host:port``).
    chip : str, optional
        Force the chip instead of reading the chip version field.
    core, spatial : int, optional
        Keep only this receive core / spatial stream (others counted in ``other_streams``).
    assemble : bool
        Assemble the packets of each Wi-Fi frame into one multi-antenna row (default), as
        the pcap reader does; False: one row per datagram. The last frame of a chunk is
        held until the next chunk shows it complete.
    recv_buffer_bytes : int
        Socket receive buffer requested (the kernel may cap it at ``net.core.rmem_max``).
    read_timeout_s : float
        Socket timeout per ``recv`` (how often ``stop``/:meth:`close` are checked).

    Attributes
    ----------
    rejects : RejectLog
        Datagrams that are not decodable Nexmon CSI, counted by reason.
    packets, bytes_read : int
        Counters since :meth:`chunks` started.
    links : LinkAssembler or None
        Link layout (``cores``, ``streams``) and ``incomplete`` frames since :meth:`chunks`
        started (None with ``assemble=False``).
    """

    Params = NexmonUdpParams
    modality = "wifi_csi"
    live = True
    description = "Nexmon CSI UDP packets (the Raspberry Pi's own WiFi chip)"

    @classmethod
    def from_params(cls, params: NexmonUdpParams, name: str) -> NexmonUdpSource:
        """A source listening on ``params.host:params.port`` (bound on first read)."""
        return cls(params.host, params.port, chunk_size=params.chunk_size,
                   max_latency_s=params.max_latency_s, source=name, chip=params.chip)

    def __init__(
        self,
        host: str = "0.0.0.0",
        port: int = NEXMON_PORT,
        *,
        chunk_size: int = 64,
        max_latency_s: float = 0.5,
        source: str | None = None,
        chip: str | None = None,
        core: int | None = None,
        spatial: int | None = None,
        assemble: bool = True,
        recv_buffer_bytes: int = 1 << 22,
        read_timeout_s: float = 0.05,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.host = host
        self.port = port
        self.chunk_size = chunk_size
        self.max_latency_s = max_latency_s
        self.source = source or f"udp://{host}:{port}"
        self.chip = chip
        self.core = core
        self.spatial = spatial
        self.assemble = assemble
        self.links: LinkAssembler | None = None
        self.other_streams = 0
        self.recv_buffer_bytes = recv_buffer_bytes
        self.read_timeout_s = read_timeout_s
        self.rejects = RejectLog()
        self.packets = 0
        self.bytes_read = 0
        self._sock: socket.socket | None = None
        self._closed = False

    @property
    def url(self) -> str:
        return f"udp://{self.host}:{self.port}"

    def bind(self) -> tuple[str, int]:
        """Open and bind the socket now (``chunks`` does it otherwise); returns the address.

        Raises
        ------
        SourceUnavailableError
            The address cannot be bound (port in use, no such interface, no permission).
        """
        if self._sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.recv_buffer_bytes)
                sock.bind((self.host, self.port))
            except OSError as exc:
                sock.close()
                raise SourceUnavailableError(
                    f"{self.url}: cannot bind UDP socket for Nexmon CSI: {exc}") from exc
            sock.settimeout(self.read_timeout_s)
            self._sock = sock
            self.host, self.port = sock.getsockname()[:2]
            if self.source.startswith("udp://"):
                self.source = self.url
        return self.host, self.port

    def kernel_drops(self) -> int | None:
        """Datagrams the kernel dropped for this socket (receive buffer full: a flood, or
        a reader that fell behind), from ``/proc/self/net/udp``; None when unknown (not bound,
        not Linux)."""
        sock = self._sock
        if sock is None:
            return None
        try:
            inode = str(os.fstat(sock.fileno()).st_ino)
            with open("/proc/self/net/udp", encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    cols = line.split()
                    if len(cols) >= 13 and cols[9] == inode:
                        return int(cols[-1])
        except (OSError, ValueError):
            return None
        return None

    def close(self) -> None:
        """Stop reading (safe from another thread); the socket is released by ``chunks``."""
        self._closed = True

    def _release(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def decode(self, payloads: list[bytes], arrival_s: np.ndarray, first_index: int
               ) -> dict[str, np.ndarray] | None:
        """Decode datagrams (in arrival order) into the rows the pcap reader produces."""
        if not payloads:
            return None
        width = max(len(p) for p in payloads)
        lengths = np.fromiter((len(p) for p in payloads), np.int64, len(payloads))
        blob = b"".join(p.ljust(width, b"\0") for p in payloads)
        pay = np.frombuffer(blob, np.uint8).reshape(len(payloads), width)
        rows, good, bad = decode_payloads(pay, lengths, chip=self.chip)
        for i, reason, expected, got in bad:
            if expected:
                self.rejects.add(Reject(self.url, f"packet {first_index + i + 1}", reason,
                                        expected, got))
            else:
                self.rejects.add(reason)
        if not len(good):
            return None
        rows["times_s"] = arrival_s[good]
        rows, dropped = select_stream(rows, self.core, self.spatial)
        self.other_streams += dropped
        return rows if len(rows["nfft"]) else None

    def chunks(self, stop: Callable[[], bool] | None = None) -> Iterator[Frames]:
        """Yield chunks until :meth:`close` is called or ``stop()`` returns True.

        Raises
        ------
        SourceUnavailableError
            The socket cannot be bound or fails while reading.
        """
        rows = self._packet_chunks(stop)
        if not self.assemble:
            self.links = None
            return rows
        self.links = LinkAssembler()
        return self.links.stream(rows)

    def _packet_chunks(self, stop: Callable[[], bool] | None) -> Iterator[Frames]:
        """One row per CSI datagram (what :meth:`chunks` assembles)."""
        self._closed = False
        if self._sock is None:
            self.bind()
        sock = self._sock
        meta: dict[str, Any] = {"format": "nexmon_pcap", "live": True, "port": self.port}
        buf = bytearray(MAX_DATAGRAM)
        view = memoryview(buf)
        pending: list[bytes] = []
        arrivals: list[float] = []
        t_first: float | None = None
        t0: datetime | None = None
        last_emit = time.monotonic()

        def flush() -> Iterator[Frames]:
            nonlocal pending, arrivals, last_emit
            payloads, times = pending, np.array(arrivals, dtype=np.float64)
            pending, arrivals = [], []
            last_emit = time.monotonic()
            rows = self.decode(payloads, times, self.packets - len(payloads))
            if rows is not None:
                yield from frames_from_rows(rows, rows["times_s"], self.source, meta,
                                            self.chunk_size, t0, self.chip)

        try:
            while not self._closed and not (stop is not None and stop()):
                try:
                    n = sock.recv_into(buf)
                except TimeoutError:
                    n = -1
                except OSError as exc:
                    raise SourceUnavailableError(f"{self.url}: UDP socket failed: {exc}") from exc
                now = time.monotonic()
                if n >= 0:
                    if t_first is None:
                        t_first = now
                        t0 = datetime.now(timezone.utc)
                    self.packets += 1
                    self.bytes_read += n
                    pending.append(bytes(view[:n]))
                    arrivals.append(now - t_first)
                    if len(pending) >= self.chunk_size:
                        yield from flush()
                if pending and now - last_emit >= self.max_latency_s:
                    yield from flush()
            if pending:
                yield from flush()
        finally:
            self._release()
