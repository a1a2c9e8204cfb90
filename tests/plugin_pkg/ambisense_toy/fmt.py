"""``toy_counts``: a text capture ``TOY1`` then one ``time_s,value`` line per sample."""

from __future__ import annotations

import numpy as np

from sensing.errors import Reject
from sensing.formats import FORMATS, CaptureReader
from sensing.frames import Frames


@FORMATS.register("toy_counts")
class ToyCountsReader(CaptureReader):
    """``TOY1`` header, then ``time_s,value`` lines."""

    name = "toy_counts"
    modality = "toy"
    extensions = (".toy",)
    description = "toy counts (plug-in test format)"

    @classmethod
    def sniff(cls, head: bytes, path: str) -> bool:
        return head.startswith(b"TOY1\n")

    def chunks(self):
        times, values = [], []
        with open(self.path, "rb") as fh:
            fh.readline()
            for n, line in enumerate(fh, start=2):
                try:
                    t, v = (float(x) for x in line.split(b","))
                except ValueError:
                    self.rejects.add(Reject(self.path, f"line {n}", "bad_number",
                                            "time_s,value", repr(line[:20])))
                    continue
                times.append(t)
                values.append(v)
                if len(times) == self.chunk_size:
                    yield self._frames(times, values)
                    times, values = [], []
        if times:
            yield self._frames(times, values)

    def _frames(self, times, values) -> Frames:
        return Frames(np.asarray(values, np.float32)[:, None], np.asarray(times), 1.0,
                      "toy", self.source, meta={"format": self.name})
