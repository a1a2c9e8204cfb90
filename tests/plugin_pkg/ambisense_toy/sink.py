"""``toy_file``: writes each event's type and id, one per line (``[sinks.toy] path``)."""

from __future__ import annotations

from agent.sinks import SINKS, Sink
from sensing.params import Params, param


class ToySinkParams(Params):
    path: str = param(..., min_length=1, path=True, doc="file to append to")


@SINKS.register("toy_file")
class ToyFileSink(Sink):
    config_key = "toy"
    Params = ToySinkParams
    description = "type and id per line (plug-in test sink)"

    def __init__(self, path: str) -> None:
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def emit(self, event) -> None:
        self._fh.write(f"{event.type} {event.id} {event.value}\n")

    def close(self) -> None:
        self._fh.close()
