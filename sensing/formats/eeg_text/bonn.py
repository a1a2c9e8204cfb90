"""The Bonn epilepsy EEG database (Andrzejak et al. 2001): segments, splits, long recordings.

Sets A–D are non-seizure, E is ictal. Segments are numbered 1–100 per set: **odd numbers
train and tune, even numbers are held out** for the final figures (the files do not say
which subject a segment comes from, so no subject-wise split is possible).

Long recordings for event scoring are built in memory by concatenating segments
(:func:`concatenated_recording`); nothing is copied to disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensing.formats.eeg_text import BONN_FS_HZ, EegTextReader
from sensing.frames import Frames

#: Set letter → file prefix and whether it is ictal.
SETS: dict[str, tuple[str, bool]] = {
    "A": ("Z", False), "B": ("O", False), "C": ("N", False), "D": ("F", False), "E": ("S", True),
}


@dataclass(frozen=True)
class BonnSegment:
    """One Bonn file: ``set`` letter, ``number`` 1–100, ``ictal`` (set E)."""

    path: Path
    set: str
    number: int

    @property
    def ictal(self) -> bool:
        return SETS[self.set][1]

    @property
    def odd(self) -> bool:
        return self.number % 2 == 1


def bonn_segments(root: str | os.PathLike, sets: str = "ABCDE",
                  parity: str | None = None) -> list[BonnSegment]:
    """List segments under ``root`` (folders ``setA`` … ``setE``).

    Parameters
    ----------
    root : path-like
        The ``bonn`` folder.
    sets : str
        Set letters to include.
    parity : {"odd", "even", None}
        Odd numbers (training/tuning), even numbers (held-out test), or both.
    """
    out = []
    for s in sets:
        prefix = SETS[s][0]
        folder = Path(root) / f"set{s}"
        if not folder.is_dir():
            raise FileNotFoundError(f"Bonn set {s}: folder {folder} not found")
        for f in sorted(folder.iterdir()):
            m = re.fullmatch(rf"{prefix}(\d{{3}})\.txt", f.name, re.IGNORECASE)
            if not m:
                continue
            seg = BonnSegment(f, s, int(m.group(1)))
            if parity == "odd" and not seg.odd or parity == "even" and seg.odd:
                continue
            out.append(seg)
    return out


def load_segment(seg: BonnSegment | str | os.PathLike) -> np.ndarray:
    """Samples of one segment (µV, float64, 4097 values at 173.61 Hz)."""
    path = seg.path if isinstance(seg, BonnSegment) else seg
    return np.concatenate([fr.data[:, 0] for fr in EegTextReader(path).chunks()])


@dataclass
class LongRecording:
    """A recording built from segments.

    Attributes
    ----------
    data : numpy.ndarray
        ``(n_samples,)`` µV at :data:`BONN_FS_HZ`.
    seizures : list of (float, float)
        Reference seizures (onset, end) in s.
    segments : list of str
        File names, in order.
    """

    data: np.ndarray
    seizures: list[tuple[float, float]]
    segments: list[str]
    fs_hz: float = BONN_FS_HZ

    @property
    def duration_s(self) -> float:
        return len(self.data) / self.fs_hz

    def labels_1hz(self) -> np.ndarray:
        """Per-second reference labels (1 = seizure), one per whole second."""
        n = int(self.duration_s)
        lab = np.zeros(n, dtype=np.int8)
        for a, b in self.seizures:
            lab[int(np.floor(a)): int(np.ceil(b))] = 1
        return lab[:n]

    def chunks(self, chunk_s: float = 4.0, source: str = "bonn-long") -> Iterator[Frames]:
        """Stream the recording as :class:`Frames` chunks."""
        n = max(1, int(round(chunk_s * self.fs_hz)))
        for a in range(0, len(self.data), n):
            x = self.data[a: a + n]
            yield Frames(x[:, None], (a + np.arange(len(x))) / self.fs_hz, self.fs_hz, "eeg",
                         source, channel_names=("EEG",))


def concatenated_recording(background: Sequence[BonnSegment], ictal: Sequence[BonnSegment],
                           *, seed: int = 0, max_run: int = 3, min_gap: int = 5) -> LongRecording:
    """Interleave seizures (runs of 1–``max_run`` ictal segments) with background segments.

    Each segment's mean is removed (the files have different DC offsets that would otherwise
    become steps); runs are separated by at least ``min_gap`` background segments (≈ 2 min,
    more than the 90 s under which SzCORE merges events) so every run is one reference event.

    Parameters
    ----------
    background, ictal : sequence of BonnSegment
        Segments to use; all are used once, order shuffled with ``seed``.
    seed : int
        Shuffle and run-length seed.
    """
    rng = np.random.default_rng(seed)
    bg = [background[i] for i in rng.permutation(len(background))]
    ic = [ictal[i] for i in rng.permutation(len(ictal))]
    runs: list[list[BonnSegment]] = []
    while ic:
        k = int(rng.integers(1, max_run + 1))
        runs.append(ic[:k])
        ic = ic[k:]
    n_slots = len(runs)
    if n_slots and len(bg) < (n_slots + 1) * min_gap:
        raise ValueError(f"{len(bg)} background segments cannot separate {n_slots} seizures by "
                         f"{min_gap} segments each")
    # background segments before each run: min_gap each, the rest spread at random
    spare = len(bg) - (n_slots + 1) * min_gap
    extra = rng.multinomial(spare, np.ones(n_slots + 1) / (n_slots + 1)) if n_slots else [spare]
    parts, names, seizures = [], [], []
    t = 0
    bi = 0
    for slot in range(n_slots + 1):
        n_bg = min_gap + int(extra[slot]) if n_slots else len(bg)
        for seg in bg[bi: bi + n_bg]:
            x = load_segment(seg)
            parts.append(x - x.mean())
            names.append(seg.path.name)
            t += len(x)
        bi += n_bg
        if slot < n_slots:
            start = t
            for seg in runs[slot]:
                x = load_segment(seg)
                parts.append(x - x.mean())
                names.append(seg.path.name)
                t += len(x)
            seizures.append((start / BONN_FS_HZ, t / BONN_FS_HZ))
    return LongRecording(np.concatenate(parts), seizures, names)
