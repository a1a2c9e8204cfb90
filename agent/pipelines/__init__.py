"""Detector pipelines: one module per pipeline, each registering itself in :data:`PIPELINES`.

A pipeline turns the chunks of one stream into detections. ``ambisense replay`` runs
every *default* pipeline whose ``modalities`` include the capture's modality, unless
``--pipeline`` names others. Adding a pipeline is one new module in this package.
"""

from __future__ import annotations

import importlib
import pkgutil

from agent.pipelines.base import PIPELINES, Pipeline, pipelines_for

__all__ = ["PIPELINES", "Pipeline", "pipelines_for"]



def _load_all() -> None:
    """Import every pipeline module (on first registry lookup: keeps CLI start-up fast)."""
    for mod in pkgutil.iter_modules(__path__):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")


PIPELINES.set_loader(_load_all)
