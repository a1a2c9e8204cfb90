"""DW1000/DW3000 channel impulse responses in the DecaRanging text-log format.

The format is the one Decawave's DecaRanging PC application (EVK1000, v3.05) writes with
"log all accumulators" on, as in the Kolakowski 2018 flat data set
(``../shared/data/uwb/kolakowski-uwb-cirs-2018``). A log is CRLF (or LF) text::

    File:20180113-133355_DecaWaveAllAccum.log, created by DecaRanging MP Version 3.05 ...
    Mode: 2, Chan 2, Code 9, PRF 64, Plength 1024, DataRate 1, PAC 2, ic:1000fa35, ...
    21 2E Rx time = 1.415943708372459e+001 D2A78B2819        <- receive time, s (wraps)
    RX OK WInd(0735), HLP(0744.5938), PSC(0369), ..., NTH(062A), ..., RSL(-080.5501), FSL(-085.0904), ...
    Accum Len 1016
    -146, 69                                                  <- 1016 lines "I, Q"
    ...
    Anchor ToF: 15.928 ns Dist: 4.773809 m DistRaw: ... Bias: -0.060 m ClockOffset: 0.051 ppm

One **record** is an ``RX OK`` line, its ``Accum Len N`` line and ``N`` lines of signed
integers (the accumulator: ~1.0016 ns per tap, 1016 taps at 64 MHz PRF, 992 at 16 MHz),
and the ``Anchor ToF`` line when the ranging exchange completes with this frame. Fields:

=====================  =====================================================================
``first_path_index``   ``HLP``: the chip's fractional first-path index (taps; FP_INDEX/64)
``rxpacc``             ``PSC``: preamble symbols accumulated (RXPACC), for normalisation
``window_index``       ``WInd``
``rsl_dbm``            ``RSL``: estimated receive level (dBm)
``fsl_dbm``            ``FSL``: estimated first-path level (dBm)
``nth``                ``NTH``: noise threshold (hexadecimal in the log)
``tof_ns``             ``Anchor ToF`` (ns; NaN on frames that do not end an exchange)
``distance_m``         ``Dist`` (m; bias-corrected, NaN as above)
``label``              ``Label:`` line of ambisense-written logs (``"los"``/``"nlos"``…), or
                       the file's row in a ``labels.csv`` beside it (``file_id,label``);
                       ``""`` when unknown
=====================  =====================================================================

``RX E…`` records (receive errors: the chip dumped the accumulator of a frame it failed to
decode) are not CIRs of received frames: they are skipped and counted in
``meta["rx_errors"]``. Malformed records (a non-integer or out-of-int16 tap, an
accumulator cut short by another line or the end of the file, unreadable header fields)
are counted rejects. Times come from ``Rx time`` (the 40-bit device clock in seconds,
wrapping every 2**40 / 63.8976 GHz = 17.2074 s; unwrapped here, so gaps over 17 s between
frames alias), relative to the first record; without ``Rx time`` lines the frame index
divided by the ``Frame rate`` header (or 1 Hz) is used.

ambisense's writer (:func:`write_decaranging`) writes the same lines plus two header
lines the DecaRanging app does not write and this reader does not need: ``Chip: DW3000``
and ``Frame rate: 20.000 Hz``, and a ``Label:`` line after a record when labels are given.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any

import numpy as np

from sensing.errors import Reject, RejectLog, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames

#: DW1000/DW3000 accumulator tap spacing: one sample at 998.4 MHz (s).
TAP_S = 1.0 / 998.4e6
#: Period of the 40-bit device time stamp (63.8976 GHz units), s.
CLOCK_WRAP_S = 2.0 ** 40 / (128 * 499.2e6)
#: Speed of light, m/s.
C_M_S = 299_792_458.0
#: Taps of the accumulator per PRF (MHz).
TAPS_PER_PRF = {64: 1016, 16: 992}
#: Longest accumulator a record may announce (taps); longer is a malformed record.
MAX_TAPS = 4096

_RX_TIME = re.compile(r"Rx time\s*=\s*([-+0-9.eE]+)")
_FIELD = re.compile(r"(\w+)\(([^)]*)\)")
_ACCUM = re.compile(r"^Accum Len\s+(\S+)\s*$")
_TOF = re.compile(r"ToF:\s*([-+0-9.eE]+)\s*ns\s+Dist:\s*([-+0-9.eE]+)\s*m")
_MODE = re.compile(r"(Chan|Code|PRF|Plength|DataRate|PAC)\s+(\d+)")
_RATE = re.compile(r"^Frame rate:\s*([0-9.eE+-]+)\s*Hz")
_CHIP = re.compile(r"^Chip:\s*(\S+)")
_LABEL = re.compile(r"^Label:\s*(\S*)")

#: Row fields of every chunk, with their dtypes.
FIELD_DTYPES: dict[str, Any] = {
    "first_path_index": np.float64, "rxpacc": np.int32, "window_index": np.int32,
    "rsl_dbm": np.float64, "fsl_dbm": np.float64, "nth": np.int32,
    "tof_ns": np.float64, "distance_m": np.float64, "label": "<U16",
}


def _clip(s: str, n: int = 40) -> str:
    return repr(s if len(s) <= n else s[:n] + "…")


class DecaRangingParser:
    """Turns DecaRanging log lines into CIR records (shared by file replay and serial).

    Two entry points with the same results: :meth:`records` (any iterable of lines: the
    serial source) and :meth:`frames` (a text file read in blocks: the file reader, which
    parses runs of regular records, as :func:`write_decaranging` writes them, vectorised,
    and every other line with the line-by-line state machine of :meth:`records`).

    Parameters
    ----------
    path : str
        Name used in rejects (file path or serial URL).
    rejects : RejectLog
        Where malformed records are counted.

    Attributes
    ----------
    meta : dict
        Radio settings read from the header so far (``channel``, ``preamble_code``,
        ``prf_mhz``, ``preamble_length``, ``data_rate_code``, ``pac``, ``chip``,
        ``frame_rate_hz`` when the header gives them).
    rx_errors : int
        ``RX E…`` records skipped.
    """

    def __init__(self, path: str, rejects: RejectLog) -> None:
        self.path = path
        self.rejects = rejects
        self.meta: dict[str, Any] = {}
        self.rx_errors = 0
        self._rx_time: float | None = None
        self._label = ""
        # state of the line-by-line machine
        self._lineno = 0
        self._pending: dict[str, Any] | None = None
        self._header: tuple[int, dict[str, str]] | None = None  # (line, fields) of RX OK
        self._accepted = False  # the last step made a record (the fast path may resume)

    def _reject(self, lineno: int, reason: RejectReason, expected: str, got: str) -> None:
        self.rejects.add(Reject(self.path, f"line {lineno}", reason, expected, got))

    def records(self, lines: Iterable[str], start_line: int = 1) -> Iterator[dict[str, Any]]:
        """Parse ``lines`` (with or without line ends) and yield one dict per CIR.

        A record is yielded when the next record starts, when its ``ToF`` line arrives, or
        at the end of ``lines``. Each dict has ``cir`` (complex64 ``(n_taps,)``, raw),
        ``rx_time_s`` (device clock, s, or None), ``line`` and the per-row fields of
        :data:`FIELD_DTYPES`.
        """
        it = _Lines(lines)
        self._lineno = start_line - 1
        self._pending = None
        self._header = None
        while True:
            raw = it.next()
            if raw is None:
                break
            rec = self._step(raw, it)
            if rec is not None:
                yield rec
        rec = self._finish()
        if rec is not None:
            yield rec

    def _finish(self) -> dict[str, Any] | None:
        """End of the input: the unfinished header is a reject; the pending record."""
        if self._header is not None:
            self._reject(self._header[0], RejectReason.TRUNCATED_RECORD,
                         "'Accum Len N' after the 'RX OK' line", "the end of the input")
            self._header = None
        rec, self._pending = self._pending, None
        return rec

    def _step(self, raw: str, it: _Lines | _TextLines) -> dict[str, Any] | None:
        """One line of the state machine (the accumulator lines after an ``Accum Len``
        line are taken from ``it``); returns the record it completes, if any."""
        self._lineno += 1
        lineno = self._lineno
        line = raw.rstrip("\r\n")
        out: dict[str, Any] | None = None
        if line.startswith("Accum Len"):
            m = _ACCUM.match(line)
            n = None
            if m is not None:
                try:
                    n = int(m.group(1))
                except ValueError:
                    n = None
            if n is None or not 0 < n <= MAX_TAPS:
                self._reject(lineno, RejectReason.BAD_FIELD,
                             f"'Accum Len N' with 1 <= N <= {MAX_TAPS}", _clip(line))
                self._header = None
                return None
            start = lineno
            body = [s.rstrip("\r\n") for s in it.take(n)]
            self._lineno += len(body)
            cir, bad = _parse_taps(body, n)
            if cir is None:
                k, text = bad
                if k < len(body) and text != "range" and _interrupts(text):
                    # another line cut the accumulator short: give it back to the parser
                    self._reject(start, RejectReason.TRUNCATED_RECORD,
                                 f"{n} accumulator lines 'I, Q'",
                                 f"{k} before {_clip(text)}")
                    self._header = None
                    rest = body[k:]
                    self._lineno -= len(rest)
                    it.push_back(rest)
                    return None
                if k >= len(body):
                    self._reject(start, RejectReason.TRUNCATED_RECORD,
                                 f"{n} accumulator lines 'I, Q'",
                                 f"{len(body)} before the end of the input")
                elif text == "range":
                    self._reject(start + 1 + k, RejectReason.OUT_OF_RANGE,
                                 "int16 accumulator values (-32768..32767)",
                                 _clip(body[k]))
                else:
                    self._reject(start + 1 + k, RejectReason.BAD_VALUE,
                                 "an accumulator line 'I, Q' of two integers",
                                 _clip(text))
                self._header = None
                return None
            if self._header is None:
                out, self._pending = self._pending, None
                self._reject(start, RejectReason.FIELD_COUNT,
                             "an 'RX OK …' line before 'Accum Len'", "none")
                return out
            hline, fields = self._header
            self._header = None
            rec = self._record(hline, fields, cir)
            if rec is None:
                return None
            out, self._pending = self._pending, rec
            self._accepted = True
            return out
        if line.startswith("RX "):
            if self._pending is not None:
                # the pending record goes first (its chunk must not see this record's
                # rx_errors count); the line is read again with nothing pending
                out, self._pending = self._pending, None
                it.push_back([raw])
                self._lineno -= 1
                return out
            if self._header is not None:
                self._reject(self._header[0], RejectReason.TRUNCATED_RECORD,
                             "'Accum Len N' after the 'RX OK' line", _clip(line))
                self._header = None
            if line.startswith("RX OK"):
                self._header = (lineno, dict(_FIELD.findall(line)))
            elif line.startswith("RX E"):
                self._header = None
                self.rx_errors += 1
                self._rx_time = None
                # its accumulator follows: skip it without parsing
                nxt = it.next()
                if nxt is not None:
                    self._lineno += 1
                    m = _ACCUM.match(nxt.rstrip("\r\n"))
                    if m is not None and m.group(1).isdigit() and int(m.group(1)) <= MAX_TAPS:
                        want = int(m.group(1))
                        got = len(it.take(want))
                        if got < want:
                            self._reject(self._lineno, RejectReason.TRUNCATED_RECORD,
                                         f"{want} accumulator lines of the RX error record",
                                         f"{got} before the end of the input")
                        self._lineno += got
                    else:
                        it.push_back([nxt])
                        self._lineno -= 1
            return out
        if "Rx time" in line and "(un)" not in line:
            m = _RX_TIME.search(line)
            if m is not None:
                out, self._pending = self._pending, None
                self._rx_time = _rx_time(m.group(1))
            return out
        if "ToF:" in line:
            m = _TOF.search(line)
            if m is not None and self._pending is not None:
                try:
                    self._pending["tof_ns"] = float(m.group(1))
                    self._pending["distance_m"] = float(m.group(2))
                except ValueError:
                    self._reject(lineno, RejectReason.BAD_NUMBER,
                                 "'ToF: <ns> ns Dist: <m> m' numbers", _clip(line))
                out, self._pending = self._pending, None
            return out
        if line.startswith("Label:"):
            m = _LABEL.match(line)
            if self._pending is not None and m is not None:
                self._pending["label"] = m.group(1)[:16]
            return None
        if line.startswith("Mode:"):
            for key, val in _MODE.findall(line):
                name = {"Chan": "channel", "Code": "preamble_code", "PRF": "prf_mhz",
                        "Plength": "preamble_length", "DataRate": "data_rate_code",
                        "PAC": "pac"}[key]
                self.meta[name] = int(val)
            return None
        if line.startswith("File:") and "DecaRanging" in line:
            self.meta.setdefault("chip", "DW1000")
            self.meta["writer"] = line.split("created by", 1)[-1].strip()[:80]
            return None
        if line.startswith("Chip:"):
            m = _CHIP.match(line)
            if m is not None:
                self.meta["chip"] = m.group(1)[:16]
            return None
        if line.startswith("Frame rate:"):
            m = _RATE.match(line)
            try:
                rate = float(m.group(1)) if m else float("nan")
            except ValueError:
                rate = float("nan")
            if math.isfinite(rate) and rate > 0:
                self.meta["frame_rate_hz"] = rate
            return None
        return None

    def _record(self, hline: int, fields: dict[str, str], cir: np.ndarray) -> dict[str, Any] | None:
        try:
            fpi = float(fields.get("HLP", "nan"))
            rxpacc = int(fields.get("PSC", "0"), 10)
            wind = int(fields.get("WInd", "0"), 10)
            rsl = float(fields.get("RSL", "nan"))
            fsl = float(fields.get("FSL", "nan"))
            nth = int(fields.get("NTH", "0"), 16)
        except ValueError:
            self._reject(hline, RejectReason.BAD_FIELD,
                         "numeric HLP, PSC, WInd, RSL, FSL and hexadecimal NTH fields",
                         _clip(", ".join(f"{k}({v})" for k, v in fields.items()), 60))
            return None
        rec = {"cir": cir, "rx_time_s": self._rx_time, "line": hline,
               "first_path_index": fpi, "rxpacc": rxpacc, "window_index": wind,
               "rsl_dbm": rsl, "fsl_dbm": fsl, "nth": nth,
               "tof_ns": float("nan"), "distance_m": float("nan"), "label": self._label}
        self._rx_time = None
        return rec

    # -- block-wise file parsing -------------------------------------------------------

    def frames(self, fh: IO[bytes], batcher: RecordBatcher) -> Iterator[Frames]:
        """Parse a whole file (opened in binary: read as latin-1 text with universal
        newlines, as a text file with ``newline=None`` would be) into the batcher's
        chunks, as :meth:`records` + :meth:`RecordBatcher.add` would (same records,
        rejects, line numbers and chunks; the batcher's last partial chunk is left for
        the caller to flush).

        The file is read in blocks of :data:`BLOCK_BYTES`. Runs of regular records (the
        lines :func:`write_decaranging` writes: ``Label``/``ToF`` of the previous record,
        ``Rx time``, ``RX OK`` with the standard fields, ``Accum Len N`` and ``N`` lines of
        two integers) are parsed with one regular expression per record and one
        :func:`numpy.fromstring` per run; any other line, and any record of a run that
        fails a check, goes through the line-by-line state machine (:meth:`_step`).
        """
        self._lineno = 0
        self._pending = None
        self._header = None
        carry = b""
        tail = b""  # bytes read after the block's last line end
        eof = False
        fast = False
        while True:
            data = b""
            if not eof:
                data, tail, eof = _read_lines(fh, tail)
                # universal newlines: "\r\n" and a lone "\r" end a line as "\n" does
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            text = carry + data
            if eof and text and not text.endswith(b"\n"):
                text += b"\n"  # a last line without a line end reads the same
            if not text:
                if eof:
                    break
                continue
            blk = _Block(text)
            nl = blk.nl
            # the state machine may take up to MAX_TAPS + 2 lines in one step: away from
            # the end of the file, it only runs where that many lines are in the block
            safe_end = int(nl[-_LOOKAHEAD]) if len(nl) >= _LOOKAHEAD else -1
            src = _TextLines(blk)
            pos = 0
            while pos < len(text):
                if fast:
                    if self._pending is None:  # pragma: no cover - fast runs follow a record
                        fast = False
                        continue
                    pos, status, out = self._fast_run(blk, pos, eof, batcher)
                    yield from out
                    if status == "more":
                        break
                    fast = status == "fast"
                    continue
                if not eof and pos > safe_end:
                    break
                if src.pos != pos:
                    src.seek(pos)
                raw = src.next()
                assert raw is not None
                rec = self._step(raw, src)
                pos = src.pos
                if rec is not None:
                    yield from batcher.add(rec)
                if self._accepted:
                    self._accepted = False
                    fast = True
            carry = text[pos:]
            if eof and not carry:
                break
        rec = self._finish()
        if rec is not None:
            yield from batcher.add(rec)

    def _fast_run(self, blk: _Block, pos: int, eof: bool, batcher: RecordBatcher
                  ) -> tuple[int, str, list[Frames]]:
        """Parse the run of regular records at ``pos`` (right after a record, which is
        pending). Returns the position after the run, what follows (``"fast"``: another
        run; ``"slow"``: a line for the state machine; ``"more"``: the block ends inside a
        record) and the chunks completed."""
        text, nl = blk.text, blk.nl
        j0 = int(np.searchsorted(nl, pos))  # line index of pos in the block
        j = j0
        n_nl = len(nl)
        units: list[tuple[re.Match[bytes], int, int, int, int]] = []
        run_n = 0
        status = "slow"
        match = _GAP.match
        while len(units) < _MAX_RUN:
            m = match(text, pos)
            if m is None:
                break
            n = int(m.group("n"))
            if not 0 < n <= MAX_TAPS:
                break
            if run_n and n != run_n:
                status = "fast"
                break
            bs = m.end()
            jb = j + text.count(b"\n", pos, bs)
            je = jb + n - 1
            if je >= n_nl:
                status = "slow" if eof else "more"
                break
            run_n = n
            be = int(nl[je]) + 1
            units.append((m, bs, be, j, jb))
            pos, j = be, je + 1
        else:
            status = "fast"
        out: list[Frames] = []
        if units:
            good, cirs = _run_taps(blk, units, run_n)
            if good < len(units):
                m, _, _, j, _ = units[good]
                pos, status = m.start(), "slow"
                units = units[:good]
            if units:
                out = self._commit(units, cirs, batcher)
            self._lineno += j - j0
        return pos, status, out

    def _commit(self, units: list[tuple[re.Match[bytes], int, int, int, int]],
                cirs: np.ndarray,
                batcher: RecordBatcher) -> list[Frames]:
        """Records of a checked run: the pending record gets the first unit's label and
        ToF and is added, every record but the last is added, the last is pending."""
        prev = self._pending
        assert prev is not None
        k = len(units)
        groups = [u[0].groups() for u in units]
        # (label, tof, dist, rx_time, wind, hlp, psc, nth, rsl, fsl, n)
        nan = float("nan")
        labels = [self._label] * k
        tof = [nan] * k
        dist = [nan] * k
        for i, g in enumerate(groups):
            lab, t, d = g[0], g[1], g[2]
            if i == 0:
                if lab is not None:
                    prev["label"] = lab.decode("latin-1")[:16]
                if t is not None:
                    prev["tof_ns"], prev["distance_m"] = float(t), float(d)
            else:
                if lab is not None:
                    labels[i - 1] = lab.decode("latin-1")[:16]
                if t is not None:
                    tof[i - 1], dist[i - 1] = float(t), float(d)
        rx = [_rx_time(g[3]) for g in groups]
        cols: dict[str, list[Any]] = {
            "first_path_index": [float(g[5]) for g in groups],
            "rxpacc": [int(g[6], 10) for g in groups],
            "window_index": [int(g[4], 10) for g in groups],
            "rsl_dbm": [float(g[8]) for g in groups],
            "fsl_dbm": [float(g[9]) for g in groups],
            "nth": [int(g[7], 16) for g in groups],
            "tof_ns": tof, "distance_m": dist, "label": labels,
        }
        out = batcher.add(prev)
        if k > 1:
            out += batcher.add_batch(cirs[:-1], rx[:-1],
                                     {c: v[:-1] for c, v in cols.items()})
        last = {c: v[-1] for c, v in cols.items()}
        m, _, _, j, _ = units[-1]
        # line of the last record's RX OK line: the one before its Accum Len line
        hline = self._lineno + (j - units[0][3]) + m.group(0).count(b"\n") - 1
        last.update(cir=cirs[-1], rx_time_s=rx[-1], line=hline)
        self._pending = last
        self._rx_time = None
        return out


def _read_lines(fh: IO[bytes], tail: bytes) -> tuple[bytes, bytes, bool]:
    """The next block of whole lines: ``(lines, tail, eof)``; ``tail`` (the bytes after
    the last line end, ``\\n`` or ``\\r``) goes in front of the next block; at the end of
    the file the rest is returned with ``eof`` True. A ``\\r\\n`` is never cut."""
    more = fh.read(BLOCK_BYTES)
    if not more:
        return tail, b"", True
    chunk = tail + more
    while chunk.endswith(b"\r"):  # a "\n" after it belongs to the same line end
        b = fh.read(1)
        if not b:
            break
        chunk += b
    cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
    return chunk[:cut + 1], chunk[cut + 1:], False


def _rx_time(text: str | bytes) -> float | None:
    """The ``Rx time`` value (s), None when unreadable, not finite or absurd."""
    try:
        t = float(text)
    except ValueError:
        return None
    return t if math.isfinite(t) and abs(t) < 1e9 else None


#: Bytes of the file read per block by :meth:`DecaRangingParser.frames`.
BLOCK_BYTES = 1 << 21
#: Lines one step of the state machine may consume (a line, ``Accum Len`` and its body).
_LOOKAHEAD = MAX_TAPS + 3
#: Records per vectorised run at most.
_MAX_RUN = 4096
#: A regular record from the end of the previous one to its ``Accum Len`` line: blank
#: lines, the previous record's ``Label`` and ``ToF`` lines, ``Rx time``, ``RX OK`` with
#: the fields the DW1000 DecaRanging app writes. Every line it accepts is handled by the
#: state machine exactly as the fast path does (see ``_commit``); the rest goes there.
_GAP = re.compile(
    rb"\n*"
    rb"(?:Label: ?([A-Za-z0-9_.+-]*)\n\n*)?"
    rb"(?:Anchor ToF: (-?\d+\.\d+) ns Dist: (-?\d+\.\d+) m(?: [A-Za-z]+: -?\d+\.\d+ (?:m|ppm))*"
    rb"\n\n*)?"
    rb"\d\d [0-9A-F]{2} Rx time = (-?\d\.\d+e[-+]\d+) [0-9A-F]+\n\n*"
    rb"RX OK WInd\((\d+)\), HLP\((-?\d+\.\d+)\), PSC\((\d+)\), SLP\([^()\n]*\), "
    rb"RC\([^()\n]*\), DCR\([^()\n]*\), DCI\([^()\n]*\), NTH\(([0-9A-Fa-f]+)\), "
    rb"T\([^()\n]*\), RSL\((-?\d+\.\d+)\), FSL\((-?\d+\.\d+)\), RSMPL\([^()\n]*\)\n"
    rb"Accum Len (?P<n>\d{1,4})\n")
#: Bytes an accumulator line of the fast path may hold besides ``,`` and the line end.
_TAP_CHARS = b"0123456789 -"
_DIGIT = np.zeros(256, bool)
_DIGIT[48:58] = True


class _Block:
    """A block of the file's text (complete lines) and where its lines end."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.buf = text
        self.nl = np.flatnonzero(np.frombuffer(self.buf, np.uint8) == 10)
        self._bad_end: np.ndarray | None = None

    @property
    def bad_end(self) -> np.ndarray:
        """Cumulative count of the lines (up to each) that do not end in a digit."""
        if self._bad_end is None:
            ends = np.frombuffer(self.buf, np.uint8)[np.maximum(self.nl - 1, 0)]
            bad = ~_DIGIT[ends]
            bad[self.nl == 0] = True
            self._bad_end = np.cumsum(bad)
        return self._bad_end


