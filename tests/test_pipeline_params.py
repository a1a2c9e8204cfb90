"""Pipeline options come from one typed parameter model per pipeline: validation without
building anything, the ``info --pipelines`` listing and ``docs/pipelines.md`` all agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.pipelines import PIPELINES
from agent.reference import pipeline_catalog, pipelines_markdown
from sensing.params import OptionError, Params

DOC = Path(__file__).resolve().parents[1] / "docs" / "pipelines.md"
BUILTIN = ("wifi_breathing", "wifi_motion", "wifi_fall", "eeg_seizure")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_docs_pipelines_md_is_generated_from_the_models():
    expected = pipelines_markdown([p for p in pipeline_catalog() if p["origin"] == "built-in"])
    assert DOC.read_text(encoding="utf-8") == expected, (
        "docs/pipelines.md is out of date: python -m agent.reference > docs/pipelines.md")


@pytest.mark.parametrize("name", BUILTIN)
def test_every_option_is_typed_documented_and_frozen(name):
    cls = PIPELINES.get(name)
    assert issubclass(cls.Params, Params) and cls.Params is not Params
    described = cls.Params.describe()
    assert described, f"{name} declares no option"
    for opt in described:
        assert opt["doc"] and opt["type"], opt
    params = cls.check_options({})
    with pytest.raises(Exception, match="frozen"):
        setattr(params, described[0]["name"], None)


@pytest.mark.parametrize("name", BUILTIN)
def test_unknown_option_is_refused_with_the_valid_ones_listed(name):
    cls = PIPELINES.get(name)
    with pytest.raises(OptionError) as info:
        cls.check_options({"bogus": 1})
    msg = str(info.value)
    assert msg.startswith(f"{name}: unknown option 'bogus'; valid options: ")
    for opt in cls.Params.describe():
        assert f"{opt['name']} ({opt['type']}" in msg


def test_bad_values_are_refused_naming_the_option_and_what_it_accepts():
    cls = PIPELINES.get("wifi_breathing")
    with pytest.raises(OptionError, match=r"^wifi_breathing: option 'window_s': expected "
                                          r"number, s, .*got \"abc\""):
        cls.check_options({"window_s": "abc"})
    with pytest.raises(OptionError, match=r"option 'window_s': expected number, s, .*got -5"):
        cls.check_options({"window_s": -5})
    assert cls.check_options({"window_s": 20}).window_s == 20.0


def test_fall_options_validate_without_loading_the_model(tmp_path):
    # a models_dir with no manifest: validation must not look at it
    params = PIPELINES.get("wifi_fall").check_options(
        {"models_dir": str(tmp_path / "nowhere"), "operating_point": "sensitive"})
    assert params.operating_point == "sensitive"
    with pytest.raises(OptionError, match="option 'method'"):
        PIPELINES.get("wifi_fall").check_options({"method": "magic"})


def test_replay_refuses_a_bad_option_before_reading_the_capture(tmp_path):
    missing = tmp_path / "not-even-there.csv"
    out = cli("replay", str(missing), "--set", "wifi_breathing.bogus=1")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("ambisense replay: error: --set wifi_breathing: unknown "
                                 "option 'bogus'; valid options: window_s (number, s")
    assert "no such file" not in out.stderr.lower()
    out = cli("replay", str(missing), "--set", "wifi_breathing.window_s=abc")
    assert "option 'window_s': expected number, s" in out.stderr and out.returncode == 2


def test_info_pipelines_lists_options_with_defaults_and_units():
    out = cli("info", "--pipelines", "--json")
    assert out.returncode == 0, out.stderr
    catalog = {p["name"]: p for p in json.loads(out.stdout)}
    assert set(BUILTIN) <= set(catalog)
    breath = catalog["wifi_breathing"]
    assert breath["modalities"] == ["wifi_csi"] and "esp32_csi" in breath["formats"]
    assert breath["event_types"] == ["breathing_rate"] and breath["default"] is True
    window = {o["name"]: o for o in breath["options"]}["window_s"]
    assert window["unit"] == "s" and window["default"] == 30.0 and window["type"] == "number"
    text = cli("info", "--pipelines").stdout
    assert "wifi_fall  [opt-in]" in text and "window_s" in text and "default 30.0" in text
