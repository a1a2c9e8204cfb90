"""ambisense.sensing: streaming signal processing for contact-free health sensing.

This package is a library: it never imports :mod:`agent`. A capture is read as a
stream of :class:`~sensing.frames.Frames` chunks by a registered format reader
(:func:`sensing.formats.open_capture`), turned into features by streaming
extractors and into :class:`~sensing.detections.Detection` objects by detectors
registered in :data:`sensing.detectors.DETECTORS`.
"""

from sensing.detections import Detection
from sensing.errors import CaptureFormatError, Reject, UnsupportedFormatError
from sensing.frames import Frames

__all__ = ["Detection", "Frames", "CaptureFormatError", "Reject", "UnsupportedFormatError"]
__version__ = "0.1.0"
