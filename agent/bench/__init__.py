"""``ambisense bench``: every performance figure of the project, from one command.

Each **section** (parse throughput against csiread, EDF against mne, LoRa decoding against
softlora, pipeline real-time factors and live latency, memory, models, start-up, Dask) is
an entry of the registry :data:`BENCHES`, filled like every other extension point: the
modules of :mod:`agent.bench.sections`, the ``benches.py`` plug-in module (or package) of
each modality folder ``sensing/<modality>/``, and the ``ambisense.benches`` entry points
of third-party packages. A section is a function ``fn(quick: bool)`` returning a list of
rows (dicts) or a :class:`Result` (rows and notes), registered with :func:`section`::

    from agent.bench import Result, section

    @section("my_thing", "My thing: decode speed", "What the figures mean …", order=60)
    def bench_my_thing(quick: bool) -> Result:
        return Result([{"file": "a.bin", "MB/s": 12.0}], notes=["measured on …"])

:func:`agent.bench.report.run_sections` runs them and :mod:`agent.bench.report` renders
the Markdown tables and the JSON document (with the machine header of
:mod:`agent.bench.machine`).
"""

from __future__ import annotations

from agent.bench.base import BENCHES, Bench, Result, Skip, section

__all__ = ["BENCHES", "Bench", "Result", "Skip", "section"]
