"""Shared signal-processing toolbox of the WiFi and EEG detectors.

scipy conventions: arrays in, arrays or tuples out, ``fs=`` in Hz, ``axis=`` for the time
axis (``-1`` except for packet resampling, which as ``scipy.signal.resample`` uses ``0``),
units in parameter names (``_s``, ``_hz``), no hidden state outside the explicitly
streaming classes.

Modules
-------
:mod:`~sensing.dsp.rate`
    :func:`estimate_rate` — rate of a periodic component (summed noise-normalised
    periodograms, CFAR floor, sub-harmonic and edge checks); :class:`RateEstimate`,
    :func:`detection_floor`.
:mod:`~sensing.dsp.resample`
    :func:`resample_uniform`, :func:`fill_gaps`, :class:`UniformBinner` — irregular packets
    onto a uniform grid, gaps interpolated or left NaN.
:mod:`~sensing.dsp.outliers`
    :func:`hampel`, :func:`winsorize`, :func:`robust_std`.
:mod:`~sensing.dsp.buffers`
    :class:`RingBuffer` (fixed-length row history), :class:`SosStream` (``sosfilt`` with
    carried state).
:mod:`~sensing.dsp.debounce`
    :class:`Debouncer` — k of n, hysteresis, hold time, refractory time, pulse or latched.
"""

from sensing.dsp.buffers import RingBuffer, SosStream
from sensing.dsp.debounce import DebounceInput, Debouncer, Transition
from sensing.dsp.outliers import MAD_TO_STD, hampel, robust_std, winsorize
from sensing.dsp.rate import RateEstimate, detection_floor, estimate_rate
from sensing.dsp.resample import UniformBinner, fill_gaps, resample_uniform

__all__ = [
    "RateEstimate", "estimate_rate", "detection_floor",
    "resample_uniform", "fill_gaps", "UniformBinner",
    "MAD_TO_STD", "robust_std", "hampel", "winsorize",
    "RingBuffer", "SosStream",
    "Debouncer", "DebounceInput", "Transition",
]
