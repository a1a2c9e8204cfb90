"""ESP32 ``CSI_DATA`` text lines, as printed over serial by ESP32 CSI firmware.

Three column layouts are recognised by their field count:

* **esp-csi** (Espressif ``csi_recv``, 25 columns): ``type,seq,mac,rssi,rate,sig_mode,mcs,
  bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,sgi,noise_floor,ampdu_cnt,
  channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,len,first_word,data``
  with ``data`` a quoted, comma-separated ``"[a,b,…]"``.
* **esp-csi C5/C6** (15 columns): ``type,id,mac,rssi,rate,noise_floor,fft_gain,agc_gain,
  channel,local_timestamp,sig_len,rx_state,len,first_word,data``.
* **ESP32-CSI-Tool** (26 columns): ``type,role,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,
  not_sounding,aggregation,stbc,fec_coding,sgi,noise_floor,ampdu_cnt,channel,
  secondary_channel,local_timestamp,ant,sig_len,rx_state,real_time_set,real_timestamp,len,
  CSI_DATA`` with a space-separated ``[a b …]`` and an optional header line.

The buffer holds int8 pairs ``(imaginary, real)`` per subcarrier (ESP-IDF order). Its
segments (LLTF, HT-LTF, STBC-HT-LTF) and their subcarrier order follow the ESP-IDF
"Wi-Fi Channel State Information" table; see :func:`buffer_layout`. Frames carry one
segment (LLTF by default, the one every packet has) re-ordered to ascending subcarrier
index, shape ``(n, n_subcarriers, 1, 1)``.

The ``len`` field often disagrees with the number of values printed (firmware prints
128 values while ``len`` says 384): the printed values are what counts. ``local_timestamp``
(µs, 32-bit, wraps every 71.6 min) is unwrapped into stream time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from itertools import chain, islice, repeat
from operator import itemgetter
from typing import IO, Any

import numpy as np

from sensing.errors import Reject, RejectLog, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames

MARKER = "CSI_DATA,"

#: Header columns (before the array) per layout, keyed by the number of header fields.
LAYOUTS: dict[int, tuple[str, tuple[str, ...]]] = {
    25: (
        "esp32-csi-tool",
        (
            "type", "role", "mac", "rssi", "rate", "sig_mode", "mcs", "bandwidth", "smoothing",
            "not_sounding", "aggregation", "stbc", "fec_coding", "sgi", "noise_floor",
            "ampdu_cnt", "channel", "secondary_channel", "local_timestamp", "ant", "sig_len",
            "rx_state", "real_time_set", "real_timestamp", "len",
        ),
    ),
    24: (
        "esp-csi",
        (
            "type", "seq", "mac", "rssi", "rate", "sig_mode", "mcs", "bandwidth", "smoothing",
            "not_sounding", "aggregation", "stbc", "fec_coding", "sgi", "noise_floor",
            "ampdu_cnt", "channel", "secondary_channel", "local_timestamp", "ant", "sig_len",
            "rx_state", "len", "first_word",
        ),
    ),
    14: (
        "esp-csi-c5c6",
        (
            "type", "id", "mac", "rssi", "rate", "noise_floor", "fft_gain", "agc_gain",
            "channel", "local_timestamp", "sig_len", "rx_state", "len", "first_word",
        ),
    ),
}

_TS_WRAP = 1 << 32  # local_timestamp is a uint32 count of microseconds

#: Column name → position in the header fields, per layout (keyed by field count).
_INDEX: dict[int, dict[str, int]] = {
    n: {c: i for i, c in enumerate(cols)} for n, (_, cols) in LAYOUTS.items()
}


def _seg(a: int, b: int) -> np.ndarray:
    return np.arange(a, b + 1)


def buffer_layout(sig_mode: int, cwb: int, secondary: int, stbc: int) -> list[tuple[str, np.ndarray]]:
    """Segments of the CSI buffer and the subcarrier index of each complex value.

    Parameters
    ----------
    sig_mode : int
        0 non-HT (11b/g), 1 HT (11n).
    cwb : int
        Channel bandwidth field: 0 = 20 MHz, 1 = 40 MHz.
    secondary : int
        Secondary channel: 0 none, 1 above, 2 below.
    stbc : int
        1 when the packet is STBC.

    Returns
    -------
    list of (name, indices)
        In buffer order: ``"lltf"``, then ``"htltf"`` and ``"stbc_htltf"`` when present.
    """
    base20 = np.concatenate([_seg(0, 31), _seg(-32, -1)])
    if cwb == 0 or secondary == 0:
        lltf = base20
        ht = base20
        stbc_ht = base20
    else:
        lltf = _seg(0, 63) if secondary == 2 else _seg(-64, -1)
        ht = np.concatenate([_seg(0, 63), _seg(-64, -1)])
        stbc_ht = np.concatenate([_seg(0, 60), _seg(-60, -1)])
        if stbc:
            ht = stbc_ht
    segs = [("lltf", lltf)]
    if sig_mode == 1:
        segs.append(("htltf", ht))
        if stbc:
            segs.append(("stbc_htltf", stbc_ht))
    return segs


def lltf20_buffer_index() -> np.ndarray:
    """Index into a 20 MHz LLTF row in ascending subcarrier order (-32..31, what the reader
    outputs) that gives the firmware buffer order (0..31, then -32..-1): the inverse of the
    reader's re-ordering, for writers such as the simulators."""
    _, idx = buffer_layout(0, 0, 0, 0)[0]
    return idx + 32


