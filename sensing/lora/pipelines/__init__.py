"""LoRa pipelines: every module in this package is imported by the pipelines registry."""
