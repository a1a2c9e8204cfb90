"""Default plots of captures, one plotter per modality (``ambisense plot``).

>>> from sensing.plot import plot_capture
>>> info = plot_capture("night.csv", "night.png", events=events)   # doctest: +SKIP

Each plotter (:data:`PLOTTERS`, keyed by modality: ``wifi_csi``, ``eeg``; a new modality
adds one module to this package, or a plug-in names one in the ``ambisense.plotters``
entry-point group) streams the capture once into a bounded :class:`Summary` (time split
into at most ``max_columns`` columns, per-column mean, min/max for EEG, so memory does not
grow with the capture's length) and draws it with the events on a matplotlib figure.

matplotlib is imported only when a figure is drawn (never on ``import sensing`` or by the
CLI's start-up); without it :class:`PlotUnavailableError` says how to install it. Figures
use the Agg canvas directly (no pyplot, no global state).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from sensing.plot.base import (
    MATPLOTLIB_MISSING,
    PLOTTERS,
    NoPlotterError,
    PlotInputError,
    Plotter,
    PlotUnavailableError,
    Summary,
    TimeBinner,
    events_in,
    new_figure,
    require_matplotlib,
)

__all__ = ["PLOTTERS", "Plotter", "Summary", "TimeBinner", "PlotInfo", "plot_capture",
           "read_events_jsonl", "summarize_capture", "require_matplotlib",
           "PlotUnavailableError", "NoPlotterError", "PlotInputError", "MATPLOTLIB_MISSING",
           "IMAGE_FORMATS"]

#: Image formats written, by file suffix.
IMAGE_FORMATS = ("png", "svg")


@dataclass(frozen=True)
class PlotInfo:
    """What :func:`plot_capture` drew.

    Attributes
    ----------
    path : str
        The capture plotted.
    format : str
        Its capture format (``esp32_csi``, ``edf`` …).
    modality : str
        Its modality (``wifi_csi``, ``eeg``), i.e. the plotter used.
    columns : int
        Time columns of the summary (≤ ``max_columns``).
    start_s, end_s : float
        Time range drawn, in s from the start of the stream.
    n_events : int
        Events given that fall in that range (those drawn).
    out : str or None
        Image file written (None for a file object).
    image_format : str
        ``"png"`` or ``"svg"``.
    """

    path: str
    format: str
    modality: str
    columns: int
    start_s: float
    end_s: float
    n_events: int
    out: str | None = None
    image_format: str = "png"


def _image_format(out: str | os.PathLike | IO[bytes], fmt: str | None) -> str:
    if fmt is not None:
        f = str(fmt).lower().lstrip(".")
    elif isinstance(out, (str, os.PathLike)):
        f = os.path.splitext(os.fspath(out))[1].lower().lstrip(".")
        if not f:
            raise PlotInputError(f"{os.fspath(out)}: no file suffix; name the image "
                                 f"FILE.png or FILE.svg")
    else:
        raise PlotInputError("writing to a file object needs fmt='png' or fmt='svg'")
    if f not in IMAGE_FORMATS:
        raise PlotInputError(f"image format {f!r} is not supported; use one of: "
                             f"{', '.join(IMAGE_FORMATS)}")
    return f


def _plotter_for(modality: str, path: str) -> Plotter:
    try:
        return PLOTTERS.get(modality)()
    except KeyError:
        raise NoPlotterError(
            f"{path}: no plotter for {modality!r} captures; plotters exist for: "
            f"{', '.join(PLOTTERS.names()) or '(none)'}") from None


def summarize_capture(path: str | os.PathLike, *, start_s: float | None = None,
                      end_s: float | None = None, channels: Sequence[str | int] | None = None,
                      max_columns: int = 1500, format: str | None = None) -> Summary:
    """Open ``path`` and stream it into its plotter's bounded :class:`Summary` (no
    matplotlib needed).

    Raises
    ------
    sensing.errors.UnsupportedFormatError
        Not a known capture format, or (:class:`NoPlotterError`) no plotter for its modality.
    PlotInputError
        A bad time range or channel, or nothing in the range.
    """
    from sensing.formats import open_capture

    path = os.fspath(path)
    if start_s is not None and end_s is not None and not end_s > start_s:
        raise PlotInputError(f"end_s ({end_s} s) must be after start_s ({start_s} s)")
    reader = open_capture(path, format=format)
    plotter = _plotter_for(reader.modality, path)
    summary = plotter.summarize(reader.chunks(), start_s=start_s, end_s=end_s,
                                channels=channels, max_columns=max_columns)
    summary.format = reader.name
    return summary


def plot_capture(path: str | os.PathLike, out: str | os.PathLike | IO[bytes], *,
                 fmt: str | None = None, events: Sequence[dict[str, Any]] | None = None,
                 start_s: float | None = None, end_s: float | None = None,
                 channels: Sequence[str | int] | None = None, max_columns: int = 1500,
                 dpi: float = 100, format: str | None = None) -> PlotInfo:
    """Draw the default plot of one capture, with its events, to a PNG or SVG.

    Parameters
    ----------
    path : str or os.PathLike
        The capture (any supported format).
    out : str, os.PathLike or binary file object
        Image to write; its suffix (``.png``, ``.svg``) gives the format unless ``fmt``.
    fmt : {"png", "svg"}, optional
        Image format (needed when ``out`` is a file object).
    events : list of dict, optional
        Events (schema ``ambisense.event/1``) to draw; those outside the range are left out.
    start_s, end_s : float, optional
        Time range in s from the start of the stream; default: the whole capture.
    channels : list of str or int, optional
        EEG: channel names or indices (default: the first 23). WiFi CSI: receive antenna
        indices averaged (default: all).
    max_columns : int
        At most this many time columns (memory bound of the summary).
    dpi : float
        Resolution: the PNG is ``figure size × dpi`` pixels (12 in wide).
    format : str, optional
        Capture format name; detected from the content when omitted.

    Returns
    -------
    PlotInfo

    Raises
    ------
    PlotUnavailableError
        matplotlib is not installed (checked before the capture is read).
    NoPlotterError
        No plotter for the capture's modality (the message lists those there are).
    PlotInputError
        A bad image format, time range, channel, dpi, or nothing in the range.
    """
    image_format = _image_format(out, fmt)
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not 10 <= dpi <= 1000:
        raise PlotInputError(f"dpi must be a number from 10 to 1000, got {dpi!r}")
    matplotlib = require_matplotlib()
    summary = summarize_capture(path, start_s=start_s, end_s=end_s, channels=channels,
                                max_columns=max_columns, format=format)
    plotter = _plotter_for(summary.modality, os.fspath(path))
    evs = events_in(list(events or []), summary.start_s, summary.end_s)
    style = {"svg.fonttype": "none", "svg.hashsalt": "ambisense", "font.size": 9,
             "axes.titlesize": 10, "figure.titlesize": 11}
    with matplotlib.rc_context(style):
        fig = new_figure(*plotter.figure_size(summary), dpi=dpi)
        plotter.draw(summary, evs, fig)
        target = out
        if isinstance(out, (str, os.PathLike)):
            target = os.fspath(out)
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        meta = {"Date": None} if image_format == "svg" else {"Software": "ambisense"}
        fig.savefig(target, format=image_format, dpi=dpi, metadata=meta)
    return PlotInfo(
        path=os.fspath(path), format=summary.format, modality=summary.modality,
        columns=summary.columns, start_s=summary.start_s, end_s=summary.end_s,
        n_events=len(evs), out=target if isinstance(target, str) else None,
        image_format=image_format)


def read_events_jsonl(path: str | os.PathLike, *, source: str | None = None
                      ) -> list[dict[str, Any]]:
    """Events from a JSON Lines file (``ambisense replay --jsonl``, the agent's file sink).

    Parameters
    ----------
    path : str or os.PathLike
        One JSON event object per line; blank lines are skipped.
    source : str, optional
        Keep only the events of this ``source`` (a capture's file name).

    Raises
    ------
    PlotInputError
        A line is not a JSON object; the message names the file and the line.
    """
    path = os.fspath(path)
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PlotInputError(f"{path}: line {n}: expected a JSON event, got "
                                     f"{line.strip()[:60]!r} ({exc.msg})") from None
            if not isinstance(ev, dict):
                raise PlotInputError(f"{path}: line {n}: expected a JSON object, got "
                                     f"{type(ev).__name__}")
            if source is None or ev.get("source") == source:
                out.append(ev)
    return out
