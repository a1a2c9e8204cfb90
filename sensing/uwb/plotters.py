"""Default plots of UWB CIR (``uwb_cir``) and radar (``radar``) captures.

Top: the **range-time map** of what moves, in dB: CIRs aligned on the first path,
normalised and de-rotated (:class:`~sensing.uwb.conditioning.CirAligner`), radar frames
as they are, the static background removed (:class:`~sensing.uwb.conditioning.
ClutterRemover`, 4 s), the magnitude averaged per time column and per range row (at
most 128 rows; wide radar frames are grouped). Below: the events — ``breathing_rate``
(bpm, dots), ``presence`` states (shaded when occupied), ``fall`` (red lines through both
panels) and ``link_state`` (``nlos`` windows marked). Memory is bounded by the number of
columns × rows whatever the capture's length.
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
from sensing.uwb.conditioning import CirAligner, ClutterRemover, range_axis

#: Range rows of the map at most (wider frames are grouped).
MAX_ROWS = 128


@dataclass
class RangeTimeSummary(Summary):
    """:class:`~sensing.plot.base.Summary` of a UWB/radar capture.

    Attributes
    ----------
    range_m : numpy.ndarray
        ``(rows,)`` range of each map row (m; for CIRs the excess path / 2 after the first
        path).
    magnitude : numpy.ndarray
        ``(rows, columns)`` mean magnitude after clutter removal (data units, linear; NaN
        where a column holds no frame).
    """

    range_m: np.ndarray | None = None
    magnitude: np.ndarray | None = None


class _RangeTimePlotter(Plotter):
    figsize = (12.0, 7.0)

    def summarize(self, chunks: Iterable[Frames], *, start_s: float | None = None,
                  end_s: float | None = None, channels: Sequence[str | int] | None = None,
                  max_columns: int = 1500) -> RangeTimeSummary:
        """Stream ``chunks`` into a bounded range-time summary (``channels`` is not used:
        every range bin is drawn).

        Raises
        ------
        PlotInputError
            No frame in the range.
        """
        max_columns = check_columns(max_columns)
        align = CirAligner(before=8, after=56)
        clutter = ClutterRemover(time_constant_s=4.0)
        binner = None
        rng = None
        groups: np.ndarray | None = None
        scan = ChunkScan(start_s, end_s)
        for fr in chunks:
            if not len(fr):
                continue
            scan.see(fr, {k: v for k, v in fr.meta.items() if k != "range_m"})
            if end_s is not None and fr.start_s > end_s:
                scan.reached_end = False
                break
            fr = clip_chunk(fr, start_s, end_s)
            if fr is None:
                continue
            cond = align.push(fr) if fr.modality == "uwb_cir" else fr
            x = np.asarray(cond.data).reshape(len(cond), -1)
            if rng is None:
                r = range_axis(cond)
                r = r if len(r) == x.shape[1] else np.arange(x.shape[1], dtype=float)
                step = max(1, math.ceil(x.shape[1] / MAX_ROWS))
                groups = np.arange(x.shape[1]) // step
                rng = np.array([r[groups == g].mean() for g in np.unique(groups)])
                binner = initial_binner(2 * max_columns, len(rng), start_s, end_s)
            if x.shape[1] != len(groups):
                continue  # a width change mid-capture: keep the first layout
            dyn = np.abs(clutter.push(cond).data.reshape(len(cond), -1)).astype(np.float64)
            if len(rng) != dyn.shape[1]:
                dyn = np.stack([dyn[:, groups == g].mean(axis=1) for g in range(len(rng))],
                               axis=1)
            binner.add(cond.times_s, dyn)
        if binner is None or binner.n_rows == 0:
            raise PlotInputError(
                f"{scan.source or 'capture'}: no frames in the range asked for")
        t0, t1, cols = scan.columns(binner, max_columns)
        return RangeTimeSummary(
            modality=self.modality, **scan.fields(t0, t1, cols["edges_s"], binner.n_rows),
            range_m=rng, magnitude=cols["mean"].T.copy())

    def draw(self, summary: RangeTimeSummary, events: Sequence[dict[str, Any]],
             fig: Any) -> None:
        """Draw the range-time map and the events on ``fig``."""
        import matplotlib

        gs = fig.add_gridspec(2, 2, height_ratios=[3, 1.4], width_ratios=[60, 1])
        ax = fig.add_subplot(gs[0, 0])
        cax = fig.add_subplot(gs[0, 1])
        ax_e = fig.add_subplot(gs[1, 0], sharex=ax)
        fig.suptitle(summary.title())
        r = np.asarray(summary.range_m, float)
        mag = np.asarray(summary.magnitude, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            db = 20 * np.log10(np.where(mag > 0, mag, np.nan))
        if len(r) > 1:
            mid = 0.5 * (r[1:] + r[:-1])
            y_edges = np.r_[r[0] - (mid[0] - r[0]), mid, r[-1] + (r[-1] - mid[-1])]
        else:
            y_edges = np.array([r[0] - 0.5, r[0] + 0.5])
        finite = db[np.isfinite(db)]
        vmin, vmax = (np.percentile(finite, [5, 99.5]) if finite.size else (0.0, 1.0))
        if vmax <= vmin:
            vmax = vmin + 1.0
        cmap = matplotlib.colormaps["magma"].with_extremes(bad="#dddddd")
        mesh = ax.pcolormesh(summary.edges_s, y_edges, np.ma.masked_invalid(db), cmap=cmap,
                             vmin=vmin, vmax=vmax, shading="flat", rasterized=True)
        fig.colorbar(mesh, cax=cax, label="moving echo (dB, data units)")
        ax.set_ylabel("excess path / 2 (m)" if self.modality == "uwb_cir" else "range (m)")
        ax.set_title(f"range-time map, static background removed ({summary.columns} "
                     f"columns of {summary.bin_s:.3g} s)", fontsize="medium")
        ax.tick_params(labelbottom=False)
        self._events(summary, events, ax, ax_e)
        ax_e.set_xlim(summary.start_s, summary.end_s)
        ax_e.set_xlabel("time (s)")

    @staticmethod
    def _events(s: RangeTimeSummary, events: Sequence[dict[str, Any]], ax: Any,
                ax_e: Any) -> None:
        ax_e.set_ylabel("breathing (bpm)")
        bt, bv = [], []
        presence: list[tuple[float, int]] = []
        for ev in events:
            t = event_time(ev)
            if t is None:
                continue
            kind = ev.get("type")
            if kind == "breathing_rate" and isinstance(ev.get("value"), (int, float)):
                bt.append(t)
                bv.append(float(ev["value"]))
            elif kind == "presence":
                presence.append((t, int(bool(ev.get("value")))))
            elif kind == "fall":
                for a in (ax, ax_e):
                    a.axvline(t, color="red", lw=1.5)
            elif kind == "link_state" and ev.get("value") == "nlos":
                w = float(ev.get("window_s", 0) or 0)
                ax_e.axvspan(t - w, t, color="0.85", lw=0, zorder=0)
        presence.sort()
        for i, (t, v) in enumerate(presence):
            if v:
                end = presence[i + 1][0] if i + 1 < len(presence) else s.end_s
                ax_e.axvspan(t, end, color="tab:green", alpha=0.15, lw=0, zorder=0)
        if bt:
            ax_e.plot(bt, bv, "o", ms=4, color="tab:blue", label="breathing_rate")
            lo, hi = min(bv), max(bv)
            ax_e.set_ylim(max(lo - 3, 0), hi + 3)
        else:
            ax_e.text(0.5, 0.5, "no breathing_rate events", ha="center", va="center",
                      transform=ax_e.transAxes, fontsize="small", color="0.4")


@PLOTTERS.register("uwb_cir")
class UwbCirPlotter(_RangeTimePlotter):
    """Range-time map of aligned, clutter-removed CIRs, with the UWB events."""

    modality = "uwb_cir"
    description = ("range-time map of the aligned CIRs, static background removed (dB); "
                   "breathing_rate, presence, fall, link_state events")


@PLOTTERS.register("radar")
class RadarPlotter(_RangeTimePlotter):
    """Range-time map of clutter-removed radar frames, with the events."""

    modality = "radar"
    description = ("range-time map of the radar frames, static background removed (dB); "
                   "breathing_rate, presence, fall events")
