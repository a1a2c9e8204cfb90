"""Shared per-stream analyses: the breathing estimator runs once per chunk for two pipelines."""

from __future__ import annotations

import pytest

from agent.config import RestartPolicy
from agent.pipelines import PIPELINES
from agent.pipelines.shared import SharedStage, SharedStages
from agent.runner import run_stream
from agent.supervisor import GuardedPipeline
from sensing.simulate.csi_breathing import generate


class Counting:
    def __init__(self, fail_on: int | None = None) -> None:
        self.calls = 0
        self.fail_on = fail_on

    def push(self, frames):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("boom")
        return [self.calls]


class Collect:
    def __init__(self) -> None:
        self.events = []

    def emit(self, ev) -> None:
        self.events.append(ev.to_dict())

    def close(self) -> None:
        pass


def test_stage_runs_once_per_chunk_and_repeats_its_error():
    stage = SharedStage(Counting(fail_on=2))
    a, b = object(), object()
    assert stage.push(a) == [1] and stage.push(a) == [1]
    with pytest.raises(RuntimeError):
        stage.push(b)
    with pytest.raises(RuntimeError):  # the second consumer of the chunk sees it too
        stage.push(b)
    assert stage.analysis.calls == 2
    stages = SharedStages()
    assert stages.get("k", Counting) is stages.get("k", Counting)


def _frames(**kw):
    return list(generate(chunk_packets=300, duration_s=150.0, seed=12, fidgets=1,
                         distance_m=1.5, **kw)[1])


def _run(names, frames, bound=True):
    pipes = [PIPELINES.get(n)() for n in names]
    sink = Collect()
    if bound:
        run_stream(iter(frames), pipes, [sink], source="s")
    else:  # each pipeline on its own, no shared stages
        for p in pipes:
            for fr in frames:
                for d in p.push(fr):
                    sink.events.append((p.name, d.type, d.offset_s, d.value, d.confidence))
    return pipes, sink.events


def test_breathing_and_motion_share_one_estimator_with_identical_events():
    frames = _frames()
    pipes, events = _run(["wifi_breathing", "wifi_motion"], frames)
    shared = pipes[0].shared
    assert shared is pipes[1].shared
    (stage,) = shared._stages.values()  # one breathing analysis for both pipelines
    alone = PIPELINES.get("wifi_breathing")()
    for fr in frames:
        alone.push(fr)
    assert stage.analysis.stats["windows"] == alone.estimator.stats["windows"] > 20
    # same events as without sharing (breathing ≥ 0.2, presence evidence ≥ 0.1)
    _, separate = _run(["wifi_breathing", "wifi_motion"], frames, bound=False)
    got = sorted((e["detector"], e["type"], e["offset_s"], e["value"], e["confidence"])
                 for e in events)
    assert got == sorted(separate)
    assert any(e["type"] == "breathing_rate" for e in events)
    assert any(e.get("evidence") == "breathing" for e in events)


def test_different_settings_get_separate_stages():
    frames = _frames()[:5]
    b = PIPELINES.get("wifi_breathing")(window_s=40.0)
    m = PIPELINES.get("wifi_motion")()
    run_stream(iter(frames), [b, m], [Collect()], source="s")
    assert len(b.shared._stages) == 2


def test_supervised_pipeline_rejoins_the_shared_stages_after_a_restart():
    w = GuardedPipeline(PIPELINES.get("wifi_breathing"), {}, RestartPolicy(), "s")
    shared = SharedStages()
    w.bind(shared)
    assert w.inner.shared is shared
    w._create()  # what a restart does
    assert w.inner.shared is shared
