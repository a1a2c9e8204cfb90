"""Default plot of a WiFi CSI capture (ESP32, Intel 5300, Nexmon, PicoScenes, ESPectre).

Top: the amplitude heat map, subcarriers × time in dB (mean |CSI| per time column, averaged
over the selected receive antennas and every transmit stream). Below: the breathing
waveform, the mean amplitude over subcarriers in % of its median, band-passed 0.1–0.7 Hz
(6–42 breaths/min), with the reported ``breathing_rate`` events on a second axis (bpm),
``motion`` as shaded spans (from a value-1 event to the next value-0 one), ``presence``
changes as ticks and ``fall`` events as red vertical lines through both panels.
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

#: At most this many subcarrier rows in the heat map (wider channels are grouped).
MAX_ROWS = 256
#: Packets per time column at least, on average (fewer columns for sparse captures).
ROWS_PER_COLUMN = 4
#: Empty columns (lost packets) up to this long are filled from their neighbours (s).
FILL_GAP_S = 1.0
#: Breathing band in Hz (6–42 breaths/min).
BREATHING_BAND_HZ = (0.1, 0.7)


@dataclass
class WifiCsiSummary(Summary):
    """:class:`~sensing.plot.base.Summary` of a CSI capture.

    Attributes
    ----------
    subcarriers : numpy.ndarray
        ``(n_rows,)`` subcarrier index of each heat-map row (the first of a group when
        wide channels are grouped by ``subcarrier_step``).
    amplitude : numpy.ndarray
        ``(n_rows, columns)`` mean |CSI| (CSI units, linear; NaN where no packet).
    series_times_s, series : numpy.ndarray
        The mean amplitude over subcarriers on the finer internal bins (at most
        ``2 * max_columns``): time (s) and value (CSI units), for the breathing waveform.
    subcarrier_step : int
        Subcarriers per heat-map row (1 unless the channel has more than 256).
    antennas : tuple of int
        Receive antennas averaged.
    """

    subcarriers: np.ndarray | None = None
    amplitude: np.ndarray | None = None
    series_times_s: np.ndarray | None = None
    series: np.ndarray | None = None
    subcarrier_step: int = 1
    antennas: tuple[int, ...] = ()


def _amplitude(fr: Frames, channels: Sequence[int] | None) -> np.ndarray | None:
    """``(n, n_subcarriers)`` |CSI| averaged over the chosen rx antennas and all tx."""
    d = fr.data
    if d.ndim == 2:
        d = d[:, :, None, None]
    elif d.ndim == 3:
        d = d[:, :, :, None]
    if channels is not None:
        rx = [c for c in channels if c < d.shape[2]]
        if not rx:
            return None
        d = d[:, :, rx]
    return np.abs(d).mean(axis=(2, 3), dtype=np.float64)


def _antennas(channels: Sequence[str | int] | None) -> list[int] | None:
    if channels is None:
        return None
    out = []
    for c in channels:
        try:
            i = int(c)
        except (TypeError, ValueError):
            raise PlotInputError(f"WiFi CSI channels are receive antenna indices (0, 1, …), "
                                 f"got {c!r}") from None
        if i < 0:
            raise PlotInputError(f"antenna index must be >= 0, got {i}")
        out.append(i)
    return out or None


def _series(binner: Any) -> tuple[np.ndarray, np.ndarray]:
    """The mean-amplitude series on the finest bins that most packets fill: the internal
    bins merged pairwise until at least 80 % of them hold a packet."""
    fine = binner.fine()
    s = np.where(fine["count"][:, 0] > 0, fine["mean"][:, 0], 0.0) * fine["count"][:, 0]
    c = fine["count"][:, 0].astype(float)
    t0, w = float(binner.origin), float(binner.width)
    while len(c) > 64 and np.mean(c > 0) < 0.8:
        if len(c) % 2:
            s, c = np.r_[s, 0.0], np.r_[c, 0.0]
        s, c, w = s[0::2] + s[1::2], c[0::2] + c[1::2], 2 * w
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(c > 0, s / np.maximum(c, 1), np.nan)
    return t0 + (np.arange(len(c)) + 0.5) * w, mean


def _long_gaps(gap: np.ndarray, max_len: float) -> np.ndarray:
    """Mask of the runs of True in ``gap`` longer than ``max_len`` samples."""
    out = np.zeros(len(gap), bool)
    if not gap.any():
        return out
    d = np.diff(np.r_[0, gap.astype(np.int8), 0])
    for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
        if b - a > max_len:
            out[a:b] = True
    return out


def _trim_empty_rows(sc: np.ndarray, amp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the edge rows without any amplitude (guard and null subcarriers)."""
    with np.errstate(invalid="ignore"):
        live = np.nan_to_num(amp, nan=0.0).max(axis=1) > 0
    if not live.any():
        return sc, amp
    i, j = int(np.argmax(live)), len(live) - int(np.argmax(live[::-1]))
    return sc[i:j], amp[i:j]