class Esp32LineParser:
    """Stateful parser of ``CSI_DATA`` lines: shared by file replay and live serial.

    Parameters
    ----------
    path : str
        Name used in rejects (file path or serial URL).
    rejects : RejectLog
        Where malformed lines are counted.
    ltf : {"lltf", "htltf", "stbc_htltf"}
        Which training-field segment to output. Packets without it are rejected as
        ``short_array``.
    """

    def __init__(self, path: str, rejects: RejectLog, ltf: str = "lltf") -> None:
        if ltf not in ("lltf", "htltf", "stbc_htltf"):
            raise ValueError(f"ltf must be 'lltf', 'htltf' or 'stbc_htltf', got {ltf!r}")
        self.path = path
        self.rejects = rejects
        self.ltf = ltf
        self.layout_name: str | None = None
        self.other_lines = 0
        self._ts0: int | None = None
        self._ts_last: int | None = None
        self._ts_offset = 0
        self._layout_cache: dict[tuple[int, int, int, int], tuple] = {}

    def _reject(self, where: str, reason: RejectReason, expected: str, got: str) -> None:
        self.rejects.add(Reject(self.path, where, reason, expected, got))

    def _segment(self, key: tuple[int, int, int, int]) -> tuple[int, int, np.ndarray, np.ndarray]:
        """Complex-value slice (start, stop) of the chosen segment, its ascending subcarrier
        indices and the permutation from buffer order to ascending order."""
        hit = self._layout_cache.get(key)
        if hit is None:
            start = 0
            hit = (0, 0, np.empty(0, int), np.empty(0, int))
            for name, idx in buffer_layout(*key):
                if name == self.ltf:
                    order = np.argsort(idx, kind="stable")
                    hit = (start, start + len(idx), idx[order], order)
                    break
                start += len(idx)
            self._layout_cache[key] = hit
        return hit

    def _split(self, line: str) -> tuple | RejectReason:
        """Split a ``CSI_DATA`` line into header values and the array text.

        Returns ``(layout_name, fields, body)`` or, on failure, the reject reason.
        ``fields`` = (rssi, ts_us, channel, noise, key, first_invalid, abs_time, mac).
        """
        lb = line.find("[")
        rb = line.rfind("]")
        if lb < 0 or rb < lb:
            return RejectReason.NO_ARRAY
        head = line[:lb].rstrip('"').rstrip().rstrip(",").split(",")
        layout = LAYOUTS.get(len(head))
        if layout is None:
            return RejectReason.FIELD_COUNT
        ix = _INDEX[len(head)]
        try:
            if "sig_mode" in ix:
                key = (int(head[ix["sig_mode"]]), int(head[ix["bandwidth"]]),
                       int(head[ix["secondary_channel"]]), int(head[ix["stbc"]]))
            else:
                key = (0, 0, 0, 0)
            abs_time = None
            if "real_timestamp" in ix and int(head[ix["real_time_set"]]):
                abs_time = float(head[ix["real_timestamp"]])
            fields = (
                int(head[ix["rssi"]]), int(head[ix["local_timestamp"]]),
                int(head[ix["channel"]]), int(head[ix["noise_floor"]]), key,
                int(head[ix["first_word"]]) if "first_word" in ix else 0,
                abs_time, head[ix["mac"]],
            )
        except ValueError:
            return RejectReason.BAD_FIELD
        return layout[0], fields, line[lb + 1 : rb]

    def _time_s(self, ts: int) -> float:
        """Unwrap the 32-bit µs counter into stream seconds (wrap, or a device reset)."""
        if self._ts0 is None:
            self._ts0 = ts
        elif self._ts_last is not None and ts + self._ts_offset < self._ts_last:
            if self._ts_last - (ts + self._ts_offset) > _TS_WRAP // 2:
                self._ts_offset += _TS_WRAP
            else:  # device clock reset: continue from the last time
                self._ts_offset = self._ts_last - ts
        t_us = ts + self._ts_offset
        self._ts_last = t_us
        return (t_us - self._ts0) * 1e-6

    def parse(self, line: str, where: str) -> dict[str, Any] | None:
        """Parse one line; return a one-packet block (see :meth:`parse_block`) or ``None``
        (rejected and counted, or not a CSI line)."""
        pos = line.find(MARKER)
        if pos < 0:
            self.other_lines += 1
            return None
        line = line[pos:].rstrip()
        split = self._split(line)
        if isinstance(split, RejectReason):
            expected = {
                RejectReason.NO_ARRAY: ("a '[...]' CSI array", _clip(line)),
                RejectReason.FIELD_COUNT: ("14, 24 or 25 fields before the CSI array",
                                f"{len(line[: line.find('[')].split(','))} fields"),
                RejectReason.BAD_FIELD: ("numeric header fields", _clip(line[: line.find("[")], 60)),
            }[split]
            self._reject(where, split, *expected)
            return None
        name, (rssi, ts, channel, noise, key, first_invalid, abs_time, mac), body = split
        try:
            # C-speed parse; numpy >= 2 raises on any token that is not an integer
            raw = np.fromstring(body, dtype=np.int32, sep="," if "," in body else " ")
        except ValueError:
            bad = next((t for t in body.replace(",", " ").split() if not _is_int(t)), "?")
            self._reject(where, RejectReason.BAD_VALUE, "integers in the CSI array", repr(bad[:20]))
            return None
        if raw.size % 2:
            self._reject(where, RejectReason.ODD_VALUE_COUNT, "an even number of int8 values", f"{raw.size}")
            return None
        if raw.size and (raw.max() > 127 or raw.min() < -128):
            self._reject(where, RejectReason.OUT_OF_RANGE, "int8 values (-128..127)", f"{raw.min()}..{raw.max()}")
            return None
        start, stop, subcarriers, order = self._segment(key)
        if stop == 0 or raw.size < 2 * stop:
            self._reject(
                where, RejectReason.SHORT_ARRAY,
                f"at least {2 * max(stop, 64)} values for the {self.ltf} segment",
                f"{raw.size}",
            )
            return None
        self.layout_name = name
        return self._block(
            raw[None, :], [first_invalid], [ts], [rssi], [noise], channel, mac,
            abs_time, key,
        )

    def _block(self, raw, first_invalid, ts, rssi, noise, channel, mac, abs_time, key):
        start, stop, subcarriers, order = self._segment(key)
        seg = raw[:, 2 * start : 2 * stop].astype(np.float32)
        if start == 0 and (first_invalid.any() if isinstance(first_invalid, np.ndarray)
                           else any(first_invalid)):
            seg[np.asarray(first_invalid, bool), :4] = 0.0
        csi = np.empty((len(seg), stop - start), dtype=np.complex64)
        csi.real = seg[:, 1::2]
        csi.imag = seg[:, 0::2]
        times = (self._times_s(ts) if isinstance(ts, np.ndarray)
                 else np.fromiter((self._time_s(t) for t in ts), np.float64, len(ts)))
        return {
            "csi": csi[:, order],
            "subcarriers": subcarriers,
            "time_s": times,
            "rssi": np.asarray(rssi, np.int16),
            "noise_floor": np.asarray(noise, np.int16),
            "channel": channel,
            "mac": mac,
            "abs_time": abs_time,
            "bandwidth_mhz": 40 if (key[2] and key[1]) else 20,
        }

    def parse_block(self, items: list[tuple[int, str]]) -> list[dict[str, Any]]:
        """Parse many lines at once (the file-replay hot path).

        A block of well-formed lines sharing one layout is decoded with a single numpy
        call; any irregular line sends the whole block through :meth:`parse` line by line,
        so the result and the counted rejects are exactly those of the per-line parser.

        Returns
        -------
        list of dict
            Packet blocks: ``csi`` (n, n_subcarriers) complex64 in ascending subcarrier
            order, ``subcarriers``, ``time_s`` (n,) stream seconds, ``rssi`` and
            ``noise_floor`` (n,) dBm, ``channel``, ``mac``, ``abs_time`` (POSIX s of the
            first row, or None) and ``bandwidth_mhz``.
        """
        fast = self._fast_block(items)
        if fast is not None:
            return [fast]
        out = []
        for n, text in items:
            blk = self.parse(text, f"line {n}")
            if blk is not None:
                out.append(blk)
        return out

    def parse_lines(self, first_line: int, texts: list[str],
                    block: str | None = None) -> list[dict[str, Any]]:
        """:meth:`parse_block` of consecutive lines numbered from ``first_line`` (the file
        replay path: no per-line tuples). ``block``, when given, is the lines' text as read
        (``texts`` joined by newlines, a final newline allowed)."""
        fast = self._fast_lines(texts, block)
        if fast is not None:
            return [fast]
        out = []
        for n, text in enumerate(texts, first_line):
            blk = self.parse(text, f"line {n}")
            if blk is not None:
                out.append(blk)
        return out

    def _fast_block(self, items: list[tuple[int, str]]) -> dict[str, Any] | None:
        return self._fast_lines([text for _, text in items])

    def _fast_lines(self, texts: list[str], block: str | None = None) -> dict[str, Any] | None:
        """Decode a block of regular lines with a few whole-block numpy calls, or return
        ``None`` (the caller then parses line by line, rejects included).

        Regular means: lines without the ``CSI_DATA,`` marker anywhere (a header line,
        blank lines: counted in :attr:`other_lines`, as the per-line parser does), and
        ``CSI_DATA`` lines starting with the marker, each with exactly one ``[`` and a
        ``]`` after it, one layout and one buffer key, plain integer header fields (below 2**62, so
        int64 parsing equals :func:`int`), one array width and int8 values.
        Anything else is left to :meth:`parse`, so the result is always the per-line
        parser's.
        """
        n = len(texts)
        if not n:
            return None
        blob = "\n".join(texts) if block is None else block
        csi_lines = blob.startswith(MARKER) + blob.count("\n" + MARKER)
        if csi_lines != blob.count(MARKER) or not csi_lines:
            return None  # a marker inside a line: the per-line parser finds it
        if csi_lines != n:  # lines without the marker (a header line, blank lines)
            texts = [t for t in texts if t.startswith(MARKER)]
            blob = "\n".join(texts)
        if blob.count("[") != csi_lines:  # one '[' per line: none in the header fields
            return None
        other, n = n - csi_lines, csi_lines
        first = texts[0]
        lb = first.find("[")
        width_head = len(first[:lb].rstrip('"').rstrip().rstrip(",").split(","))
        layout = LAYOUTS.get(width_head)
        if layout is None:
            return None
        # the header fields and the rest, in one split per line; the same fields as
        # _split's when every rest starts like the first line's ('"[' or '[') and the
        # last header field is not empty
        heads = [t.split(",", width_head) for t in texts]
        if sum(map(len, heads)) != (width_head + 1) * n:
            return None
        rests = [h.pop() for h in heads]
        pre = rests[0][: rests[0].find("[") + 1]
        if (pre not in ("[", '"[') or not all(map(str.startswith, rests, repeat(pre)))
                or not all(h[-1] for h in heads)):
            return None
        # array widths first: the cheapest way out of a block with a short line
        ends = list(map(str.rfind, rests, repeat("]")))
        if min(ends) < 0:
            return None
        at = len(pre)
        sep = "," if "," in rests[0][at: ends[0]] else " "
        strip = sep + " "
        bodies = [r[at:e].strip(strip) for r, e in zip(rests, ends, strict=True)]
        counts = list(map(str.count, bodies, repeat(sep)))
        width = counts[0] + 1
        if width % 2 or counts.count(counts[0]) != n:
            return None
        cols = _INT_COLUMNS[width_head]
        ints = _parse_int_fields(",".join(chain.from_iterable(map(cols.getter, heads))),
                                 n * len(cols.names))
        if ints is None:
            return None
        ints = ints.reshape(n, len(cols.names))
        col = cols.index
        key_cols = [col[c] for c in ("sig_mode", "bandwidth", "secondary_channel", "stbc")
                    if c in col]
        keys = ints[:, key_cols]
        if key_cols and (keys != keys[0]).any():
            return None
        key = tuple(int(k) for k in keys[0]) if key_cols else (0, 0, 0, 0)
        rssi, noise = ints[:, col["rssi"]], ints[:, col["noise_floor"]]
        if (min(rssi.min(), noise.min()) < -(1 << 15)
                or max(rssi.max(), noise.max()) >= 1 << 15):
            return None  # int16 overflow: the per-line parser's behaviour decides
        abs_time, first_abs = None, 0
        if "real_time_set" in col:
            rows = np.flatnonzero(ints[:, col["real_time_set"]])
            if rows.size:
                j = _INDEX[width_head]["real_timestamp"]
                try:
                    stamps = [float(heads[r][j]) for r in rows.tolist()]
                except ValueError:
                    return None
                abs_time, first_abs = stamps[0], int(rows[0])
        raw = _parse_int8_values(sep.join(bodies), sep)
        if raw is None or raw.size != width * n:
            return None
        _, stop, _, _ = self._segment(key)
        if stop == 0 or width < 2 * stop:
            return None
        self.layout_name = layout[0]
        self.other_lines += other
        last = heads[-1]
        ix = _INDEX[width_head]
        first_invalid = ints[:, col["first_word"]] if "first_word" in col else np.zeros(n, int)
        blk = self._block(
            raw.reshape(n, width), first_invalid, ints[:, col["local_timestamp"]], rssi,
            noise, int(last[ix["channel"]]), last[ix["mac"]], abs_time, key,
        )
        blk["abs_row"] = first_abs
        return blk

    def _times_s(self, ts: np.ndarray) -> np.ndarray:
        """:meth:`_time_s` of many timestamps: one numpy expression while the clock runs
        forward (no wrap, no reset), else row by row."""
        if self._ts0 is None and ts.size:
            self._ts0 = int(ts[0])
        if ts.size:
            t_us = ts + self._ts_offset
            if (self._ts_last is None or t_us[0] >= self._ts_last) and (
                    ts.size == 1 or (np.diff(t_us) >= 0).all()):
                self._ts_last = int(t_us[-1])
                return (t_us - self._ts0) * 1e-6
        return np.fromiter((self._time_s(int(t)) for t in ts), np.float64, len(ts))