def _run_taps(blk: _Block, units: list[tuple[Any, int, int, int, int]], n: int
              ) -> tuple[int, np.ndarray]:
    """Accumulators of a run of records with ``n`` taps each: ``(good, cirs)``, the
    records before the first one the state machine must parse (a line that is not two
    integers ``I, Q`` of digits, spaces and signs ending in a digit, or a value outside
    int16) and their complex64 ``(good, n)`` taps."""
    k = len(units)
    buf = blk.buf
    bodies = b"".join([buf[bs:be] for _, bs, be, _, _ in units])
    ok = bodies.translate(None, _TAP_CHARS) == b",\n" * (n * k)
    if ok:
        # every accumulator line ends in a digit (the last line of each record is then
        # read the same at the end of its record's text as before the next record's)
        cum = blk.bad_end
        first = np.array([u[4] for u in units])
        before = np.where(first > 0, cum[np.maximum(first - 1, 0)], 0)
        ok = not bool((cum[first + n - 1] - before).any())
    raw = None
    if ok:
        try:
            raw = np.fromstring(bodies.replace(b"\n", b",")[:-1], dtype=np.int64, sep=",")
        except ValueError:
            raw = None
        ok = raw is not None and raw.size == 2 * n * k
    if not ok:
        if k > 1:
            # the first record that fails: check them one by one
            for i in range(k):
                if not _run_taps(blk, units[i:i + 1], n)[0]:
                    return _run_taps(blk, units[:i], n) if i else (0, _no_taps(n))
        return 0, _no_taps(n)
    assert raw is not None
    bad = (raw > 32767) | (raw < -32768)
    good = k
    if bad.any():
        good = int(np.flatnonzero(bad)[0]) // (2 * n)
        raw = raw[: good * 2 * n]
    iq = raw.reshape(good, n, 2)
    cirs = np.empty((good, n), np.complex64)
    cirs.real = iq[..., 0]
    cirs.imag = iq[..., 1]
    return good, cirs


