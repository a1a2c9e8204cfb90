"""ESPectre ``.npz`` captures: raw ESP32-family CSI buffers saved with numpy.

An ESPectre capture (francescopace/espectre, ``micro-espectre/data/…``) is a numpy ``.npz``
(a zip archive, usually deflate-compressed) with the members

* ``csi_data`` — int8 ``(N, 2 * num_subcarriers)``: each row is one packet's CSI buffer as
  ``(imaginary, real)`` int8 pairs in ESP-IDF buffer order (HT20 LLTF: subcarriers 0..31
  then -32..-1, see :func:`sensing.formats.esp32_csi.buffer_layout`);
* ``num_subcarriers`` (64), ``label`` (``baseline``/``movement``/``test``), ``chip``,
  ``collected_at`` (ISO local time), ``duration_ms``, ``format_version``, ``gain_locked``.

The files carry **no per-packet timestamps**. This reader spreads the N packets evenly over
``duration_ms``: packet ``i`` gets ``times_s = i * duration_ms / 1000 / (N - 1)`` and the chunks
report ``fs_hz = (N - 1) / (duration_ms / 1000)``. Real packet arrival is jittery, so
time-domain features are only as good as that assumption (ESPectre itself works per packet).

``csi_data`` is streamed straight from the (compressed) zip member ``chunk_size`` rows at a
time, so memory does not grow with the capture length.
"""

from __future__ import annotations

import io
import os
import tokenize
import zipfile
import zlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np

from sensing.errors import CaptureFormatError, Reject, RejectLog, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.formats.esp32_csi import buffer_layout
from sensing.frames import Frames

#: Members that identify an ESPectre capture (besides ``csi_data.npy``).
REQUIRED_MEMBERS = ("csi_data.npy", "duration_ms.npy")
_META_KEYS = ("num_subcarriers", "label", "chip", "collected_at", "duration_ms",
              "format_version", "gain_locked")


