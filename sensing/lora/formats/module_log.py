"""Text logs of LoRa modules (SX127x / SX126x boards) printing per-packet RSSI, SNR and
frequency error over serial → ``lora_packets`` frames.

Recognised line styles (case-insensitive, any mix in one file):

``ambisense`` (what :func:`write_module_log` writes; one line per packet)::

    t=12.345 RSSI: -87 dBm SNR: 9.5 dB freq_err: -1234 Hz len: 2

``RadioLib`` (the SX127x/SX126x ``Receive`` examples: one line per quantity; a packet's
block ends at the next ``Data:`` / ``success!`` line or when a quantity repeats)::

    [SX1278] Waiting for incoming transmission ... success!
    [SX1278] Data:              Hello World!
    [SX1278] RSSI:              -105 dBm
    [SX1278] SNR:               9.50 dB
    [SX1278] Frequency error:   -1234.56 Hz

``arduino-LoRa`` (``LoRaReceiver`` style, RSSI and optional SNR / frequency error on one
line)::

    Received packet 'hello 12' with RSSI -87 and SNR 9.25

An optional time stamp leads a line: ``t=SECONDS``, ``SECONDS`` (e.g. from ``ts``), a
bracketed ``[SECONDS]`` / ``[MILLISECONDS ms]``, or the Arduino serial monitor's
``HH:MM:SS.mmm -> ``. Without time stamps the packets are spaced ``interval_s`` apart
(reader option, default 1 s) and ``meta["timed"]`` is False. Other lines (boot messages,
"Waiting for …") are skipped; a line whose RSSI, SNR or frequency error is not a number is
a counted reject (``bad_number``).

Frames: ``data`` float32 ``(n_packets, 3)`` = ``rssi_db`` (dBm), ``snr_db`` (dB),
``freq_error_hz`` (Hz); ``channel_names`` name them; ``fields["payload_len"]`` (bytes,
−1 unknown). The quantities of the log's first packet are the ones it prints: a later
packet without one of them (a mangled line, the input ending inside a RadioLib block) is
a counted reject (``field_count``, ``truncated_record``); a quantity the log never prints
(arduino-LoRa's frequency error) is NaN in every row.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensing.errors import Reject, RejectLog, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames
from sensing.params import Params, param

__all__ = ["ModuleLogReader", "ModuleLogParser", "PacketRow", "write_module_log",
           "CHANNELS", "MODALITY"]

MODALITY = "lora_packets"
CHANNELS = ("rssi_db", "snr_db", "freq_error_hz")
_NUM = r"([-+]?\S+?)"

_TIME = re.compile(
    r"^\s*(?:t=(?P<t>[-+0-9.eE]+)\s+|\[(?P<b>[0-9.]+)\s*(?P<ms>ms)?\]\s*|"
    r"(?P<hms>\d{1,2}:\d{2}:\d{2}(?:\.\d+)?)\s*->\s*|(?P<s>\d+\.\d+)[\s,;]+(?=\D))")
_RSSI = re.compile(r"\brssi\b\s*[:=]?\s*" + _NUM + r"(?:\s*dbm)?(?=[\s,;]|$)", re.I)
_SNR = re.compile(r"\bsnr\b\s*[:=]?\s*" + _NUM + r"(?:\s*db)?(?=[\s,;]|$)", re.I)
_FERR = re.compile(r"\b(?:freq(?:uency)?[ _]?err(?:or)?)\b\s*[:=]?\s*" + _NUM
                   + r"(?:\s*hz)?(?=[\s,;]|$)", re.I)
_LEN = re.compile(r"\blen\b\s*[:=]\s*(\d+)", re.I)
_BOUNDARY = re.compile(r"(\bdata:|success!|received packet)", re.I)


@dataclass
class PacketRow:
    """One packet: time (s, NaN when the log has none), RSSI (dBm), SNR (dB), frequency
    error (Hz), payload length (bytes, −1 unknown)."""

    time_s: float
    rssi_db: float = math.nan
    snr_db: float = math.nan
    freq_error_hz: float = math.nan
    payload_len: int = -1

    def empty(self) -> bool:
        return all(math.isnan(v) for v in (self.rssi_db, self.snr_db, self.freq_error_hz))


def _number(text: str) -> float | None:
    text = text.rstrip(",;")
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


class ModuleLogParser:
    """Line-by-line parser shared by the file reader and the serial source.

    Parameters
    ----------
    path : str
        File or port named in rejects.
    rejects : RejectLog
        Where malformed lines are counted.
    """

    def __init__(self, path: str, rejects: RejectLog) -> None:
        self.path = path
        self.rejects = rejects
        self._open: PacketRow | None = None
        self._day_s = 0.0
        self._last_hms: float | None = None
        #: Quantities the log prints (those of its first packet).
        self.columns: tuple[str, ...] | None = None

    def _accept(self, rows: list[PacketRow], where: str, *, at_end: bool = False
                ) -> list[PacketRow]:
        """Rows with every quantity the log prints; a packet lacking one is a reject."""
        out = []
        for r in rows:
            have = tuple(c for c in CHANNELS if not math.isnan(getattr(r, c)))
            reason = RejectReason.TRUNCATED_RECORD if at_end else RejectReason.FIELD_COUNT
            tail = " at the end of the input" if at_end else ""
            if "rssi_db" not in have:
                self.rejects.add(Reject(self.path, where, reason, "an RSSI for every packet",
                                        f"a packet with only {', '.join(have)}{tail}"))
                continue
            if self.columns is None:
                self.columns = have
            missing = [c for c in self.columns if c not in have]
            if missing:
                self.rejects.add(Reject(
                    self.path, where, reason,
                    f"{', '.join(self.columns)} for every packet, as the first packet",
                    f"a packet without {', '.join(missing)}{tail}"))
                continue
            extra = [c for c in have if c not in self.columns]
            if extra:  # the earlier packets lacked it: they carry NaN there, say so
                self.rejects.add(Reject(
                    self.path, where, RejectReason.FIELD_COUNT,
                    f"the quantities of the first packet ({', '.join(self.columns)})",
                    f"{', '.join(extra)} from here on (NaN in the packets before)"))
                self.columns = tuple(c for c in CHANNELS if c in self.columns or c in extra)
            out.append(r)
        return out

    def _time(self, line: str) -> tuple[float, str]:
        m = _TIME.match(line)
        if not m:
            return math.nan, line
        rest = line[m.end():]
        if m.group("t") is not None:
            v = _number(m.group("t"))
            return (math.nan if v is None else v), rest
        if m.group("b") is not None:
            v = _number(m.group("b"))
            if v is None:
                return math.nan, rest
            return (v / 1000.0 if m.group("ms") else v), rest
        if m.group("hms") is not None:
            h, mi, s = m.group("hms").split(":")
            v = int(h) * 3600 + int(mi) * 60 + float(s)
            if self._last_hms is not None and v + 3600 < self._last_hms:  # midnight
                self._day_s += 86400.0
            self._last_hms = v
            return v + self._day_s, rest
        return float(m.group("s")), rest

    def feed(self, line: str, where: str) -> list[PacketRow]:
        """Parse one line; return the packets it completed (0, 1 or 2)."""
        return self._accept(self._feed(line, where), where)

    def _feed(self, line: str, where: str) -> list[PacketRow]:
        t, body = self._time(line)
        found: dict[str, float] = {}
        for key, rx in (("rssi_db", _RSSI), ("snr_db", _SNR), ("freq_error_hz", _FERR)):
            m = rx.search(body)
            if not m:
                continue
            v = _number(m.group(1))
            if v is None:
                self.rejects.add(Reject(self.path, where, RejectReason.BAD_NUMBER,
                                        f"a number after {key.split('_')[0].upper()}",
                                        repr(m.group(1)[:40])))
                return []
            found[key] = v
        out: list[PacketRow] = []
        boundary = _BOUNDARY.search(body) is not None
        if boundary and self._open is not None and not self._open.empty():
            out.append(self._open)
            self._open = None
        if not found:
            if boundary and self._open is None:
                self._open = PacketRow(t)
            return out
        if len(found) >= 2 or (self._open is None and "rssi_db" in found
                               and _SNR.search(body) is None and boundary):
            # a one-line packet (ambisense / arduino-LoRa style)
            if self._open is not None and not self._open.empty():
                out.append(self._open)
            self._open = None
            row = PacketRow(t, **found)
            m = _LEN.search(body)
            if m:
                row.payload_len = int(m.group(1))
            out.append(row)
            return out
        # a RadioLib-style line of one quantity: part of the open block
        key, v = next(iter(found.items()))
        if self._open is None:
            self._open = PacketRow(t)
        elif not math.isnan(getattr(self._open, key)):
            out.append(self._open)  # the quantity repeats: a new packet
            self._open = PacketRow(t)
        setattr(self._open, key, v)
        if math.isnan(self._open.time_s):
            self._open.time_s = t
        return out

    def finish(self, where: str = "end of input") -> list[PacketRow]:
        """End of input: the open block, if it has anything (a reject when the input
        ended inside it, before all the quantities the log prints)."""
        row, self._open = self._open, None
        rows = [row] if row is not None and not row.empty() else []
        return self._accept(rows, where, at_end=True)


class ModuleLogOptions(Params):
    """Reader options of LoRa module logs (``--read KEY=VALUE``)."""

    interval_s: float = param(1.0, unit="s", gt=0, le=86400,
                              doc="packet spacing assumed when the log has no time stamps")


class RowBatcher:
    """Packet rows → :class:`Frames` of at most ``chunk_size`` rows, times made
    non-decreasing (a missing time: the previous + ``interval_s``; a clock step back is
    clamped)."""

    def __init__(self, source: str, chunk_size: int, meta: dict[str, Any], interval_s: float):
        self.source, self.chunk_size, self.meta = source, chunk_size, meta
        self.interval_s = interval_s
        self._rows: list[PacketRow] = []
        self._times: list[float] = []
        self._last: float | None = None
        self._t_origin: float | None = None
        self.timed = False

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, rows: Iterable[PacketRow]) -> list[Frames]:
        out = []
        for r in rows:
            t = r.time_s
            if math.isnan(t):
                t = 0.0 if self._last is None else self._last + self.interval_s
            else:
                self.timed = True
                if self._t_origin is None:
                    self._t_origin = t if self._last is None else t - self._last
                t = t - self._t_origin
                if self._last is not None and t < self._last:
                    t = self._last
            self._last = t
            self._rows.append(r)
            self._times.append(t)
            if len(self._rows) >= self.chunk_size:
                out.append(self.flush())
        return out

    def flush(self) -> Frames | None:
        if not self._rows:
            return None
        data = np.array([[r.rssi_db, r.snr_db, r.freq_error_hz] for r in self._rows],
                        dtype=np.float32)
        lens = np.array([r.payload_len for r in self._rows], dtype=np.int32)
        times = np.array(self._times, dtype=np.float64)
        self._rows, self._times = [], []
        return Frames(data=data, times_s=times, fs_hz=None, modality=MODALITY,
                      source=self.source, channel_names=CHANNELS,
                      fields={"payload_len": lens}, meta={**self.meta, "timed": self.timed})


def _looks_like_log(text: str) -> bool:
    if "CSI_DATA" in text:
        return False
    hits = 0
    for line in text.splitlines()[:400]:
        body = _TIME.sub("", line, count=1)
        m = _RSSI.search(body)
        if m and _number(m.group(1)) is not None:
            hits += 1
            if hits >= 2:
                return True
    return False


@FORMATS.register("lora_module_log")
class ModuleLogReader(CaptureReader):
    """LoRa module packet logs (RSSI / SNR / frequency error per packet, see the module
    doc) → ``lora_packets`` frames.

    Parameters
    ----------
    path : str or os.PathLike
        The log file.
    chunk_size : int
        Packets per chunk.
    source : str, optional
        Name in each chunk (default: the file's base name).
    interval_s : float
        Packet spacing when the log has no time stamps (s).
    """

    name = "lora_module_log"
    modality = MODALITY
    extensions = (".log", ".txt")
    description = ("LoRa module packet log (SX127x/SX126x RSSI, SNR, frequency error per "
                   "packet: RadioLib, arduino-LoRa or ambisense lines)")
    Options = ModuleLogOptions

    def __init__(self, path: str | os.PathLike, *, chunk_size: int = 256,
                 source: str | None = None, **options: Any) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        self.options = ModuleLogOptions.from_options(options, where=f"{self.name} reader")

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if b"\0" in head:
            return False
        try:
            text = head.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            # a cut multi-byte character at the end of the head is fine
            try:
                text = head[:-4].decode("utf-8")
            except UnicodeDecodeError:
                return False
        return _looks_like_log(text)

    def chunks(self) -> Iterator[Frames]:
        self.rejects = RejectLog()
        parser = ModuleLogParser(self.path, self.rejects)
        batcher = RowBatcher(self.source, self.chunk_size, {"format": self.name},
                             self.options.interval_s)
        self.bytes_read = 0
        with open(self.path, "rb") as fh:
            for i, raw in enumerate(fh, 1):
                self.bytes_read += len(raw)
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                yield from batcher.add(parser.feed(line, f"line {i}"))
        yield from batcher.add(parser.finish())
        last = batcher.flush()
        if last is not None:
            yield last


def write_module_log(path: str | os.PathLike, times_s: np.ndarray, rssi_db: np.ndarray,
                     snr_db: np.ndarray | None = None, freq_error_hz: np.ndarray | None = None,
                     *, style: str = "ambisense", payload_len: int = 2,
                     header: Iterable[str] = ()) -> str:
    """Write a module log (for simulators and tests).

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    times_s, rssi_db, snr_db, freq_error_hz : numpy.ndarray
        Per packet: time (s), RSSI (dBm, printed as an integer as SX127x reports it),
        SNR (dB, 0.25 dB steps), frequency error (Hz).
    style : str
        ``"ambisense"`` (one line per packet), ``"radiolib"`` (a block of lines per
        packet, with ``[SECONDS]`` time stamps) or ``"arduino_lora"`` (one line, with the
        Arduino serial monitor's ``HH:MM:SS.mmm ->`` time stamps).
    payload_len : int
        Payload length printed (bytes).
    header : iterable of str
        Lines written first (boot messages; the reader skips them).

    Returns
    -------
    str
        The path.
    """
    n = len(times_s)
    snr = np.full(n, np.nan) if snr_db is None else np.asarray(snr_db, float)
    ferr = np.full(n, np.nan) if freq_error_hz is None else np.asarray(freq_error_hz, float)
    lines = list(header)
    for t, r, s, f in zip(np.asarray(times_s, float), np.asarray(rssi_db, float), snr, ferr,
                          strict=True):
        if style == "ambisense":
            parts = [f"t={t:.3f}", f"RSSI: {r:.0f} dBm"]
            if not math.isnan(s):
                parts.append(f"SNR: {s:.2f} dB")
            if not math.isnan(f):
                parts.append(f"freq_err: {f:.0f} Hz")
            parts.append(f"len: {payload_len}")
            lines.append(" ".join(parts))
        elif style == "radiolib":
            lines.append(f"[{t:.3f}] [SX1276] Waiting for incoming transmission ... success!")
            lines.append(f"[{t:.3f}] [SX1276] Data:\t\t\t{'x' * payload_len}")
            lines.append(f"[{t:.3f}] [SX1276] RSSI:\t\t\t{r:.0f} dBm")
            if not math.isnan(s):
                lines.append(f"[{t:.3f}] [SX1276] SNR:\t\t\t{s:.2f} dB")
            if not math.isnan(f):
                lines.append(f"[{t:.3f}] [SX1276] Frequency error:\t{f:.2f} Hz")
        elif style == "arduino_lora":
            h, rem = divmod(t, 3600.0)
            m, s_ = divmod(rem, 60.0)
            stamp = f"{int(h) % 24:02d}:{int(m):02d}:{s_:06.3f}"
            text = f"{stamp} -> Received packet '{'x' * payload_len}' with RSSI {r:.0f}"
            if not math.isnan(s):
                text += f" and SNR {s:.2f}"
            lines.append(text)
        else:
            raise ValueError(f"style must be ambisense, radiolib or arduino_lora, got {style!r}")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return os.fspath(path)
