"""``ambisense plot`` and :mod:`sensing.plot`: one default plot per capture format, bounded
summaries, events drawn, time ranges, errors, and the message without matplotlib."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the plot extra is not installed "
                                         "(pip install 'ambisense[plot]')")

from conftest import REPO, shared_path  # noqa: E402

from agent.cli import main  # noqa: E402
from sensing.errors import AmbisenseError, UnsupportedFormatError  # noqa: E402
from sensing.formats import open_capture  # noqa: E402
from sensing.plot import (  # noqa: E402
    MATPLOTLIB_MISSING,
    PLOTTERS,
    NoPlotterError,
    PlotInfo,
    PlotInputError,
    plot_capture,
    read_events_jsonl,
    summarize_capture,
)

SAMPLES = REPO / "agent" / "samples"
ESP32 = SAMPLES / "esp32_breathing_15bpm.csv"
EDF = SAMPLES / "eeg_seizure_demo.edf"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk (checks the signature)."""
    assert data[:8] == PNG_SIGNATURE, data[:8]
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def check_png(path: Path, dpi: int, height_in: float | None = 7.0) -> None:
    import matplotlib.image

    w, h = png_size(path.read_bytes())
    assert w == 12 * dpi
    if height_in is not None:
        assert h == round(height_in * dpi)
    img = matplotlib.image.imread(path)
    assert img.shape[:2] == (h, w)
    assert float(np.std(img[..., :3])) > 0.05  # something was drawn


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> dict[str, Path]:
    """40 s simulated captures as Intel 5300 .dat (3 antennas) and Nexmon pcap."""
    d = tmp_path_factory.mktemp("sim")
    out = {}
    for fmt, name, extra in (("intel5300", "breath.dat", ["--n-rx", "3"]),
                             ("nexmon", "breath.pcap", [])):
        rc = main(["simulate", "csi-breathing", "--file-format", fmt, "--duration-s", "40",
                   "--out", str(d / name), *extra])
        assert rc == 0
        out[fmt] = d / name
    return out


# ------------------------------------------------------------------ one plot per format
def test_bundled_esp32_sample_png_at_the_requested_dpi(tmp_path):
    info = plot_capture(ESP32, tmp_path / "esp.png", dpi=60)
    assert isinstance(info, PlotInfo)
    assert (info.format, info.modality, info.image_format) == ("esp32_csi", "wifi_csi", "png")
    assert 1 < info.columns <= 1500 and info.start_s == 0.0 and info.end_s == pytest.approx(
        59.96, abs=0.01)
    check_png(tmp_path / "esp.png", 60)


def test_bundled_edf_sample_svg_has_title_labels_and_event_labels(tmp_path):
    events = [
        {"schema": "ambisense.event/1", "type": "seizure_alert", "source": EDF.name,
         "offset_s": 76.0, "value": None, "unit": "", "confidence": 0.99},
        {"schema": "ambisense.event/1", "type": "seizure", "source": EDF.name,
         "offset_s": 76.0, "value": 26.0, "unit": "s", "confidence": 1.0, "duration_s": 26.0},
    ]
    info = plot_capture(EDF, tmp_path / "eeg.svg", events=events)
    assert (info.format, info.modality, info.n_events) == ("edf", "eeg", 2)
    text = (tmp_path / "eeg.svg").read_text(encoding="utf-8")
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    for needle in ("eeg_seizure_demo.edf", "edf (eeg)", "duration 300.0 s", "time (s)",
                   "µV", "FP2-C4", "C3-T7", "seizure 26 s", "seizure_alert"):
        assert needle in text, needle


@pytest.mark.parametrize("fmt", ["intel5300", "nexmon"])
def test_simulated_binary_formats(simulated, tmp_path, fmt):
    out = tmp_path / f"{fmt}.png"
    info = plot_capture(simulated[fmt], out, dpi=50)
    assert info.format == {"intel5300": "intel5300", "nexmon": "nexmon_pcap"}[fmt]
    assert info.modality == "wifi_csi" and info.end_s == pytest.approx(40.0, abs=0.1)
    check_png(out, 50)


@pytest.mark.parametrize("parts, fmt, modality", [
    (("csi", "csikit-picoscenes", "picoscenes_ax200_example.csi"), "picoscenes", "wifi_csi"),
    (("csi", "csiread", "rx_by_iwl5300.csi"), "picoscenes", "wifi_csi"),  # 1–3 antennas
    (("csi", "csiread", "rx_by_qca9300.csi"), "picoscenes", "wifi_csi"),  # 0.9 s long
    (("csi", "espectre", "test_c3_64sc_20260329_130804.npz"), "espectre_npz", "wifi_csi"),
    (("eeg", "bonn", "setE", "S001.txt"), "eeg_text", "eeg"),
])
def test_real_files_from_the_shared_data(tmp_path, parts, fmt, modality):
    path = shared_path(*parts)
    buf = io.BytesIO()  # a file object: the format comes from fmt
    info = plot_capture(path, buf, fmt="png", dpi=40)
    assert (info.format, info.modality, info.out) == (fmt, modality, None)
    w, h = png_size(buf.getvalue())
    assert w == 12 * 40 and h > 100


