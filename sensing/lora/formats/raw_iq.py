"""Raw complex IQ files without a header (GNU Radio ``file_sink`` of ``gr_complex``:
interleaved float32 I, Q), with the recording's parameters given as reader options.

Nothing in such a file says what it is, so it is claimed by content detection only with a
raw-IQ extension (``.cf32``, ``.fc32``, ``.cfile``) and otherwise read on request::

    ambisense replay ref_tx_sf7_cr2.bin --format lora_raw --read fs_hz=500000 \
        --read bw_hz=125000 --read sf=7

Options the command line leaves out may come from tokens of the file name, separated by
``.``, ``_`` or ``-``: ``fs500k`` / ``fs500000`` (sample rate), ``sf7``, ``bw125k``,
``cr2``, ``ch2`` (interleaved channels); options given win. With two or more channels the
samples are interleaved per sample, as in SigMF.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from sensing.errors import CaptureFormatError, Reject, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames
from sensing.lora.formats.sigmf_iq import DATATYPES, DEFAULT_CHUNK, check_finite, to_complex
from sensing.lora.params import LoraParams
from sensing.params import OptionError, Params, param

__all__ = ["RawIqReader", "RawIqOptions", "name_options", "write_raw_iq"]

EXTENSIONS = (".cf32", ".fc32", ".cfile")
_TOKEN = re.compile(r"^(fs|sf|bw|cr|ch)(\d+(?:\.\d+)?)([km]?)$", re.IGNORECASE)
_SCALE = {"": 1.0, "k": 1e3, "m": 1e6}
_LORA_FIELDS = ("sf", "bw_hz", "cr", "sync_word", "preamble_len", "has_crc",
                "implicit_header", "payload_len", "ldro")


class RawIqOptions(Params):
    """Options of the raw IQ reader (``--read KEY=VALUE``)."""

    fs_hz: float | None = param(None, unit="Hz", gt=0,
                                doc="sample rate (required unless the file name has fsNNNk)")
    center_hz: float | None = param(None, unit="Hz", doc="centre frequency of the recording")
    channels: int = param(1, ge=1, le=16, doc="interleaved channels per sample")
    datatype: Literal["cf32_le", "cf64_le", "ci16_le", "ci8", "cu8"] = param(
        "cf32_le", doc="sample type (SigMF datatype names)")
    header_bytes: int = param(0, ge=0, unit="B", doc="bytes to skip at the start")
    sf: int | None = param(None, ge=7, le=12, doc="LoRa spreading factor")
    bw_hz: Literal[125000, 250000, 500000] | None = param(None, unit="Hz",
                                                          doc="LoRa bandwidth")
    cr: int | None = param(None, ge=1, le=4, doc="LoRa coding rate 4/(4+cr)")
    sync_word: int | None = param(None, ge=0, le=255, doc="LoRa sync word (default 0x12)")
    preamble_len: int | None = param(None, ge=6, le=65535, doc="LoRa preamble up-chirps")
    has_crc: bool | None = param(None, doc="payload CRC (implicit header frames)")
    implicit_header: bool | None = param(None, doc="frames without explicit header")
    payload_len: int | None = param(None, ge=0, le=255, unit="B",
                                    doc="payload length (implicit header frames)")
    ldro: bool | None = param(None, doc="low data rate optimisation (default: automatic)")


def name_options(path: str) -> dict[str, Any]:
    """Reader options found in the tokens of a file name (``fs500k``, ``sf7``, ``bw125k``,
    ``cr2``, ``ch2``)."""
    out: dict[str, Any] = {}
    for tok in re.split(r"[._\-]", os.path.basename(path)):
        m = _TOKEN.match(tok)
        if not m:
            continue
        key, num, unit = m.group(1).lower(), float(m.group(2)), m.group(3).lower()
        value = num * _SCALE[unit]
        if key == "fs":
            out["fs_hz"] = value
        elif key == "bw" and int(value) in (125000, 250000, 500000):
            out["bw_hz"] = int(value)
        elif key == "sf" and 7 <= value <= 12 and not unit:
            out["sf"] = int(value)
        elif key == "cr" and 1 <= value <= 4 and not unit:
            out["cr"] = int(value)
        elif key == "ch" and 1 <= value <= 16 and not unit:
            out["channels"] = int(value)
    return out


@FORMATS.register("lora_raw")
class RawIqReader(CaptureReader):
    """Raw complex IQ (complex64 by default) → ``lora_iq`` frames.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    chunk_size : int
        Samples per chunk (default 65536).
    source : str, optional
        Name in each chunk (default: the file's base name).
    **options
        :class:`RawIqOptions` (``fs_hz``, ``channels``, ``center_hz``, ``sf``, ``bw_hz`` …).

    Raises
    ------
    sensing.params.OptionError
        An unknown option or a bad value.
    CaptureFormatError
        No sample rate (neither ``fs_hz`` nor an ``fsNNN`` token in the name).
    """

    name = "lora_raw"
    modality = "lora_iq"
    extensions = EXTENSIONS
    description = ("raw complex IQ without header (complex64 .cf32/.fc32/.cfile; other files "
                   "with --format lora_raw), fs_hz/sf/bw_hz/… as reader options")
    Options = RawIqOptions

    def __init__(self, path: str | os.PathLike, *, chunk_size: int = DEFAULT_CHUNK,
                 source: str | None = None, **options: Any) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        given = RawIqOptions.from_options(options, where=f"{self.name} reader").given()
        merged = {**name_options(self.path), **given}
        try:
            self.options = RawIqOptions.from_options(merged, where=f"{self.name} reader")
        except OptionError:  # a bad token in the name: use the given options only
            self.options = RawIqOptions.from_options(given, where=f"{self.name} reader")
        if self.options.fs_hz is None:
            raise CaptureFormatError(
                self.path, "options", "a sample rate: --read fs_hz=HZ (or fsNNNk in the name)",
                "none")
        o = self.options
        self.fs_hz = float(o.fs_hz)
        self.n_channels = o.channels
        self.datatype = o.datatype
        scalar, self._offset, self._scale = DATATYPES[o.datatype]
        self._scalar = np.dtype(scalar)
        self.sample_bytes = 2 * self._scalar.itemsize * self.n_channels
        lora = {k: getattr(o, k) for k in _LORA_FIELDS if getattr(o, k) is not None}
        self.lora = ({**lora, **LoraParams.from_options(lora).model_dump()} if lora else None)

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if not path.lower().endswith(EXTENSIONS) or len(head) < 8:
            return False
        try:
            if os.path.getsize(path) % 8:
                return False
        except OSError:
            return False
        vals = np.frombuffer(head[: len(head) // 8 * 8], "<f4")
        return bool(np.isfinite(vals).all() and np.abs(vals).max() < 1e9)

    def stream_meta(self) -> dict[str, Any]:
        """``meta`` of every chunk (same keys as SigMF recordings)."""
        return {"format": "raw", "lora": self.lora, "soil": None,
                "center_hz": self.options.center_hz, "datatype": self.datatype,
                "n_channels": self.n_channels}

    def chunks(self) -> Iterator[Frames]:
        size = os.path.getsize(self.path)
        body = max(size - self.options.header_bytes, 0)
        n_total, partial = divmod(body, self.sample_bytes)
        meta = self.stream_meta()
        common = {"fs_hz": self.fs_hz, "modality": self.modality, "source": self.source,
                  "channel_names": tuple(f"ch{i}" for i in range(self.n_channels))}
        per = 2 * self.n_channels
        self.bytes_read = 0
        with open(self.path, "rb") as fh:
            fh.seek(self.options.header_bytes)
            start = 0
            while start < n_total:
                n = min(self.chunk_size, n_total - start)
                flat = np.fromfile(fh, dtype=self._scalar, count=per * n)
                n = len(flat) // per
                if n == 0:
                    break
                flat = flat[: per * n]
                data = to_complex(flat, self._scalar, self._offset, self._scale, n,
                                  self.n_channels)
                if self._scalar.kind == "f":
                    check_finite(data, self, self.path,
                                 self.options.header_bytes + start * self.sample_bytes)
                times = (start + np.arange(n)) / self.fs_hz
                self.bytes_read = self.options.header_bytes + (start + n) * self.sample_bytes
                yield Frames.prevalidated(common, data=data, times_s=times, meta=dict(meta))
                start += n
        if partial:
            self.rejects.add(Reject(
                self.path, f"byte {self.options.header_bytes + n_total * self.sample_bytes}",
                RejectReason.TRUNCATED,
                f"whole samples of {self.sample_bytes} bytes", f"{partial} trailing bytes"))

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["format"] = self.name
        out.update({"sample_rate_hz": self.fs_hz, "n_channels": self.n_channels})
        return out


def write_raw_iq(path: str | os.PathLike, iq: np.ndarray) -> str:
    """Write complex samples ``(n,)`` or ``(n, channels)`` as interleaved complex64."""
    path = os.fspath(path)
    np.ascontiguousarray(iq, dtype=np.complex64).tofile(path)
    return path
