"""Errors and per-record rejects raised or counted while reading captures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class AmbisenseError(Exception):
    """Base class of every error this package raises on bad input."""


class UnsupportedFormatError(AmbisenseError):
    """The file is not any registered capture format (or not the one requested)."""


class CaptureFormatError(AmbisenseError):
    """The input is broken in a way that stops reading.

    Parameters
    ----------
    path : str
        File (or device) being read.
    where : str
        Position, e.g. ``"line 12"`` or ``"byte 4096"``.
    expected, got : str
        What the reader expected and what it found.
    """

    def __init__(self, path: str, where: str, expected: str, got: str) -> None:
        self.path, self.where, self.expected, self.got = path, where, expected, got
        super().__init__(f"{path}: {where}: expected {expected}, got {got}")


class SourceUnavailableError(AmbisenseError):
    """A live source (serial port, sound card, socket) cannot be opened or went away."""


@dataclass(frozen=True)
class Reject:
    """One malformed record that was skipped (counted, never fatal).

    Attributes
    ----------
    path : str
        File or device name.
    where : str
        ``"line N"`` (1-based) for text formats, ``"byte N"`` (0-based) for binary.
    reason : str
        Short machine-friendly category (``"short_line"``, ``"bad_number"`` …).
    expected, got : str
        Human-readable description of the expectation and of what was found.
    """

    path: str
    where: str
    reason: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.reason}: expected {self.expected}, got {self.got}"


@dataclass
class RejectLog:
    """Counts rejects by reason and keeps the first ``keep`` of them (bounded memory)."""

    keep: int = 20
    counts: Counter = field(default_factory=Counter)
    first: list[Reject] = field(default_factory=list)

    def add(self, reject: Reject) -> None:
        self.counts[reject.reason] += 1
        if len(self.first) < self.keep:
            self.first.append(reject)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