@PLOTTERS.register("wifi_csi")
class WifiCsiPlotter(Plotter):
    """Amplitude heat map (dB) over the breathing waveform, with the CSI events."""

    modality = "wifi_csi"
    description = ("amplitude heat map (subcarriers × time, dB) over the 0.1–0.7 Hz "
                   "breathing waveform; breathing_rate, motion, presence, fall events")
    figsize = (12.0, 7.0)

    def summarize(self, chunks: Iterable[Frames], *, start_s: float | None = None,
                  end_s: float | None = None, channels: Sequence[str | int] | None = None,
                  max_columns: int = 1500) -> WifiCsiSummary:
        """Stream ``chunks`` into a bounded summary.

        Parameters
        ----------
        chunks : iterable of Frames
            ``wifi_csi`` chunks (a capture reader).
        start_s, end_s : float, optional
            Time range in s (stream time); default: the whole capture.
        channels : sequence of int, optional
            Receive antenna indices to average (default: all).
        max_columns : int
            At most this many time columns; memory is ``O(max_columns × subcarriers)``
            whatever the capture's length.

        Raises
        ------
        PlotInputError
            No packet in the range, or a bad antenna index.
        """
        max_columns = check_columns(max_columns)
        rx = _antennas(channels)
        binner = initial_binner(2 * max_columns, 1, start_s, end_s)
        keys: dict[int, int] = {}  # subcarrier group → binner feature (0: the mean)
        step: int | None = None
        scan = ChunkScan(start_s, end_s)
        for fr in chunks:
            if not len(fr):
                continue
            scan.see(fr)
            if end_s is not None and fr.start_s > end_s:
                scan.reached_end = False
                break
            fr = clip_chunk(fr, start_s, end_s)
            if fr is None:
                continue
            amp = _amplitude(fr, rx)
            if amp is None:
                continue
            n_sc = amp.shape[1]
            sc = (np.asarray(fr.subcarriers, np.int64)
                  if fr.subcarriers is not None and len(fr.subcarriers) == n_sc
                  else np.arange(n_sc))
            if step is None:
                step = max(1, math.ceil(n_sc / MAX_ROWS))
            group = sc // step
            uk, inv = np.unique(group, return_inverse=True)
            if len(uk) != n_sc:  # mean of each group of subcarriers
                onehot = np.zeros((n_sc, len(uk)))
                onehot[np.arange(n_sc), inv] = 1.0
                amp_g = amp @ onehot / onehot.sum(axis=0)
            else:
                amp_g = amp[:, np.argsort(group)] if np.any(np.diff(group) < 0) else amp
                uk = np.sort(group)
            for g in uk.tolist():
                if g not in keys:
                    keys[g] = len(keys) + 1
            binner.grow(len(keys) + 1)
            vals = np.full((len(amp_g), len(keys) + 1), np.nan)
            vals[:, [keys[g] for g in uk.tolist()]] = amp_g
            vals[:, 0] = amp.mean(axis=1)
            binner.add(fr.times_s, vals)
        if binner.n_rows == 0:
            raise PlotInputError(f"{scan.source or 'capture'}: no CSI packets{scan.range_text()}")
        t0, t1, cols = scan.columns(binner, max_columns, rows_per_column=ROWS_PER_COLUMN)
        order = sorted(keys)
        idx = [keys[g] for g in order]
        series_t, series = _series(binner)
        return WifiCsiSummary(
            modality=self.modality, **scan.fields(t0, t1, cols["edges_s"], binner.n_rows),
            subcarriers=np.asarray(order, np.int64) * (step or 1),
            amplitude=cols["mean"][:, idx].T.copy(),
            series_times_s=series_t, series=series,
            subcarrier_step=step or 1, antennas=tuple(rx) if rx else (),
        )

    # ---------------------------------------------------------------------- drawing
    def draw(self, summary: WifiCsiSummary, events: Sequence[dict[str, Any]],
             fig: Any) -> None:
        """Draw the heat map, the breathing waveform and the events on ``fig``."""
        gs = fig.add_gridspec(2, 2, height_ratios=[3, 2], width_ratios=[60, 1])
        ax_h = fig.add_subplot(gs[0, 0])
        cax = fig.add_subplot(gs[0, 1])
        ax_b = fig.add_subplot(gs[1, 0], sharex=ax_h)
        fig.suptitle(summary.title())
        self._heatmap(summary, ax_h, cax, fig)
        self._breathing(summary, ax_b)
        ax_r = ax_b.twinx()
        handles = self._events(summary, events, ax_h, ax_b, ax_r)
        ax_b.set_xlim(summary.start_s, summary.end_s)
        ax_b.set_xlabel("time (s)")
        h_b, _ = ax_b.get_legend_handles_labels()
        handles = h_b + handles
        if handles:
            ax_b.legend(handles=handles, loc="lower left", fontsize="small", ncols=5,
                        framealpha=0.8)

    @staticmethod
    def _heatmap(s: WifiCsiSummary, ax: Any, cax: Any, fig: Any) -> None:
        import matplotlib

        sc, amp = _trim_empty_rows(s.subcarriers.astype(float), np.asarray(s.amplitude, float))
        with np.errstate(divide="ignore", invalid="ignore"):
            db = 20 * np.log10(np.where(amp > 0, amp, np.nan))
        if len(sc) > 1:
            mid = 0.5 * (sc[1:] + sc[:-1])
            y_edges = np.r_[sc[0] - (mid[0] - sc[0]), mid, sc[-1] + (sc[-1] - mid[-1])]
        else:
            y_edges = np.array([sc[0] - 0.5, sc[0] + 0.5])
        if db.shape[1] > 2:  # short packet-loss gaps: interpolated for display
            from sensing.dsp.resample import fill_gaps

            valid = np.isfinite(db).any(axis=0)
            db = fill_gaps(db, valid, max_gap_samples=FILL_GAP_S / s.bin_s, axis=1)
        finite = db[np.isfinite(db)]
        vmin, vmax = (np.percentile(finite, [2, 99.5]) if finite.size else (0.0, 1.0))
        if vmax <= vmin:
            vmax = vmin + 1.0
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
        mesh = ax.pcolormesh(s.edges_s, y_edges, np.ma.masked_invalid(db), cmap=cmap,
                             vmin=vmin, vmax=vmax, shading="flat", rasterized=True)
        fig.colorbar(mesh, cax=cax, label="|CSI| (dB, CSI units)")
        group = f", {s.subcarrier_step} per row" if s.subcarrier_step > 1 else ""
        ax.set_ylabel(f"subcarrier index{group}")
        ants = (f"antennas {', '.join(map(str, s.antennas))}" if s.antennas
                else "all antennas")
        ax.set_title(f"CSI amplitude ({s.columns} columns of {s.bin_s:.3g} s, {ants})",
                     fontsize="medium")
        ax.tick_params(labelbottom=False)

    @staticmethod
    def _breathing(s: WifiCsiSummary, ax: Any) -> None:
        from scipy import signal

        t = np.asarray(s.series_times_s, float)
        y = np.asarray(s.series, float)
        keep = t <= s.end_s + 1e-9
        t, y = t[keep], y[keep]
        valid = np.isfinite(y)
        lo, hi = BREATHING_BAND_HZ
        ax.set_ylabel("breathing (Δ|CSI| %)")
        if valid.sum() < 8:
            ax.text(0.5, 0.5, "too few packets for a breathing waveform", ha="center",
                    transform=ax.transAxes)
            return
        from sensing.dsp.resample import fill_gaps

        y = fill_gaps(y, valid)
        med = float(np.median(y[valid]))
        y = 100.0 * (y / med - 1.0) if med > 0 else y - med
        fs = 1.0 / float(t[1] - t[0]) if len(t) > 1 else 0.0
        top = min(hi, 0.45 * fs)
        if len(t) > 1 and t[-1] - t[0] < 1.0 / lo:
            ax.plot(t, y, lw=0.9, color="0.35", label="mean amplitude (unfiltered)")
            ax.set_title(f"shorter than one {1 / lo:g} s breathing period: mean amplitude, "
                         "not band-passed", fontsize="small")
            ax.set_ylabel("mean amplitude (Δ|CSI| %)")
            return
        if top <= lo * 1.5:
            ax.plot(t, y, lw=0.8, color="0.4", label="mean amplitude (unfiltered)")
            ax.set_title(f"columns of {1 / fs:.2g} s are too wide for the {lo:g}–{hi:g} Hz "
                         "breathing band: plot a shorter range (--start-s/--end-s)",
                         fontsize="small")
            ax.set_ylabel("mean amplitude (Δ|CSI| %)")
            return
        sos = signal.butter(2, [lo, top], btype="bandpass", fs=fs, output="sos")
        try:
            yf = signal.sosfiltfilt(sos, y - y.mean())
        except ValueError:  # shorter than the filter's padding
            yf = signal.sosfilt(sos, y - y.mean())
        yf[_long_gaps(~valid, FILL_GAP_S * fs)] = np.nan  # gaps of more than 1 s stay gaps
        ax.plot(t, yf, lw=0.9, color="C0", label=f"mean amplitude, {lo:g}–{top:.2g} Hz")
        lim = np.nanpercentile(np.abs(yf), 99) * 1.4 if np.isfinite(yf).any() else 1.0
        if lim > 0:
            ax.set_ylim(-lim * 1.5, lim * 1.35)  # room for the legend and presence ticks

    @staticmethod
    def _events(s: WifiCsiSummary, events: Sequence[dict[str, Any]], ax_h: Any, ax_b: Any,
                ax_r: Any) -> list[Any]:
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles: list[Any] = []
        evs = sorted((e for e in events if event_time(e) is not None), key=event_time)
        # breathing rate on the second axis
        br = [(event_time(e), float(e["value"])) for e in evs
              if e.get("type") == "breathing_rate" and isinstance(e.get("value"), (int, float))]
        ax_r.set_ylabel("breathing rate (bpm)")
        top = max([40.0] + [v + 5 for _, v in br])
        ax_r.set_ylim(0, top)
        if br:
            tt, vv = zip(*br, strict=True)
            ax_r.plot(tt, vv, "o", ms=4, color="C1", zorder=5)
            handles.append(Line2D([], [], marker="o", ls="", color="C1",
                                  label="breathing_rate (bpm)"))
        # motion spans: value 1 starts one, value 0 ends it
        spans, start = [], None
        for e in evs:
            if e.get("type") != "motion":
                continue
            if e.get("value") in (1, True) and start is None:
                start = max(event_time(e), s.start_s)
            elif e.get("value") in (0, False) and start is not None:
                spans.append((start, event_time(e)))
                start = None
        if start is not None:
            spans.append((start, s.end_s))
        for a, b in spans:
            if b >= s.start_s:
                ax_b.axvspan(a, b, color="C3", alpha=0.15, lw=0)
        if spans:
            handles.append(Patch(color="C3", alpha=0.3, label="motion"))
        # presence changes as ticks at the top of the waveform panel
        prev = None
        tr = ax_b.get_xaxis_transform()
        n_pres = 0
        for e in evs:
            if e.get("type") != "presence":
                continue
            v = e.get("value")
            if v == prev:
                continue
            prev = v
            t = event_time(e)
            if t < s.start_s:
                continue
            here = bool(v)
            ax_b.plot([t], [0.97], marker="v", ms=7, transform=tr, clip_on=False,
                      color="C2" if here else "0.5", zorder=6)
            ax_b.text(t, 0.9, "present" if here else "empty", transform=tr, fontsize="x-small",
                      ha="left", va="top", color="C2" if here else "0.35")
            n_pres += 1
        if n_pres:
            handles.append(Line2D([], [], marker="v", ls="", color="C2",
                                  label="presence change"))
        # falls: red vertical lines through both panels
        falls = [e for e in evs if e.get("type") == "fall"]
        for e in falls:
            t = event_time(e)
            for ax in (ax_h, ax_b):
                ax.axvline(t, color="red", lw=1.6, zorder=7)
            conf = e.get("confidence")
            label = f"fall {conf:.2f}" if isinstance(conf, (int, float)) else "fall"
            ax_h.text(t, 0.98, label, transform=ax_h.get_xaxis_transform(), color="red",
                      ha="center", va="top", fontsize="small", fontweight="bold",
                      bbox={"fc": "white", "alpha": 0.8, "lw": 0, "pad": 1.5}, zorder=8)
        if falls:
            handles.append(Line2D([], [], color="red", lw=1.6, label="fall"))
        return handles
