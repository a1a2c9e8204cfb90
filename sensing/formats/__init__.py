"""Capture formats: one module (or subpackage) per format, each registering a reader in
:data:`FORMATS`, with the format's writer and helpers beside it (``intel5300``,
``nexmon_pcap``; ``edf``: reader, header, montage, writer; ``eeg_text``: reader, and the
Bonn dataset in ``eeg_text.bonn``).

>>> from sensing.formats import open_capture
>>> reader = open_capture("capture.csv")          # doctest: +SKIP
>>> for frames in reader: ...                      # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from sensing.errors import UnsupportedFormatError
from sensing.formats.base import FORMATS, SNIFF_BYTES, CaptureReader
from sensing.formats.containers import describe as describe_container

__all__ = ["FORMATS", "CaptureReader", "open_capture", "detect_format"]


#: Modules of this package that hold no format.
_NOT_FORMATS = ("base", "containers")


def _load_all() -> None:
    """Import every format module (or format subpackage) of this package so that its
    readers register themselves (on the first lookup of :data:`FORMATS`, so importing one
    reader, e.g. for its writer, does not import them all)."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name not in _NOT_FORMATS and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


FORMATS.set_loader(_load_all)


def detect_format(path: str | os.PathLike) -> type[CaptureReader]:
    """Return the reader class for ``path``, detected from its content.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    UnsupportedFormatError
        The file is empty or no registered reader recognises its content; the message
        names the container when it is a known one (pcap without CSI packets, WAV, HDF5,
        zip/npz of an unknown kind …, see :mod:`sensing.formats.containers`).
    """
    path = os.fspath(path)
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if not head:
        raise UnsupportedFormatError(f"{path}: empty file (0 bytes); expected a capture")
    ext = os.path.splitext(path)[1].lower()
    # Readers claiming the extension get the first look, then all others.
    ordered = sorted(FORMATS.items(), key=lambda kv: ext not in kv[1].extensions)
    for _name, cls in ordered:
        if cls.sniff(head, path):
            return cls
    supported = ", ".join(FORMATS.names())
    found = describe_container(path, head)
    if found is not None:
        raise UnsupportedFormatError(
            f"{path}: {found}; no reader for it in this build; supported formats: {supported}")
    raise UnsupportedFormatError(
        f"{path}: not a recognised capture; first bytes {head[:16]!r}; "
        f"supported formats: {supported}"
    )


def open_capture(
    path: str | os.PathLike, *, format: str | None = None, **options
) -> CaptureReader:
    """Open a recorded capture for streaming.

    Parameters
    ----------
    path : str or os.PathLike
        Capture file.
    format : str, optional
        Registered format name; detected from the content when omitted.
    **options
        Passed to the reader (``chunk_size``, ``source`` and reader-specific options).
    """
    cls = FORMATS.get(format) if format else detect_format(path)
    return cls(path, **options)
