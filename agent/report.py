"""``ambisense report``: one self-contained HTML file per set of captures.

For each capture: what it holds (the ``ambisense info`` summary), its default plot with the
events drawn on it (``sensing.plot``; the image is embedded as a ``data:`` URI, so the file
opens without a network or a server), the table of events the detectors emitted, the
options every pipeline ran with, and the models it ran (file, precision, sha256 as checked
against the manifest, when and by which command it was built).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agent.events import Event
from agent.sinks import Sink

__all__ = ["CaptureReport", "build_report", "render_html"]


class _Collect(Sink):
    """Keeps every event (in memory: a report covers what it shows)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


@dataclass
class CaptureReport:
    """Everything the report shows of one capture."""

    path: str
    info: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    quiet: dict[str, str] = field(default_factory=dict)
    png: bytes | None = None
    plot_error: str | None = None
    error: str | None = None


def capture_report(path: str, *, pipeline_names: list[str] | None = None,
                   pipeline_options: dict[str, dict] | None = None,
                   plot_options: dict[str, Any] | None = None) -> CaptureReport:
    """Summarise, replay and plot one capture (errors are kept in the report, not raised:
    one bad capture must not stop a report of many)."""
    from agent.runner import replay_capture
    from sensing.errors import AmbisenseError
    from sensing.formats import open_capture

    try:
        info = open_capture(path).info()
    except (AmbisenseError, OSError, ValueError) as exc:
        return CaptureReport(path, {}, error=str(exc))
    sink = _Collect()
    rep = CaptureReport(path, info)
    try:
        stats = replay_capture(path, [sink], pipeline_names=pipeline_names,
                               pipeline_options=pipeline_options, progress=False)
    except (AmbisenseError, OSError, ValueError) as exc:
        rep.error = str(exc)
        return rep
    rep.events = [json.loads(e.to_json()) for e in sink.events]
    rep.settings, rep.models, rep.quiet = stats.settings, stats.models, stats.quiet
    try:
        from sensing.plot import plot_capture

        buf = io.BytesIO()
        plot_capture(path, buf, fmt="png", events=rep.events, **(plot_options or {}))
        rep.png = buf.getvalue()
    except AmbisenseError as exc:  # no plotter for it, or matplotlib missing
        rep.plot_error = str(exc)
    return rep


def build_report(paths: list[str], out: str, **options: Any) -> list[CaptureReport]:
    """Write the HTML report of ``paths`` to ``out``; return what it holds."""
    reports = [capture_report(p, **options) for p in paths]
    text = render_html(reports)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(text)
    return reports


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f2f2f2}td.num{text-align:right}
img.plot{max-width:100%;border:1px solid #ddd}.err{color:#a00}.quiet{color:#555}
code{font-size:12px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    return _e(value)


def _kv_table(rows: dict[str, Any], cls: str) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(json.dumps(v) if isinstance(v, (list, dict)) else v)}</td></tr>"
                   for k, v in rows.items())
    return f'<table class="{cls}">{body}</table>'


def _events_table(events: list[dict[str, Any]], idx: int) -> str:
    if not events:
        return f'<p class="quiet" id="events-{idx}">No events.</p>'
    head = ("<tr><th>#</th><th>offset_s</th><th>type</th><th>value</th><th>unit</th>"
            "<th>confidence</th><th>detector</th><th>details</th><th>id</th></tr>")
    rows = []
    core = {"schema", "id", "type", "source", "detector", "offset_s", "ts", "value", "unit",
            "confidence"}
    for n, ev in enumerate(events, start=1):
        details = {k: v for k, v in ev.items() if k not in core}
        rows.append(
            f"<tr class=\"event\"><td class=\"num\">{n}</td><td class=\"num\">{_num(ev.get('offset_s'))}"
            f"</td><td>{_e(ev.get('type'))}</td><td class=\"num\">{_num(ev.get('value'))}</td>"
            f"<td>{_e(ev.get('unit'))}</td><td class=\"num\">{_num(ev.get('confidence'))}</td>"
            f"<td>{_e(ev.get('detector'))}</td><td><code>{_e(json.dumps(details))}</code></td>"
            f"<td><code>{_e(ev.get('id'))}</code></td></tr>")
    return f'<table class="events" id="events-{idx}">{head}{"".join(rows)}</table>'


def _models_table(models: dict[str, list[dict[str, Any]]]) -> str:
    rows = [(p, m) for p, ms in models.items() for m in ms]
    if not rows:
        return '<p class="quiet">No model (rule-based pipelines only).</p>'
    head = ("<tr><th>pipeline</th><th>model</th><th>precision</th><th>file</th><th>sha256</th>"
            "<th>size</th><th>built</th><th>by</th></tr>")
    body = "".join(
        f"<tr><td>{_e(p)}</td><td>{_e(m.get('name'))}</td><td>{_e(m.get('precision'))}</td>"
        f"<td>{_e(m.get('file'))}</td><td><code>{_e(m.get('sha256'))}</code></td>"
        f"<td class=\"num\">{_e(m.get('size_bytes'))}</td><td>{_e(m.get('built_utc'))}</td>"
        f"<td><code>{_e(m.get('built_by'))}</code></td></tr>" for p, m in rows)
    return f'<table class="models">{head}{body}</table>'


def render_html(reports: list[CaptureReport]) -> str:
    """The report as one HTML document (no external resource of any kind)."""
    from agent import __version__

    now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>ambisense report</title><style>{_CSS}</style></head><body>",
             f"<h1>ambisense report</h1><p>{len(reports)} capture(s); ambisense "
             f"{_e(__version__)}; written {_e(now)}.</p><ul>"]
    parts += [f'<li><a href="#capture-{i}">{_e(os.path.basename(r.path))}</a> — '
              f"{len(r.events)} event(s)</li>" for i, r in enumerate(reports)]
    parts.append("</ul>")
    for i, r in enumerate(reports):
        parts.append(f'<section id="capture-{i}"><h2>{_e(os.path.basename(r.path))}</h2>'
                     f"<p><code>{_e(r.path)}</code></p>")
        if r.info:
            parts.append("<h3>Capture</h3>" + _kv_table(
                {k: v for k, v in r.info.items() if k != "path"}, "info"))
        if r.error:
            parts.append(f'<p class="err">Not replayed: {_e(r.error)}</p></section>')
            continue
        parts.append("<h3>Plot</h3>")
        if r.png is not None:
            data = base64.b64encode(r.png).decode("ascii")
            parts.append(f'<img class="plot" alt="plot of {_e(os.path.basename(r.path))}" '
                         f'src="data:image/png;base64,{data}">')
        else:
            parts.append(f'<p class="err">No plot: {_e(r.plot_error)}</p>')
        parts.append(f"<h3>Events ({len(r.events)})</h3>" + _events_table(r.events, i))
        if r.quiet:
            parts.append('<p class="quiet">' + "; ".join(
                f"{_e(k)}: {_e(v)}" for k, v in r.quiet.items()) + "</p>")
        parts.append("<h3>Detector settings</h3>")
        for name, params in r.settings.items():
            parts.append(f"<p><b>{_e(name)}</b></p>" + _kv_table(params, "settings"))
        parts.append("<h3>Models</h3>" + _models_table(r.models) + "</section>")
    parts.append("</body></html>\n")
    return "".join(parts)
