"""Detector pipelines: one module per pipeline, each registering itself in :data:`PIPELINES`.

A pipeline turns the chunks of one stream into detections. ``ambisense replay`` runs
every *default* pipeline whose ``modalities`` include the capture's modality, unless
``--pipeline`` names others. Adding a pipeline is one new module in this package (or an
``ambisense.pipelines`` entry point of a plug-in); the registry imports them on first
lookup, which keeps CLI start-up fast.
"""

from __future__ import annotations

from agent.pipelines.base import PIPELINES, Pipeline, pipelines_for

__all__ = ["PIPELINES", "Pipeline", "pipelines_for"]
