"""Errors and per-record rejects raised or counted while reading captures."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum


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


class RejectReason(StrEnum):
    """Why a record was skipped: the closed set of reject categories.

    Every reader (and live source) names one of these, like rtl_433's typed decode
    outcomes, so that counts from different readers add up and tools can switch on them.
    The values are the strings shown in ``ambisense info`` (``reject_reasons``) and in
    :class:`Reject` messages; a member compares equal to its value.
    """

    # -- the end of the input -------------------------------------------------------------
    #: The file ends inside a length-prefixed record (Intel 5300 bfee, pcap record).
    TRUNCATED_RECORD = "truncated_record"
    #: The file ends inside a PicoScenes frame.
    TRUNCATED_FRAME = "truncated_frame"
    #: A pcap record holds fewer bytes than its UDP datagram announces (snap length).
    TRUNCATED_PACKET = "truncated_packet"
    #: An array member holds fewer rows than its header announces (ESPectre ``.npz``).
    TRUNCATED = "truncated"
    # -- binary record structure ----------------------------------------------------------
    #: An Intel 5300 bfee record with impossible antenna counts or CSI length.
    BAD_BFEE = "bad_bfee"
    #: A Nexmon UDP payload without the ``0x1111`` magic.
    BAD_MAGIC = "bad_magic"
    #: A Nexmon UDP payload shorter than its 18-byte header.
    SHORT_PAYLOAD = "short_payload"
    #: A Nexmon chanspec whose bandwidth field is not 20/40/80/160 MHz.
    BAD_CHANSPEC = "bad_chanspec"
    #: Fewer CSI bytes than the header's dimensions need (Nexmon payload, PicoScenes segment).
    SHORT_CSI = "short_csi"
    #: A PicoScenes frame whose frame or segment headers are broken.
    BAD_FRAME = "bad_frame"
    #: A PicoScenes CSI segment of a version this build cannot decode.
    CSI_VERSION = "csi_version"
    #: PicoScenes CSI dimensions (tones, rx, tx) that do not fit the buffer or tone plan.
    BAD_DIMENSIONS = "bad_dimensions"
    #: A PicoScenes CSI segment from a device type whose CSI encoding is unknown.
    UNSUPPORTED_DEVICE = "unsupported_device"
    #: An array member of the wrong dtype or rank (ESPectre ``csi_data``).
    BAD_ARRAY = "bad_array"
    #: An array member whose rows have the wrong number of values (ESPectre ``csi_data``).
    BAD_WIDTH = "bad_width"
    # -- text lines -----------------------------------------------------------------------
    #: An ESP32 ``CSI_DATA`` line without its ``[...]`` CSI array.
    NO_ARRAY = "no_array"
    #: An ESP32 ``CSI_DATA`` line whose header has an unknown number of fields.
    FIELD_COUNT = "field_count"
    #: An ESP32 ``CSI_DATA`` header field that is not a number.
    BAD_FIELD = "bad_field"
    #: A CSI array value that is not an integer.
    BAD_VALUE = "bad_value"
    #: A text value that is not a number (plug-in text readers).
    BAD_NUMBER = "bad_number"
    #: A CSI array with an odd number of values (they come in (imag, real) pairs).
    ODD_VALUE_COUNT = "odd_value_count"
    #: A CSI array value outside int8 (-128..127).
    OUT_OF_RANGE = "out_of_range"
    #: A CSI array too short for the requested training-field segment.
    SHORT_ARRAY = "short_array"
    #: A live serial line longer than the line limit without a newline.
    LINE_TOO_LONG = "line_too_long"

    @classmethod
    def of(cls, reason: RejectReason | str) -> RejectReason:
        """The member for ``reason`` (a member or its value).

        Raises
        ------
        ValueError
            ``reason`` is not one of the members; the message lists them.
        """
        if isinstance(reason, cls):
            return reason
        try:
            return cls(reason)
        except ValueError:
            raise ValueError(f"unknown reject reason {reason!r}; RejectReason members: "
                             f"{', '.join(m.value for m in cls)}") from None


@dataclass(frozen=True)
class Reject:
    """One malformed record that was skipped (counted, never fatal).

    Attributes
    ----------
    path : str
        File or device name.
    where : str
        ``"line N"`` (1-based) for text formats, ``"byte N"`` (0-based) for binary.
    reason : RejectReason
        The category; given as a member or its value (``"bad_bfee"``), anything else
        raises ValueError.
    expected, got : str
        Human-readable description of the expectation and of what was found.
    """

    path: str
    where: str
    reason: RejectReason
    expected: str
    got: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", RejectReason.of(self.reason))

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.reason}: expected {self.expected}, got {self.got}"


@dataclass
class RejectLog:
    """Counts rejects by reason and keeps the first ``keep`` of them (bounded memory).

    :meth:`add` is the one way to count: a :class:`Reject` is counted and kept while fewer
    than ``keep`` are kept; a bare reason counts ``n`` rejects that are not described (the
    rest of a batch whose first ones were added as :class:`Reject`).

    Attributes
    ----------
    counts : collections.Counter
        Reason value (str) → rejects counted; read it with :meth:`as_dict`.
    first : list of Reject
        The first ``keep`` rejects described.
    """

    keep: int = 20
    counts: Counter = field(default_factory=Counter)
    first: list[Reject] = field(default_factory=list)

    @property
    def room(self) -> int:
        """How many more rejects :meth:`add` would keep (describe only that many)."""
        return max(self.keep - len(self.first), 0)

    def add(self, reject: Reject | RejectReason | str, n: int = 1) -> None:
        """Count rejects.

        Parameters
        ----------
        reject : Reject or RejectReason
            One described reject (kept while there is room), or a reason alone.
        n : int
            With a reason alone: how many rejects of it to count (0 counts none).
        """
        if isinstance(reject, Reject):
            if n != 1:
                raise ValueError(f"one Reject counts once, got n={n}")
            self.counts[reject.reason.value] += 1
            if len(self.first) < self.keep:
                self.first.append(reject)
            return
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n:
            self.counts[RejectReason.of(reject).value] += n

    def merge(self, other: RejectLog) -> None:
        """Add the counts of ``other`` and as many of its kept rejects as there is room for."""
        self.counts.update(other.counts)
        self.first.extend(other.first[: self.room])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        """Reason value → count, in the order the reasons were first counted."""
        return {str(k): int(v) for k, v in self.counts.items()}