def _parse_int_fields(text: str, count: int) -> np.ndarray | None:
    """``count`` comma-separated plain integers (``-?[0-9]+``, below 2**62 in magnitude) as
    int64, exactly as :func:`int` reads them; ``None`` for any other text."""
    data = text.encode("ascii", errors="replace")
    if (data.translate(None, b"0123456789-,") or b"-," in data or b"--" in data
            or data.endswith((b"-", b",")) or data.startswith(b",")):
        return None
    try:
        ints = np.fromstring(text, dtype=np.int64, sep=",")
    except ValueError:
        return None
    if ints.size != count or (ints.size and (ints.max() >= 1 << 62
                                              or ints.min() <= -(1 << 62))):
        return None  # out of range, or saturated by the C parser
    return ints


def _parse_int8_values(text: str, sep: str) -> np.ndarray | None:
    """The integers of ``text`` (separated by ``sep``) when all are int8, else ``None``.

    Text with no number of three or more digits holds only values in -99..99: it is
    parsed straight into int8 (twice as fast); otherwise into int32 and range-checked.
    """
    data = text.encode("ascii", errors="replace")
    digit = np.frombuffer(data, np.uint8) - 48 <= 9  # wraps: only '0'..'9' are <= 9
    short = not (digit[:-2] & digit[1:-1] & digit[2:]).any()
    try:
        raw = np.fromstring(text, dtype=np.int8 if short else np.int32, sep=sep)
    except ValueError:
        return None
    if not short and raw.size and (raw.max() > 127 or raw.min() < -128):
        return None
    return raw


