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

from sensing.errors import Reject, RejectLog
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
        ``missing_segment``.
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

    def _reject(self, where: str, reason: str, expected: str, got: str) -> None:
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

    def parse(self, line: str, where: str) -> dict[str, Any] | None:
        """Parse one line; return a packet dict or ``None`` (rejected or not a CSI line).

        The packet has ``csi`` (complex64, ascending subcarriers), ``subcarriers``,
        ``time_s`` (stream seconds), ``rssi`` (dBm), ``noise_floor`` (dBm), ``channel``,
        ``mac``, ``abs_time`` (POSIX seconds or None) and ``layout``.
        """
        pos = line.find(MARKER)
        if pos < 0:
            self.other_lines += 1
            return None
        line = line[pos:].rstrip()
        lb = line.find("[")
        rb = line.rfind("]")
        if lb < 0 or rb < lb:
            self._reject(where, "no_array", "a '[...]' CSI array", _clip(line))
            return None
        head = line[:lb].rstrip('"').rstrip().rstrip(",").split(",")
        layout = LAYOUTS.get(len(head))
        if layout is None:
            self._reject(
                where, "field_count", "14, 24 or 25 fields before the CSI array",
                f"{len(head)} fields",
            )
            return None
        name, cols = layout
        ix = _INDEX[len(head)]
        try:
            rssi = int(head[ix["rssi"]])
            ts = int(head[ix["local_timestamp"]])
            channel = int(head[ix["channel"]])
            noise = int(head[ix["noise_floor"]])
            if "sig_mode" in ix:
                sig_mode = int(head[ix["sig_mode"]])
                cwb = int(head[ix["bandwidth"]])
                secondary = int(head[ix["secondary_channel"]])
                stbc = int(head[ix["stbc"]])
            else:
                sig_mode = cwb = secondary = stbc = 0
            first_invalid = int(head[ix["first_word"]]) if "first_word" in ix else 0
            if "real_timestamp" in ix:
                real_set = int(head[ix["real_time_set"]])
                real_ts = float(head[ix["real_timestamp"]])
            else:
                real_set, real_ts = 0, None
        except ValueError as exc:
            self._reject(where, "bad_field", "numeric header fields", str(exc))
            return None
        body = line[lb + 1 : rb]
        try:
            # C-speed parse; numpy >= 2 raises on any token that is not an integer
            raw = np.fromstring(body, dtype=np.int32, sep="," if "," in body else " ")
        except ValueError:
            bad = next((t for t in body.replace(",", " ").split() if not _is_int(t)), "?")
            self._reject(where, "bad_value", "integers in the CSI array", repr(bad[:20]))
            return None
        if raw.size % 2:
            self._reject(where, "odd_value_count", "an even number of int8 values", f"{raw.size}")
            return None
        if raw.size and (raw.max() > 127 or raw.min() < -128):
            self._reject(where, "out_of_range", "int8 values (-128..127)", f"{raw.min()}..{raw.max()}")
            return None
        start, stop, subcarriers, order = self._segment((sig_mode, cwb, secondary, stbc))
        if stop == 0 or raw.size < 2 * stop:
            self._reject(
                where, "short_array",
                f"at least {2 * max(stop, 64)} values for the {self.ltf} segment",
                f"{raw.size}",
            )
            return None
        seg = raw[2 * start : 2 * stop].astype(np.float32)
        if first_invalid and start == 0:
            seg[:4] = 0.0
        csi = np.empty(stop - start, dtype=np.complex64)
        csi.real = seg[1::2]
        csi.imag = seg[0::2]
        # time: unwrap the 32-bit microsecond counter into stream seconds
        if self._ts0 is None:
            self._ts0 = ts
        elif self._ts_last is not None and ts + self._ts_offset < self._ts_last:
            if self._ts_last - (ts + self._ts_offset) > _TS_WRAP // 2:
                self._ts_offset += _TS_WRAP
            else:  # device clock reset: continue from the last time
                self._ts_offset = self._ts_last - ts
        t_us = ts + self._ts_offset
        self._ts_last = t_us
        self.layout_name = name
        return {
            "csi": csi[order],
            "subcarriers": subcarriers,
            "time_s": (t_us - self._ts0) * 1e-6,
            "rssi": rssi,
            "noise_floor": noise,
            "channel": channel,
            "mac": head[ix["mac"]],
            "abs_time": real_ts if real_set else None,
            "bandwidth_mhz": 40 if (cwb and secondary) else 20,
        }


def _is_int(tok: str) -> bool:
    try:
        int(tok)
    except ValueError:
        return False
    return True


def _clip(s: str, n: int = 40) -> str:
    return repr(s if len(s) <= n else s[:n] + "…")


class PacketBatcher:
    """Groups parsed CSI packets into :class:`Frames` of at most ``chunk_size`` rows.

    A chunk is closed early when the subcarrier layout changes, so that every chunk
    has one shape.
    """

    def __init__(self, source: str, chunk_size: int, meta: dict[str, Any]) -> None:
        self.source = source
        self.chunk_size = chunk_size
        self.meta = meta
        self._rows: list[dict[str, Any]] = []
        self._t0: datetime | None = None

    def add(self, pkt: dict[str, Any]) -> list[Frames]:
        """Add one packet; return the chunks it completed (usually none, at most two)."""
        out: list[Frames] = []
        if self._rows and len(pkt["subcarriers"]) != len(self._rows[0]["subcarriers"]):
            out.append(self.flush())
        if self._t0 is None and pkt["abs_time"] is not None:
            self._t0 = datetime.fromtimestamp(pkt["abs_time"] - pkt["time_s"], tz=timezone.utc)
        self._rows.append(pkt)
        if len(self._rows) >= self.chunk_size:
            out.append(self.flush())
        return out

    def __len__(self) -> int:
        return len(self._rows)

    def flush(self) -> Frames | None:
        rows, self._rows = self._rows, []
        if not rows:
            return None
        data = np.stack([r["csi"] for r in rows])[:, :, None, None]
        times = np.fromiter((r["time_s"] for r in rows), dtype=np.float64, count=len(rows))
        fields = {
            "rssi": np.fromiter((r["rssi"] for r in rows), np.int16, len(rows)),
            "noise_floor": np.fromiter((r["noise_floor"] for r in rows), np.int16, len(rows)),
        }
        meta = dict(self.meta)
        meta.update(channel=rows[-1]["channel"], mac=rows[-1]["mac"],
                    bandwidth_mhz=rows[-1]["bandwidth_mhz"])
        return Frames(
            data=data, times_s=times, fs_hz=None, modality="wifi_csi", source=self.source,
            subcarriers=rows[0]["subcarriers"], t0=self._t0, fields=fields, meta=meta,
        )


def iter_lines(fh: IO[bytes]) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` from a binary file, decoding bytes leniently."""
    for n, raw in enumerate(fh, 1):
        yield n, raw.decode("ascii", errors="replace")


def frames_from_lines(
    lines: Iterable[tuple[int, str]], parser: Esp32LineParser, batcher: PacketBatcher
) -> Iterator[Frames]:
    """Parse numbered lines and yield chunks (used by file replay and tests)."""
    for n, text in lines:
        pkt = parser.parse(text, f"line {n}")
        if pkt is not None:
            yield from batcher.add(pkt)
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
