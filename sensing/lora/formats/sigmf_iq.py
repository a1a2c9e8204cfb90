"""SigMF recordings of complex IQ (``cf32_le``, ``ci16_le``, ``cu8`` …) with LoRa or soil
parameters in the global object.

A SigMF recording is two files, ``NAME.sigmf-meta`` (JSON: ``global``, ``captures``,
``annotations``) and ``NAME.sigmf-data`` (samples); either may be given. With
``core:num_channels`` = N the samples of the N channels are interleaved sample by sample
(``s0c0 s0c1 … s1c0 …``), each sample a pair (I, Q) of the datatype's scalars. Frames carry
``data`` complex64 ``(n_samples, n_channels)``, scaled to full scale ±1 for the integer
types (``ci16``: /32768, ``ci8``: /128, ``cu8``: (x − 127.5)/127.5).

Global keys read besides ``core:*``:

``ambisense:lora``
    LoRa parameters, see :class:`sensing.lora.params.LoraParams` (``sf``, ``bw_hz``,
    ``sync_word``, ``preamble_len``, ``cr``, ``has_crc``, ``implicit_header``,
    ``payload_len``, ``ldro``, ``channel``); validated, passed on in ``meta["lora"]``.
``ambisense:soil``
    Soil-sensing set-up (``depths_m``, ``site``, ``reference_vwc`` …; defined by the soil
    pipeline), passed on as is in ``meta["soil"]``.

Recordings with a real datatype (``rf32_le`` …: audio) or an ``ambisense:uwb`` /
``ambisense:radar`` object belong to other readers and are not claimed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from sensing.errors import CaptureFormatError, Reject, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames
from sensing.lora.params import LORA_KEY
from sensing.params import OptionError, Params, param

__all__ = ["SigmfIqReader", "write_sigmf_iq", "SOIL_KEY", "DATATYPES", "meta_path_of",
           "data_path_of"]

SOIL_KEY = "ambisense:soil"
#: Global keys of other modalities' SigMF readers: files carrying them are not ours.
FOREIGN_KEYS = ("ambisense:uwb", "ambisense:radar")
META_EXT, DATA_EXT = ".sigmf-meta", ".sigmf-data"

#: Complex SigMF datatypes read here → (numpy scalar dtype, offset, scale to ±1).
DATATYPES: dict[str, tuple[str, float, float]] = {
    "cf32_le": ("<f4", 0.0, 1.0),
    "cf64_le": ("<f8", 0.0, 1.0),
    "cf32_be": (">f4", 0.0, 1.0),
    "ci32_le": ("<i4", 0.0, 1.0 / 2**31),
    "ci16_le": ("<i2", 0.0, 1.0 / 32768.0),
    "ci16_be": (">i2", 0.0, 1.0 / 32768.0),
    "ci8": ("i1", 0.0, 1.0 / 128.0),
    "cu8": ("u1", 127.5, 1.0 / 127.5),
    "cu16_le": ("<u2", 32767.5, 1.0 / 32767.5),
}
#: Datatypes the writer produces.
WRITABLE = ("cf32_le", "ci16_le", "ci8", "cu8")
DEFAULT_CHUNK = 1 << 16


def meta_path_of(path: str) -> str:
    """The ``.sigmf-meta`` path of a recording given by either of its files."""
    for ext in (META_EXT, DATA_EXT):
        if path.endswith(ext):
            return path[: -len(ext)] + META_EXT
    return path + META_EXT


def data_path_of(path: str) -> str:
    """The ``.sigmf-data`` path of a recording given by either of its files."""
    for ext in (META_EXT, DATA_EXT):
        if path.endswith(ext):
            return path[: -len(ext)] + DATA_EXT
    return path + DATA_EXT


def _ours(meta: Any) -> bool:
    if not isinstance(meta, dict) or not isinstance(meta.get("global"), dict):
        return False
    glob = meta["global"]
    if any(k in glob for k in FOREIGN_KEYS):
        return False
    return str(glob.get("core:datatype", "")) in DATATYPES


class SigmfIqOptions(Params):
    """Reader options of SigMF IQ recordings (``--read KEY=VALUE``)."""

    lora: dict[str, Any] | None = param(
        None, doc="LoRa parameters overriding those of the recording's ambisense:lora "
                  "(e.g. {\"sf\": 9})")


@FORMATS.register("sigmf_iq")
class SigmfIqReader(CaptureReader):
    """Complex IQ SigMF recordings (one or two channels) → ``lora_iq`` frames.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.sigmf-meta`` or the ``.sigmf-data`` file.
    chunk_size : int
        Samples per chunk (default 65536).
    source : str, optional
        Name in each chunk (default: the recording's base name).
    lora : dict, optional
        LoRa fields overriding the recording's ``ambisense:lora``.
    """

    name = "sigmf_iq"
    modality = "lora_iq"
    extensions = (META_EXT, DATA_EXT)
    description = ("SigMF complex IQ recording (cf32_le, ci16_le, cu8 …; 1 or 2 channels), "
                   "LoRa parameters in ambisense:lora, soil set-up in ambisense:soil")
    Options = SigmfIqOptions

    def __init__(self, path: str | os.PathLike, *, chunk_size: int = DEFAULT_CHUNK,
                 source: str | None = None, **options: Any) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        self.options = SigmfIqOptions.from_options(options, where=f"{self.name} reader")
        self.meta_path = meta_path_of(self.path)
        self.data_path = data_path_of(self.path)
        if source is None:
            self.source = os.path.basename(self.meta_path)[: -len(META_EXT)]
        self._load_meta()

    # ------------------------------------------------------------------ metadata
    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if path.endswith(DATA_EXT):
            meta_path = meta_path_of(path)
            if not os.path.exists(meta_path):
                return False
            try:
                with open(meta_path, "rb") as fh:
                    return _ours(json.load(fh))
            except (OSError, ValueError):
                return False
        if not head.lstrip()[:1] == b"{" or b'"global"' not in head:
            return False
        if b"core:datatype" in head and not any(
                f'"{d}"'.encode() in head for d in DATATYPES):
            return False
        try:
            if len(head) < 8192:
                return _ours(json.loads(head.decode("utf-8")))
            with open(path, "rb") as fh:
                return _ours(json.load(fh))
        except (OSError, ValueError, UnicodeDecodeError):
            return False

    def _fail(self, where: str, expected: str, got: str, path: str | None = None):
        raise CaptureFormatError(path or self.meta_path, where, expected, got)

    def _load_meta(self) -> None:
        from sigmf import SigMFFile
        from sigmf.error import SigMFError

        try:
            with open(self.meta_path, encoding="utf-8") as fh:
                raw = json.load(fh)
        except FileNotFoundError:
            self._fail("file", "a .sigmf-meta file beside the data", "no such file")
        except (ValueError, UnicodeDecodeError) as exc:
            self._fail("JSON", "SigMF metadata (JSON)", f"{type(exc).__name__}: {exc}")
        if not isinstance(raw, dict) or not isinstance(raw.get("global"), dict):
            self._fail("global", "a JSON object with a 'global' object", type(raw).__name__)
        try:
            sm = SigMFFile(metadata=raw, skip_checksum=True)
            glob = sm.get_global_info()
            captures = sm.get_captures()
            annotations = sm.get_annotations()
        except (SigMFError, KeyError, TypeError, ValueError) as exc:
            self._fail("metadata", "valid SigMF metadata", f"{type(exc).__name__}: {exc}")
        dt = str(glob.get("core:datatype", ""))
        if dt not in DATATYPES:
            self._fail("global core:datatype", f"a complex datatype ({', '.join(DATATYPES)})",
                       repr(dt))
        fs = glob.get("core:sample_rate")
        if not isinstance(fs, (int, float)) or isinstance(fs, bool) or not fs > 0:
            self._fail("global core:sample_rate", "a sample rate > 0 Hz", repr(fs))
        nch = glob.get("core:num_channels", 1)
        if not isinstance(nch, int) or isinstance(nch, bool) or not 1 <= nch <= 16:
            self._fail("global core:num_channels", "an integer 1..16", repr(nch))
        self.datatype = dt
        self.fs_hz = float(fs)
        self.n_channels = nch
        self.global_info = glob
        self.captures = list(captures or [])
        self.annotations = list(annotations or [])
        first = self.captures[0] if self.captures else {}
        self.center_hz = first.get("core:frequency")
        self.header_bytes = int(sum(int(c.get("core:header_bytes", 0) or 0)
                                    for c in self.captures[:1]))
        self.trailing_bytes = int(glob.get("core:trailing_bytes", 0) or 0)
        self.t0 = _parse_datetime(first.get("core:datetime"))
        lora = glob.get(LORA_KEY)
        if self.options.lora:
            lora = {**(lora if isinstance(lora, dict) else {}), **self.options.lora}
        if lora is not None:
            from sensing.lora.params import lora_from_meta

            if not isinstance(lora, dict):
                self._fail(f"global {LORA_KEY}", "an object", type(lora).__name__)
            try:
                full = lora_from_meta(lora).model_dump()
            except OptionError as exc:
                self._fail(f"global {LORA_KEY}", "valid LoRa parameters", str(exc))
            lora = {**lora, **full}
        self.lora = lora
        soil = glob.get(SOIL_KEY)
        self.soil = soil if isinstance(soil, dict) else None
        scalar, self._offset, self._scale = DATATYPES[dt]
        self._scalar = np.dtype(scalar)
        self.sample_bytes = 2 * self._scalar.itemsize * nch

    def replay_first(self) -> bool:
        """A soil recording with a reference water content (``ambisense:soil``
        ``reference_vwc``) calibrates the others of its site: replayed first."""
        return self.soil is not None and self.soil.get("reference_vwc") is not None

    def stream_meta(self) -> dict[str, Any]:
        """``meta`` of every chunk (the frames contract of the LoRa pipelines)."""
        return {"format": "sigmf", "lora": self.lora, "soil": self.soil,
                "center_hz": self.center_hz, "datatype": self.datatype,
                "n_channels": self.n_channels}

    # ------------------------------------------------------------------ samples
    def chunks(self) -> Iterator[Frames]:
        try:
            size = os.path.getsize(self.data_path)
        except OSError:
            self._fail("file", "the recording's .sigmf-data file", "no such file",
                       path=self.data_path)
        body = size - self.header_bytes - self.trailing_bytes
        if body < 0:
            self._fail("byte 0", f"{self.header_bytes} header bytes", f"{size} bytes",
                       path=self.data_path)
        n_total, partial = divmod(body, self.sample_bytes)
        meta = self.stream_meta()
        common = {"fs_hz": self.fs_hz, "modality": self.modality, "source": self.source,
                  "t0": self.t0,
                  "channel_names": tuple(f"ch{i}" for i in range(self.n_channels))}
        self.bytes_read = 0
        with open(self.data_path, "rb") as fh:
            fh.seek(self.header_bytes)
            start = 0
            while start < n_total:
                n = min(self.chunk_size, n_total - start)
                flat = np.fromfile(fh, dtype=self._scalar, count=2 * self.n_channels * n)
                n = len(flat) // (2 * self.n_channels)
                if n == 0:
                    break
                data = self._complex(flat[: 2 * self.n_channels * n], n)
                if self._scalar.kind == "f":
                    check_finite(data, self, self.data_path,
                                 self.header_bytes + start * self.sample_bytes)
                times = (start + np.arange(n)) / self.fs_hz
                self.bytes_read = self.header_bytes + (start + n) * self.sample_bytes
                yield Frames.prevalidated(common, data=data, times_s=times, meta=dict(meta))
                start += n
        if partial:
            self.rejects.add(Reject(
                self.data_path, f"byte {self.header_bytes + n_total * self.sample_bytes}",
                RejectReason.TRUNCATED,
                f"whole samples of {self.sample_bytes} bytes ({self.n_channels} channel(s) "
                f"of {self.datatype})", f"{partial} trailing bytes"))

    def _complex(self, flat: np.ndarray, n: int) -> np.ndarray:
        return to_complex(flat, self._scalar, self._offset, self._scale, n, self.n_channels)

    def info(self) -> dict[str, Any]:
        out = super().info()
        out["format"] = self.name  # the chunks' meta says "sigmf" (the container)
        out.update({"sample_rate_hz": self.fs_hz, "n_channels": self.n_channels,
                    "annotations": len(self.annotations)})
        return out


def to_complex(flat: np.ndarray, scalar: np.dtype, offset: float, scale: float, n: int,
               n_channels: int) -> np.ndarray:
    """``n`` interleaved I/Q samples of ``n_channels`` channels (``2·n·n_channels``
    scalars of dtype ``scalar``, as read) as ``(n, n_channels)`` complex64 full scale:
    ``(x − offset) · scale`` per scalar (``cf32_le`` is only viewed, then copied)."""
    if scalar == np.dtype("<f4"):
        out = flat.view(np.complex64).copy()
    else:
        f = flat.astype(np.float32)
        if offset:
            f -= np.float32(offset)
        if scale != 1.0:
            f *= np.float32(scale)
        out = f.view(np.complex64)
    return out.reshape(n, n_channels)


def check_finite(data: np.ndarray, reader: CaptureReader, path: str, byte: int) -> None:
    """Set NaN/Inf samples of a float chunk to 0, in place, with one counted reject."""
    flat = data.view(np.float32) if data.dtype == np.complex64 else data
    bad = ~np.isfinite(flat)
    if bad.any():
        count = int(bad.sum())
        flat[bad] = 0.0
        reader.rejects.add(Reject(path, f"byte {byte}", RejectReason.BAD_VALUE,
                                  "finite samples", f"{count} NaN/Inf values (set to 0)"))


def _parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _to_datatype(iq: np.ndarray, datatype: str) -> np.ndarray:
    """Interleaved scalars of ``iq`` (n, ch) complex in ``datatype`` (clipped to full scale
    for the integer types)."""
    flat = np.ascontiguousarray(iq, dtype=np.complex64).view(np.float32).reshape(-1)
    if datatype == "cf32_le":
        return flat.astype("<f4", copy=False)
    scalar, offset, scale = DATATYPES[datatype]
    info = np.iinfo(np.dtype(scalar))
    q = np.rint(flat / scale + offset)
    return np.clip(q, info.min, info.max).astype(scalar)


def write_sigmf_iq(
    base_path: str | os.PathLike,
    iq: np.ndarray,
    fs_hz: float,
    *,
    center_hz: float | None = None,
    datatype: str = "cf32_le",
    lora: Mapping[str, Any] | Params | None = None,
    soil: Mapping[str, Any] | None = None,
    annotations: Sequence[Mapping[str, Any]] | None = None,
    extra_global: Mapping[str, Any] | None = None,
) -> tuple[str, str]:
    """Write complex IQ as a SigMF recording (``base.sigmf-meta`` + ``base.sigmf-data``).

    Parameters
    ----------
    base_path : str or os.PathLike
        Path without extension (a ``.sigmf-meta`` / ``.sigmf-data`` / ``.sigmf`` ending
        is stripped).
    iq : numpy.ndarray
        Complex samples ``(n,)`` or ``(n, n_channels)``; written interleaved per sample.
    fs_hz : float
        Sample rate in Hz.
    center_hz : float, optional
        Centre frequency in Hz (``core:frequency`` of the capture).
    datatype : str
        ``cf32_le`` (default), ``ci16_le``, ``ci8`` or ``cu8`` (integers: ±1 is full scale,
        values beyond are clipped).
    lora : dict or LoraParams, optional
        ``ambisense:lora`` object.
    soil : dict, optional
        ``ambisense:soil`` object (passed through).
    annotations : sequence of dict, optional
        SigMF annotations (``core:sample_start``, ``core:sample_count``, ``core:label`` …).
    extra_global : dict, optional
        More global keys (``core:description``, ``core:hw`` …).

    Returns
    -------
    tuple of str
        The meta and data paths.
    """
    import sigmf
    from sigmf import SigMFFile

    if datatype not in WRITABLE:
        raise ValueError(f"datatype must be one of {WRITABLE}, got {datatype!r}")
    if not fs_hz > 0:
        raise ValueError(f"fs_hz must be > 0, got {fs_hz}")
    iq = np.asarray(iq)
    if iq.ndim == 1:
        iq = iq[:, None]
    if iq.ndim != 2 or iq.shape[1] < 1:
        raise ValueError(f"iq must be (n,) or (n, n_channels), got shape {iq.shape}")
    base = os.fspath(base_path)
    for ext in (META_EXT, DATA_EXT, ".sigmf"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    meta_path, data_path = base + META_EXT, base + DATA_EXT
    _to_datatype(iq, datatype).tofile(data_path)
    glob: dict[str, Any] = {
        "core:datatype": datatype,
        "core:sample_rate": float(fs_hz),
        "core:num_channels": int(iq.shape[1]),
        "core:version": getattr(sigmf, "__specification__", "1.2.0"),
        "core:recorder": "ambisense",
        "core:extensions": [{"name": "ambisense", "version": "1.0.0", "optional": True}],
    }
    if lora is not None:
        glob[LORA_KEY] = lora.model_dump() if isinstance(lora, Params) else dict(lora)
    if soil is not None:
        glob[SOIL_KEY] = dict(soil)
    glob.update(dict(extra_global or {}))
    sm = SigMFFile(data_file=data_path, global_info=glob, skip_checksum=True)
    capture: dict[str, Any] = {}
    if center_hz is not None:
        capture["core:frequency"] = float(center_hz)
    sm.add_capture(0, metadata=capture)
    for ann in annotations or ():
        ann = dict(ann)
        start = int(ann.pop("core:sample_start", 0))
        count = ann.pop("core:sample_count", None)
        sm.add_annotation(start, None if count is None else int(count), metadata=ann)
    with open(meta_path, "w", encoding="utf-8") as fh:
        fh.write(sm.dumps(pretty=True))
        fh.write("\n")
    return meta_path, data_path
