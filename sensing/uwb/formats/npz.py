"""Replay of UWB CIR and radar frames from NumPy ``.npz`` archives (written by
:func:`write_npz`: the simulators, conversions, tests).

Members (``numpy.savez``, uncompressed or compressed), in this order:

=============================  ==============================================================
``ambisense_<modality>.npy``   first member, 0-d str ``"ambisense.frames/1"``; its name says
                               the modality (``ambisense_uwb_cir`` or ``ambisense_radar``):
                               that is what detection looks for (the first 8 KiB)
``data.npy``                   complex ``(n_frames, n_taps_or_points)``
``times_s.npy``                float64 ``(n_frames,)``: seconds from the start of the stream
``fs_hz.npy``                  0-d float64: frame rate (NaN when irregular/unknown)
``meta_json.npy``              0-d str: JSON object, the stream metadata (``Frames.meta``)
``field__<name>.npy``          per-frame side information (``Frames.fields[name]``), length n
=============================  ==============================================================

Metadata keys used by the UWB/radar stages (all optional): ``tap_s`` (s per CIR tap),
``range_m`` (list, m per column; radar), ``frame_rate_hz``, ``prf_mhz``, ``chip``,
``channel``, ``wavelength_m`` and anything a simulator adds (``scenario``, ``seed`` …).
Fields of CIRs: ``first_path_index`` (taps, fractional), ``rxpacc`` (int), ``label``.

Rows are streamed from the archive member by member (at most one chunk in memory).
"""

from __future__ import annotations

import json
import os
import tokenize
import zipfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np

from sensing.errors import CaptureFormatError, Reject, RejectReason
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames

VERSION = "ambisense.frames/1"
FIELD_PREFIX = "field__"


def _marker(modality: str) -> str:
    return f"ambisense_{modality}"


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def write_npz(
    path: str | os.PathLike | IO[bytes],
    frames: np.ndarray,
    times_s: np.ndarray,
    *,
    modality: str,
    fs_hz: float | None = None,
    fields: dict[str, np.ndarray] | None = None,
    compress: bool = False,
    **meta: Any,
) -> None:
    """Write frames as an ``.npz`` archive that :class:`UwbNpzReader` /
    :class:`RadarNpzReader` replay.

    Parameters
    ----------
    path : str, path or binary file
        Output (``.npz``).
    frames : numpy.ndarray
        Complex ``(n_frames, n_columns)`` (stored as complex64).
    times_s : numpy.ndarray
        ``(n_frames,)`` seconds, non-decreasing.
    modality : {"uwb_cir", "radar"}
        What the frames are.
    fs_hz : float, optional
        Frame rate (Hz); None when irregular.
    fields : dict of str to array, optional
        Per-frame side information (each of length ``n_frames``).
    compress : bool
        ``numpy.savez_compressed`` instead of ``numpy.savez``.
    **meta
        Stream metadata (JSON-serialisable after numpy arrays become lists), e.g.
        ``tap_s=1.0016e-9``, ``range_m=[...]``, ``chip="DW3000"``.
    """
    if modality not in ("uwb_cir", "radar"):
        raise ValueError(f"modality must be 'uwb_cir' or 'radar', got {modality!r}")
    data = np.asarray(frames)
    if data.ndim != 2:
        raise ValueError(f"frames must be (n_frames, n_columns), got shape {data.shape}")
    times = np.asarray(times_s, np.float64)
    if times.shape != (len(data),):
        raise ValueError(f"times_s must have {len(data)} entries, got {times.shape}")
    members: dict[str, np.ndarray] = {
        _marker(modality): np.array(VERSION),
        "data": data.astype(np.complex64),
        "times_s": times,
        "fs_hz": np.array(float("nan") if fs_hz is None else float(fs_hz)),
        "meta_json": np.array(json.dumps(_jsonable(meta))),
    }
    for name, arr in (fields or {}).items():
        arr = np.asarray(arr)
        if len(arr) != len(data):
            raise ValueError(f"field {name!r} has {len(arr)} entries for {len(data)} frames")
        members[FIELD_PREFIX + name] = arr
    (np.savez_compressed if compress else np.savez)(path, **members)


