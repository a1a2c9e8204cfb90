"""ambisense.agent: the runtime — config, pipelines, models, event sinks, CLI."""

__version__ = "0.1.0"
