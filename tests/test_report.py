"""``ambisense report``: one self-contained HTML file, opened in a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="the plot extra is not installed "
                                         "(pip install 'ambisense[plot]')")

REPO = Path(__file__).resolve().parents[1]
SAMPLES = [REPO / "agent" / "samples" / "esp32_breathing_15bpm.csv",
           REPO / "agent" / "samples" / "eeg_seizure_demo.edf"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian package `chromium`; .ci/run "
                             "installs it)")


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Headless Chromium with no network activity of its own (this machine is offline)."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "report.html"
    done = subprocess.run([sys.executable, "-m", "agent.cli", "report", *map(str, SAMPLES),
                           "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out, done.stderr


def test_report_is_self_contained_with_events_settings_and_models(report):
    out, stderr = report
    text = out.read_text(encoding="utf-8")
    assert "2 capture(s), 11 event(s)" in stderr
    # nothing is fetched: no external URL in any src/href, images are data: URIs
    refs = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert refs and all(r.startswith(("data:image/png;base64,", "#")) for r in refs), refs
    assert len(re.findall(r'<img class="plot"', text)) == 2
    # the events of the report are exactly those of `replay --jsonl`
    for i, sample in enumerate(SAMPLES):
        replay = subprocess.run([sys.executable, "-m", "agent.cli", "replay", str(sample),
                                 "--jsonl"], capture_output=True, text=True, timeout=120)
        ids = [json.loads(line)["id"] for line in replay.stdout.splitlines()]
        table = text.split(f'id="events-{i}"')[1].split("</table>")[0]
        assert re.findall(r"<td><code>([0-9a-f]{20})</code></td></tr>", table) == ids
    assert "window_s" in text and "min_confidence" in text  # detector settings
    assert re.search(r"seizure\.int8\.onnx</td><td><code>[0-9a-f]{64}</code>", text)


@NEEDS_CHROMIUM
def test_report_renders_in_headless_chromium(report, tmp_path):
    out, _ = report
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", out.as_uri(),
                   profile=tmp_path / "p1")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('<tr class="event">') == 11
    assert "breathing_rate" in dom.stdout and "seizure_alert" in dom.stdout
    shot = tmp_path / "shot.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1280,1600",
                    "--virtual-time-budget=5000", out.as_uri(), profile=tmp_path / "p2")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    from PIL import Image

    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 1600)
    # the plot's heat map is drawn in colour; text and tables are grey: coloured pixels
    # mean the embedded image was decoded and painted
    import numpy as np

    px = np.asarray(img.resize((320, 400)), dtype=np.int16).reshape(-1, 3)
    coloured = int(np.count_nonzero(px.max(axis=1) - px.min(axis=1) > 60))
    assert coloured > 0.05 * len(px), f"only {coloured} coloured pixels of {len(px)}"


def test_report_of_a_file_that_is_not_a_capture_says_why(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not a capture")
    out = tmp_path / "r.html"
    done = subprocess.run([sys.executable, "-m", "agent.cli", "report", str(junk), "-o",
                           str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "ambisense report: error: " in done.stderr and "not a recognised capture" in done.stderr
    assert "Not replayed: " in out.read_text(encoding="utf-8")
