"""Base class of capture readers and the format registry."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from sensing.errors import RejectLog
from sensing.frames import Frames
from sensing.registry import Registry

#: Registered capture formats: name → reader class. Filled by ``@FORMATS.register``.
FORMATS: Registry[type[CaptureReader]] = Registry("format", group="ambisense.formats",
                                                 folder="formats")

#: Bytes read from the start of a file to detect its format.
SNIFF_BYTES = 8192


class CaptureReader(ABC):
    """Reads one recorded capture as a stream of :class:`~sensing.frames.Frames` chunks.

    Subclasses set the class attributes, implement :meth:`sniff` (content-based
    detection) and :meth:`chunks` (a generator that holds at most one chunk in
    memory), and record every malformed record in :attr:`rejects`.

    Parameters
    ----------
    path : str or os.PathLike
        The capture file.
    chunk_size : int
        Rows (packets, samples) per chunk.
    source : str, optional
        Name reported in each chunk; defaults to the file's base name.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def __init__(
        self, path: str | os.PathLike, *, chunk_size: int = 256, source: str | None = None
    ) -> None:
        self.path = os.fspath(path)
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.chunk_size = chunk_size
        self.source = source or os.path.basename(self.path)
        self.rejects = RejectLog()
        #: Bytes consumed so far (for progress display); readers update it per chunk.
        self.bytes_read = 0

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        """Return True when ``head`` (the first bytes of the file) looks like this format."""

    @abstractmethod
    def chunks(self) -> Iterator[Frames]:
        """Yield the capture chunk by chunk, from the start, each call anew."""

    def __iter__(self) -> Iterator[Frames]:
        return self.chunks()

    def replay_first(self) -> bool:
        """Whether ``ambisense replay`` should process this capture before the others of
        the run (a calibration recording whose measurement the others use, e.g. a LoRa
        soil recording with a reference water content). A cheap header check; default
        False."""
        return False

    def info(self) -> dict[str, Any]:
        """Read the whole capture once and summarise it (streaming, bounded memory).

        Returns
        -------
        dict
            ``format``, ``modality``, ``frames`` (rows), ``duration_s``, ``rate_hz``
            (rows / duration), ``shape`` (per-row layout), ``rejects`` and
            ``reject_reasons``, plus the reader's stream metadata.
        """
        n = 0
        first = last = None
        shapes: set[tuple[int, ...]] = set()
        meta: dict[str, Any] = {}
        for fr in self.chunks():
            if not len(fr):
                continue
            n += len(fr)
            first = fr.start_s if first is None else first
            last = fr.end_s
            shapes.add(tuple(fr.data.shape[1:]))
            meta.update(fr.meta)
        duration = (last - first) if n > 1 else 0.0
        out: dict[str, Any] = {
            "path": self.path,
            "format": self.name,
            "modality": self.modality,
            "frames": n,
            "duration_s": round(float(duration), 6),
            "rate_hz": round((n - 1) / duration, 3) if duration > 0 else None,
            "shape": [list(s) for s in sorted(shapes)],
            "rejects": self.rejects.total,
            "reject_reasons": self.rejects.as_dict(),
            "first_rejects": [str(r) for r in self.rejects.first[:5]],
        }
        out.update({k: _jsonable(v) for k, v in meta.items()})
        return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v