class _IntColumns:
    """The header fields the parser reads as integers, for one layout."""

    def __init__(self, n_fields: int) -> None:
        ix = _INDEX[n_fields]
        self.names = [c for c in ("rssi", "local_timestamp", "channel", "noise_floor",
                                  "sig_mode", "bandwidth", "secondary_channel", "stbc",
                                  "first_word", "real_time_set") if c in ix]
        self.index = {c: i for i, c in enumerate(self.names)}
        self.getter = itemgetter(*(ix[c] for c in self.names))


#: Integer header columns per layout (keyed by field count).
_INT_COLUMNS = {n: _IntColumns(n) for n in LAYOUTS}


def _is_int(tok: str) -> bool:
    try:
        int(tok)
    except ValueError:
        return False
    return True


def _clip(s: str, n: int = 40) -> str:
    return repr(s if len(s) <= n else s[:n] + "…")


class PacketBatcher:
    """Groups parsed packet blocks into :class:`Frames` of at most ``chunk_size`` rows.

    A chunk is closed early when the subcarrier layout changes, so that every chunk
    has one shape.
    """

    def __init__(self, source: str, chunk_size: int, meta: dict[str, Any]) -> None:
        self.source = source
        self.chunk_size = chunk_size
        self.meta = meta
        self._blocks: list[dict[str, Any]] = []
        self._rows = 0
        self._t0: datetime | None = None

    def add(self, blk: dict[str, Any]) -> list[Frames]:
        """Add a packet block; return the chunks it completed."""
        out: list[Frames] = []
        if self._blocks and len(blk["subcarriers"]) != len(self._blocks[0]["subcarriers"]):
            out.append(self.flush())
        if self._t0 is None and blk["abs_time"] is not None:
            row = blk.get("abs_row", 0)
            self._t0 = datetime.fromtimestamp(
                blk["abs_time"] - blk["time_s"][row], tz=timezone.utc
            )
        self._blocks.append(blk)
        self._rows += len(blk["time_s"])
        while self._rows >= self.chunk_size:
            out.append(self._take(self.chunk_size))
        return out

    def __len__(self) -> int:
        return self._rows

    def flush(self) -> Frames | None:
        return self._take(self._rows) if self._rows else None

    def _take(self, n: int) -> Frames:
        """Remove the first ``n`` rows and return them as one chunk."""
        parts: list[dict[str, Any]] = []
        need = n
        while need:
            blk = self._blocks[0]
            m = len(blk["time_s"])
            if m <= need:
                parts.append(self._blocks.pop(0))
                need -= m
            else:
                head = {k: (v[:need] if k in _ROW_KEYS else v) for k, v in blk.items()}
                self._blocks[0] = {k: (v[need:] if k in _ROW_KEYS else v) for k, v in blk.items()}
                parts.append(head)
                need = 0
        self._rows -= n
        cat = (lambda k: parts[0][k]) if len(parts) == 1 else (
            lambda k: np.concatenate([p[k] for p in parts]))
        last = parts[-1]
        meta = dict(self.meta)
        meta.update(channel=last["channel"], mac=last["mac"], bandwidth_mhz=last["bandwidth_mhz"])
        return Frames(
            data=cat("csi")[:, :, None, None], times_s=cat("time_s"), fs_hz=None,
            modality="wifi_csi", source=self.source, subcarriers=parts[0]["subcarriers"],
            t0=self._t0, fields={"rssi": cat("rssi"), "noise_floor": cat("noise_floor")},
            meta=meta,
        )


