"""Plotter base class, the plotter registry, the bounded streaming binner and the lazy
matplotlib import shared by every modality's plotter.

Nothing here imports matplotlib: :func:`require_matplotlib` does, when a figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from sensing.errors import AmbisenseError, UnsupportedFormatError
from sensing.frames import Frames
from sensing.registry import Registry

__all__ = ["PLOTTERS", "ChunkScan", "Plotter", "Summary", "TimeBinner", "PlotUnavailableError",
           "NoPlotterError", "PlotInputError", "require_matplotlib", "new_figure", "MATPLOTLIB_MISSING"]

#: The message of :class:`PlotUnavailableError` (one clear line, the fix included).
MATPLOTLIB_MISSING = ("matplotlib is not installed; install the plot extra: "
                      "pip install 'ambisense[plot]'")


class PlotUnavailableError(AmbisenseError):
    """Plotting needs matplotlib, which is not installed."""


class NoPlotterError(UnsupportedFormatError):
    """The capture's modality has no registered plotter (the message lists those there are)."""


class PlotInputError(AmbisenseError, ValueError):
    """A plot request that cannot be drawn: bad options, an unknown channel, or no data in
    the time range asked for."""


def require_matplotlib() -> Any:
    """Import matplotlib (with the non-interactive Agg backend) and return the module.

    Raises
    ------
    PlotUnavailableError
        matplotlib is not installed (message: :data:`MATPLOTLIB_MISSING`).
    """
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailableError(MATPLOTLIB_MISSING) from None
    return matplotlib


