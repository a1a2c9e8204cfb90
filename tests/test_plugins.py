"""Third-party plug-ins: a tiny package installed into a temporary directory adds a format,
a pipeline, a source and a sink through entry points, and the real CLI lists and uses them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).parent / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """Environment whose Python path holds the plug-in, installed by pip (wheel + metadata
    with its entry points), as a user's ``pip install ambisense-toy`` would."""
    target = tmp_path_factory.mktemp("site")
    src = tmp_path_factory.mktemp("build") / "plugin_pkg"
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                            "__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(src)],
        capture_output=True, text=True, cwd=src, timeout=300)
    assert done.returncode == 0, done.stderr
    assert list(target.glob("ambisense_toy-*.dist-info/entry_points.txt"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(target), str(Path(__file__).parents[1])])
    return env


def cli(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def write_toy(path: Path, values: list[float]) -> Path:
    path.write_text("TOY1\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values)))
    return path


def test_info_lists_the_plugin_format_and_pipeline(plugin_env):
    out = cli(plugin_env, "info", "--formats")
    assert out.returncode == 0, out.stderr
    assert any(line.startswith("toy_counts ") for line in out.stdout.splitlines())
    out = cli(plugin_env, "info", "--pipelines", "--json")
    assert out.returncode == 0, out.stderr
    entry = {p["name"]: p for p in json.loads(out.stdout)}["toy_threshold"]
    assert entry["modalities"] == ["toy"] and entry["formats"] == ["toy_counts"]
    assert entry["origin"] == "plug-in ambisense_toy.pipe"
    (opt,) = entry["options"]
    assert (opt["name"], opt["type"], opt["unit"], opt["default"], opt["range"]) == (
        "threshold", "number", "counts", 5.0, "≥ 0")
    # without the plug-in on the path, none of it is there
    bare = {k: v for k, v in plugin_env.items() if k != "PYTHONPATH"}
    bare["PYTHONPATH"] = str(Path(__file__).parents[1])
    out = cli(bare, "info", "--pipelines", "--json")
    assert "toy_threshold" not in {p["name"] for p in json.loads(out.stdout)}


def test_replay_uses_the_plugin_format_and_pipeline(plugin_env, tmp_path):
    cap = write_toy(tmp_path / "counts.toy", [1, 7, 2, 9, 3])
    out = cli(plugin_env, "replay", str(cap), "--jsonl")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(e["type"], e["offset_s"], e["value"], e["detector"]) for e in events] == [
        ("toy_high", 1.0, 7.0, "toy_threshold"), ("toy_high", 3.0, 9.0, "toy_threshold")]
    out = cli(plugin_env, "replay", str(cap), "--jsonl", "--set", "toy_threshold.threshold=8")
    assert [json.loads(line)["value"] for line in out.stdout.splitlines()] == [9.0]


def test_a_bad_plugin_option_is_refused_before_reading(plugin_env, tmp_path):
    cap = write_toy(tmp_path / "counts.toy", [1, 7])
    out = cli(plugin_env, "replay", str(cap), "--jsonl", "--set", "toy_threshold.threshold=abc")
    assert out.returncode == 2 and out.stdout == ""
    assert ("ambisense replay: error: --set toy_threshold: option 'threshold': expected "
            "number, counts, ≥ 0, got \"abc\"") in out.stderr
    assert "valid options: threshold (number, counts, ≥ 0)" in out.stderr


def test_agent_config_uses_the_plugin_source_and_sink(plugin_env, tmp_path):
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        '[agent]\nname = "toybox"\nstatus_interval_s = 0\n\n'
        '[[sources]]\ntype = "toy_counter"\nn = 12\n\n'
        '[pipelines.toy_threshold]\nthreshold = 9.5\n\n'
        '[sinks]\nconsole = "off"\n\n[sinks.toy]\npath = "events.txt"\n')
    out = cli(plugin_env, "agent", "--check-config", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "stream toy_counter0 (toy_counter) → toy_threshold" in out.stdout
    assert "toy (type and id per line (plug-in test sink))" in out.stdout
    out = cli(plugin_env, "agent", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "events.txt").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == ["toy_high"] * 2
    assert [float(ln.split()[2]) for ln in lines] == [10.0, 11.0]
    # a bad option of the plug-in source and of the plug-in sink, each named with its path
    cfg.write_text('[[sources]]\ntype = "toy_counter"\nn = 0\n')
    out = cli(plugin_env, "agent", "--check-config", "--config", str(cfg))
    assert out.returncode == 78
    assert "agent.toml: sources[0].n: expected an integer from 1 to 10000, got 0" in out.stderr
    cfg.write_text('[[sources]]\ntype = "toy_counter"\n\n[sinks.toy]\npath = "e.txt"\n'
                   'colour = "red"\n\n[sinks.tyo]\npath = "x"\n')
    out = cli(plugin_env, "agent", "--check-config", "--config", str(cfg))
    assert out.returncode == 78
    assert ("agent.toml: sinks.toy: unknown option 'colour'; valid options: path (string)"
            in out.stderr)
    assert ('agent.toml: sinks: unknown key "tyo"; expected one of: console, jsonl_file, toy'
            in out.stderr)


def test_a_modality_folder_plugs_in_by_itself(tmp_path, monkeypatch):
    """A new ``sensing/<modality>/`` folder's plug-in modules (``formats.py``, or a
    ``pipelines/`` package of modules) fill the registries with no other file changed;
    one whose optional dependency is missing is listed as broken, not fatal."""
    import types

    import sensing
    from sensing.registry import Registry, modality_folder_modules

    reg: Registry[object] = Registry("thing", folder="pipelines")
    holder = types.ModuleType("_toy_registry")
    holder.REG = reg  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "_toy_registry", holder)
    folder = tmp_path / "toymodality"
    (folder / "pipelines").mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    (folder / "pipelines" / "__init__.py").write_text("")
    (folder / "pipelines" / "one.py").write_text(
        "from _toy_registry import REG\nREG.register('toy_one')(object)\n")
    (folder / "pipelines" / "two.py").write_text("import not_installed_anywhere\n")
    (folder / "formats.py").write_text("raise RuntimeError('not a pipelines module')\n")
    monkeypatch.setattr(sensing, "__path__", [*sensing.__path__, str(tmp_path)])
    for name in [m for m in sys.modules if m.startswith("sensing.toymodality")]:
        monkeypatch.delitem(sys.modules, name)

    assert {"sensing.toymodality.pipelines", "sensing.toymodality.pipelines.one",
            "sensing.toymodality.pipelines.two"} <= set(modality_folder_modules("pipelines"))
    assert reg.names() == ["toy_one"]
    assert reg.origin("toy_one") == "built-in"
    assert "not_installed_anywhere" in reg.broken["sensing.toymodality.pipelines.two"]