def test_every_format_has_a_plotter():
    from sensing.formats import FORMATS

    for name, cls in FORMATS.items():
        if cls.__module__.startswith("sensing."):
            assert cls.modality in PLOTTERS, name
    assert set(PLOTTERS.names()) >= {"wifi_csi", "eeg"}
    out = subprocess.run([sys.executable, "-m", "agent.cli", "info", "--formats"],
                         capture_output=True, text=True, timeout=60, cwd=REPO)
    rows = {ln.split()[0]: ln.split()[2] for ln in out.stdout.splitlines() if ln.strip()}
    for name in ("esp32_csi", "intel5300", "nexmon_pcap", "picoscenes", "espectre_npz",
                 "edf", "eeg_text"):
        assert rows[name] == "plot", name


# ------------------------------------------------------------------ bounded summaries
def test_summary_is_bounded_whatever_the_capture_length(tmp_path):
    caps = {}
    for minutes in (1, 10):
        caps[minutes] = tmp_path / f"{minutes}min.csv"
        assert main(["simulate", "csi-breathing", "--duration-s", str(60 * minutes),
                     "--packet-rate-hz", "50", "--out", str(caps[minutes])]) == 0
    short, long_ = (summarize_capture(caps[m], max_columns=400) for m in (1, 10))
    assert short.columns == long_.columns == 400
    assert short.amplitude.shape == long_.amplitude.shape == (64, 400)
    assert len(short.edges_s) == len(long_.edges_s) == 401
    for s in (short, long_):
        assert len(s.series) <= 800  # the finer series: at most 2 × max_columns
    assert long_.n_rows > 9 * short.n_rows
    assert long_.bin_s == pytest.approx(10 * short.bin_s, rel=0.01)


def test_summary_does_not_depend_on_chunk_boundaries():
    plotter = PLOTTERS.get("wifi_csi")()
    a = plotter.summarize(open_capture(ESP32, chunk_size=7).chunks(), max_columns=300)
    b = plotter.summarize(open_capture(ESP32, chunk_size=1000).chunks(), max_columns=300)
    assert a.columns == b.columns == 294  # 1179 packets: ≥ 4 per column on average
    np.testing.assert_allclose(a.amplitude, b.amplitude, rtol=1e-9, equal_nan=True)
    eeg = PLOTTERS.get("eeg")()
    a = eeg.summarize(open_capture(EDF, chunk_size=100).chunks(), max_columns=200)
    b = eeg.summarize(open_capture(EDF).chunks(), max_columns=200)
    for k in ("mean", "min", "max"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=1e-9, atol=1e-9)
    assert a.mean.shape == (200, 12) and np.all(a.min <= a.max)


def test_eeg_channel_selection_and_unknown_channel():
    s = summarize_capture(EDF, channels=["c4-o2", 0], max_columns=50)
    assert s.channel_names == ("C4-O2", "FP2-C4") and s.mean.shape == (50, 2)
    with pytest.raises(PlotInputError, match="unknown EEG channel 'XX'.*FP2-C4"):
        summarize_capture(EDF, channels=["XX"])


# ------------------------------------------------------------------ events, CLI
def test_cli_detect_draws_the_breathing_events(tmp_path, capsys):
    out = tmp_path / "esp.svg"
    assert main(["plot", str(ESP32), "-o", str(out), "--detect",
                 "--set", "wifi_breathing.hop_s=10"]) == 0
    err = capsys.readouterr().err
    n = int(err.rsplit(" events", 1)[0].rsplit(" ", 1)[1])
    assert n > 0, err
    text = out.read_text(encoding="utf-8")
    for needle in ("bpm", "breathing_rate (bpm)", "breathing rate (bpm)", "subcarrier index",
                   "|CSI| (dB", "time (s)", "esp32_breathing_15bpm.csv", "present"):
        assert needle in text, needle