def new_figure(width_in: float = 12.0, height_in: float = 7.0, dpi: float = 100) -> Any:
    """A ``matplotlib.figure.Figure`` with an Agg canvas and constrained layout (no pyplot,
    no global figure state)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


# ------------------------------------------------------------------------------ binning
class TimeBinner:
    """Per-bin sums, counts (and optionally minima/maxima) of a stream of rows, in memory
    bounded by ``capacity`` bins whatever the stream's length.

    Rows are binned by time into bins of width ``width`` from ``origin``. When a row falls
    beyond the last bin, neighbouring bins are merged pairwise (the width doubles) until it
    fits, so the bins always cover the stream seen so far with between ``capacity / 2``
    and ``capacity`` bins once the stream is longer than ``capacity`` initial bins.
    :meth:`columns` then regroups them into a fixed number of equal output columns.

    Parameters
    ----------
    capacity : int
        Maximum number of fine bins kept (even, ≥ 2).
    n_features : int
        Values per row (channels, subcarriers); :meth:`grow` adds more.
    origin : float, optional
        Stream time (s) of the start of bin 0; default: the first row's time.
    width : float
        Initial bin width in s.
    minmax : bool
        Also keep the per-bin minimum and maximum of every feature.
    """

    def __init__(self, capacity: int, n_features: int, *, origin: float | None = None,
                 width: float = 1e-4, minmax: bool = False) -> None:
        if capacity < 2 or capacity % 2:
            raise ValueError(f"capacity must be an even number >= 2, got {capacity}")
        if not width > 0:
            raise ValueError(f"width must be > 0 s, got {width}")
        self.capacity = int(capacity)
        self.origin = origin
        self.width = float(width)
        self.minmax = minmax
        self.n_rows = 0
        self.last_s: float | None = None
        self.used = 0  # bins 0 .. used-1 may hold rows
        k = int(n_features)
        self.sum = np.zeros((self.capacity, k))
        self.count = np.zeros((self.capacity, k), np.int64)
        if minmax:
            self.min = np.full((self.capacity, k), np.inf)
            self.max = np.full((self.capacity, k), -np.inf)

    @property
    def n_features(self) -> int:
        return self.sum.shape[1]

    def grow(self, n_features: int) -> None:
        """Make room for ``n_features`` features (new ones start empty)."""
        extra = int(n_features) - self.n_features
        if extra <= 0:
            return
        self.sum = np.pad(self.sum, ((0, 0), (0, extra)))
        self.count = np.pad(self.count, ((0, 0), (0, extra)))
        if self.minmax:
            self.min = np.pad(self.min, ((0, 0), (0, extra)), constant_values=np.inf)
            self.max = np.pad(self.max, ((0, 0), (0, extra)), constant_values=-np.inf)

    def _merge(self) -> None:
        """Merge bins pairwise: the width doubles, half of the bins become free."""
        h = self.capacity // 2
        self.sum[:h] = self.sum[0::2] + self.sum[1::2]
        self.sum[h:] = 0
        self.count[:h] = self.count[0::2] + self.count[1::2]
        self.count[h:] = 0
        if self.minmax:
            self.min[:h] = np.minimum(self.min[0::2], self.min[1::2])
            self.min[h:] = np.inf
            self.max[:h] = np.maximum(self.max[0::2], self.max[1::2])
            self.max[h:] = -np.inf
        self.width *= 2
        self.used = (self.used + 1) // 2

    def add(self, times_s: np.ndarray, values: np.ndarray,
            present: np.ndarray | None = None) -> None:
        """Add rows.

        Parameters
        ----------
        times_s : numpy.ndarray
            ``(n,)`` stream times in s; rows before ``origin`` are ignored.
        values : numpy.ndarray
            ``(n, k)`` values, ``k ≤ n_features``; NaN values are not counted.
        present : numpy.ndarray of bool, optional
            ``(k,)`` mask of the features the rows hold (others are not counted).
        """
        t = np.asarray(times_s, float)
        v = np.asarray(values, float)
        if not len(t):
            return
        if self.origin is None:
            self.origin = float(t[0])
        rel = (t - self.origin) / self.width
        keep = np.isfinite(rel) & (rel >= 0)
        if not keep.all():
            t, v, rel = t[keep], v[keep], rel[keep]
            if not len(t):
                return
        top = float(rel.max())
        while top >= self.capacity:
            self._merge()
            rel = rel / 2
            top /= 2
        b = rel.astype(np.int64)
        k = v.shape[1]
        ok = np.isfinite(v)
        if present is not None:
            ok &= np.asarray(present, bool)[None, :k]
        vz = np.where(ok, v, 0.0)
        if len(b) < 2 or bool(np.all(b[1:] >= b[:-1])):  # time-ordered: one slice per bin
            starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
            rows = b[starts]
            self.sum[rows, :k] += np.add.reduceat(vz, starts, axis=0)
            self.count[rows, :k] += np.add.reduceat(ok.astype(np.int64), starts, axis=0)
            if self.minmax:
                self.min[rows, :k] = np.minimum(self.min[rows, :k], np.minimum.reduceat(
                    np.where(ok, v, np.inf), starts, axis=0))
                self.max[rows, :k] = np.maximum(self.max[rows, :k], np.maximum.reduceat(
                    np.where(ok, v, -np.inf), starts, axis=0))
        else:
            np.add.at(self.sum[:, :k], b, vz)
            np.add.at(self.count[:, :k], b, ok.astype(np.int64))
            if self.minmax:
                np.minimum.at(self.min[:, :k], b, np.where(ok, v, np.inf))
                np.maximum.at(self.max[:, :k], b, np.where(ok, v, -np.inf))
        self.used = max(self.used, int(b.max()) + 1)
        self.n_rows += len(t)
        tl = float(t.max())
        self.last_s = tl if self.last_s is None else max(self.last_s, tl)

    def columns(self, n_columns: int, span_s: float) -> dict[str, np.ndarray]:
        """Regroup the bins into ``n_columns`` equal columns over ``[origin, origin +
        span_s]``.

        Returns
        -------
        dict
            ``edges_s`` ``(n_columns + 1,)`` column edges (s), ``mean`` ``(n_columns, k)``
            (NaN where a column holds no value), ``count`` ``(n_columns, k)``, and with
            ``minmax`` also ``min``, ``max``.
        """
        n_columns = max(int(n_columns), 1)
        origin = self.origin or 0.0
        span_s = max(float(span_s), self.width)
        w_out = span_s / n_columns
        centres = (np.arange(self.capacity) + 0.5) * self.width
        j = np.minimum((centres / w_out).astype(np.int64), n_columns - 1)
        k = self.n_features
        s = np.zeros((n_columns, k))
        c = np.zeros((n_columns, k), np.int64)
        np.add.at(s, j, self.sum)
        np.add.at(c, j, self.count)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(c > 0, s / np.maximum(c, 1), np.nan)
        out = {"edges_s": origin + np.arange(n_columns + 1) * w_out, "mean": mean, "count": c}
        if self.minmax:
            lo = np.full((n_columns, k), np.inf)
            hi = np.full((n_columns, k), -np.inf)
            np.minimum.at(lo, j, self.min)
            np.maximum.at(hi, j, self.max)
            out["min"] = np.where(c > 0, lo, np.nan)
            out["max"] = np.where(c > 0, hi, np.nan)
        return out

    def fine(self) -> dict[str, np.ndarray]:
        """The fine bins themselves (``times_s`` centres, ``mean``, ``count``), up to the
        last one used."""
        n = max(self.used, 1)
        c = self.count[:n]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(c > 0, self.sum[:n] / np.maximum(c, 1), np.nan)
        return {"times_s": (self.origin or 0.0) + (np.arange(n) + 0.5) * self.width,
                "mean": mean, "count": c}


def n_output_columns(binner: TimeBinner, max_columns: int, span_s: float, *,
                     rows_per_column: int = 2) -> int:
    """How many columns a summary gets: ``max_columns``, fewer when the stream has too few
    rows (at least ``rows_per_column`` per column on average) or too fine a time
    resolution."""
    by_rows = max(binner.n_rows // max(int(rows_per_column), 1), 1)
    by_width = max(int(span_s / binner.width), 1) if span_s > 0 else 1
    return int(max(1, min(max_columns, by_rows, by_width)))


def clip_chunk(fr: Frames, start_s: float | None, end_s: float | None) -> Frames | None:
    """The rows of ``fr`` within ``[start_s, end_s]`` (None when none)."""
    t = fr.times_s
    if start_s is None and end_s is None:
        return fr
    m = np.ones(len(t), bool)
    if start_s is not None:
        m &= t >= start_s
    if end_s is not None:
        m &= t <= end_s
    if m.all():
        return fr
    if not m.any():
        return None
    return Frames.prevalidated(
        {k: getattr(fr, k) for k in ("fs_hz", "modality", "source", "subcarriers",
                                     "channel_names", "t0", "meta")},
        data=fr.data[m], times_s=t[m], fields={k: v[m] for k, v in fr.fields.items()})


def initial_binner(capacity: int, n_features: int, start_s: float | None,
                   end_s: float | None, *, minmax: bool = False) -> TimeBinner:
    """A :class:`TimeBinner` whose bins already fit ``[start_s, end_s]`` when both are known
    (no merging needed), else starting fine and merging as the stream grows."""
    if start_s is not None and end_s is not None and end_s > start_s:
        # a hair wider than the range, so the last row never needs a merge
        return TimeBinner(capacity, n_features, origin=start_s, minmax=minmax,
                          width=(end_s - start_s) / capacity * (1 + 1e-9) + 1e-12)
    return TimeBinner(capacity, n_features, origin=start_s, minmax=minmax)


class ChunkScan:
    """What one summarize pass learns about the chunks it reads, and the fields every
    :class:`Summary` takes from it.

    A plotter's ``summarize`` calls :meth:`see` on every non-empty chunk, sets
    :attr:`reached_end` to False when it stops before the end of the capture (past
    ``end_s``), then :meth:`columns` and :meth:`fields`.

    Attributes
    ----------
    source : str
        The first chunk's source.
    meta : dict
        Every chunk's ``meta``, merged.
    first, last : float or None
        Start of the first chunk and end of the last one seen (s).
    reached_end : bool
        Whether the pass read the capture to its end.
    """

    def __init__(self, start_s: float | None, end_s: float | None) -> None:
        self.start_s, self.end_s = start_s, end_s
        self.source = ""
        self.meta: dict[str, Any] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.reached_end = True

    def see(self, fr: Frames, meta: dict[str, Any] | None = None) -> None:
        """Note chunk ``fr`` (``meta``: what to merge instead of ``fr.meta``)."""
        self.source = self.source or fr.source
        self.first = fr.start_s if self.first is None else self.first
        self.last = fr.end_s
        self.meta.update(fr.meta if meta is None else meta)

    def range_text(self) -> str:
        """``" between A and B s"`` for error messages ("" when no range was asked)."""
        if self.start_s is None and self.end_s is None:
            return ""
        a = self.start_s if self.start_s is not None else "the start"
        b = self.end_s if self.end_s is not None else "the end"
        return f" between {a} and {b} s"

    def columns(self, binner: TimeBinner, max_columns: int, *, rows_per_column: int = 2
                ) -> tuple[float, float, dict[str, np.ndarray]]:
        """``(t0, t1, columns)``: the time range summarised (from the binner's origin to
        ``end_s`` or its last row, s) and the binner's columns over it
        (:func:`n_output_columns`)."""
        t0 = float(binner.origin)
        t1 = float(self.end_s) if self.end_s is not None else float(binner.last_s)
        span = max(t1 - t0, 1e-9)
        n = n_output_columns(binner, max_columns, span, rows_per_column=rows_per_column)
        return t0, t1, binner.columns(n, span)

    def fields(self, t0: float, t1: float, edges_s: np.ndarray, n_rows: int
               ) -> dict[str, Any]:
        """The :class:`Summary` fields other than ``modality`` and the plotter's own."""
        return dict(source=self.source, start_s=t0, end_s=t1, edges_s=edges_s, n_rows=n_rows,
                    capture_s=(self.last - self.first)
                    if self.reached_end and self.first is not None else None,
                    partial=self.start_s is not None or self.end_s is not None,
                    meta=self.meta)


