"""Assemble per-link CSI rows into multi-antenna packets (Nexmon multi-core / multi-stream).

Nexmon CSI sends one UDP packet per received Wi-Fi frame **per receive core and spatial
stream**, so its reader yields one row per (core, spatial stream) with
``fields["core"]``, ``fields["spatial"]`` and a shared ``fields["seq"]``
(:mod:`sensing.formats.nexmon_pcap`). Detectors want one row per Wi-Fi frame with every
antenna pair side by side — ``(n, n_subcarriers, n_rx, n_tx)`` — so that they can take the
CSI ratio between antennas. :class:`LinkAssembler` does that, streaming:

* consecutive rows with the same ``seq`` form one group (a repeated (core, stream) pair
  inside a run of equal ``seq`` starts a new group: a retransmission);
* the **link layout** is the set of cores × spatial streams seen so far; a group that
  holds every link of the layout becomes one packet ``(n_subcarriers, n_cores, n_streams)``
  (receive cores on the rx axis, spatial streams on the tx axis), timed at its first row;
* a group missing a link (the firmware drops packets independently) is dropped and
  counted in :attr:`LinkAssembler.incomplete`;
* a stream that only ever has one link (bcm43455c0 on a Raspberry Pi) is passed through
  unchanged, chunk objects included, so single-link captures cost nothing.

The last group of a chunk may continue in the next chunk, so it is held back until the
next chunk (or :meth:`LinkAssembler.flush`) shows it complete. Memory: one group.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np

from sensing.frames import Frames

#: Per-row fields that identify a link; chunks without them pass through.
LINK_FIELDS = ("seq", "core", "spatial")


class LinkAssembler:
    """Streaming (core, spatial stream) → antenna-axis assembly of per-link CSI rows.

    Attributes
    ----------
    cores, streams : tuple of int
        The link layout learned so far (receive cores, spatial streams), ascending.
    incomplete : int
        Groups dropped because they lacked a link of the layout.
    assembled : int
        Multi-link packets emitted.
    """

    def __init__(self) -> None:
        self.cores: tuple[int, ...] = ()
        self.streams: tuple[int, ...] = ()
        self.incomplete = 0
        self.assembled = 0
        self._held: Frames | None = None  # rows of the last, possibly unfinished group

    @property
    def multi_link(self) -> bool:
        """True once more than one (core, stream) link has been seen."""
        return len(self.cores) * len(self.streams) > 1

    def update(self, frames: Frames) -> Frames | None:
        """Consume one chunk; return the packets completed by it (``None`` if none).

        Chunks that are not per-link CSI rows (no ``seq``/``core``/``spatial`` fields, or
        already multi-antenna data) are returned unchanged.
        """
        if (frames.modality != "wifi_csi" or any(k not in frames.fields for k in LINK_FIELDS)
                or frames.data.ndim != 4 or frames.data.shape[2:] != (1, 1)):
            return frames
        core = np.asarray(frames.fields["core"], np.int64)
        spatial = np.asarray(frames.fields["spatial"], np.int64)
        self._learn(core, spatial)
        if not self.multi_link:
            return frames
        if self._held is not None:
            frames = _concat(self._held, frames)
            self._held = None
        return self._assemble(frames, final=False)

    def flush(self) -> Frames | None:
        """End of stream: emit the held-back last group if it is complete."""
        held, self._held = self._held, None
        return None if held is None else self._assemble(held, final=True)

    # ------------------------------------------------------------------ internals

    def _learn(self, core: np.ndarray, spatial: np.ndarray) -> None:
        cores = set(self.cores) | set(np.unique(core).tolist())
        streams = set(self.streams) | set(np.unique(spatial).tolist())
        self.cores, self.streams = tuple(sorted(cores)), tuple(sorted(streams))

    def _assemble(self, fr: Frames, final: bool) -> Frames | None:
        n = len(fr)
        if not n:
            return None
        seq = np.asarray(fr.fields["seq"], np.int64)
        ci = np.searchsorted(self.cores, np.asarray(fr.fields["core"], np.int64))
        si = np.searchsorted(self.streams, np.asarray(fr.fields["spatial"], np.int64))
        n_links = len(self.cores) * len(self.streams)
        link = ci * len(self.streams) + si
        group = _group_ids(seq, link)
        n_groups = int(group[-1]) + 1
        if not final:
            # the last group may go on in the next chunk: hold its rows back
            last = int(np.searchsorted(group, n_groups - 1))
            self._held = _rows(fr, slice(last, n))
            n_groups -= 1
            if n_groups == 0:
                return None
            fr = _rows(fr, slice(0, last))
            group, link, ci, si = group[:last], link[:last], ci[:last], si[:last]
        counts = np.bincount(group, minlength=n_groups)
        full = counts == n_links
        self.incomplete += int(np.count_nonzero(~full))
        if not full.any():
            return None
        keep_row = full[group]
        out_index = np.cumsum(full) - 1  # group → output packet
        first = np.flatnonzero(np.r_[True, np.diff(group) != 0])  # first row of each group
        first = first[full]
        n_out = len(first)
        data = np.zeros((n_out, fr.data.shape[1], len(self.cores), len(self.streams)),
                        fr.data.dtype)
        rows = np.flatnonzero(keep_row)
        data[out_index[group[rows]], :, ci[rows], si[rows]] = fr.data[rows, :, 0, 0]
        self.assembled += n_out
        fields = {k: np.asarray(v)[first] for k, v in fr.fields.items()
                  if k not in ("core", "spatial")}
        if "rssi" in fr.fields:
            # the strongest link's RSSI (dBm; NaN when no link reports one)
            rssi = np.full((n_out, n_links), np.nan, np.float32)
            rssi[out_index[group[rows]], link[rows]] = np.asarray(fr.fields["rssi"],
                                                                  np.float32)[rows]
            fields["rssi"] = np.fmax.reduce(rssi, axis=1)
        meta = dict(fr.meta)
        meta["links"] = {"cores": list(self.cores), "spatial_streams": list(self.streams),
                         "axes": "rx = receive core, tx = spatial stream"}
        return replace(fr, data=data, times_s=np.asarray(fr.times_s)[first], fields=fields,
                       meta=meta)


def _group_ids(seq: np.ndarray, link: np.ndarray) -> np.ndarray:
    """Group index of each row: a new group at a ``seq`` change or a repeated link."""
    n = len(seq)
    new = np.ones(n, dtype=bool)
    new[1:] = seq[1:] != seq[:-1]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.r_[starts, n])
    run = np.cumsum(new) - 1
    key = run * 64 + link  # links < 64 (cores, streams ≤ 8 each)
    if (lengths > 1).any() and len(np.unique(key)) < n:
        # within a run of equal seq, a link seen before in the run starts a new group
        for a, ln in zip(starts[lengths > 1], lengths[lengths > 1], strict=True):
            seen: set[int] = set()
            for i in range(a, a + ln):
                li = int(link[i])
                if li in seen:
                    new[i] = True
                    seen = set()
                seen.add(li)
    return np.cumsum(new) - 1


def _rows(fr: Frames, sl: slice) -> Frames:
    return replace(fr, data=fr.data[sl], times_s=np.asarray(fr.times_s)[sl],
                   fields={k: np.asarray(v)[sl] for k, v in fr.fields.items()})


def _concat(a: Frames, b: Frames) -> Frames:
    if a.data.shape[1:] != b.data.shape[1:]:
        return b  # layout change (FFT size): the held rows cannot be a whole group
    fields = {k: np.concatenate([np.asarray(a.fields[k]), np.asarray(v)])
              for k, v in b.fields.items() if k in a.fields}
    return replace(b, data=np.concatenate([a.data, b.data]),
                   times_s=np.concatenate([np.asarray(a.times_s), np.asarray(b.times_s)]),
                   fields=fields)


def assemble_links(chunks: Iterable[Frames]) -> Iterator[Frames]:
    """Wrap a chunk stream with a :class:`LinkAssembler` (pass-through for single links).

    Parameters
    ----------
    chunks : iterable of Frames
        A capture reader's ``chunks()`` or a live source.

    Yields
    ------
    Frames
        Multi-link CSI packets ``(n, n_subcarriers, n_cores, n_streams)`` for Nexmon
        captures with several cores or spatial streams; every other chunk unchanged.
    """
    asm = LinkAssembler()
    for fr in chunks:
        out = asm.update(fr)
        if out is not None and len(out):
            yield out
    out = asm.flush()
    if out is not None and len(out):
        yield out
