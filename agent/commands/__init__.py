"""CLI subcommands: one module per command, each registering itself in :data:`COMMANDS`."""

from __future__ import annotations

import importlib
import pkgutil

from agent.commands.base import COMMANDS, Command

__all__ = ["COMMANDS", "Command"]

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