def test_cli_detect_refuses_a_bad_option(tmp_path, capsys):
    rc = main(["plot", str(ESP32), "-o", str(tmp_path / "x.png"), "--detect",
               "--set", "wifi_breathing.window_s=abc"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("ambisense plot: error: ") and "window_s" in err
    assert not (tmp_path / "x.png").exists()


def test_events_from_a_jsonl_file_of_several_captures(tmp_path, capsys):
    ev = {"schema": "ambisense.event/1", "detector": "wifi_fall", "ts": None, "unit": "",
          "confidence": 0.9, "value": 1}
    lines = [dict(ev, id="a", type="fall", source=ESP32.name, offset_s=20.0),
             dict(ev, id="b", type="fall", source="other.csv", offset_s=30.0),
             dict(ev, id="c", type="motion", source=ESP32.name, offset_s=40.0),
             dict(ev, id="d", type="motion", source=ESP32.name, offset_s=45.0, value=0)]
    jl = tmp_path / "ev.jsonl"
    jl.write_text("".join(json.dumps(x) + "\n" for x in lines) + "\n")
    assert len(read_events_jsonl(jl)) == 4
    assert [e["id"] for e in read_events_jsonl(jl, source="other.csv")] == ["b"]
    out = tmp_path / "f.svg"
    assert main(["plot", str(ESP32), "-o", str(out), "--events", str(jl)]) == 0
    assert ", 3 events" in capsys.readouterr().err  # other.csv's fall left out
    text = out.read_text(encoding="utf-8")
    assert text.count("fall 0.90") == 1 and "motion" in text
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "fall"}\nnot json\n')
    assert main(["plot", str(ESP32), "-o", str(out), "--events", str(bad)]) == 2
    assert "bad.jsonl: line 2: expected a JSON event" in capsys.readouterr().err


def test_time_range_restricts_the_plot(tmp_path):
    events = [{"type": "breathing_rate", "offset_s": t, "value": 15.0} for t in (5, 25, 50)]
    info = plot_capture(ESP32, tmp_path / "r.svg", start_s=10, end_s=30, events=events)
    assert (info.start_s, info.end_s, info.n_events) == (10.0, 30.0, 1)
    assert "shown 10.0–30.0 s" in (tmp_path / "r.svg").read_text(encoding="utf-8")
    s = summarize_capture(ESP32, start_s=10, end_s=30)
    assert s.edges_s[0] == 10.0 and s.edges_s[-1] == pytest.approx(30.0)
    assert s.capture_s is None  # stopped reading after 30 s
    with pytest.raises(PlotInputError, match="no CSI packets between 1000"):
        summarize_capture(ESP32, start_s=1000)
    with pytest.raises(PlotInputError, match="must be after"):
        summarize_capture(ESP32, start_s=30, end_s=10)


def test_eeg_probability_trace_is_drawn(tmp_path):
    events = [{"type": "seizure_probability", "offset_s": float(t), "value": t / 300}
              for t in range(0, 300, 4)]
    plot_capture(EDF, tmp_path / "p.svg", events=events, channels=["FP2-C4", "C4-O2"])
    text = (tmp_path / "p.svg").read_text(encoding="utf-8")
    assert "probability" in text and "FP2-C4" in text and "C3-T7" not in text


def test_errors(tmp_path, capsys):
    with pytest.raises(PlotInputError, match="'jpg' is not supported"):
        plot_capture(ESP32, tmp_path / "x.jpg")
    with pytest.raises(PlotInputError, match="needs fmt"):
        plot_capture(ESP32, io.BytesIO())
    with pytest.raises(NoPlotterError, match="no plotter for 'toy'.*eeg.*wifi_csi") as exc:
        from sensing.plot import _plotter_for

        _plotter_for("toy", "x.toy")
    assert isinstance(exc.value, UnsupportedFormatError)
    assert main(["plot", str(ESP32), "-o", str(tmp_path / "x.gif")]) == 2
    assert capsys.readouterr().err.startswith("ambisense plot: error: image format 'gif'")
    not_capture = tmp_path / "notes.txt"
    not_capture.write_text("hello\n")
    assert main(["plot", str(not_capture), "-o", str(tmp_path / "n.png")]) == 2
    assert "not a recognised capture" in capsys.readouterr().err
    assert main(["plot", str(ESP32), "-o", str(tmp_path / "n.png"), "--pipeline",
                 "wifi_fall"]) == 2
    assert "need --detect" in capsys.readouterr().err


# ------------------------------------------------------------------ without matplotlib
_NO_MPL = """
import sys
sys.modules["matplotlib"] = None            # as if it were not installed
import sensing.plot
from agent.cli import main
try:
    sensing.plot.plot_capture({cap!r}, {out!r})
except sensing.plot.PlotUnavailableError as exc:
    print("API:", exc)
sys.exit(main(["plot", {cap!r}, "-o", {out!r}]))
"""


def test_message_without_matplotlib(tmp_path):
    out = tmp_path / "x.png"
    code = _NO_MPL.format(cap=str(ESP32), out=str(out))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert res.returncode == 2, res.stderr
    assert f"API: {MATPLOTLIB_MISSING}" in res.stdout
    assert res.stderr.strip() == f"ambisense plot: error: {MATPLOTLIB_MISSING}"
    assert not out.exists()
    assert issubclass(sensing_plot_error(), AmbisenseError)


def sensing_plot_error():
    from sensing.plot import PlotUnavailableError

    return PlotUnavailableError


def test_matplotlib_is_not_imported_by_the_cli_or_sensing():
    code = ("import sys, sensing, sensing.plot, agent.cli; agent.cli.build_parser(); "
            "from sensing.plot import PLOTTERS; PLOTTERS.names(); "
            "print('matplotlib' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=REPO)
    assert res.stdout.strip() == "False", res.stderr
