"""``toy_counter``: a source counting 0, 1, 2 … at 1 Hz (``n`` samples, then it ends)."""

from __future__ import annotations

import numpy as np

from sensing.errors import RejectLog
from sensing.frames import Frames
from sensing.params import Params, param
from sensing.sources import SOURCES


class CounterParams(Params):
    n: int = param(10, ge=1, le=10_000, doc="samples before the stream ends")


@SOURCES.register("toy_counter")
class ToyCounter:
    """Counts up once per (simulated) second."""

    Params = CounterParams
    modality = "toy"
    live = False
    description = "a counter (plug-in test source)"

    def __init__(self, n: int, name: str) -> None:
        self.n, self.name = n, name
        self.rejects = RejectLog()

    @classmethod
    def from_params(cls, params, name):
        return cls(params.n, name)

    def chunks(self, stop):
        t = np.arange(self.n, dtype=float)
        yield Frames(t[:, None].astype(np.float32), t, 1.0, "toy", self.name)

    def close(self) -> None:
        pass