# ------------------------------------------------------------------------------ summary
@dataclass
class Summary:
    """A bounded summary of (a time range of) one capture, the input of ``draw``.

    Attributes
    ----------
    modality : str
        ``wifi_csi``, ``eeg`` …
    source : str
        The capture's file name.
    start_s, end_s : float
        Time range summarised (s from the start of the stream).
    edges_s : numpy.ndarray
        ``(columns + 1,)`` column edges in s.
    n_rows : int
        Rows (packets, samples) summarised.
    format : str
        Capture format name (set by :func:`sensing.plot.plot_capture`).
    capture_s : float or None
        Duration of the whole capture in s, when it was read to its end.
    partial : bool
        A time range was asked for (the title says which part is shown).
    meta : dict
        Stream metadata of the capture (``Frames.meta``).
    """

    modality: str
    source: str
    start_s: float
    end_s: float
    edges_s: np.ndarray
    n_rows: int
    format: str = ""
    capture_s: float | None = None
    partial: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> int:
        """Number of time columns."""
        return len(self.edges_s) - 1

    @property
    def times_s(self) -> np.ndarray:
        """Column centres in s."""
        return 0.5 * (self.edges_s[:-1] + self.edges_s[1:])

    @property
    def bin_s(self) -> float:
        """Column width in s."""
        return float(self.edges_s[1] - self.edges_s[0]) if self.columns else float("nan")

    def title(self) -> str:
        """``"name — format (modality), duration 60.0 s"`` (plus the range shown, when a
        time range was asked for)."""
        fmt = f"{self.format} ({self.modality})" if self.format else self.modality
        bits = [fmt]
        if self.capture_s is not None:
            bits.append(f"duration {self.capture_s:.1f} s")
        if self.partial:
            bits.append(f"shown {self.start_s:.1f}–{self.end_s:.1f} s")
        return f"{self.source} — {', '.join(bits)}"