def _no_taps(n: int) -> np.ndarray:
    return np.zeros((0, n), np.complex64)


class _Lines:
    """An iterator of lines that can take a run of lines at once and give lines back."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._it = iter(lines)
        self._back: list[str] = []

    def next(self) -> str | None:
        if self._back:
            return self._back.pop()
        return next(self._it, None)

    def take(self, n: int) -> list[str]:
        out: list[str] = []
        while self._back and len(out) < n:
            out.append(self._back.pop())
        if len(out) < n:
            out.extend(islice(self._it, n - len(out)))
        return out

    def push_back(self, lines: list[str]) -> None:
        self._back.extend(reversed(lines))


class _TextLines:
    """The lines (latin-1 text, without their ``\\n``) of a :class:`_Block` from a line
    start on, with the interface of :class:`_Lines` (``push_back`` gives back the lines
    taken last)."""

    def __init__(self, blk: _Block) -> None:
        self.text = blk.text
        self.nl = blk.nl
        self._q = 0  # index of the line at ``pos``

    @property
    def pos(self) -> int:
        q = self._q
        return 0 if q == 0 else int(self.nl[q - 1]) + 1

    def seek(self, pos: int) -> None:
        self._q = int(np.searchsorted(self.nl, pos))

    def next(self) -> str | None:
        q = self._q
        if q >= len(self.nl):
            return None
        self._q = q + 1
        start = 0 if q == 0 else int(self.nl[q - 1]) + 1
        return self.text[start:int(self.nl[q])].decode("latin-1")

    def take(self, n: int) -> list[str]:
        q = self._q
        stop = min(q + max(n, 0), len(self.nl))
        if stop <= q:
            return []
        start = 0 if q == 0 else int(self.nl[q - 1]) + 1
        self._q = stop
        return self.text[start:int(self.nl[stop - 1])].decode("latin-1").split("\n")

    def push_back(self, lines: list[str]) -> None:
        self._q -= len(lines)


_NUMERIC = re.compile(r"^\s*-?\d+\s*,\s*-?\d+\s*$")
#: Starts of the lines of a log that are not accumulator values.
_RECORD_LINES = ("RX", "Accum", "Anchor", "TX", "Label", "txdly", "File:", "Mode:", "Chip:",
                 "Frame rate", "Ra", "Rb", "Tag", "   Adding")


def _interrupts(text: str) -> bool:
    """True for a line that is not a (possibly garbled) accumulator value but another
    line of the log (blank, a header, a ranging line …): the accumulator was cut short."""
    t = text.strip()
    return not t or "," not in t or t.startswith(_RECORD_LINES) or "time" in t


def _parse_taps(body: list[str], n: int) -> tuple[np.ndarray | None, tuple[int, str]]:
    """The accumulator lines as complex64, or ``(None, (index, text))`` of the first bad
    line (``index == len(body)`` when the input ended early; ``text == "range"`` for a
    value outside int16)."""
    if len(body) == n and all(s.count(",") == 1 for s in body):
        try:
            raw = np.fromstring(",".join(body), dtype=np.int64, sep=",")
        except ValueError:
            raw = None
        if raw is not None and raw.size == 2 * n:
            if raw.max() > 32767 or raw.min() < -32768:
                k = int(np.flatnonzero((raw > 32767) | (raw < -32768))[0]) // 2
                return None, (k, "range")
            cir = np.empty(n, np.complex64)
            cir.real = raw[0::2]
            cir.imag = raw[1::2]
            return cir, (0, "")
    for k, s in enumerate(body):
        if not _NUMERIC.match(s):
            return None, (k, s)
    if len(body) < n:
        return None, (len(body), "")
    return None, (0, body[0])  # pragma: no cover - the fast path takes well-formed bodies


def labels_beside(path: str) -> str:
    """The label of ``path`` from a ``labels.csv`` (``file_id,label``) in its folder, by the
    file's stem (``40.log`` → id ``40``); ``""`` when there is none."""
    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    table = os.path.join(folder, "labels.csv")
    if not os.path.isfile(table):
        return ""
    try:
        with open(table, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                if len(row) >= 2 and row[0].strip() == stem:
                    return row[1].strip()[:16]
    except (OSError, UnicodeDecodeError):
        return ""
    return ""


class RecordBatcher:
    """Groups CIR records into :class:`Frames` of at most ``chunk_size`` rows (a chunk is
    closed early when the number of taps changes).

    :meth:`add` takes one record dict (as :meth:`DecaRangingParser.records` yields),
    :meth:`add_batch` a run of records as columns (the same chunks and times as adding
    them one by one)."""

    def __init__(self, source: str, chunk_size: int, parser: DecaRangingParser) -> None:
        self.source = source
        self.chunk_size = chunk_size
        self.parser = parser
        # rows of the chunk being filled: (cirs (k, n_taps), times (k,), field lists)
        self._parts: list[tuple[np.ndarray, np.ndarray, dict[str, list[Any]]]] = []
        self._rows = 0
        self._taps = 0
        self._t_first: float | None = None   # device clock of the first timed record
        self._t_last: float | None = None    # unwrapped stream time of the last record
        self._wraps = 0.0
        self._prev_raw: float | None = None
        self._index = 0
        self.fs_hz: float | None = None
        self._fs_fixed = False

    def _time(self, rec: dict[str, Any]) -> float:
        return self._time_of(rec["rx_time_s"])

    def _time_of(self, raw: float | None) -> float:
        rate = self.parser.meta.get("frame_rate_hz")
        if raw is None or not math.isfinite(raw):
            step = 1.0 / rate if rate else 1.0
            t = (self._t_last + step) if self._t_last is not None else 0.0
        else:
            if self._prev_raw is not None and raw < self._prev_raw - 1e-6:
                self._wraps += CLOCK_WRAP_S
            self._prev_raw = raw
            if self._t_first is None:
                self._t_first = raw - (self._t_last + (1.0 / rate if rate else 0.0)
                                       if self._t_last is not None else 0.0)
            t = raw + self._wraps - self._t_first
            if self._t_last is not None and t < self._t_last:
                t = self._t_last
        self._t_last = t
        return t

    def _times(self, raws: list[float | None]) -> np.ndarray:
        """Stream times of a run of device clock readings (vectorised :meth:`_time_of`:
        the same numbers)."""
        if len(raws) < 4 or any(r is None or not math.isfinite(r) for r in raws):
            return np.array([self._time_of(r) for r in raws], np.float64)
        raw = np.array(raws, np.float64)
        prev = np.empty_like(raw)
        prev[0] = self._prev_raw if self._prev_raw is not None else -np.inf
        prev[1:] = raw[:-1]
        inc = np.where(raw < prev - 1e-6, CLOCK_WRAP_S, 0.0)
        inc[0] += self._wraps
        wraps = np.add.accumulate(inc)  # sequential sums, as the loop adds them
        self._wraps = float(wraps[-1])
        self._prev_raw = float(raw[-1])
        if self._t_first is None:
            rate = self.parser.meta.get("frame_rate_hz")
            self._t_first = float(raw[0]) - (self._t_last + (1.0 / rate if rate else 0.0)
                                             if self._t_last is not None else 0.0)
        t = raw + wraps - self._t_first
        if self._t_last is not None:
            t[0] = max(t[0], self._t_last)
        t = np.maximum.accumulate(t)
        self._t_last = float(t[-1])
        return t

    def add(self, rec: dict[str, Any]) -> list[Frames]:
        return self.add_batch(rec["cir"][None, :], [rec["rx_time_s"]],
                              {k: [rec[k]] for k in FIELD_DTYPES})

    def add_batch(self, cirs: np.ndarray, rx_times: list[float | None],
                  fields: dict[str, list[Any]]) -> list[Frames]:
        """Add records as columns: ``cirs`` complex64 ``(k, n_taps)``, their device
        clock readings (s or None) and a list per field of :data:`FIELD_DTYPES`."""
        out: list[Frames] = []
        k, taps = cirs.shape
        if self._rows and taps != self._taps:
            out.append(self.flush())
        times = self._times(rx_times)
        a = 0
        while a < k:
            b = min(k, a + max(self.chunk_size - self._rows, 1))
            if a == 0 and b == k:
                self._parts.append((cirs, times, fields))
            else:
                self._parts.append((cirs[a:b], times[a:b],
                                    {c: v[a:b] for c, v in fields.items()}))
            self._rows += b - a
            self._taps = taps
            a = b
            if self._rows >= self.chunk_size:
                out.append(self.flush())
        return out

    def flush(self) -> Frames | None:
        if not self._parts:
            return None
        parts, self._parts = self._parts, []
        self._rows = 0
        if len(parts) == 1:
            data, times, cols = parts[0]
            data = np.array(data, np.complex64)
        else:
            data = np.concatenate([p[0] for p in parts]).astype(np.complex64, copy=False)
            times = np.concatenate([p[1] for p in parts])
            cols = {k: [v for p in parts for v in p[2][k]] for k in FIELD_DTYPES}
        times = np.asarray(times, np.float64)
        fields = {k: np.array(cols[k], dtype=dt) for k, dt in FIELD_DTYPES.items()}
        meta = dict(self.parser.meta)
        if not self._fs_fixed:
            rate = meta.get("frame_rate_hz")
            if rate is None and len(times) >= 8:
                dt = np.diff(times)
                med = float(np.median(dt))
                if med > 0 and float(np.std(dt)) < 0.05 * med:
                    rate = 1.0 / med
            self.fs_hz = rate
            self._fs_fixed = rate is not None or len(times) >= 8
        meta.update({"format": "decaranging", "tap_s": TAP_S, "n_taps": int(data.shape[1]),
                     "rx_errors": self.parser.rx_errors})
        meta.setdefault("chip", "unknown")
        self._index += len(data)
        return Frames(data=data, times_s=times, fs_hz=self.fs_hz, modality="uwb_cir",
                      source=self.source, fields=fields, meta=meta)


@FORMATS.register("decaranging")
class DecaRangingReader(CaptureReader):
    """DW1000/DW3000 CIR accumulator dumps in the DecaRanging text-log format.

    Frames: ``modality="uwb_cir"``, ``data`` complex64 ``(n_frames, n_taps)`` (raw
    accumulator values, not normalised; divide by ``fields["rxpacc"]`` to normalise),
    ``fields`` as in the module docstring, ``meta``: ``format``, ``tap_s`` (s per tap),
    ``n_taps``, ``chip``, ``channel``, ``prf_mhz``, ``preamble_code``,
    ``preamble_length``, ``data_rate_code``, ``pac``, ``frame_rate_hz`` (when written),
    ``rx_errors``, ``label`` (the log's label from a ``labels.csv`` beside it, if any).
    """

    name = "decaranging"
    modality = "uwb_cir"
    extensions = (".log", ".txt")
    description = ("DW1000/DW3000 CIR accumulator dumps, DecaRanging text log "
                   "(RX OK / Accum Len / I, Q lines)")

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if b"Accum Len " not in head:
            return False
        return b"RX OK" in head or b"DecaRanging" in head or b"Chip: DW" in head

    def chunks(self) -> Iterator[Frames]:
        self.rejects = RejectLog()
        parser = DecaRangingParser(self.path, self.rejects)
        parser._label = labels_beside(self.path)
        if parser._label:
            parser.meta["label"] = parser._label
        batcher = RecordBatcher(self.source, self.chunk_size, parser)
        with open(self.path, "rb") as fh:
            for fr in parser.frames(fh, batcher):
                self.bytes_read = fh.tell()
                yield fr
            last = batcher.flush()
            self.bytes_read = os.path.getsize(self.path)
            if last is not None:
                yield last


def write_decaranging(
    path: str | os.PathLike | IO[str],
    cirs: np.ndarray,
    *,
    first_path_index: np.ndarray | float,
    rxpacc: np.ndarray | int,
    times_s: np.ndarray,
    prf_mhz: int = 64,
    distance_m: np.ndarray | None = None,
    labels: Iterable[str] | None = None,
    channel: int = 5,
    preamble_code: int = 9,
    preamble_length: int = 1024,
    data_rate_code: int = 2,
    pac: int = 8,
    chip: str = "DW1000",
    rsl_dbm: np.ndarray | None = None,
    fsl_dbm: np.ndarray | None = None,
    frame_rate_hz: float | None = None,
    name: str | None = None,
) -> None:
    """Write CIRs as a DecaRanging-format text log that :class:`DecaRangingReader` reads.

    Parameters
    ----------
    path : str, path or text file
        Output file (written with CRLF line ends, as the DecaRanging app does).
    cirs : numpy.ndarray
        Complex ``(n, n_taps)`` accumulator values (rounded to int16, clipped).
    first_path_index : array or float
        Fractional first-path index per CIR (taps), written as ``HLP`` (4 decimals).
    rxpacc : array or int
        Preamble symbols accumulated per CIR (``PSC``).
    times_s : numpy.ndarray
        Receive time of each CIR (s, non-decreasing; written modulo the 17.2074 s
        device-clock period, so consecutive frames must be < 17 s apart).
    prf_mhz : int
        16 or 64 (``Mode:`` header).
    distance_m : array, optional
        Distance per CIR (m): an ``Anchor ToF`` line with ``ToF = d / c`` follows each
        finite value.
    labels : iterable of str, optional
        A ``Label:`` line per CIR (e.g. ``"los"``, ``"nlos"``, an activity).
    channel, preamble_code, preamble_length, data_rate_code, pac : int
        Radio settings for the ``Mode:`` header.
    chip : str
        ``Chip:`` header line (``"DW1000"``, ``"DW3000"``).
    rsl_dbm, fsl_dbm : array, optional
        Receive and first-path levels (dBm); default -80/-85.
    frame_rate_hz : float, optional
        ``Frame rate:`` header line; default: from ``times_s`` when they are regular.
    name : str, optional
        File name in the ``File:`` line.
    """
    cirs = np.asarray(cirs)
    if cirs.ndim != 2:
        raise ValueError(f"cirs must be (n, n_taps), got shape {cirs.shape}")
    n = len(cirs)
    times = np.asarray(times_s, np.float64)
    if times.shape != (n,):
        raise ValueError(f"times_s must have {n} entries, got {times.shape}")
    fpi = np.broadcast_to(np.asarray(first_path_index, np.float64), (n,))
    acc = np.broadcast_to(np.asarray(rxpacc, np.int64), (n,))
    rsl = np.broadcast_to(np.asarray(-80.0 if rsl_dbm is None else rsl_dbm, np.float64), (n,))
    fsl = np.broadcast_to(np.asarray(-85.0 if fsl_dbm is None else fsl_dbm, np.float64), (n,))
    dist = None if distance_m is None else np.broadcast_to(np.asarray(distance_m, float), (n,))
    labs = None if labels is None else list(labels)
    if labs is not None and len(labs) != n:
        raise ValueError(f"labels must have {n} entries, got {len(labs)}")
    if frame_rate_hz is None and n >= 3:
        dt = np.diff(times)
        med = float(np.median(dt))
        if med > 0 and float(np.std(dt)) < 0.01 * med:
            frame_rate_hz = 1.0 / med
    iq = np.empty((n, cirs.shape[1], 2), np.int64)
    iq[..., 0] = np.clip(np.rint(cirs.real), -32768, 32767)
    iq[..., 1] = np.clip(np.rint(cirs.imag), -32768, 32767)
    own = not hasattr(path, "write")
    fh = open(path, "w", encoding="ascii", newline="\r\n") if own else path  # noqa: SIM115
    try:
        fname = name or (os.path.basename(os.fspath(path)) if own else "ambisense.log")
        fh.write(f"File:{fname}, created by ambisense decaranging writer "
                 "(DecaRanging MP log format)\n")
        fh.write(f"Mode: 2, Chan {channel}, Code {preamble_code}, PRF {prf_mhz}, "
                 f"Plength {preamble_length}, DataRate {data_rate_code}, PAC {pac}\n")
        fh.write(f"Chip: {chip}\n")
        if frame_rate_hz:
            fh.write(f"Frame rate: {frame_rate_hz:.6f} Hz\n")
        fh.write("\n")
        for i in range(n):
            t = float(times[i]) % CLOCK_WRAP_S
            fh.write(f"21 {i % 256:02X} Rx time = {t:.15e} 0000000000\n\n")
            fh.write(f"RX OK WInd(0735), HLP({fpi[i]:09.4f}), PSC({int(acc[i]):04d}), "
                     f"SLP(0000.0000), RC(0000 00000000), DCR(0), DCI(0), NTH(0000), "
                     f"T(0000), RSL({rsl[i]:09.4f}), FSL({fsl[i]:09.4f}), RSMPL(00)\n")
            fh.write(f"Accum Len {cirs.shape[1]}\n")
            fh.write("\n".join(f"{a}, {b}" for a, b in iq[i].tolist()))
            fh.write("\n\n")
            if labs is not None:
                fh.write(f"Label: {labs[i]}\n\n")
            if dist is not None and math.isfinite(dist[i]):
                tof = dist[i] / C_M_S * 1e9
                fh.write(f"Anchor ToF: {tof:.3f} ns Dist: {dist[i]:.6f} m DistRaw: "
                         f"{dist[i]:.6f} m DistScal: {dist[i]:.6f} m Bias: 0.000 m "
                         "ClockOffset: 0.000 ppm\n\n")
    finally:
        if own:
            fh.close()