def _small(zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """A small metadata member, read with a bounded size (never ``np.load``, which
    allocates what the header claims)."""
    r = _Rows(zf, name)
    try:
        return r.small()
    finally:
        r.close()


class _Rows:
    """Sequential row reader of one ``.npy`` member of a zip archive."""

    def __init__(self, zf: zipfile.ZipFile, name: str) -> None:
        self.fh = zf.open(name)
        try:
            version = np.lib.format.read_magic(self.fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            self.shape, fortran, self.dtype = read(self.fh)
        except (SyntaxError, tokenize.TokenError, TypeError, MemoryError,
                RecursionError) as exc:  # numpy parses the header as a Python literal
            self.fh.close()
            raise ValueError(f"broken .npy header of {name}: {type(exc).__name__}: "
                             f"{exc}") from None
        if fortran and len(self.shape) > 1:
            raise ValueError("Fortran-ordered arrays are not streamed")
        if self.dtype.hasobject:
            raise ValueError("object arrays are not read")
        self.row_shape = tuple(self.shape[1:])
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def small(self, max_bytes: int = 1 << 20) -> np.ndarray:
        """The whole (small) member; a header claiming more than ``max_bytes`` is refused
        before anything is allocated."""
        count = int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1
        size = count * self.dtype.itemsize
        if count < 0 or size > max_bytes:
            raise ValueError(f"a metadata member of {self.dtype} {self.shape} "
                             f"({size} bytes; at most {max_bytes})")
        raw = self.fh.read(size)
        if len(raw) < size:
            raise ValueError(f"{size} bytes of {self.dtype} expected, {len(raw)} present")
        return np.frombuffer(raw, self.dtype, count=count).reshape(self.shape)

    def read(self, rows: int) -> np.ndarray:
        want = rows * self.row_bytes
        buf = self.fh.read(want) if want else b""
        got = len(buf) // self.row_bytes if self.row_bytes else rows
        return np.frombuffer(buf[: got * self.row_bytes], self.dtype).reshape((got, *self.row_shape))

    def close(self) -> None:
        self.fh.close()


class _FramesNpzReader(CaptureReader):
    """Shared reader of :func:`write_npz` archives (one subclass per modality)."""

    extensions = (".npz",)

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        # zip local file header: name length at 26, name at 30
        if not head.startswith(b"PK\x03\x04") or len(head) < 30:
            return False
        n = int.from_bytes(head[26:28], "little")
        return head[30:30 + n] == f"{_marker(cls.modality)}.npy".encode()

    def chunks(self) -> Iterator[Frames]:
        try:
            zf = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise CaptureFormatError(self.path, "file", "a readable .npz (zip) archive",
                                     f"{type(exc).__name__}: {exc}") from None
        readers: list[_Rows] = []
        try:
            names = {n[:-4] for n in zf.namelist() if n.endswith(".npy")}
            for need in (_marker(self.modality), "data", "times_s"):
                if need not in names:
                    raise CaptureFormatError(self.path, "archive", f"a member {need}.npy",
                                             f"members {sorted(names)[:8]}")
            try:
                meta = json.loads(str(_small(zf, "meta_json.npy")[()])) \
                    if "meta_json" in names else {}
                fs = float(_small(zf, "fs_hz.npy").reshape(-1)[0]) if "fs_hz" in names \
                    else float("nan")
                data = _Rows(zf, "data.npy")
                times = _Rows(zf, "times_s.npy")
                fields = {n[len(FIELD_PREFIX):]: _Rows(zf, n + ".npy") for n in sorted(names)
                          if n.startswith(FIELD_PREFIX)}
            except (ValueError, IndexError, OSError, zipfile.BadZipFile, EOFError) as exc:
                raise CaptureFormatError(self.path, "archive", "valid .npy members",
                                         f"{type(exc).__name__}: {exc}") from None
            readers = [data, times, *fields.values()]
            if not isinstance(meta, dict):
                raise CaptureFormatError(self.path, "meta_json.npy", "a JSON object",
                                         type(meta).__name__)
            n = data.shape[0] if data.shape else 0
            if len(data.shape) != 2 or data.dtype.kind != "c":
                raise CaptureFormatError(self.path, "data.npy", "complex (n_frames, n_columns)",
                                         f"{data.dtype} {data.shape}")
            for name, r in [("times_s", times), *fields.items()]:
                if not r.shape or r.shape[0] != n:
                    raise CaptureFormatError(self.path, f"{name}.npy", f"{n} rows",
                                             f"shape {r.shape}")
            meta = {**meta, "format": self.name}
            fs_hz = fs if np.isfinite(fs) and fs > 0 else None
            done = 0
            last = -np.inf
            while done < n:
                want = min(self.chunk_size, n - done)
                try:
                    x = data.read(want)
                    t = times.read(want).astype(np.float64)
                    fl = {k: r.read(want) for k, r in fields.items()}
                except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
                    raise CaptureFormatError(self.path, f"row {done}", "readable rows",
                                             f"{type(exc).__name__}: {exc}") from None
                got = min(len(x), len(t), *(len(v) for v in fl.values()))
                if got < want:
                    self.rejects.add(Reject(self.path, f"row {done + got}", RejectReason.TRUNCATED,
                                            f"{n} rows", f"{done + got}"))
                if got == 0:
                    break
                t = t[:got]
                x = np.array(x[:got], np.complex64)
                nonfinite = ~np.isfinite(x.view(np.float32))
                if nonfinite.any():  # never passed on as numbers
                    x.view(np.float32)[nonfinite] = 0.0
                    self.rejects.add(Reject(self.path, f"rows {done}–{done + got - 1}",
                                            RejectReason.BAD_VALUE, "finite samples",
                                            f"{int(nonfinite.sum())} NaN/Inf values (set to 0)"))
                bad = ~np.isfinite(t)
                if bad.any():
                    t = np.where(bad, np.nan, t)
                t = np.fmax.accumulate(np.concatenate([[last], t]))[1:]
                t = np.where(np.isfinite(t), t, 0.0)
                last = float(t[-1])
                done += got
                self.bytes_read = int(os.path.getsize(self.path) * done / max(n, 1))
                yield Frames(data=x, times_s=t,
                             fs_hz=fs_hz, modality=self.modality, source=self.source,
                             fields={k: np.array(v[:got]) for k, v in fl.items()}, meta=meta)
                if got < want:
                    break
        finally:
            for r in readers:
                r.close()
            zf.close()


@FORMATS.register("uwb_npz")
class UwbNpzReader(_FramesNpzReader):
    """UWB CIR frames from an ambisense ``.npz`` (``ambisense_uwb_cir`` marker member)."""

    name = "uwb_npz"
    modality = "uwb_cir"
    description = "UWB CIR frames in an ambisense .npz (data, times_s, meta_json, field__*)"


@FORMATS.register("radar_npz")
class RadarNpzReader(_FramesNpzReader):
    """Radar baseband frames from an ambisense ``.npz`` (``ambisense_radar`` marker)."""

    name = "radar_npz"
    modality = "radar"
    description = "radar baseband frames in an ambisense .npz (data, times_s, meta_json, field__*)"


def frames_to_npz(path: str | os.PathLike, chunks: list[Frames]) -> None:
    """Write the chunks of one stream (e.g. a converted capture) with :func:`write_npz`."""
    chunks = [c for c in chunks if len(c)]
    if not chunks:
        raise ValueError("no frames to write")
    fields = {k: np.concatenate([c.fields[k] for c in chunks]) for k in chunks[0].fields
              if all(k in c.fields for c in chunks)}
    meta = {k: v for k, v in chunks[0].meta.items() if k != "format"}
    write_npz(path, np.concatenate([c.data for c in chunks]),
              np.concatenate([c.times_s for c in chunks]), modality=chunks[0].modality,
              fs_hz=chunks[0].fs_hz, fields=fields, **meta)
