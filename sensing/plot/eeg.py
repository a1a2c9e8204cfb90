"""Default plot of an EEG recording (EDF/EDF+/BDF, single-channel text).

The channels are stacked, each drawn as its min/max envelope per time column (a decimation
that keeps spikes and seizure rhythms visible however long the recording), labelled with
its name; at most :data:`MAX_CHANNELS` channels (``channels`` picks others). ``seizure``
events are shaded from their onset for ``duration_s``, ``seizure_alert`` events are
vertical lines. When the events carry a probability trace it is drawn below, on a 0–1 axis:
events of type ``seizure_probability`` (``value``), any event with a numeric
``probability`` field, or a ``probability_trace`` field ``{"times_s": [...],
"values": [...]}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sensing.frames import Frames
from sensing.plot.base import (
    PLOTTERS,
    ChunkScan,
    PlotInputError,
    Plotter,
    Summary,
    check_columns,
    clip_chunk,
    event_time,
    initial_binner,
)

#: Channels drawn when ``channels`` is not given (a full 10–20 bipolar montage).
MAX_CHANNELS = 23


@dataclass
class EegSummary(Summary):
    """:class:`~sensing.plot.base.Summary` of an EEG recording.

    Attributes
    ----------
    channel_names : tuple of str
        Names of the summarised channels (top to bottom).
    mean, min, max : numpy.ndarray
        ``(columns, n_channels)`` per-column mean, minimum and maximum in µV (NaN where a
        column holds no sample).
    fs_hz : float or None
        Sample rate in Hz.
    n_channels_total : int
        Channels in the recording (more than shown when it has over 23).
    unit : str
        ``"µV"``.
    """

    channel_names: tuple[str, ...] = ()
    mean: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    fs_hz: float | None = None
    n_channels_total: int = 0
    unit: str = "µV"


def _select(names: tuple[str, ...], channels: Sequence[str | int] | None) -> list[int]:
    """Column indices for ``channels`` (names, case-insensitive, or indices)."""
    if channels is None:
        return list(range(min(len(names), MAX_CHANNELS)))
    lower = {n.lower(): i for i, n in enumerate(names)}
    out: list[int] = []
    for c in channels:
        if isinstance(c, str) and c.strip().lower() in lower:
            i = lower[c.strip().lower()]
        else:
            try:
                i = int(c)
            except (TypeError, ValueError):
                i = -1
            if not 0 <= i < len(names):
                raise PlotInputError(f"unknown EEG channel {c!r}; channels: "
                                     f"{', '.join(names)} (or indices 0–{len(names) - 1})")
        if i not in out:
            out.append(i)
    if not out:
        raise PlotInputError("no EEG channel selected")
    return out


def _nice(x: float) -> float:
    """1, 2 or 5 × 10^n closest below ``x``."""
    if not x > 0 or not math.isfinite(x):
        return 1.0
    e = 10 ** math.floor(math.log10(x))
    return max(m * e for m in (1, 2, 5) if m * e <= x)


@PLOTTERS.register("eeg")
class EegPlotter(Plotter):
    """Stacked channel envelopes with the seizure events."""

    modality = "eeg"
    description = ("stacked channels (min/max envelope per column, µV); seizure spans, "
                   "seizure_alert lines, probability trace when the events carry one")

    def figure_size(self, summary: Summary) -> tuple[float, float]:
        n = len(getattr(summary, "channel_names", ())) or 1
        return (12.0, float(min(max(4.0, 1.6 + 0.32 * n), 11.0)))

    def summarize(self, chunks: Iterable[Frames], *, start_s: float | None = None,
                  end_s: float | None = None, channels: Sequence[str | int] | None = None,
                  max_columns: int = 1500) -> EegSummary:
        """Stream ``chunks`` into a bounded summary.

        Parameters
        ----------
        chunks : iterable of Frames
            ``eeg`` chunks, ``(n_samples, n_channels)`` in µV.
        start_s, end_s : float, optional
            Time range in s; default: the whole recording.
        channels : sequence of str or int, optional
            Channel names (case-insensitive) or indices; default: the first 23.
        max_columns : int
            At most this many time columns; memory is ``O(max_columns × channels)``.

        Raises
        ------
        PlotInputError
            No sample in the range, or an unknown channel (the message lists them).
        """
        max_columns = check_columns(max_columns)
        binner = None
        sel: list[int] = []
        names: tuple[str, ...] = ()
        fs = None
        scan = ChunkScan(start_s, end_s)
        for fr in chunks:
            if not len(fr):
                continue
            scan.see(fr)
            if binner is None:
                n_ch = fr.data.shape[1] if fr.data.ndim > 1 else 1
                names = tuple(fr.channel_names or ()) or tuple(f"ch{i}" for i in range(n_ch))
                sel = _select(names, channels)
                fs = fr.fs_hz
                binner = initial_binner(2 * max_columns, len(sel), start_s, end_s,
                                        minmax=True)
            if end_s is not None and fr.start_s > end_s:
                scan.reached_end = False
                break
            fr = clip_chunk(fr, start_s, end_s)
            if fr is None:
                continue
            d = fr.data if fr.data.ndim > 1 else fr.data[:, None]
            binner.add(fr.times_s, d[:, sel])
        if binner is None or binner.n_rows == 0:
            raise PlotInputError(
                f"{scan.source or 'recording'}: no EEG samples{scan.range_text()}")
        t0, t1, cols = scan.columns(binner, max_columns)
        return EegSummary(
            modality=self.modality, **scan.fields(t0, t1, cols["edges_s"], binner.n_rows),
            channel_names=tuple(names[i] for i in sel), mean=cols["mean"],
            min=cols["min"], max=cols["max"], fs_hz=fs, n_channels_total=len(names),
        )

    # ---------------------------------------------------------------------- drawing
    def draw(self, summary: EegSummary, events: Sequence[dict[str, Any]], fig: Any) -> None:
        """Draw the stacked channels, the seizure events and a probability trace."""
        trace = _probability_trace(events)
        if trace:
            gs = fig.add_gridspec(2, 1, height_ratios=[6, 1])
            ax = fig.add_subplot(gs[0])
            ax_p = fig.add_subplot(gs[1], sharex=ax)
        else:
            ax, ax_p = fig.add_subplot(1, 1, 1), None
        fig.suptitle(summary.title())
        spacing = self._channels(summary, ax)
        handles = self._events(summary, events, [a for a in (ax, ax_p) if a is not None])
        if ax_p is not None:
            tt, pp = zip(*sorted(trace), strict=True)
            ax_p.plot(tt, pp, drawstyle="steps-post", color="C4", lw=1.0)
            ax_p.set_ylim(0, 1.05)
            ax_p.set_ylabel("seizure\nprobability")
            ax_p.set_xlabel("time (s)")
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("time (s)")
        ax.set_xlim(summary.start_s, summary.end_s)
        shown = len(summary.channel_names)
        more = (f", {shown} of {summary.n_channels_total} channels"
                if summary.n_channels_total > shown else "")
        if spacing is not None:
            ax.set_ylabel(f"channel (spacing {spacing:.0f} µV{more})")
        fs = f", {summary.fs_hz:g} Hz" if summary.fs_hz else ""
        ax.set_title(f"EEG min/max envelope per column ({summary.columns} columns of "
                     f"{summary.bin_s:.3g} s{fs})", fontsize="medium")
        if handles:
            ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.85)

    @staticmethod
    def _channels(s: EegSummary, ax: Any) -> float | None:
        lo, hi, mean = (np.asarray(a, float) for a in (s.min, s.max, s.mean))
        n = lo.shape[1]
        centre = np.nanmedian(mean, axis=0)
        with np.errstate(all="ignore"):
            spread = np.nanpercentile(hi - centre, 95, axis=0) + np.nanpercentile(
                centre - lo, 95, axis=0)
        spread = spread[np.isfinite(spread) & (spread > 0)]
        spacing = float(np.median(spread)) if spread.size else 1.0
        edges = s.edges_s
        x = np.repeat(edges, 2)[1:-1]  # step-wise columns: [e0, e1, e1, e2, …]
        if n == 1:  # one channel: its own µV axis, nothing clipped
            ax.fill_between(x, np.repeat(lo[:, 0], 2), np.repeat(hi[:, 0], 2), lw=0.3,
                            color="#1f3b73", rasterized=True)
            ax.set_ylabel(f"{s.channel_names[0]} (µV)")
            return None
        for k in range(n):
            y0 = (n - 1 - k) * spacing
            a = np.clip(lo[:, k] - centre[k], -0.6 * spacing, 0.6 * spacing) + y0
            b = np.clip(hi[:, k] - centre[k], -0.6 * spacing, 0.6 * spacing) + y0
            ax.fill_between(x, np.repeat(a, 2), np.repeat(b, 2), lw=0.3,
                            color="#1f3b73" if k % 2 == 0 else "#2b7a4b", rasterized=True)
        ax.set_yticks([(n - 1 - k) * spacing for k in range(n)], list(s.channel_names),
                      fontsize="small" if n > 12 else "medium")
        ax.set_ylim(-spacing, n * spacing)
        # scale bar in the right margin of the plot
        bar = _nice(spacing)
        xb = s.end_s - 0.01 * (s.end_s - s.start_s)
        ax.plot([xb, xb], [-0.8 * spacing, -0.8 * spacing + bar], color="k", lw=2,
                solid_capstyle="butt", zorder=6)
        ax.text(xb, -0.8 * spacing + bar / 2, f"{bar:g} µV ", ha="right", va="center",
                fontsize="small", zorder=6)
        return spacing

    @staticmethod
    def _events(s: EegSummary, events: Sequence[dict[str, Any]], axes: list[Any]) -> list[Any]:
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles: list[Any] = []
        ax = axes[0]
        tr = ax.get_xaxis_transform()
        seiz = [e for e in events if e.get("type") == "seizure" and event_time(e) is not None]
        for e in seiz:
            t = event_time(e)
            dur = e.get("duration_s", e.get("value"))
            dur = float(dur) if isinstance(dur, (int, float)) else 0.0
            for a in axes:
                a.axvspan(t, t + dur, color="red", alpha=0.15, lw=0, zorder=0)
            ax.text(max(t, s.start_s), 0.995, f" seizure {dur:.0f} s", transform=tr,
                    color="darkred", ha="left", va="top", fontsize="small",
                    fontweight="bold", zorder=8,
                    bbox={"fc": "white", "alpha": 0.75, "lw": 0, "pad": 1})
        if seiz:
            handles.append(Patch(color="red", alpha=0.3, label="seizure (onset, duration_s)"))
        alerts = [e for e in events
                  if e.get("type") == "seizure_alert" and event_time(e) is not None]
        for e in alerts:
            t = event_time(e)
            for a in axes:
                a.axvline(t, color="darkorange", lw=1.4, ls="--", zorder=7)
            ax.text(t, 0.94, " alert", transform=tr, color="darkorange", ha="left",
                    va="top", fontsize="small", zorder=8)
        if alerts:
            handles.append(Line2D([], [], color="darkorange", ls="--", label="seizure_alert"))
        return handles


def _probability_trace(events: Sequence[dict[str, Any]]) -> list[tuple[float, float]]:
    """``(t, p)`` points of the probability trace the events carry (empty if none)."""
    pts: list[tuple[float, float]] = []
    for e in events:
        t = event_time(e)
        trace = e.get("probability_trace")
        if isinstance(trace, dict):
            ts, ps = trace.get("times_s") or [], trace.get("values") or []
            pts += [(float(a), float(b)) for a, b in zip(ts, ps, strict=False)
                    if isinstance(a, (int, float)) and isinstance(b, (int, float))]
        if t is None:
            continue
        if e.get("type") == "seizure_probability" and isinstance(e.get("value"), (int, float)):
            pts.append((t, float(e["value"])))
        elif isinstance(e.get("probability"), (int, float)):
            pts.append((t, float(e["probability"])))
    return pts
