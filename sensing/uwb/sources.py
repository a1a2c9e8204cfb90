"""``uwb_serial``: DW1000/DW3000 boards printing CIR dumps over a serial port (pyserial).

The board prints the DecaRanging log lines the file reader reads
(:mod:`sensing.uwb.formats.decaranging`; the firmware side is in
``firmware_configs/uwb/``): per received frame an ``RX OK … HLP(…), PSC(…) …`` line,
``Accum Len N`` and ``N`` lines ``I, Q``, optionally ``Rx time = <s>`` before it and an
``Anchor ToF: … Dist: … m`` line after it. The same parser turns them into the same
``uwb_cir`` chunks as file replay; garbage (boot messages, a dump cut by a reset) becomes
counted rejects and parsing resynchronises on the next record.

A record is complete when the next one starts (or its ``ToF`` line arrives), so a chunk
lags the air by one frame; a partial chunk is emitted once ``max_latency_s`` passed since
the last one. Frames without an ``Rx time`` line are stamped with the host's monotonic
clock on arrival.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from sensing.errors import RejectLog
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.sources import SOURCES
from sensing.sources.serial_lines import SerialLines, SerialLineSource
from sensing.uwb.formats.decaranging import DecaRangingParser, RecordBatcher

DEFAULT_BAUDRATE = 921600


class UwbSerialParams(Params):
    """Options of a ``uwb_serial`` source."""

    url: str = param(..., min_length=1,
                     doc="serial device or pyserial URL (/dev/ttyACM0, loop://, socket://…)")
    baudrate: int = param(DEFAULT_BAUDRATE, unit="bit/s", ge=1200, le=12_000_000,
                          doc="line rate of the board's UART")
    chunk_size: int = param(16, ge=1, le=100_000, doc="CIRs per chunk at most")
    max_latency_s: float = param(0.5, unit="s", gt=0, le=60,
                                 doc="a partial chunk is emitted after this long")


@SOURCES.register("uwb_serial")
class UwbSerialSource(SerialLineSource):
    """Live DW1000/DW3000 CIR dumps (DecaRanging line format) from a serial port.

    Parameters
    ----------
    url : str
        Serial device or pyserial URL.
    baudrate : int
        Line rate (bit/s).
    chunk_size : int
        CIRs per chunk at most.
    max_latency_s : float
        A partial chunk is emitted once this long passed since the last one.
    source : str, optional
        Name put in every chunk (default ``url``).
    max_line_bytes : int
        A run of bytes this long without a newline is discarded (counted reject).
    port : serial.SerialBase, optional
        An already open port (not closed by this source).
    """

    Params = UwbSerialParams
    modality = "uwb_cir"
    live = True
    description = "DW1000/DW3000 CIR accumulator dumps (DecaRanging lines) on a serial port"

    @classmethod
    def from_params(cls, params: UwbSerialParams, name: str) -> UwbSerialSource:
        src = cls(params.url, baudrate=params.baudrate, chunk_size=params.chunk_size,
                  max_latency_s=params.max_latency_s, source=name)
        src.open()
        return src

    def __init__(self, url: str, *, baudrate: int = DEFAULT_BAUDRATE, chunk_size: int = 16,
                 max_latency_s: float = 0.5, source: str | None = None,
                 max_line_bytes: int = 16384, read_timeout_s: float = 0.05,
                 port: Any = None) -> None:
        self.url = url
        self.baudrate = baudrate
        self.chunk_size = chunk_size
        self.max_latency_s = max_latency_s
        self.source = source or url
        self.rejects = RejectLog()
        self._serial = SerialLines(url, baudrate, self.rejects, read_timeout_s=read_timeout_s,
                                   max_line_bytes=max_line_bytes, port=port)
        self._closed = False

    def _lines(self, stop: Callable[[], bool] | None) -> Iterator[str]:
        t0 = time.monotonic()
        running = self._running(stop)
        for raw in self._serial.lines_of(running):
            if raw is None:
                continue
            text = raw.decode("latin-1").rstrip("\r")
            if text.startswith("RX OK"):
                self._arrival = time.monotonic() - t0
            yield text

    def chunks(self, stop: Callable[[], bool] | None = None) -> Iterator[Frames]:
        """Yield ``uwb_cir`` chunks until :meth:`close`, ``stop()`` or a port failure
        (:class:`~sensing.errors.SourceUnavailableError`)."""
        self._serial.open()
        parser = DecaRangingParser(self.url, self.rejects)
        batcher = RecordBatcher(self.source, self.chunk_size, parser)
        self._arrival = 0.0
        last_emit = time.monotonic()
        try:
            for rec in parser.records(self._lines(stop)):
                if rec["rx_time_s"] is None:
                    rec["host_time_s"] = self._arrival
                for fr in batcher.add(_host_time(rec)):
                    last_emit = time.monotonic()
                    fr.meta["live"] = True
                    yield fr
                if time.monotonic() - last_emit >= self.max_latency_s:
                    fr = batcher.flush()
                    last_emit = time.monotonic()
                    if fr is not None:
                        fr.meta["live"] = True
                        yield fr
            fr = batcher.flush()
            if fr is not None:
                yield fr
        finally:
            self._serial.release()


def _host_time(rec: dict[str, Any]) -> dict[str, Any]:
    """Use the host arrival time as the record's clock when the board printed none."""
    if rec.get("rx_time_s") is None and "host_time_s" in rec:
        rec["rx_time_s"] = rec.pop("host_time_s")
    return rec
