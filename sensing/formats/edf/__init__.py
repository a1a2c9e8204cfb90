"""EDF, EDF+ (with annotations) and BDF EEG recordings, streamed with mne (``preload=False``).

The header is validated first (:mod:`sensing.formats.edf.header`) so that a missing physical
range, an empty file or a truncated data record fails with the byte offset and the field.
Then mne reads the signal chunk by chunk: each chunk is a whole number of data records
(mne's upsampling of lower-rate channels in mixed-rate files is exact only on record
boundaries), so a 24-hour file is read with memory bounded by one chunk.

Units are µV. Duplicate channel labels (CHB-MIT records ``T8-P8`` twice) are renamed by mne
(``T8-P8-0``, ``T8-P8-1``); the default montage keeps the first copy. EDF+ annotations are
decoded as UTF-8, falling back to Latin-1 (many clinical systems write Latin-1).

The EDF format lives in this package: the reader (here), the header parser
(:mod:`.header`), channel names and montages (:mod:`.montage`) and the streaming EDF+/BDF
writer (:mod:`.writer`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from sensing.errors import CaptureFormatError
from sensing.formats.base import FORMATS, CaptureReader
from sensing.formats.edf.header import EdfHeader, check_data_records, read_edf_header
from sensing.formats.edf.montage import Montage, make_montage
from sensing.formats.edf.writer import EdfWriter
from sensing.frames import Frames

__all__ = ["EdfHeader", "EdfReader", "EdfWriter", "Montage", "make_montage", "open_raw",
           "read_edf_header"]

log = logging.getLogger("ambisense.edf")

#: Labels that are not EEG and are dropped by default (CHB-MIT dummy "-" channels, ECG, VNS…).
NON_EEG = ("-", "--", ".", "ECG", "EKG", "VNS", "LOC-ROC", "EMG", "RESP", "SPO2", "PHOTIC",
           "STATUS")


def _is_eeg(label: str) -> bool:
    up = label.upper().strip()
    base = up.rsplit("-", 1)[0] if up.rsplit("-", 1)[-1].isdigit() else up
    return base not in NON_EEG and not up.startswith(("ECG", "EKG", "EMG", "RESP", "SPO2"))


def open_raw(path: str, hdr: EdfHeader):
    """Open ``path`` with mne (EDF or BDF), annotations in UTF-8 else Latin-1."""
    import mne

    read = mne.io.read_raw_bdf if hdr.bdf else mne.io.read_raw_edf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return read(path, preload=False, verbose="error")
        except Exception as exc:  # mne raises a bare Exception for undecodable TALs
            if "encoding" not in str(exc):
                raise CaptureFormatError(path, "data", "an EDF/BDF file mne can read",
                                         f"{type(exc).__name__}: {exc}") from exc
            return read(path, preload=False, verbose="error", encoding="latin1")


@FORMATS.register("edf")
class EdfReader(CaptureReader):
    """EDF / EDF+ / BDF EEG reader.

    Parameters
    ----------
    path : str or os.PathLike
        Recording.
    chunk_s : float
        Target chunk length in s (rounded to whole data records, at least one record).
    montage : str or sequence of (str, str) or None
        See :func:`sensing.formats.edf.montage.make_montage`. Default: channels as recorded
        (non-EEG channels and duplicate copies dropped).
    channels : sequence of str, optional
        Keep only these recorded labels (before the montage).
    source : str, optional
        Name put in each chunk.
    chunk_size : int, optional
        Rows (samples) per chunk; overrides ``chunk_s``. Exact when all EEG channels share
        one rate; with mixed rates it is rounded down to whole data records (at least one).
    """

    name = "edf"
    modality = "eeg"
    extensions = (".edf", ".bdf", ".rec")
    description = "EDF / EDF+ / BDF EEG (mne, streamed by data records)"

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        chunk_s: float = 16.0,
        montage: str | Sequence[tuple[str, str]] | None = None,
        channels: Sequence[str] | None = None,
        source: str | None = None,
        chunk_size: int | None = None,
    ) -> None:
        super().__init__(path, chunk_size=chunk_size or 1, source=source)
        size = os.path.getsize(self.path)
        self.header = read_edf_header(self.path)
        self.n_records = check_data_records(self.header, self.path, size)
        if self.n_records == 0:
            raise CaptureFormatError(self.path, f"byte {self.header.header_bytes}",
                                     "at least one data record", "no data records")
        self.raw = open_raw(self.path, self.header)
        self.fs_hz = float(self.raw.info["sfreq"])
        rec = max(int(round(self.fs_hz * self.header.record_s)), 1)
        picked_rates = {s.samples_per_record for s in self.header.signals
                        if _is_eeg(s.label) and "Annotations" not in s.label}
        if chunk_size and len(picked_rates) <= 1:
            # one sampling rate: an explicit row count is honoured exactly (mne reads any span)
            self.chunk_size = int(chunk_size)
        elif chunk_size:  # mixed rates are resampled exactly only on record boundaries
            self.chunk_size = max(1, int(chunk_size) // rec) * rec
        else:
            n_rec = max(1, int(round(chunk_s / max(self.header.record_s, 1e-9))))
            self.chunk_size = n_rec * rec
        self.record_samples = rec
        recorded = list(self.raw.ch_names)
        picks = [i for i, ch in enumerate(recorded) if _is_eeg(ch)]
        if channels is not None:
            wanted = list(channels)
            unknown = [c for c in wanted if c not in recorded]
            if unknown:
                raise ValueError(f"{self.path}: channel(s) {unknown} not in the recording; "
                                 f"channels: {recorded}")
            picks = [recorded.index(c) for c in wanted]
        if not picks:
            raise CaptureFormatError(self.path, "header", "at least one EEG channel",
                                     f"channels {recorded}")
        self.picks = np.array(picks)
        self.recorded_names = [recorded[i] for i in picks]
        self.montage: Montage = make_montage(self.recorded_names, montage, source=self.path)
        if self.montage.missing:
            log.warning("%s: montage derivations not formed (electrodes missing): %s",
                        self.path, ", ".join(self.montage.missing))
        self.duplicates = sorted({c.rsplit("-", 1)[0] for c in recorded
                                  if c.rsplit("-", 1)[-1].isdigit()
                                  and c.rsplit("-", 1)[0] + "-0" in recorded})
        # scale to µV per picked channel (mne returns SI units: V for EEG)
        self._to_uv = 1e6

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        if head[:8] == b"\xffBIOSEMI":
            return True
        if head[:8] != b"0       " or len(head) < 256:
            return False
        try:
            int(head[252:256].decode("ascii").strip())
            int(head[184:192].decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            return False
        return True

    def annotations(self) -> list[dict[str, Any]]:
        """EDF+ annotations: ``onset_s`` (from recording start), ``duration_s``, ``text``."""
        return [
            {"onset_s": float(a["onset"]), "duration_s": float(a["duration"]),
             "text": str(a["description"])}
            for a in self.raw.annotations
        ]

    def chunks(self) -> Iterator[Frames]:
        n_times = int(self.raw.n_times)
        meta = {
            "format": "bdf" if self.header.bdf else "edf",
            "edf_plus": self.header.edf_plus,
            "fs_hz": self.fs_hz,
            "recorded_channels": len(self.recorded_names),
            "montage_channels": len(self.montage.names),
            "duplicate_channels": self.duplicates,
            "annotations": len(self.raw.annotations),
        }
        t0 = self.raw.info.get("meas_date") or self.header.start
        per_sample = self.header.record_bytes / max(self.record_samples, 1)
        for start in range(0, n_times, self.chunk_size):
            stop = min(start + self.chunk_size, n_times)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                x = self.raw.get_data(picks=self.picks, start=start, stop=stop)
            data = self.montage.apply(x.T * self._to_uv)
            self.bytes_read = int(self.header.header_bytes + stop * per_sample)
            yield Frames(
                data=np.ascontiguousarray(data, dtype=np.float64),
                times_s=np.arange(start, stop, dtype=np.float64) / self.fs_hz,
                fs_hz=self.fs_hz, modality="eeg", source=self.source,
                channel_names=self.montage.names, t0=t0, meta=dict(meta),
            )
