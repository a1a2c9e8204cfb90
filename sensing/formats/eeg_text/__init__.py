"""Single-channel EEG as plain text: one sample per line (Bonn database, CSV exports).

The Bonn epilepsy database (Andrzejak et al. 2001) ships each segment as a text file of 4097
integers, one per line, at 173.61 Hz. The files carry no rate, so the reader takes one
(``fs_hz``, default 173.61 Hz) and a scale to µV (``scale_uv``, default 1: Bonn values are
used as µV). An optional first line may hold a column name (CSV export); a line ending in
a comma (``"12,"``) is accepted.

A sampled signal cannot skip a bad line without shifting every later sample in time, so a
line that is not a number stops reading with a :class:`~sensing.errors.CaptureFormatError`
naming the line.

The Bonn database itself (segments, odd/even splits, long recordings built from segments)
is :mod:`sensing.formats.eeg_text.bonn`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator

import numpy as np

from sensing.errors import CaptureFormatError
from sensing.formats.base import FORMATS, CaptureReader
from sensing.frames import Frames

#: Sampling rate of the Bonn database in Hz.
BONN_FS_HZ = 173.61

_NUM = re.compile(rb"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*,?\s*$")
_NAME = re.compile(rb"^\s*[A-Za-z_][\w .()\-]*\s*$")


@FORMATS.register("eeg_text")
class EegTextReader(CaptureReader):
    """One-number-per-line single-channel EEG.

    Parameters
    ----------
    path : str or os.PathLike
        Text file.
    fs_hz : float
        Sampling rate in Hz (not stored in the file). Default: Bonn, 173.61 Hz.
    scale_uv : float
        Multiplier from file values to µV.
    channel : str
        Channel name; default the header line if there is one, else ``"EEG"``.
    chunk_size : int
        Samples per chunk.
    source : str, optional
        Name put in each chunk.
    """

    name = "eeg_text"
    modality = "eeg"
    extensions = (".txt", ".csv")
    description = "single-channel EEG, one sample per line (Bonn; fs_hz option, default 173.61)"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fs_hz: float = BONN_FS_HZ,
        scale_uv: float = 1.0,
        channel: str | None = None,
        chunk_size: int = 4096,
        source: str | None = None,
    ) -> None:
        super().__init__(path, chunk_size=chunk_size, source=source)
        if not fs_hz > 0:
            raise ValueError(f"fs_hz must be > 0, got {fs_hz}")
        self.fs_hz = float(fs_hz)
        self.scale_uv = float(scale_uv)
        self.channel = channel

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        lines = head.splitlines()
        if len(head) == 8192:  # the last line may be cut by the sniff window
            lines = lines[:-1]
        lines = [ln for ln in lines if ln.strip()]
        if not lines:
            return False
        if not _NUM.match(lines[0]) and _NAME.match(lines[0]):
            lines = lines[1:]
        return len(lines) >= 4 and all(_NUM.match(ln) for ln in lines)

    def chunks(self) -> Iterator[Frames]:
        name = self.channel
        buf: list[float] = []
        n_done = 0
        self.bytes_read = 0
        with open(self.path, "rb") as fh:
            for lineno, raw in enumerate(fh, start=1):
                self.bytes_read += len(raw)
                text = raw.strip().rstrip(b",").strip()
                if not text:
                    continue
                try:
                    value = float(text)
                    if not math.isfinite(value):
                        raise CaptureFormatError(
                            self.path, f"line {lineno}", "a finite number (an EEG sample)",
                            repr(raw.decode("latin-1").rstrip("\r\n")[:40]))
                    buf.append(value)
                except ValueError:
                    if lineno == 1 and _NAME.match(raw):
                        name = name or raw.decode("latin-1").strip()
                        continue
                    raise CaptureFormatError(
                        self.path, f"line {lineno}", "one number per line (an EEG sample)",
                        repr(raw.decode("latin-1").rstrip("\r\n")[:40]),
                    ) from None
                if len(buf) == self.chunk_size:
                    yield self._frames(buf, n_done, name)
                    n_done += len(buf)
                    buf = []
        if buf:
            yield self._frames(buf, n_done, name)
        elif n_done == 0:
            raise CaptureFormatError(self.path, "line 1", "at least one sample",
                                     "no samples (empty file)")

    def _frames(self, buf: list[float], first: int, name: str | None) -> Frames:
        data = np.asarray(buf, dtype=np.float64)[:, None] * self.scale_uv
        return Frames(
            data=data,
            times_s=(first + np.arange(len(buf), dtype=np.float64)) / self.fs_hz,
            fs_hz=self.fs_hz, modality="eeg", source=self.source,
            channel_names=(name or "EEG",),
            meta={"format": "eeg_text", "fs_hz": self.fs_hz, "scale_uv": self.scale_uv},
        )
