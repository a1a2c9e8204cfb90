"""Parse and validate an EDF / EDF+ / BDF header with byte-exact error positions.

mne reads the signal; this module checks the header first so that a broken file fails with a
:class:`~sensing.errors.CaptureFormatError` naming the byte offset, the field, what was
expected and what was found (mne's own messages name neither).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone

from sensing.errors import CaptureFormatError

#: Fixed part of the header (bytes) and per-signal part (bytes per signal).
FIXED_BYTES = 256
PER_SIGNAL_BYTES = 256

#: Per-signal header fields: (name, width in bytes), in file order.
SIGNAL_FIELDS: tuple[tuple[str, int], ...] = (
    ("label", 16), ("transducer", 80), ("physical_dimension", 8), ("physical_minimum", 8),
    ("physical_maximum", 8), ("digital_minimum", 8), ("digital_maximum", 8),
    ("prefiltering", 80), ("samples_per_record", 8), ("reserved", 32),
)

ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")


@dataclass(frozen=True)
class EdfSignal:
    """One signal of the header (physical values in ``physical_dimension`` units)."""

    label: str
    physical_dimension: str
    physical_min: float
    physical_max: float
    digital_min: int
    digital_max: int
    samples_per_record: int

    @property
    def is_annotation(self) -> bool:
        return self.label in ANNOTATION_LABELS

    @property
    def gain(self) -> float:
        """Physical units per digital step."""
        return (self.physical_max - self.physical_min) / (self.digital_max - self.digital_min)

    @property
    def to_uv(self) -> float:
        """Factor from the physical dimension to µV (1 for µV, 1e3 for mV, 1e6 for V)."""
        dim = self.physical_dimension.strip().lower().replace("µ", "u").replace("μ", "u")
        return {"uv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}.get(dim, 1.0)


@dataclass(frozen=True)
class EdfHeader:
    """Parsed EDF/BDF header.

    Attributes
    ----------
    bdf : bool
        24-bit BioSemi variant.
    header_bytes : int
        Offset of the first data record.
    n_records : int
        Records announced by the header (-1 while a recording is still being written).
    record_s : float
        Duration of a data record in s.
    signals : tuple of EdfSignal
    start : datetime or None
        Recording start (UTC assumed, EDF has no time zone).
    edf_plus : str
        ``"EDF+C"``, ``"EDF+D"``, ``"BDF+C"`` … or ``""`` for plain EDF/BDF.
    """

    bdf: bool
    header_bytes: int
    n_records: int
    record_s: float
    signals: tuple[EdfSignal, ...]
    start: datetime | None
    edf_plus: str

    @property
    def sample_bytes(self) -> int:
        return 3 if self.bdf else 2

    @property
    def record_bytes(self) -> int:
        return sum(s.samples_per_record for s in self.signals) * self.sample_bytes

    def records_available(self, file_size: int) -> int:
        """Complete data records present in a file of ``file_size`` bytes."""
        if self.record_bytes == 0:
            return 0
        return max(0, (file_size - self.header_bytes) // self.record_bytes)


def _number(path: str, raw: bytes, offset: int, what: str, kind: type = float) -> float | int:
    text = raw.decode("latin-1").strip()
    try:
        value = float(text)
    except ValueError:
        raise CaptureFormatError(
            path, f"byte {offset} (header field {what})", "a number",
            repr(text) if text else "a blank field",
        ) from None
    if not math.isfinite(value):
        raise CaptureFormatError(path, f"byte {offset} (header field {what})",
                                 "a finite number", repr(text))
    if kind is int:
        if value != int(value):
            raise CaptureFormatError(path, f"byte {offset} (header field {what})",
                                     "an integer", repr(text))
        return int(value)
    return value


def parse_edf_header(head: bytes, path: str) -> EdfHeader:
    """Parse the header bytes of an EDF/BDF file.

    Parameters
    ----------
    head : bytes
        At least the whole header (``256 + 256 × ns`` bytes).
    path : str
        File name for error messages.

    Raises
    ------
    CaptureFormatError
        Empty or short header, non-numeric or blank fields, a missing or empty physical
        range, a bad digital range, zero samples per record.
    """
    if len(head) == 0:
        raise CaptureFormatError(path, "byte 0", f"an EDF/BDF header of at least {FIXED_BYTES} bytes",
                                 "an empty file (0 bytes)")
    if len(head) < FIXED_BYTES:
        raise CaptureFormatError(path, f"byte {len(head)}",
                                 f"an EDF/BDF header of at least {FIXED_BYTES} bytes",
                                 f"end of file after {len(head)} bytes")
    bdf = head[:8] == b"\xffBIOSEMI"
    if not bdf and head[:8] != b"0       ":
        raise CaptureFormatError(path, "byte 0", "EDF version '0       ' or BDF '\\xffBIOSEMI'",
                                 repr(head[:8]))
    header_bytes = _number(path, head[184:192], 184, "'number of bytes in header'", int)
    reserved = head[192:236].decode("latin-1").strip()
    n_records = _number(path, head[236:244], 236, "'number of data records'", int)
    record_s = _number(path, head[244:252], 244, "'duration of a data record'", float)
    ns = _number(path, head[252:256], 252, "'number of signals'", int)
    if ns < 1:
        raise CaptureFormatError(path, "byte 252 (header field 'number of signals')",
                                 "at least 1 signal", str(ns))
    need = FIXED_BYTES + PER_SIGNAL_BYTES * ns
    if len(head) < need:
        raise CaptureFormatError(path, f"byte {len(head)}",
                                 f"a header of {need} bytes for {ns} signals",
                                 f"end of file after {len(head)} bytes")
    if header_bytes != need:
        raise CaptureFormatError(path, "byte 184 (header field 'number of bytes in header')",
                                 f"{need} (256 + 256 × {ns} signals)", str(header_bytes))
    if record_s < 0:
        raise CaptureFormatError(path, "byte 244 (header field 'duration of a data record')",
                                 "a duration >= 0 s", str(record_s))
    cols: dict[str, list[tuple[bytes, int]]] = {}
    pos = FIXED_BYTES
    for name, width in SIGNAL_FIELDS:
        cols[name] = [(head[pos + i * width: pos + (i + 1) * width], pos + i * width)
                      for i in range(ns)]
        pos += width * ns
    signals = []
    for i in range(ns):
        label = cols["label"][i][0].decode("latin-1").strip()
        tag = f"of signal {i + 1} '{label}'"
        pmin = _number(path, *cols["physical_minimum"][i], f"'physical minimum' {tag}")
        pmax = _number(path, *cols["physical_maximum"][i], f"'physical maximum' {tag}")
        dmin = _number(path, *cols["digital_minimum"][i], f"'digital minimum' {tag}", int)
        dmax = _number(path, *cols["digital_maximum"][i], f"'digital maximum' {tag}", int)
        spr = _number(path, *cols["samples_per_record"][i], f"'samples per record' {tag}", int)
        if pmax == pmin:
            raise CaptureFormatError(
                path, f"byte {cols['physical_maximum'][i][1]} (header field 'physical maximum' {tag})",
                "a physical range (maximum different from minimum)",
                f"minimum = maximum = {pmin:g}",
            )
        if dmax <= dmin:
            raise CaptureFormatError(
                path, f"byte {cols['digital_maximum'][i][1]} (header field 'digital maximum' {tag})",
                f"digital maximum > digital minimum ({dmin})", str(dmax),
            )
        if spr < 1:
            raise CaptureFormatError(
                path, f"byte {cols['samples_per_record'][i][1]} (header field 'samples per record' {tag})",
                "at least 1 sample per record", str(spr),
            )
        signals.append(EdfSignal(
            label=label,
            physical_dimension=cols["physical_dimension"][i][0].decode("latin-1").strip(),
            physical_min=float(pmin), physical_max=float(pmax), digital_min=int(dmin),
            digital_max=int(dmax), samples_per_record=int(spr),
        ))
    start = None
    try:
        d = head[168:176].decode("ascii")
        t = head[176:184].decode("ascii")
        day, month, yy = (int(x) for x in d.split("."))
        hh, mm, ss = (int(x) for x in t.split("."))
        year = 1900 + yy if yy >= 85 else 2000 + yy
        start = datetime(year, month, day, hh, mm, ss, tzinfo=timezone.utc)
    except (ValueError, UnicodeDecodeError):
        start = None
    plus = reserved if reserved.startswith(("EDF+", "BDF+")) else ""
    return EdfHeader(bdf=bdf, header_bytes=header_bytes, n_records=n_records, record_s=record_s,
                     signals=tuple(signals), start=start, edf_plus=plus)


def read_edf_header(path: str | os.PathLike) -> EdfHeader:
    """Read and validate the header of ``path`` (see :func:`parse_edf_header`)."""
    path = os.fspath(path)
    with open(path, "rb") as fh:
        head = fh.read(FIXED_BYTES)
        if len(head) == FIXED_BYTES:
            try:
                ns = int(head[252:256].decode("latin-1").strip())
            except ValueError:
                ns = 0
            head += fh.read(PER_SIGNAL_BYTES * max(ns, 0))
    return parse_edf_header(head, path)


def check_data_records(hdr: EdfHeader, path: str, file_size: int) -> int:
    """Check that the data records announced by the header are all present.

    Returns
    -------
    int
        Number of complete records to read (``n_records``, or what the file holds when the
        header says -1, i.e. the recording was not closed).

    Raises
    ------
    CaptureFormatError
        A truncated data record (the file ends inside record k) or fewer records than the
        header announces.
    """
    have = hdr.records_available(file_size)
    rec = hdr.record_bytes
    if hdr.n_records < 0:
        return have
    if have < hdr.n_records:
        k = have  # 0-based index of the first incomplete record
        start = hdr.header_bytes + k * rec
        got = file_size - start
        raise CaptureFormatError(
            path, f"byte {start} (data record {k + 1} of {hdr.n_records})",
            f"{rec} bytes per data record ({hdr.n_records} records announced in the header)",
            f"{got} bytes (file ends at byte {file_size}; the recording is truncated)",
        )
    return hdr.n_records
