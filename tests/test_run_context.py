"""State shared across the captures of one run: ``Pipeline.run_context`` and the order in
which ``ambisense replay`` processes captures (:func:`agent.runner.replay_order`)."""

from __future__ import annotations

import numpy as np

from agent import runner
from agent.pipelines import Pipeline
from agent.sinks.base import Sink
from sensing.detections import Detection
from sensing.frames import Frames


class Counting(Pipeline):
    """Counts the streams of the run it has seen, through the run's shared state."""

    name = "counting"
    modalities = ("eeg",)

    def push(self, frames: Frames) -> list[Detection]:
        return []

    def flush(self) -> list[Detection]:
        seen = self.run_context.setdefault(self.name, 0) + 1
        self.run_context[self.name] = seen
        return [Detection("count", 0.0, seen, "", 1.0)]


class Keep(Sink):
    def __init__(self) -> None:
        self.events: list = []

    def emit(self, event) -> None:
        self.events.append(event)


def chunk() -> Frames:
    return Frames(np.zeros((4, 1), np.float32), np.arange(4) / 4.0, 4.0, "eeg", "x")


def test_pipelines_of_one_run_share_its_context_and_standalone_ones_do_not():
    sink, ctx = Keep(), {}
    for name in ("a", "b", "c"):
        runner.run_stream([chunk()], [Counting()], [sink], source=name, run_context=ctx)
    assert [e.value for e in sink.events] == [1, 2, 3]
    assert ctx == {"counting": 3}
    alone = Keep()
    runner.run_stream([chunk()], [Counting()], [alone], source="d")
    runner.run_stream([chunk()], [Counting()], [alone], source="e")
    assert [e.value for e in alone.events] == [1, 1]


def test_replay_order_puts_calibration_captures_first_and_keeps_the_rest(monkeypatch):
    class Reader:
        def __init__(self, path: str) -> None:
            self.path = path

        def replay_first(self) -> bool:
            return self.path.startswith("ref")

    def fake_open(path, **_):
        if path == "broken":
            raise OSError("cannot open")
        return Reader(path)

    monkeypatch.setattr(runner, "open_capture", fake_open)
    order = runner.replay_order(["a", "ref1", "broken", "b", "ref2"])
    assert order == ["ref1", "ref2", "a", "broken", "b"]
