"""Event sinks (stdout, JSON Lines file, MQTT…): interchangeable backends in :data:`SINKS`."""

from __future__ import annotations

import importlib
import pkgutil

from agent.sinks.base import SINKS, Sink

__all__ = ["SINKS", "Sink"]

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
