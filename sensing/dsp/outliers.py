"""Robust scale and outlier removal: robust standard deviation, Hampel filter, winsorizing.

All functions work along ``axis`` (default ``-1``, as scipy's filters) and treat every
other axis as independent channels; complex input is handled on its real and imaginary
parts separately.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["MAD_TO_STD", "robust_std", "hampel", "winsorize"]

#: Factor turning a median absolute deviation into a standard deviation for Gaussian data.
MAD_TO_STD = 1.4826


def robust_std(x: np.ndarray, *, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """Robust standard deviation: 1.4826 × the median absolute deviation from the median.

    Parameters
    ----------
    x : numpy.ndarray
        Real data (same unit as the result).
    axis : int
        Axis the statistic is taken along.
    keepdims : bool
        Keep ``axis`` with length 1 (for broadcasting against ``x``).

    Returns
    -------
    numpy.ndarray
        In the unit of ``x``; ``x``'s shape without ``axis``.
    """
    med = np.median(x, axis=axis, keepdims=True)
    return MAD_TO_STD * np.median(np.abs(x - med), axis=axis, keepdims=keepdims)


def hampel(
    x: np.ndarray, window_size: int = 7, n_sigmas: float = 3.0, *, axis: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Hampel outlier filter: replace samples far from the running median by that median.

    Parameters
    ----------
    x : numpy.ndarray
        Real or complex; complex values are filtered on real and imaginary parts.
    window_size : int
        Length of the running window along ``axis`` (samples, odd is best).
    n_sigmas : float
        Outlier threshold in robust standard deviations (1.4826 × running MAD). The
        running MAD is floored at 1 % of the whole series' robust standard deviation, so
        flat stretches do not turn every small step into an outlier.
    axis : int
        Axis to filter along (time).

    Returns
    -------
    filtered : numpy.ndarray
        Same shape and dtype.
    outliers : numpy.ndarray of bool
        Where values were replaced (for complex input: either part).
    """
    x = np.asarray(x)
    if np.iscomplexobj(x):
        re, m_re = hampel(x.real, window_size, n_sigmas, axis=axis)
        im, m_im = hampel(x.imag, window_size, n_sigmas, axis=axis)
        return (re + 1j * im).astype(x.dtype, copy=False), m_re | m_im
    size = [1] * x.ndim
    size[axis] = max(int(window_size), 1)
    med = ndimage.median_filter(x, size=size, mode="nearest")
    mad = MAD_TO_STD * ndimage.median_filter(np.abs(x - med), size=size, mode="nearest")
    # flat stretches have a running MAD of 0: floor it at 1 % of the global robust scale
    mad = np.maximum(mad, 0.01 * robust_std(x, axis=axis, keepdims=True))
    out_mask = (np.abs(x - med) > n_sigmas * mad) & (mad > 0)
    return np.where(out_mask, med, x).astype(x.dtype, copy=False), out_mask


def winsorize(x: np.ndarray, n_sigmas: float = 5.0, *, axis: int = -1) -> np.ndarray:
    """Clip every channel to its median ± ``n_sigmas`` robust standard deviations, so that
    isolated glitches cannot dominate a window.

    Parameters
    ----------
    x : numpy.ndarray
        Real or complex (real and imaginary parts clipped separately).
    n_sigmas : float
        Clip level in robust standard deviations (:func:`robust_std`).
    axis : int
        Axis the median and spread are taken along (time).

    Returns
    -------
    numpy.ndarray
        Same shape as ``x``.
    """
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return winsorize(x.real, n_sigmas, axis=axis) + 1j * winsorize(x.imag, n_sigmas, axis=axis)
    med = np.median(x, axis=axis, keepdims=True)
    mad = robust_std(x, axis=axis, keepdims=True)
    return np.clip(x, med - n_sigmas * mad, med + n_sigmas * mad)
