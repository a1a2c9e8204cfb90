"""Channel naming and montages: referential, bipolar "double banana", neonatal bipolar.

A montage is a fixed linear map from the recorded channels to the derivations analysed:
``derived = data @ matrix.T`` per chunk, so it costs one small matrix product per chunk and
works the same on live and recorded data. Recorded channels may already be bipolar
(CHB-MIT stores ``FP1-F7`` …) or referential (``EEG Fp1-REF``, ``Fp1-LE``, ``Fp1``); both are
recognised.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Old 10-20 names → 10-10 names (T3/T4/T5/T6 → T7/T8/P7/P8).
OLD_TO_NEW = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}

#: Longitudinal bipolar "double banana" (ACNS / CHB-MIT order, 18 derivations + Fz-Cz, Cz-Pz).
DOUBLE_BANANA: tuple[tuple[str, str], ...] = (
    ("FP1", "F7"), ("F7", "T7"), ("T7", "P7"), ("P7", "O1"),
    ("FP1", "F3"), ("F3", "C3"), ("C3", "P3"), ("P3", "O1"),
    ("FP2", "F4"), ("F4", "C4"), ("C4", "P4"), ("P4", "O2"),
    ("FP2", "F8"), ("F8", "T8"), ("T8", "P8"), ("P8", "O2"),
    ("FZ", "CZ"), ("CZ", "PZ"),
)

#: Reduced bipolar montage used for neonatal EEG (fewer electrodes on a small head; ACNS
#: neonatal guideline / Helsinki dataset style).
NEONATAL_BIPOLAR: tuple[tuple[str, str], ...] = (
    ("FP2", "C4"), ("C4", "O2"), ("FP1", "C3"), ("C3", "O1"),
    ("FP2", "T8"), ("T8", "O2"), ("FP1", "T7"), ("T7", "O1"),
    ("T8", "C4"), ("C4", "CZ"), ("CZ", "C3"), ("C3", "T7"),
)

MONTAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "double_banana": DOUBLE_BANANA,
    "neonatal": NEONATAL_BIPOLAR,
}

_PREFIX = re.compile(r"^(EEG|EKG|ECG|EMG|EOG)[\s_:]+", re.IGNORECASE)
_REF_SUFFIX = re.compile(r"[-_ ]?(REF|LE|RE|AVG|AV|A1|A2|M1|M2|CAR)$", re.IGNORECASE)
_DUP_SUFFIX = re.compile(r"-\d+$")


def electrode_name(label: str) -> str:
    """Canonical upper-case 10-10 name of a referential channel label.

    ``"EEG Fp1-REF"`` → ``"FP1"``, ``"T3-LE"`` → ``"T7"``, ``"Cz"`` → ``"CZ"``.
    """
    s = _PREFIX.sub("", label.strip()).strip()
    s = _REF_SUFFIX.sub("", s).strip().upper()
    return OLD_TO_NEW.get(s, s)


def bipolar_name(label: str) -> tuple[str, str] | None:
    """``"FP1-F7"`` (or ``"EEG Fp1-F7"``, or mne's duplicate ``"T8-P8-0"``) → ``("FP1", "F7")``.

    Returns None when the label is not a pair of electrodes.
    """
    s = _PREFIX.sub("", label.strip()).strip().upper()
    parts = s.split("-")
    if len(parts) == 3 and parts[2].isdigit():  # mne renames duplicates "T8-P8-0", "T8-P8-1"
        parts = parts[:2]
    if len(parts) != 2 or not all(parts) or _REF_SUFFIX.fullmatch("-" + parts[1]):
        return None
    a, b = (OLD_TO_NEW.get(p, p) for p in parts)
    return a, b


@dataclass(frozen=True)
class Montage:
    """A linear derivation from recorded channels.

    Attributes
    ----------
    names : tuple of str
        Output channel names (``"FP1-F7"`` …).
    matrix : numpy.ndarray
        ``(n_out, n_in)`` weights; ``derived = data @ matrix.T``.
    missing : tuple of str
        Requested derivations that could not be formed from the recorded channels.
    """

    names: tuple[str, ...]
    matrix: np.ndarray
    missing: tuple[str, ...] = ()

    def apply(self, data: np.ndarray) -> np.ndarray:
        """``(n_samples, n_in)`` → ``(n_samples, n_out)``."""
        pick = self._pick()
        if pick is not None:  # plain channel selection: no matrix product
            return data[:, pick]
        return data @ self.matrix.T

    def _pick(self) -> np.ndarray | None:
        m = self.matrix
        if ((m == 0) | (m == 1)).all() and (m.sum(axis=1) == 1).all():
            return np.argmax(m, axis=1)
        return None


def make_montage(channel_names: Sequence[str], kind: str | Sequence[tuple[str, str]] | None,
                 *, source: str = "") -> Montage:
    """Build a montage for recorded ``channel_names``.

    Parameters
    ----------
    channel_names : sequence of str
        Recorded labels.
    kind : str or sequence of (str, str) or None
        ``None`` / ``"as_recorded"``: all channels unchanged, except exact duplicates
        (CHB-MIT records ``T8-P8`` twice; only the first copy is kept).
        ``"referential"``: referential channels only, named by electrode.
        ``"double_banana"`` or ``"neonatal"``: bipolar pairs, each taken from a recorded bipolar
        channel or formed as the difference of two referential ones.
        A sequence of (electrode, electrode) pairs: a custom bipolar montage.
    source : str
        File name for error messages.

    Raises
    ------
    ValueError
        Unknown montage name, or not a single derivation can be formed.
    """
    n_in = len(channel_names)
    if kind is None or kind == "as_recorded":
        keep, names, seen = [], [], set()
        for i, ch in enumerate(channel_names):
            pair = bipolar_name(ch)
            key = pair if pair is not None else ch
            if key in seen:
                continue
            seen.add(key)
            keep.append(i)
            names.append(f"{pair[0]}-{pair[1]}" if pair else ch)
        m = np.zeros((len(keep), n_in))
        m[np.arange(len(keep)), keep] = 1.0
        return Montage(tuple(names), m)
    ref = {}
    bip = {}
    for i, ch in enumerate(channel_names):
        pair = bipolar_name(ch)
        if pair is not None:
            bip.setdefault(pair, i)
        else:
            ref.setdefault(electrode_name(ch), i)
    if kind == "referential":
        names = sorted(ref, key=lambda e: ref[e])
        m = np.zeros((len(names), n_in))
        for j, e in enumerate(names):
            m[j, ref[e]] = 1.0
        if not names:
            raise ValueError(f"{source}: no referential channels among {list(channel_names)}")
        return Montage(tuple(names), m)
    if isinstance(kind, str):
        if kind not in MONTAGES:
            raise ValueError(f"unknown montage {kind!r}; known: as_recorded, referential, "
                             f"{', '.join(MONTAGES)}")
        pairs = MONTAGES[kind]
    else:
        pairs = tuple((electrode_name(a), electrode_name(b)) for a, b in kind)
    rows, names, missing = [], [], []
    for a, b in pairs:
        w = np.zeros(n_in)
        if (a, b) in bip:
            w[bip[(a, b)]] = 1.0
        elif (b, a) in bip:
            w[bip[(b, a)]] = -1.0
        elif a in ref and b in ref:
            w[ref[a]], w[ref[b]] = 1.0, -1.0
        else:
            missing.append(f"{a}-{b}")
            continue
        rows.append(w)
        names.append(f"{a}-{b}")
    if not rows:
        raise ValueError(f"{source}: montage {kind!r} needs electrodes that are not recorded; "
                         f"channels found: {list(channel_names)}")
    return Montage(tuple(names), np.array(rows), tuple(missing))