def _npy_header(fh: io.BufferedIOBase) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of a ``.npy`` member.

    Raises
    ------
    ValueError
        A broken header (numpy parses it as a Python literal: a damaged one raises
        SyntaxError, tokenize.TokenError … which all become ValueError here).
    """
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fh)
        return np.lib.format.read_array_header_2_0(fh)
    except (SyntaxError, tokenize.TokenError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"broken .npy header: {type(exc).__name__}: {exc}") from exc


#: Largest metadata member read (elements): a header claiming more is refused, never
#: allocated.
_MAX_META_ITEMS = 4096


def _scalar(zf: zipfile.ZipFile, name: str, path: str = "") -> Any:
    """Read a small member (``name.npy``) as a Python scalar or list.

    Raises
    ------
    CaptureFormatError
        The member's header claims more than ``_MAX_META_ITEMS`` values, an object
        dtype, or more bytes than the member holds.
    """
    member = name + ".npy"
    with zf.open(member) as fh:
        shape, fortran, dtype = _npy_header(fh)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if dtype.hasobject or count < 0 or count > _MAX_META_ITEMS:
            raise CaptureFormatError(path or str(zf.filename), member,
                                     f"a small metadata array (at most {_MAX_META_ITEMS} "
                                     f"plain values)", f"{dtype} {shape}")
        raw = fh.read(count * dtype.itemsize)
    if len(raw) < count * dtype.itemsize:
        raise CaptureFormatError(path or str(zf.filename), member,
                                 f"{count * dtype.itemsize} bytes of {dtype}",
                                 f"{len(raw)} bytes")
    arr = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape,
                                                              order="F" if fortran else "C")
    return arr.item() if arr.ndim == 0 else arr.tolist()


@FORMATS.register("espectre_npz")
class EspectreNpzReader(CaptureReader):
    """Reader for ESPectre ``.npz`` CSI captures (ESP32, -C3, -C5, -C6, -S3).

    Frames have shape ``(n, 64, 1, 1)`` with ascending subcarriers -32..31 (like the
    ``esp32_csi`` reader's LLTF output); times are evenly spread over ``duration_ms``.

    Parameters
    ----------
    path, chunk_size, source
        See :class:`~sensing.formats.base.CaptureReader`.
    """

    name = "espectre_npz"
    modality = "wifi_csi"
    extensions = (".npz",)
    description = "ESPectre numpy .npz capture (int8 CSI buffers, duration_ms, label, chip)"

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if not head.startswith(b"PK\x03\x04"):
            return False
        # zip magic, then the archive directory must list the ESPectre members
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
        except (OSError, zipfile.BadZipFile):
            return False
        return all(m in names for m in REQUIRED_MEMBERS)

    def read_meta(self) -> dict[str, Any]:
        """Stream-level metadata (``label``, ``chip``, ``duration_ms`` …) without the CSI."""
        with zipfile.ZipFile(self.path) as zf:
            names = set(zf.namelist())
            meta = {k: _scalar(zf, k, self.path) for k in _META_KEYS if k + ".npy" in names}
        return meta

    def chunks(self) -> Iterator[Frames]:
        try:
            yield from self._chunks()
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except (zipfile.BadZipFile, EOFError, zlib.error, KeyError, ValueError,
                NotImplementedError, OSError) as exc:
            # KeyError: a member is missing; ValueError: a broken .npy header;
            # NotImplementedError: an unknown zip compression method; OSError: a member
            # offset outside the file (seek: invalid argument)
            raise CaptureFormatError(
                self.path, f"byte {self.bytes_read}", "a complete .npz (zip) archive",
                f"{type(exc).__name__}: {exc}",
            ) from exc

    def _chunks(self) -> Iterator[Frames]:
        self.rejects = RejectLog()
        meta = self.read_meta()
        duration_s = float(meta.get("duration_ms", float("nan"))) / 1000.0
        # ascending subcarrier order for the HT20 LLTF buffer (0..31, -32..-1)
        _, idx = buffer_layout(0, 0, 0, 0)[0]
        order = np.argsort(idx, kind="stable")
        subcarriers = idx[order]
        t0 = None
        if isinstance(meta.get("collected_at"), str):
            try:  # ISO time without zone: kept naive (device local time), as recorded
                t0 = datetime.fromisoformat(meta["collected_at"])
            except ValueError:
                t0 = None
        stream_meta = {"format": self.name, "bandwidth_mhz": 20,
                       "timing": "evenly spread over duration_ms (no per-packet timestamps)"}
        stream_meta.update({k: meta[k] for k in ("label", "chip", "gain_locked",
                                                 "duration_ms", "format_version") if k in meta})
        with zipfile.ZipFile(self.path) as zf, zf.open("csi_data.npy") as fh:
            shape, fortran, dtype = _npy_header(fh)
            if len(shape) != 2 or dtype != np.int8 or fortran:
                self.rejects.add(Reject(self.path, "csi_data", RejectReason.BAD_ARRAY,
                                        "C-order int8 (N, 2*n_subcarriers)",
                                        f"{dtype} {shape} fortran={fortran}"))
                return
            n, width = shape
            if width != 2 * len(idx):
                self.rejects.add(Reject(self.path, "csi_data", RejectReason.BAD_WIDTH,
                                        f"{2 * len(idx)} int8 values per row (HT20 LLTF)",
                                        f"{width}"))
                return
            if n < 2:
                step, fs = 0.0, None  # one row (or none): time 0, no rate
            elif not np.isfinite(duration_s) or duration_s <= 0:
                # the only timing an ESPectre capture has: without it, times would be made up
                raise CaptureFormatError(
                    self.path, "duration_ms", "a positive, finite capture duration in ms",
                    repr(meta.get("duration_ms")))
            else:
                step = duration_s / (n - 1)
                fs = 1.0 / step
            row = 0
            while row < n:
                take = min(self.chunk_size, n - row)
                raw = fh.read(take * width)
                got = len(raw) // width
                if got == 0:
                    break
                buf = np.frombuffer(raw[: got * width], dtype=np.int8).reshape(got, width)
                csi = np.empty((got, width // 2), dtype=np.complex64)
                csi.real = buf[:, 1::2]
                csi.imag = buf[:, 0::2]
                times = (row + np.arange(got)) * step
                self.bytes_read = int(os.path.getsize(self.path) * (row + got) / n)
                yield Frames(
                    data=csi[:, order, None, None], times_s=times.astype(np.float64),
                    fs_hz=fs, modality="wifi_csi", source=self.source,
                    subcarriers=subcarriers, t0=t0, fields={}, meta=dict(stream_meta),
                )
                row += got
                if got < take:
                    break
            if row < n:
                self.rejects.add(Reject(self.path, "csi_data", RejectReason.TRUNCATED,
                                        f"{n} rows", f"{row} rows"))
