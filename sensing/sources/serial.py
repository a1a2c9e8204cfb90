"""ESP32 CSI live from a serial port (pyserial), yielding the same chunks as file replay.

The port is opened with :func:`serial.serial_for_url`, so a device path
(``/dev/ttyUSB0``), a pty, ``loop://`` or ``socket://host:port`` all work. Bytes are
split into lines with partial lines carried over between reads; garbage between or inside
lines (boot messages, a half-sent line after a reset, line noise) is skipped and counted,
and parsing resynchronises on the next ``CSI_DATA,`` marker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

from sensing.errors import Reject, RejectLog, SourceUnavailableError
from sensing.formats.esp32_csi import Esp32LineParser, PacketBatcher
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.sources import SOURCES

#: Default ESP32 CSI firmware baud rate (esp-csi and ESP32-CSI-Tool both use it).
DEFAULT_BAUDRATE = 921600


class Esp32SerialParams(Params):
    """Options of an ``esp32_serial`` source."""

    url: str = param(..., min_length=1,
                     doc="serial device or pyserial URL (/dev/ttyUSB0, loop://, socket://…)")
    baudrate: int = param(DEFAULT_BAUDRATE, unit="bit/s", ge=1200, le=12_000_000,
                          doc="line rate of the CSI firmware")
    chunk_size: int = param(64, ge=1, le=100_000, doc="packets per chunk at most")
    max_latency_s: float = param(0.5, unit="s", gt=0, le=60,
                                 doc="a partial chunk is emitted after this long")
    ltf: Literal["lltf", "htltf", "stbc_htltf"] = param(
        "lltf", doc="training-field segment of the CSI buffer to output")


@SOURCES.register("esp32_serial")
class Esp32SerialSource:
    """Live ESP32 ``CSI_DATA`` stream from a serial port.

    Parameters
    ----------
    url : str
        Serial device or pyserial URL (``/dev/ttyUSB0``, ``loop://``, ``socket://…``).
    baudrate : int
        Line rate in bit/s (default 921600).
    chunk_size : int
        Packets per chunk at most.
    max_latency_s : float
        A partial chunk is emitted once this many seconds passed since the last one, so
        detectors see live data promptly at low packet rates.
    source : str, optional
        Name put in every chunk (default: ``url``).
    ltf : str
        Training-field segment to output (see :class:`~sensing.formats.esp32_csi.Esp32LineParser`).
    max_line_bytes : int
        A run of bytes this long without a newline is discarded as garbage.
    port : serial.SerialBase, optional
        An already open port (then ``url`` only names it); it is not closed by this source.

    Attributes
    ----------
    rejects : RejectLog
        Malformed lines, counted by reason.
    lines, bytes_read : int
        Counters since :meth:`chunks` started.
    other_lines : int
        Lines without a ``CSI_DATA`` marker (boot messages, line noise) skipped since
        :meth:`chunks` started.
    """

    Params = Esp32SerialParams
    modality = "wifi_csi"
    live = True
    description = "ESP32 CSI firmware (esp-csi, ESP32-CSI-Tool) on a serial port"

    @classmethod
    def from_params(cls, params: Esp32SerialParams, name: str) -> Esp32SerialSource:
        """An opened source ("running" then means the device is open; a missing port
        fails here with :class:`~sensing.errors.SourceUnavailableError`)."""
        src = cls(params.url, baudrate=params.baudrate, chunk_size=params.chunk_size,
                  max_latency_s=params.max_latency_s, source=name, ltf=params.ltf)
        src.open()
        return src

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = DEFAULT_BAUDRATE,
        chunk_size: int = 64,
        max_latency_s: float = 0.5,
        source: str | None = None,
        ltf: str = "lltf",
        max_line_bytes: int = 16384,
        read_timeout_s: float = 0.05,
        port: Any = None,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self.chunk_size = chunk_size
        self.max_latency_s = max_latency_s
        self.source = source or url
        self.ltf = ltf
        self.max_line_bytes = max_line_bytes
        self.read_timeout_s = read_timeout_s
        self._port = port
        self._own_port = port is None
        self.rejects = RejectLog()
        self.lines = 0
        self.bytes_read = 0
        self.other_lines = 0
        self._closed = False

    def open(self) -> None:
        """Open the port now (``chunks`` opens it otherwise), so that a missing device is
        reported before streaming and bytes sent from then on are kept.

        Raises
        ------
        SourceUnavailableError
            The port cannot be opened.
        """
        self._open()

    def _open(self):
        if self._port is not None:
            return self._port
        import serial  # pyserial; imported here so file replay never needs it

        try:
            self._port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=self.read_timeout_s
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SourceUnavailableError(
                f"{self.url}: cannot open serial port at {self.baudrate} baud: {exc}"
            ) from exc
        return self._port

    def close(self) -> None:
        """Stop reading and release the port (safe to call from another thread)."""
        self._closed = True

    def _release(self) -> None:
        if self._own_port and self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None

    def chunks(self, stop: Callable[[], bool] | None = None) -> Iterator[Frames]:
        """Yield chunks until :meth:`close` is called, ``stop()`` returns True, or the port fails.

        Raises
        ------
        SourceUnavailableError
            The port cannot be opened or went away (unplugged).
        """
        import serial

        self._closed = False
        port = self._open()
        parser = Esp32LineParser(self.url, self.rejects, self.ltf)
        batcher = PacketBatcher(
            self.source, self.chunk_size, {"format": "esp32_csi", "live": True, "port": self.url}
        )
        pending = b""
        last_emit = time.monotonic()
        try:
            while not self._closed and not (stop is not None and stop()):
                try:
                    data = port.read(max(1, min(getattr(port, "in_waiting", 0) or 1, 65536)))
                except (serial.SerialException, OSError) as exc:
                    raise SourceUnavailableError(
                        f"{self.url}: serial port failed while reading (unplugged?): {exc}"
                    ) from exc
                if data:
                    self.bytes_read += len(data)
                    pending += data
                    *complete, pending = pending.split(b"\n")
                    for raw in complete:
                        self.lines += 1
                        if len(raw) > self.max_line_bytes:  # however the reads split it
                            self.rejects.add(Reject(
                                self.url, f"line {self.lines}", "line_too_long",
                                f"a newline within {self.max_line_bytes} bytes",
                                f"{len(raw)} bytes without one",
                            ))
                            continue
                        text = raw.decode("ascii", errors="replace")
                        pkt = parser.parse(text, f"line {self.lines}")
                        self.other_lines = parser.other_lines
                        if pkt is not None:
                            for fr in batcher.add(pkt):
                                last_emit = time.monotonic()
                                yield fr
                    if len(pending) > self.max_line_bytes:
                        self.rejects.add(Reject(
                            self.url, f"after line {self.lines}", "line_too_long",
                            f"a newline within {self.max_line_bytes} bytes",
                            f"{len(pending)} bytes without one",
                        ))
                        pending = b""
                if len(batcher) and time.monotonic() - last_emit >= self.max_latency_s:
                    fr = batcher.flush()
                    last_emit = time.monotonic()
                    if fr is not None:
                        yield fr
            fr = batcher.flush()
            if fr is not None:
                yield fr
        finally:
            self._release()
