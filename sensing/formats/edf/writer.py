"""Streaming EDF+ writer: record by record, bounded memory, readable by mne and EDFbrowser.

Acquisition software writes EDF this way: the header first with ``number of data records``
set to -1, then one data record at a time, and the record count on close. The simulator
uses it to write 24-hour files without holding them in memory, and the growing-file source
(:mod:`sensing.sources.edf_follow`) is tested against it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import IO

import numpy as np

DIGITAL_MIN, DIGITAL_MAX = -32768, 32767


def _pad(text: str, width: int) -> bytes:
    raw = text.encode("latin-1", errors="replace")[:width]
    return raw + b" " * (width - len(raw))


def _num(x: float, width: int = 8) -> bytes:
    s = f"{x:g}" if isinstance(x, float) else str(x)
    if len(s) > width:
        s = f"{x:.{max(width - 6, 0)}e}" if len(f"{x:.0f}") > width else f"{x:.{width}f}"[:width]
    return _pad(s, width)


class EdfWriter:
    """Write EEG to an EDF+C file, one data record at a time.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (overwritten).
    channel_names : sequence of str
        Signal labels (at most 16 characters).
    fs_hz : float or sequence of float
        Sampling rate in Hz, one for all channels or one per channel (mixed rates).
        ``fs_hz × record_s`` must be an integer for every channel.
    record_s : float
        Duration of a data record in s.
    phys_range_uv : (float, float)
        Physical minimum and maximum in µV; values beyond are clipped (as an amplifier does).
    start : datetime, optional
        Recording start (UTC). Default 2000-01-01 00:00:00.
    annotations : bool
        Add an ``EDF Annotations`` signal (EDF+); events added with :meth:`annotate`.
    annotation_bytes : int
        Bytes of annotation text room per record.
    patient, recording : str
        Header identification fields (EDF+ subfields, ``X`` when unknown).
    bdf : bool
        Write BioSemi BDF (24-bit samples, ``BDF Annotations``) instead of EDF.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        channel_names: Sequence[str],
        fs_hz: float | Sequence[float],
        *,
        record_s: float = 1.0,
        phys_range_uv: tuple[float, float] = (-3276.8, 3276.7),
        start: datetime | None = None,
        annotations: bool = True,
        annotation_bytes: int = 120,
        patient: str = "X X X X",
        recording: str = "Startdate X X X X",
        bdf: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.names = list(channel_names)
        rates = [float(fs_hz)] * len(self.names) if np.isscalar(fs_hz) else [float(f) for f in fs_hz]
        if len(rates) != len(self.names):
            raise ValueError(f"{len(rates)} sampling rates for {len(self.names)} channels")
        self.spr = []
        for name, fs in zip(self.names, rates, strict=True):
            n = fs * record_s
            if abs(n - round(n)) > 1e-9 or round(n) < 1:
                raise ValueError(f"channel {name!r}: {fs} Hz × {record_s} s is not a whole "
                                 f"number of samples per record")
            self.spr.append(int(round(n)))
        self.fs_hz = rates
        self.record_s = float(record_s)
        self.bdf = bdf
        self.dmin, self.dmax = (-(2**23), 2**23 - 1) if bdf else (DIGITAL_MIN, DIGITAL_MAX)
        self.sample_bytes = 3 if bdf else 2
        self.pmin, self.pmax = phys_range_uv
        self.gain = (self.pmax - self.pmin) / (self.dmax - self.dmin)
        self.start = start or datetime(2000, 1, 1, tzinfo=timezone.utc)
        self.with_annotations = annotations
        self.annotation_bytes = int(annotation_bytes) if annotations else 0
        if bdf:
            self.annotation_bytes -= self.annotation_bytes % 3
        self.patient_field = patient
        self.recording_field = recording
        self._pending_ann: list[tuple[float, float, str]] = []
        self._buf = [np.zeros(0, dtype=np.float64) for _ in self.names]
        self.n_records = 0
        self._fh: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._fh.write(self._header(-1))
        self._fh.flush()

    # -- header -----------------------------------------------------------------------
    def _header(self, n_records: int) -> bytes:
        labels = list(self.names)
        dims, pmins, pmaxs, dmins, dmaxs, sprs = [], [], [], [], [], []
        for n in self.spr:
            dims.append("uV")
            pmins.append(self.pmin)
            pmaxs.append(self.pmax)
            dmins.append(self.dmin)
            dmaxs.append(self.dmax)
            sprs.append(n)
        if self.with_annotations:
            labels.append("BDF Annotations" if self.bdf else "EDF Annotations")
            dims.append("")
            pmins.append(-1)
            pmaxs.append(1)
            dmins.append(self.dmin)
            dmaxs.append(self.dmax)
            sprs.append(self.annotation_bytes // self.sample_bytes)
        ns = len(labels)
        h = bytearray()
        h += b"\xffBIOSEMI" if self.bdf else _pad("0", 8)
        h += _pad(self.patient_field, 80)
        h += _pad(self.recording_field, 80)
        h += _pad(self.start.strftime("%d.%m.%y"), 8)
        h += _pad(self.start.strftime("%H.%M.%S"), 8)
        h += _pad(str(256 + 256 * ns), 8)
        plus = ("BDF+C" if self.bdf else "EDF+C") if self.with_annotations else ""
        h += _pad(plus or ("24BIT" if self.bdf else ""), 44)
        h += _pad(str(n_records), 8)
        h += _num(self.record_s)
        h += _pad(str(ns), 4)
        for label in labels:
            h += _pad(label, 16)
        for _ in labels:
            h += _pad("", 80)
        for d in dims:
            h += _pad(d, 8)
        for v in pmins:
            h += _num(v)
        for v in pmaxs:
            h += _num(v)
        for v in dmins:
            h += _pad(str(v), 8)
        for v in dmaxs:
            h += _pad(str(v), 8)
        for _ in labels:
            h += _pad("", 80)
        for v in sprs:
            h += _pad(str(v), 8)
        for _ in labels:
            h += _pad("", 32)
        return bytes(h)

    # -- data -------------------------------------------------------------------------
    def annotate(self, onset_s: float, duration_s: float, text: str) -> None:
        """Add an EDF+ annotation (written with the next data record; Latin-1 text)."""
        if not self.with_annotations:
            raise ValueError("writer was created with annotations=False")
        self._pending_ann.append((float(onset_s), float(duration_s), text))

    def _tal(self, record_index: int) -> bytes:
        onset = record_index * self.record_s
        out = f"+{onset:g}\x14\x14\x00".encode("latin-1")
        while self._pending_ann:
            o, d, t = self._pending_ann[0]
            tal = f"+{o:g}\x15{d:g}\x14".encode("latin-1") + t.encode("latin-1", "replace") + b"\x14\x00"
            if len(out) + len(tal) > self.annotation_bytes:
                if len(tal) + len(f"+{onset:g}") + 3 > self.annotation_bytes:
                    raise ValueError(f"annotation {t!r} does not fit in {self.annotation_bytes} "
                                     f"bytes; raise annotation_bytes")
                break
            out += tal
            self._pending_ann.pop(0)
        return out + b"\x00" * (self.annotation_bytes - len(out))

    def _digital(self, x: np.ndarray) -> np.ndarray:
        """µV → little-endian integer samples, as a ``(..., sample_bytes)`` uint8 array."""
        d = np.round((np.clip(x, self.pmin, self.pmax) - self.pmin) / self.gain) + self.dmin
        d = np.clip(d, self.dmin, self.dmax).astype("<i4")
        return d.view(np.uint8).reshape(*d.shape, 4)[..., : self.sample_bytes]

    def write(self, data: np.ndarray) -> None:
        """Append samples (µV) of equal-rate channels, shape ``(n_samples, n_channels)``."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != len(self.names):
            raise ValueError(f"expected (n, {len(self.names)}) samples, got {data.shape}")
        if len(set(self.spr)) != 1:
            raise ValueError("channels have mixed rates: use write_signals()")
        self.write_signals([data[:, i] for i in range(data.shape[1])])

    def write_signals(self, signals: Sequence[np.ndarray]) -> None:
        """Append samples (µV) per channel; channels may have different rates."""
        for i, s in enumerate(signals):
            self._buf[i] = np.concatenate([self._buf[i], np.asarray(s, dtype=np.float64)])
        n_full = min(len(b) // n for b, n in zip(self._buf, self.spr, strict=True))
        if n_full == 0:
            return
        digs = [self._digital(b[: n_full * n]).reshape(n_full, -1)
                for b, n in zip(self._buf, self.spr, strict=True)]
        out = bytearray()
        for r in range(n_full):
            for d in digs:
                out += d[r].tobytes()
            if self.with_annotations:
                out += self._tal(self.n_records + r)
        self._fh.write(bytes(out))
        self._fh.flush()
        self.n_records += n_full
        self._buf = [b[n_full * n:] for b, n in zip(self._buf, self.spr, strict=True)]

    def close(self) -> None:
        """Write the final record count into the header (a partial last record is dropped)."""
        if self._fh.closed:
            return
        self._fh.seek(0)
        self._fh.write(self._header(self.n_records))
        self._fh.close()

    def __enter__(self) -> EdfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
