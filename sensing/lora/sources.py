"""``lora_serial``: a LoRa module's packet log live from a serial port (pyserial).

The board prints one packet's RSSI / SNR / frequency error per line or per block of lines
(RadioLib, arduino-LoRa or ambisense styles: :mod:`sensing.lora.formats.module_log`); the
lines are parsed as the file reader does and yielded as ``lora_packets`` chunks. Packets
are stamped with the host's clock on arrival (seconds since the source started) unless
the line carries its own time stamp. The port is opened with
:func:`serial.serial_for_url`, so ``/dev/ttyUSB0``, ``loop://`` or ``socket://host:port``
work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from sensing.errors import RejectLog
from sensing.frames import Frames
from sensing.lora.formats.module_log import ModuleLogParser, RowBatcher
from sensing.params import Params, param
from sensing.sources import SOURCES
from sensing.sources.serial_lines import SerialLines, SerialLineSource


class LoraSerialParams(Params):
    """Options of a ``lora_serial`` source."""

    url: str = param(..., min_length=1,
                     doc="serial device or pyserial URL (/dev/ttyUSB0, loop://, socket://…)")
    baudrate: int = param(115200, unit="bit/s", ge=1200, le=12_000_000,
                          doc="line rate of the board's serial output")
    chunk_size: int = param(16, ge=1, le=100_000, doc="packets per chunk at most")
    max_latency_s: float = param(1.0, unit="s", gt=0, le=600,
                                 doc="a partial chunk is emitted after this long")


@SOURCES.register("lora_serial")
class LoraSerialSource(SerialLineSource):
    """Live LoRa module packet log from a serial port.

    Parameters
    ----------
    url : str
        Serial device or pyserial URL.
    baudrate : int
        Line rate (bit/s).
    chunk_size : int
        Packets per chunk at most.
    max_latency_s : float
        A partial chunk is emitted once this long passed since the last one.
    source : str, optional
        Name in every chunk (default: ``url``).
    port : serial.SerialBase, optional
        An already open port (not closed by this source).
    clock : callable, optional
        Host clock in seconds (default :func:`time.monotonic`), for arrival times.
    """

    Params = LoraSerialParams
    modality = "lora_packets"
    live = True
    description = "LoRa module (SX127x/SX126x) printing per-packet RSSI/SNR on a serial port"

    @classmethod
    def from_params(cls, params: LoraSerialParams, name: str) -> LoraSerialSource:
        src = cls(params.url, baudrate=params.baudrate, chunk_size=params.chunk_size,
                  max_latency_s=params.max_latency_s, source=name)
        src.open()
        return src

    def __init__(self, url: str, *, baudrate: int = 115200, chunk_size: int = 16,
                 max_latency_s: float = 1.0, source: str | None = None,
                 max_line_bytes: int = 4096, read_timeout_s: float = 0.05, port: Any = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.url, self.baudrate = url, baudrate
        self.chunk_size, self.max_latency_s = chunk_size, max_latency_s
        self.source = source or url
        self.max_line_bytes, self.read_timeout_s = max_line_bytes, read_timeout_s
        self._clock = clock or time.monotonic
        self.rejects = RejectLog()
        self._serial = SerialLines(url, baudrate, self.rejects, read_timeout_s=read_timeout_s,
                                   max_line_bytes=max_line_bytes, port=port)
        self._closed = False

    def chunks(self, stop: Callable[[], bool] | None = None) -> Iterator[Frames]:
        """Yield ``lora_packets`` chunks until :meth:`close`, ``stop()`` or a port failure.

        Raises
        ------
        SourceUnavailableError
            The port cannot be opened or went away.
        """
        self._serial.open()
        parser = ModuleLogParser(self.url, self.rejects)
        batcher = RowBatcher(self.source, self.chunk_size,
                             {"format": "lora_module_log", "live": True, "port": self.url},
                             1.0)
        t_start = self._clock()
        last_emit = self._clock()
        running = self._running(stop)
        try:
            for raw in self._serial.lines_of(running):
                if raw is not None:
                    rows = parser.feed(raw.decode("utf-8", errors="replace").rstrip("\r"),
                                       f"line {self._serial.lines}")
                    now = self._clock() - t_start
                    for r in rows:
                        if math.isnan(r.time_s):
                            r.time_s = now
                    for fr in batcher.add(rows):
                        last_emit = self._clock()
                        yield fr
                elif len(batcher) and self._clock() - last_emit >= self.max_latency_s:
                    fr = batcher.flush()
                    last_emit = self._clock()
                    if fr is not None:
                        yield fr
            rows = parser.finish()
            for r in rows:
                if math.isnan(r.time_s):
                    r.time_s = self._clock() - t_start
            yield from batcher.add(rows)
            fr = batcher.flush()
            if fr is not None:
                yield fr
        finally:
            self._serial.release()
