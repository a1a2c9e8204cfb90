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
        if start == 0 and any(first_invalid):
            seg[np.asarray(first_invalid, bool), :4] = 0.0
        csi = np.empty((len(seg), stop - start), dtype=np.complex64)
        csi.real = seg[:, 1::2]
        csi.imag = seg[:, 0::2]
        times = np.fromiter((self._time_s(t) for t in ts), np.float64, len(ts))
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

    def _fast_block(self, items: list[tuple[int, str]]) -> dict[str, Any] | None:
        if not items:
            return None
        splits = []
        for _, text in items:
            if not text.startswith(MARKER):
                return None
            split = self._split(text.rstrip())
            if isinstance(split, RejectReason):
                return None
            splits.append(split)
        name, first, body0 = splits[0]
        sep = "," if "," in body0 else " "
        key = first[4]
        if any(s[1][4] != key or s[0] != name for s in splits):
            return None
        bodies = [s[2].strip(sep + " ") for s in splits]
        counts = [b.count(sep) + 1 for b in bodies]
        width = counts[0]
        if width % 2 or any(c != width for c in counts):
            return None
        try:
            raw = np.fromstring(sep.join(bodies), dtype=np.int32, sep=sep)
        except ValueError:
            return None
        if raw.size != width * len(bodies) or raw.max() > 127 or raw.min() < -128:
            return None
        _, stop, _, _ = self._segment(key)
        if stop == 0 or width < 2 * stop:
            return None
        fields = [s[1] for s in splits]
        self.layout_name = name
        abs_time = next((f[6] for f in fields if f[6] is not None), None)
        first_abs = next((i for i, f in enumerate(fields) if f[6] is not None), 0)
        blk = self._block(
            raw.reshape(len(bodies), width), [f[5] for f in fields], [f[1] for f in fields],
            [f[0] for f in fields], [f[3] for f in fields], fields[-1][2], fields[-1][7],
            abs_time, key,
        )
        blk["abs_row"] = first_abs
        return blk


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
            for fr in frames_from_lines(iter_lines(fh), self.parser, batcher):
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
