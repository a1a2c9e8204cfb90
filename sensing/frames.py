"""The unit every reader, live source and extractor exchanges: a chunk of samples."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

#: The built-in modalities; each detector declares which ones it accepts. A new modality
#: (a plug-in's, or a new ``sensing/<modality>/`` folder) is any other lowercase
#: identifier: a reader yields it and pipelines name it, nothing here changes.
MODALITIES = ("wifi_csi", "audio", "eeg", "uwb_cir", "lora_iq", "radar")

_MODALITY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass
class Frames:
    """A chunk of a capture or live stream.

    Attributes
    ----------
    data : numpy.ndarray
        Samples, first axis is time. ``wifi_csi``: complex64
        ``(n_packets, n_subcarriers, n_rx, n_tx)``; ``audio``/``eeg``: float
        ``(n_samples, n_channels)``; ``uwb_cir``: complex ``(n_frames, n_taps)``.
    times_s : numpy.ndarray
        float64 ``(n,)``: time of each row in seconds from the start of the stream
        (packet arrival or device timestamp for CSI; sample times for sampled data).
    fs_hz : float or None
        Nominal sample / packet rate in Hz (``None`` when irregular and unknown).
    modality : str
        One of :data:`MODALITIES`, or a lowercase identifier of a new modality.
    source : str
        Device or file name the chunk came from.
    subcarriers : numpy.ndarray or None
        Subcarrier indices along axis 1 of CSI data.
    channel_names : tuple of str or None
        Channel names along axis 1 of sampled data.
    t0 : datetime or None
        Absolute UTC time of stream offset 0, when the capture carries one.
    fields : dict of str → numpy.ndarray
        Per-row side information (``rssi`` dBm, ``seq`` …), each of length n.
    meta : dict
        Stream-level metadata (``format``, ``chip``, ``bandwidth_mhz``, ``channel`` …).
    """

    data: np.ndarray
    times_s: np.ndarray
    fs_hz: float | None
    modality: str
    source: str
    subcarriers: np.ndarray | None = None
    channel_names: tuple[str, ...] | None = None
    t0: datetime | None = None
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES and not _MODALITY.match(str(self.modality)):
            raise ValueError(f"modality must be one of {MODALITIES} or another lowercase "
                             f"identifier, got {self.modality!r}")
        n = len(self.data)
        if len(self.times_s) != n:
            raise ValueError(f"times_s has {len(self.times_s)} entries for {n} rows of data")
        for name, arr in self.fields.items():
            if len(arr) != n:
                raise ValueError(f"field {name!r} has {len(arr)} entries for {n} rows of data")

    @classmethod
    def prevalidated(cls, common: dict[str, Any], **attrs: Any) -> Frames:
        """A chunk built without the checks of ``__post_init__``.

        For readers' hot paths that emit many small chunks whose arrays are slices of the
        same rows of arrays already checked (the per-chunk cost then matters: this skips
        the dataclass ``__init__`` and its checks). Unset attributes take their defaults.

        Parameters
        ----------
        common : dict
            Attributes shared by a run of chunks (``fs_hz``, ``modality``, ``source`` …).
        **attrs
            The chunk's own attributes (``data``, ``times_s``, ``fields``, ``meta`` …);
            with ``common``, every attribute without a default must be given.
        """
        fr = object.__new__(cls)
        d = fr.__dict__
        d.update(_FRAMES_DEFAULTS)
        d["fields"] = {}
        d["meta"] = {}
        d.update(common)
        d.update(attrs)
        return fr

    def __len__(self) -> int:
        return len(self.data)

    @property
    def start_s(self) -> float:
        """Offset of the first row from the start of the stream, in seconds."""
        return float(self.times_s[0]) if len(self.times_s) else float("nan")

    @property
    def end_s(self) -> float:
        """Offset of the last row from the start of the stream, in seconds."""
        return float(self.times_s[-1]) if len(self.times_s) else float("nan")


#: Default attribute values of :class:`Frames` (for :meth:`Frames.prevalidated`; ``fields``
#: and ``meta`` get a fresh dict each time).
_FRAMES_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(Frames)
    if f.default is not dataclasses.MISSING}
