"""Event sinks (stdout table, JSON Lines, MQTT, plug-ins…): interchangeable backends.

:data:`SINKS` fills itself lazily: looking up ``"jsonl"`` imports ``agent/sinks/jsonl.py``
only (so replay to stdout never imports paho-mqtt); listing the sinks imports every module
of this package and the ``ambisense.sinks`` entry points of installed plug-ins. Adding a
sink is one module: a :class:`Sink` subclass registered with ``@SINKS.register(name)``;
with ``config_key`` and ``Params`` set it is configured in the agent's ``[sinks.<key>]``.
"""

from __future__ import annotations

from agent.sinks.base import SINKS, Sink

__all__ = ["SINKS", "Sink"]


def open_sinks(*, console: str = "table", jsonl_file: str | None = None,
               plugins: list[tuple[type[Sink], object]] = (), device: str | None = None,
               truncate_jsonl: bool = False) -> list[Sink]:
    """The sinks every command that emits events builds the same way.

    Parameters
    ----------
    console : {"table", "jsonl", "off"}
        Events on stdout: a readable table, one JSON event per line, or nothing.
    jsonl_file : str, optional
        Also append every event to this JSON Lines file (``truncate_jsonl``: start it anew).
    plugins : list of (Sink class, Params)
        Configured ``[sinks.<key>]`` plug-in sinks (see ``agent.config.plugin_sinks``).
    device : str, optional
        The agent's name, passed to plug-in sinks.
    """
    import os

    sinks: list[Sink] = []
    if console in ("table", "jsonl"):
        sinks.append(SINKS.get(console)())
    if jsonl_file:
        if truncate_jsonl:
            os.makedirs(os.path.dirname(jsonl_file) or ".", exist_ok=True)
            open(jsonl_file, "w").close()  # noqa: SIM115
        sinks.append(SINKS.get("jsonl")(path=jsonl_file))
    for cls, params in plugins:
        sinks.append(cls.from_params(params, device=device))
    return sinks
