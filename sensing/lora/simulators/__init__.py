"""LoRa simulators: every module in this package is imported by the simulators registry."""