class Plotter:
    """One modality's default plot: a bounded :meth:`summarize` pass over the chunks, and
    :meth:`draw` of that summary with the events on a matplotlib figure.

    Subclasses set ``modality`` and ``description`` and register with
    ``@PLOTTERS.register("<modality>")``.
    """

    modality: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: Figure size in inches (width, height).
    figsize: ClassVar[tuple[float, float]] = (12.0, 7.0)

    def figure_size(self, summary: Summary) -> tuple[float, float]:
        """Figure size in inches for ``summary`` (default :attr:`figsize`)."""
        return self.figsize

    def summarize(self, chunks: Iterable[Frames], *, start_s: float | None = None,
                  end_s: float | None = None, channels: Sequence[str | int] | None = None,
                  max_columns: int = 1500) -> Summary:  # pragma: no cover - abstract
        raise NotImplementedError

    def draw(self, summary: Summary, events: Sequence[dict[str, Any]],
             fig: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


#: Registered plotters: modality → :class:`Plotter` subclass (one module of
#: ``sensing/plot/`` per modality; plug-ins through the ``ambisense.plotters`` group).
PLOTTERS: Registry[type[Plotter]] = Registry("plotter", package="sensing.plot",
                                             group="ambisense.plotters", folder="plotters")


# ------------------------------------------------------------------------------ events
def event_time(ev: dict[str, Any]) -> float | None:
    """``offset_s`` of an event dict as a float (None when missing or not a number)."""
    try:
        t = float(ev.get("offset_s"))
    except (TypeError, ValueError):
        return None
    return t if math.isfinite(t) else None


def events_in(events: Sequence[dict[str, Any]], start_s: float,
              end_s: float) -> list[dict[str, Any]]:
    """Events that touch ``[start_s, end_s]``: an instant inside it, or a span
    (``duration_s``) overlapping it; motion/presence changes before it are kept too (they
    set the state at the start)."""
    out = []
    for ev in events:
        t = event_time(ev)
        if t is None:
            continue
        dur = ev.get("duration_s")
        dur = float(dur) if isinstance(dur, (int, float)) else 0.0
        if t <= end_s and (t + dur >= start_s or ev.get("type") in ("motion", "presence")):
            out.append(ev)
    return out


def check_columns(max_columns: int) -> int:
    """``max_columns`` as an int ≥ 2 (:class:`PlotInputError` otherwise)."""
    if isinstance(max_columns, bool) or not isinstance(max_columns, (int, np.integer)) \
            or max_columns < 2:
        raise PlotInputError(f"max_columns must be an integer >= 2, got {max_columns!r}")
    return int(max_columns)