#: Per-row keys of a packet block (split when a block straddles two chunks).
_ROW_KEYS = frozenset({"csi", "time_s", "rssi", "noise_floor"})


def iter_lines(fh: IO[bytes]) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` from a binary file, decoding bytes leniently."""
    for n, raw in enumerate(fh, 1):
        yield n, raw.decode("ascii", errors="replace")


def frames_from_lines(
    lines: Iterable[tuple[int, str]], parser: Esp32LineParser, batcher: PacketBatcher,
    block_lines: int = 256,
) -> Iterator[Frames]:
    """Parse numbered lines in blocks and yield chunks (file replay)."""
    block: list[tuple[int, str]] = []
    for item in lines:
        block.append(item)
        if len(block) >= block_lines:
            for blk in parser.parse_block(block):
                yield from batcher.add(blk)
            block = []
    for blk in parser.parse_block(block):
        yield from batcher.add(blk)
    fr = batcher.flush()
    if fr is not None:
        yield fr


def frames_from_file(
    fh: IO[bytes], parser: Esp32LineParser, batcher: PacketBatcher, block_lines: int = 256,
) -> Iterator[Frames]:
    """:func:`frames_from_lines` of a binary file, read ``block_lines`` lines at a time and
    decoded per block (the same lines, numbers and results, fewer Python steps)."""
    first = 1
    while True:
        raw = list(islice(fh, block_lines))
        if raw:
            block = b"".join(raw).decode("ascii", errors="replace")
            texts = block.split("\n")
            if raw[-1].endswith(b"\n"):
                texts.pop()  # the empty text after the last newline
            for blk in parser.parse_lines(first, texts, block):
                yield from batcher.add(blk)
            first += len(raw)
        if len(raw) < block_lines:
            break
    fr = batcher.flush()
    if fr is not None:
        yield fr


@FORMATS.register("esp32_csi")
class Esp32CsiReader(CaptureReader):
    """Reader for ESP32 ``CSI_DATA`` logs (esp-csi, esp-csi C5/C6, ESP32-CSI-Tool).

    Parameters
    ----------
    path, chunk_size, source
        See :class:`~sensing.formats.base.CaptureReader`.
    ltf : {"lltf", "htltf", "stbc_htltf"}
        Training-field segment to output (default LLTF, present in every packet).
    """

    name = "esp32_csi"
    modality = "wifi_csi"
    extensions = (".csv", ".txt", ".log")
    description = "ESP32 CSI_DATA serial log (esp-csi 25/15 columns, ESP32-CSI-Tool 26 columns)"

    def __init__(
        self, path: str | os.PathLike, *, chunk_size: int = 256, source: str | None = None,
        ltf: str = "lltf",
    ) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        self.ltf = ltf
        self.parser: Esp32LineParser | None = None

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        return MARKER.encode() in head and b"\x00" not in head[:512]

    def chunks(self) -> Iterator[Frames]:
        self.rejects = RejectLog()
        self.parser = Esp32LineParser(self.path, self.rejects, self.ltf)
        batcher = PacketBatcher(self.source, self.chunk_size, {"format": self.name})
        with open(self.path, "rb") as fh:
            for fr in frames_from_file(fh, self.parser, batcher):
                self.bytes_read = fh.tell()
                yield fr


def format_csi_line(
    csi_buffer: np.ndarray,
    *,
    local_timestamp_us: int,
    rssi: int = -50,
    channel: int = 6,
    noise_floor: int = -95,
    mac: str = "AA:BB:CC:DD:EE:FF",
    seq: int = 0,
    sig_mode: int = 0,
    cwb: int = 0,
    secondary: int = 0,
    stbc: int = 0,
    layout: str = "esp-csi",
    real_timestamp: float | None = None,
) -> str:
    """Format one ``CSI_DATA`` line as ESP32 firmware prints it (the inverse of the parser).

    Parameters
    ----------
    csi_buffer : numpy.ndarray
        Complex values in **buffer order** (see :func:`buffer_layout`); real and imaginary
        parts are rounded and clipped to int8 and written as ``imag real`` pairs.
    local_timestamp_us : int
        Device clock in µs (written modulo 2**32, as the firmware's uint32 counter).
    layout : {"esp-csi", "esp32-csi-tool"}
        Column layout (25 comma-separated columns with a quoted array, or 26 columns with a
        space-separated array).
    real_timestamp : float, optional
        ESP32-CSI-Tool only: POSIX seconds; sets ``real_time_set=1``.

    Returns
    -------
    str
        The line, without the trailing newline.
    """
    buf = np.asarray(csi_buffer)
    pairs = np.empty(2 * buf.size, dtype=np.int64)
    pairs[0::2] = np.clip(np.rint(buf.imag), -128, 127)
    pairs[1::2] = np.clip(np.rint(buf.real), -128, 127)
    ts = int(local_timestamp_us) % _TS_WRAP
    common = (
        f"{rssi},11,{sig_mode},0,{cwb},1,1,0,{stbc},0,0,{noise_floor},0,{channel},{secondary},"
        f"{ts},0,{pairs.size // 2 + 40},0"
    )
    if layout == "esp-csi":
        values = ",".join(map(str, pairs.tolist()))
        return f'CSI_DATA,{seq},{mac},{common},{pairs.size},0,"[{values}]"'
    if layout == "esp32-csi-tool":
        values = " ".join(map(str, pairs.tolist()))
        real_set = 0 if real_timestamp is None else 1
        real = ts * 1e-6 if real_timestamp is None else real_timestamp
        return f"CSI_DATA,STA,{mac},{common},{real_set},{real:.6f},{pairs.size},[{values} ]"
    raise ValueError(f"layout must be 'esp-csi' or 'esp32-csi-tool', got {layout!r}")
