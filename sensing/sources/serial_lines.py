"""A serial port read as lines: the port handling every line-based serial source shares.

:class:`SerialLines` opens a port with :func:`serial.serial_for_url` (so a device path
``/dev/ttyUSB0``, a pty, ``loop://`` or ``socket://host:port`` all work), reads what has
arrived, splits it into lines with the partial line carried over between reads, and
rejects over-long lines (a complete line longer than ``max_line_bytes``, however the reads
split it, and a run of bytes that long without a newline) as counted
``line_too_long`` rejects. A port that fails while reading (unplugged) raises
:class:`~sensing.errors.SourceUnavailableError` naming the port. The sources that use it
(``esp32_serial``, ``uwb_serial``, ``lora_serial``) only parse the lines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sensing.errors import Reject, RejectLog, RejectReason, SourceUnavailableError

#: Largest read per call (bytes).
MAX_READ = 65536


class SerialLines:
    """Lines from a serial port.

    Parameters
    ----------
    url : str
        Serial device or pyserial URL.
    baudrate : int
        Line rate in bit/s.
    rejects : RejectLog
        Where over-long lines are counted.
    read_timeout_s : float
        Longest wait of one read, in s: :meth:`lines` yields ``None`` at least this often,
        so that a caller can flush partial chunks while the line is quiet.
    max_line_bytes : int
        Longest line kept, in bytes.
    port : serial.SerialBase, optional
        An already open port (then ``url`` only names it); it is never closed here.

    Attributes
    ----------
    lines, bytes_read : int
        Complete lines (rejected ones included) and bytes read so far.
    """

    def __init__(self, url: str, baudrate: int, rejects: RejectLog, *,
                 read_timeout_s: float = 0.05, max_line_bytes: int = 16384,
                 port: Any = None) -> None:
        self.url = url
        self.baudrate = baudrate
        self.rejects = rejects
        self.read_timeout_s = read_timeout_s
        self.max_line_bytes = max_line_bytes
        self._port = port
        self._own_port = port is None
        self.lines = 0
        self.bytes_read = 0

    def open(self) -> Any:
        """The open port (opened on the first call).

        Raises
        ------
        SourceUnavailableError
            The port cannot be opened.
        """
        if self._port is not None:
            return self._port
        import serial  # pyserial; imported here so that file replay never needs it

        try:
            self._port = serial.serial_for_url(self.url, baudrate=self.baudrate,
                                               timeout=self.read_timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SourceUnavailableError(
                f"{self.url}: cannot open serial port at {self.baudrate} baud: {exc}"
            ) from exc
        return self._port

    @property
    def is_open(self) -> bool:
        """Whether the port is open now."""
        return self._port is not None

    def release(self) -> None:
        """Close the port if this object opened it."""
        if self._own_port and self._port is not None:
            try:
                self._port.close()
            finally:
                self._port = None

    def _too_long(self, where: str, size: int) -> None:
        self.rejects.add(Reject(self.url, where, RejectReason.LINE_TOO_LONG,
                                f"a newline within {self.max_line_bytes} bytes",
                                f"{size} bytes without one"))

    def lines_of(self, running: Callable[[], bool]) -> Iterator[bytes | None]:
        """Yield each complete line (bytes, without its ``\\n``) while ``running()``, and
        ``None`` after every read (a tick, also when nothing arrived).

        Raises
        ------
        SourceUnavailableError
            The port cannot be opened or failed while reading (unplugged).
        """
        import serial

        port = self.open()
        pending = b""
        while running():
            try:
                data = port.read(max(1, min(getattr(port, "in_waiting", 0) or 1, MAX_READ)))
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
                        self._too_long(f"line {self.lines}", len(raw))
                        continue
                    yield raw
                if len(pending) > self.max_line_bytes:
                    self._too_long(f"after line {self.lines}", len(pending))
                    pending = b""
            yield None


class SerialLineSource:
    """Base of the line-based serial sources: the port handling they share.

    A subclass sets ``self._serial`` (a :class:`SerialLines`) and ``self._closed = False``
    in its ``__init__`` and reads ``self._serial.lines_of(self._running(stop))`` in its
    ``chunks``.
    """

    _serial: SerialLines
    _closed: bool

    @property
    def lines(self) -> int:
        """Lines read since the source was made."""
        return self._serial.lines

    @property
    def bytes_read(self) -> int:
        """Bytes read since the source was made."""
        return self._serial.bytes_read

    @property
    def is_open(self) -> bool:
        """Whether the port is open now."""
        return self._serial.is_open

    def open(self) -> None:
        """Open the port now (``chunks`` opens it otherwise), so that a missing device is
        reported before streaming and bytes sent from then on are kept.

        Raises
        ------
        SourceUnavailableError
            The port cannot be opened.
        """
        self._serial.open()

    def close(self) -> None:
        """Stop reading and release the port (safe to call from another thread)."""
        self._closed = True

    def _running(self, stop: Callable[[], bool] | None) -> Callable[[], bool]:
        """``running()`` for :meth:`SerialLines.lines_of`: until :meth:`close` or ``stop()``."""
        self._closed = False
        return lambda: not self._closed and not (stop is not None and stop())
