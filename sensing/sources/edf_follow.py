"""Follow a growing EDF/BDF file while EEG acquisition software writes it ("tail -f" for EDF).

Recorders write the header first (often with ``number of data records`` = -1), then append one
data record at a time, and fix the record count when they stop. This source waits for the
header, then polls the file size and decodes every newly completed data record itself (mne
reads a file's record count once, so it cannot follow one that grows). Only whole records
are read; a partial record at the end is left for the next poll.

The stream ends when the header's record count is set and reached (the recorder closed the
file), when :meth:`close` is called, when ``stop()`` returns True, or after ``idle_timeout_s``
without growth. Memory is one chunk.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from sensing.errors import CaptureFormatError, RejectLog, SourceUnavailableError
from sensing.formats.edf import _is_eeg
from sensing.formats.edf.header import FIXED_BYTES, PER_SIGNAL_BYTES, EdfHeader, parse_edf_header
from sensing.formats.edf.montage import make_montage
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.sources import SOURCES


def _dedupe(labels: Sequence[str]) -> list[str]:
    """Rename duplicate labels the way mne does (``T8-P8`` twice → ``T8-P8-0``, ``T8-P8-1``)."""
    counts = {lab: labels.count(lab) for lab in labels}
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        if counts[lab] > 1:
            out.append(f"{lab}-{seen.get(lab, 0)}")
            seen[lab] = seen.get(lab, 0) + 1
        else:
            out.append(lab)
    return out


class EdfFollowParams(Params):
    """Options of an ``edf_follow`` source."""

    path: str = param(..., min_length=1, path=True, doc="the EDF/BDF file being written")
    poll_s: float = param(0.5, unit="s", gt=0, le=60, doc="seconds between size checks")


@SOURCES.register("edf_follow")
class EdfFollowSource:
    """Live EEG from a growing EDF/BDF file.

    Parameters
    ----------
    path : str or os.PathLike
        The file being written.
    poll_s : float
        Seconds between size checks.
    records_per_chunk : int
        Maximum data records per yielded chunk.
    idle_timeout_s : float or None
        End the stream after this long without a new record (None: wait forever).
    header_timeout_s : float
        How long to wait for the file and a complete header.
    montage : str or sequence of pairs, optional
        See :func:`sensing.formats.edf.montage.make_montage`.
    source : str, optional
        Name put in each chunk (default: the file name).
    """

    Params = EdfFollowParams
    modality = "eeg"
    live = True
    description = "a growing EDF/BDF file written by an EEG recorder, followed across recordings"

    @classmethod
    def from_params(cls, params: EdfFollowParams, name: str) -> FollowedRecordings:
        """The file followed as it grows, and each new recording at the same path after
        the recorder closed the previous one."""
        return FollowedRecordings(lambda: cls(params.path, poll_s=params.poll_s, source=name),
                                  params.path, params.poll_s)

    def __init__(self, path: str | os.PathLike, *, poll_s: float = 0.5,
                 records_per_chunk: int = 4, idle_timeout_s: float | None = None,
                 header_timeout_s: float = 30.0, montage=None, source: str | None = None) -> None:
        self.path = os.fspath(path)
        self.poll_s = float(poll_s)
        self.records_per_chunk = max(1, int(records_per_chunk))
        self.idle_timeout_s = idle_timeout_s
        self.header_timeout_s = header_timeout_s
        self.montage_kind = montage
        self.source = source or os.path.basename(self.path)
        self.rejects = RejectLog()
        self.bytes_read = 0
        self._closed = threading.Event()

    def close(self) -> None:
        """Stop following (callable from another thread)."""
        self._closed.set()

    def _sleep(self, stop: Callable[[], bool] | None) -> bool:
        """Wait one poll period; False when asked to stop."""
        if self._closed.wait(self.poll_s):
            return False
        return not (stop is not None and stop())

    def _wait_header(self, stop: Callable[[], bool] | None) -> EdfHeader:
        deadline = time.monotonic() + self.header_timeout_s
        while True:
            try:
                with open(self.path, "rb") as fh:
                    head = fh.read(FIXED_BYTES)
                    if len(head) == FIXED_BYTES:
                        try:
                            ns = int(head[252:256].decode("latin-1").strip())
                        except ValueError:
                            ns = -1
                        if ns > 0:
                            head += fh.read(PER_SIGNAL_BYTES * ns)
                            if len(head) == FIXED_BYTES + PER_SIGNAL_BYTES * ns:
                                return parse_edf_header(head, self.path)
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                if not os.path.exists(self.path):
                    raise SourceUnavailableError(
                        f"{self.path}: file did not appear within {self.header_timeout_s} s")
                size = os.path.getsize(self.path)
                raise CaptureFormatError(self.path, f"byte {size}", "a complete EDF/BDF header",
                                         f"{size} bytes after {self.header_timeout_s} s")
            if not self._sleep(stop):
                raise SourceUnavailableError(f"{self.path}: stopped before the header was written")

    def chunks(self, stop: Callable[[], bool] | None = None) -> Iterator[Frames]:
        """Yield chunks as data records are appended (see module docstring for the end)."""
        try:
            hdr = self._wait_header(stop)
        except SourceUnavailableError:
            if self._closed.is_set() or (stop is not None and stop()):
                return
            raise
        sigs = hdr.signals
        eeg_idx = [i for i, s in enumerate(sigs) if not s.is_annotation and _is_eeg(s.label)]
        if not eeg_idx:
            raise CaptureFormatError(self.path, "header", "at least one EEG signal",
                                     f"signals {[s.label for s in sigs]}")
        spr = {sigs[i].samples_per_record for i in eeg_idx}
        if len(spr) != 1:
            raise CaptureFormatError(
                self.path, "header", "EEG signals with one sampling rate (live following does "
                "not resample; replay the finished file to have mne resample it)",
                f"samples per record {sorted(spr)}")
        n = spr.pop()
        fs = n / hdr.record_s
        sb = hdr.sample_bytes
        offsets = np.cumsum([0] + [s.samples_per_record * sb for s in sigs])
        labels = _dedupe([sigs[i].label for i in eeg_idx])
        montage = make_montage(labels, self.montage_kind, source=self.path)
        gain = np.array([sigs[i].gain * sigs[i].to_uv for i in eeg_idx])
        off = np.array([(sigs[i].physical_min - sigs[i].digital_min * sigs[i].gain)
                        * sigs[i].to_uv for i in eeg_idx])
        rec_bytes = hdr.record_bytes
        done = 0
        last_growth = time.monotonic()
        # unbuffered: a buffered reader would serve the header's record count from its cache
        with open(self.path, "rb", buffering=0) as fh:
            while not self._closed.is_set() and not (stop is not None and stop()):
                size = os.fstat(fh.fileno()).st_size
                # the recorder may fix the record count on close: re-read it
                fh.seek(236)
                try:
                    n_records = int(fh.read(8).decode("latin-1").strip())
                except ValueError:
                    n_records = -1
                avail = hdr.records_available(size)
                if n_records >= 0:
                    avail = min(avail, n_records)
                if avail > done:
                    last_growth = time.monotonic()
                    k = min(avail - done, self.records_per_chunk)
                    fh.seek(hdr.header_bytes + done * rec_bytes)
                    raw = b""
                    while len(raw) < k * rec_bytes:  # raw reads may return less
                        part = fh.read(k * rec_bytes - len(raw))
                        if not part:
                            break
                        raw += part
                    if len(raw) < k * rec_bytes:  # file shrank or was replaced
                        raise CaptureFormatError(
                            self.path, f"byte {hdr.header_bytes + done * rec_bytes}",
                            f"{k * rec_bytes} bytes of data records", f"{len(raw)} bytes")
                    recs = np.frombuffer(raw, dtype=np.uint8).reshape(k, rec_bytes)
                    data = np.empty((k * n, len(eeg_idx)))
                    for j, i in enumerate(eeg_idx):
                        block = recs[:, offsets[i]: offsets[i + 1]].reshape(k * n, sb)
                        if sb == 2:
                            dig = block.copy().view("<i2")[:, 0].astype(np.float64)
                        else:
                            b = block.astype(np.int32)
                            dig = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)).astype(np.float64)
                            dig[dig >= 2**23] -= 2**24
                        data[:, j] = dig * gain[j] + off[j]
                    first = done * n
                    done += k
                    self.bytes_read = hdr.header_bytes + done * rec_bytes
                    yield Frames(
                        data=montage.apply(data),
                        times_s=(first + np.arange(k * n, dtype=np.float64)) / fs,
                        fs_hz=fs, modality="eeg", source=self.source,
                        channel_names=montage.names, t0=hdr.start,
                        meta={"format": "bdf" if hdr.bdf else "edf", "live": True,
                              "fs_hz": fs},
                    )
                    continue
                if n_records >= 0 and done >= n_records:
                    return  # the recorder closed the file
                if (self.idle_timeout_s is not None
                        and time.monotonic() - last_growth > self.idle_timeout_s):
                    return
                if not self._sleep(stop):
                    return


class FollowedRecordings:
    """A followed EDF file that stays open across recordings.

    When the recorder closes the file (the inner source ends), this waits — polling, and
    returning promptly on stop — until a *new* recording appears at the same path (another
    inode, size or modification time), then follows that one, the stream clock continuing.
    Re-reading the finished recording would only repeat its events.

    Parameters
    ----------
    make : callable
        Returns a fresh :class:`EdfFollowSource` for the path.
    path : str
        The followed file.
    poll_s : float
        Seconds between checks for a new recording.
    """

    live = True

    def __init__(self, make: Callable[[], EdfFollowSource], path: str, poll_s: float) -> None:
        self.make, self.path, self.poll_s = make, path, poll_s
        self.inner = make()
        self._closed = threading.Event()
        self.rejects = RejectLog()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def close(self) -> None:
        self._closed.set()
        self.inner.close()

    def chunks(self, stop: Callable[[], bool]) -> Iterator[Frames]:
        shift = 0.0
        while True:
            last_end: float | None = None
            try:
                for fr in self.inner.chunks(stop):
                    if shift:
                        fr = dataclasses.replace(fr, times_s=fr.times_s + shift)
                    last_end = fr.end_s
                    yield fr
            finally:
                self.rejects.merge(self.inner.rejects)
            if stop() or self._closed.is_set():
                return
            done = self._identity()
            t_done = time.monotonic()
            while self._identity() == done:
                if self._closed.wait(self.poll_s) or stop():
                    return
            if last_end is not None:
                shift = last_end + (time.monotonic() - t_done)
            self.inner = self.make()
