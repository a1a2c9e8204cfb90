"""Streaming state: a fixed-length ring buffer of rows and an IIR filter that carries its
state from chunk to chunk (so that filtering a stream in chunks of any size gives exactly
the samples of filtering it at once).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

__all__ = ["RingBuffer", "SosStream"]


class RingBuffer:
    """Fixed-length history of rows (oldest first), bounded memory, no per-call allocation
    of the whole history as with ``np.asarray(deque)``.

    Parameters
    ----------
    maxlen : int
        Rows kept.
    shape : tuple of int
        Shape of one row (``()``: scalars).
    fill : float
        Value of the rows not written yet (NaN: a missing history reads as NaN).

    Attributes
    ----------
    buf : numpy.ndarray
        ``(maxlen, *shape)`` float storage, newest row last; rows not written yet hold
        ``fill`` (so ``buf[-1]`` is the newest row, or ``fill`` when empty).
    """

    def __init__(self, maxlen: int, shape: tuple[int, ...] = (), *, fill: float = np.nan) -> None:
        self.buf = np.full((maxlen, *shape), fill)
        self.n = 0

    def append(self, x: np.ndarray | float) -> None:
        """Add one row (the oldest falls out when full)."""
        self.buf[:-1] = self.buf[1:]
        self.buf[-1] = x
        self.n = min(self.n + 1, len(self.buf))

    def __len__(self) -> int:
        return self.n

    def view(self) -> np.ndarray:
        """The stored rows, oldest first (a view: copy before keeping)."""
        return self.buf[len(self.buf) - self.n:]


class SosStream:
    """``scipy.signal.sosfilt`` over a stream: the filter state is carried between chunks.

    Parameters
    ----------
    sos : numpy.ndarray
        Second-order sections ``(n_sections, 6)`` (``scipy.signal.butter(..., output="sos")``).
    axis : int
        Time axis of the chunks.
    steady_state : bool
        Start in the steady state of the first sample (``sosfilt_zi`` × first sample: no
        step response when the signal has an offset); else start from rest (zeros).

    Notes
    -----
    ``push(a)`` then ``push(b)`` returns exactly ``sosfilt`` of ``concatenate([a, b])``
    with the same initial state. The state is created at the first non-empty chunk, whose
    shape (other than ``axis``) every later chunk must have.
    """

    def __init__(self, sos: np.ndarray, *, axis: int = -1, steady_state: bool = True) -> None:
        self.sos = np.asarray(sos)
        self.axis = axis
        self.steady_state = bool(steady_state)
        self.zi: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the state (the next chunk starts the filter again)."""
        self.zi = None

    def push(self, x: np.ndarray) -> np.ndarray:
        """Filter the next chunk (time along ``axis``); returns the same shape."""
        x = np.asarray(x)
        if x.shape[self.axis] == 0:
            return np.zeros(x.shape, np.result_type(x.dtype, np.float64))
        if self.zi is None:
            self.zi = self._initial_state(x)
        y, self.zi = signal.sosfilt(self.sos, x, axis=self.axis, zi=self.zi)
        return y

    def _initial_state(self, x: np.ndarray) -> np.ndarray:
        ax = self.axis % x.ndim
        shape = [len(self.sos), *(2 if i == ax else n for i, n in enumerate(x.shape))]
        if not self.steady_state:
            return np.zeros(shape)
        base = signal.sosfilt_zi(self.sos)  # (n_sections, 2)
        base = base.reshape(len(self.sos), *(2 if i == ax else 1 for i in range(x.ndim)))
        return base * np.take(x, [0], axis=ax)[None]
