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

from sensing.errors import RejectLog
from sensing.formats.esp32_csi import Esp32LineParser, PacketBatcher
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.sources import SOURCES
from sensing.sources.serial_lines import SerialLines, SerialLineSource

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
class Esp32SerialSource(SerialLineSource):
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
        self.rejects = RejectLog()
        self._serial = SerialLines(url, baudrate, self.rejects, read_timeout_s=read_timeout_s,
                                   max_line_bytes=max_line_bytes, port=port)
        self.other_lines = 0
        self._closed = False

    def chunks(self, stop: Callable[[], bool] | None = None) -> Iterator[Frames]:
        """Yield chunks until :meth:`close` is called, ``stop()`` returns True, or the port fails.

        Raises
        ------
        SourceUnavailableError
            The port cannot be opened or went away (unplugged).
        """
        parser = Esp32LineParser(self.url, self.rejects, self.ltf)
        batcher = PacketBatcher(
            self.source, self.chunk_size, {"format": "esp32_csi", "live": True, "port": self.url}
        )
        last_emit = time.monotonic()
        running = self._running(stop)
        try:
            for raw in self._serial.lines_of(running):
                if raw is not None:
                    text = raw.decode("ascii", errors="replace")
                    pkt = parser.parse(text, f"line {self._serial.lines}")
                    self.other_lines = parser.other_lines
                    if pkt is not None:
                        for fr in batcher.add(pkt):
                            last_emit = time.monotonic()
                            yield fr
                elif len(batcher) and time.monotonic() - last_emit >= self.max_latency_s:
                    fr = batcher.flush()
                    last_emit = time.monotonic()
                    if fr is not None:
                        yield fr
            fr = batcher.flush()
            if fr is not None:
                yield fr
        finally:
            self._serial.release()
