"""ambisense.sensing: streaming signal processing for contact-free health sensing.

This package is a library: its signal processing never imports :mod:`agent`. A modality
folder's plug-in modules (``sensing/<modality>/pipelines.py``, ``commands.py``) are the
exception: they plug the modality into the agent, as an outside plug-in would. A capture is read as a
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
