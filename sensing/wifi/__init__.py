"""WiFi CSI signal processing: reusable conditioning functions (:mod:`.conditioning`) and
the detectors built on them (breathing rate: :mod:`.breathing`)."""
