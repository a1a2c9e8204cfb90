"""One debouncer for every detector that turns per-window scores into events or states.

:class:`Debouncer` is a two-state (off/on) machine fed one timed value per window:

* **k of n**: it turns on when at least ``on_count`` of the last ``on_window`` inputs are
  *high* (``value >= on_threshold``; ``on_count == on_window``: that many in a row);
* **hysteresis**: while on, an input is *low* when ``value < off_threshold`` (default the
  on threshold); it turns off when ``off_count`` of the last ``off_window`` inputs are low …
* **hold**: … or when ``hold_s`` seconds have passed since the last input that was not low
  (it stays on at least that long after the activity);
* **refractory time**: no on-transition within ``refractory_s`` after the previous one;
* **pulse mode** (``latch=False``): every on-transition is an event and the state falls
  back to off at once (fall events); latched (default): the state stays on until turned off
  (seizure, motion).

With ``restart`` (default) the counts restart at every transition: an input counts toward
one transition only. At most one transition happens per input. Without thresholds the
values are taken as booleans (True = high, False = low).

Users: :class:`sensing.wifi.fall.FallDetector` (pulse, k of n, refractory),
:class:`sensing.eeg.seizure.SeizureDetector` (confirm/release runs with hysteresis) and
:class:`sensing.wifi.motion.MotionDetector` (on after a run of active windows, off after a
hold time without one).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["Debouncer", "DebounceInput", "Transition"]


@dataclass(frozen=True)
class DebounceInput:
    """One input of a :class:`Debouncer`.

    Attributes
    ----------
    t_s : float
        Stream time of the input (s).
    value : object
        The value compared with the thresholds (or the boolean).
    item : object
        Whatever the caller attached (features, channel probabilities …).
    """

    t_s: float
    value: Any
    item: Any = None


@dataclass(frozen=True)
class Transition:
    """A state change of a :class:`Debouncer`.

    Attributes
    ----------
    kind : str
        ``"on"`` or ``"off"``.
    t_s : float
        Time of the input that caused it (s).
    inputs : tuple of DebounceInput
        The inputs that counted toward it, oldest first (the high ones of the last
        ``on_window`` for ``"on"``, the low ones of the last ``off_window`` for ``"off"``;
        empty when the hold time ended it).
    """

    kind: str
    t_s: float
    inputs: tuple[DebounceInput, ...] = ()


class Debouncer:
    """k-of-n / hysteresis / hold / refractory debouncer (see the module docstring).

    Parameters
    ----------
    on_threshold : float, optional
        An input is high when ``value >= on_threshold``. None: values are booleans.
    off_threshold : float, optional
        While on, an input is low when ``value < off_threshold`` (default
        ``on_threshold``: no hysteresis).
    on_count : int
        High inputs needed among the last ``on_window`` to turn on.
    on_window : int, optional
        Length of that window of inputs (default ``on_count``: consecutive).
    off_count : int, optional
        Low inputs among the last ``off_window`` that turn it off (None: only the hold
        time turns it off).
    off_window : int, optional
        Length of that window (default ``off_count``).
    hold_s : float, optional
        Turn off once this many seconds have passed since the last input that was not
        low (None: no time limit).
    refractory_s : float
        No on-transition within this time after the previous one (s).
    latch : bool
        Stay on after an on-transition (False: pulse mode, every on-transition is an event
        and the state stays off).
    restart : bool
        Restart the counts at every transition (an input counts toward one transition
        only); False: the counts look at the last inputs whatever the transitions.

    Attributes
    ----------
    last_on_s : float
        Time of the last on-transition (s; ``-inf`` before the first). The refractory time
        runs from it; a caller that confirms a pulse later (or drops it) may set it.
    last_active_s : float or None
        Time of the last input that was not low (s).
    """

    def __init__(
        self,
        on_threshold: float | None = None,
        off_threshold: float | None = None,
        *,
        on_count: int = 1,
        on_window: int | None = None,
        off_count: int | None = None,
        off_window: int | None = None,
        hold_s: float | None = None,
        refractory_s: float = 0.0,
        latch: bool = True,
        restart: bool = True,
    ) -> None:
        self.on_threshold = on_threshold
        self.off_threshold = on_threshold if off_threshold is None else off_threshold
        self.on_count = int(on_count)
        self.on_window = self.on_count if on_window is None else int(on_window)
        self.off_count = None if off_count is None else int(off_count)
        self.off_window = self.off_count if off_window is None else int(off_window)
        if self.on_count < 1 or self.on_window < self.on_count:
            raise ValueError(f"need 1 <= on_count <= on_window, got {on_count}, {on_window}")
        if self.off_count is not None and not 1 <= self.off_count <= self.off_window:
            raise ValueError(f"need 1 <= off_count <= off_window, got {off_count}, {off_window}")
        self.hold_s = None if hold_s is None else float(hold_s)
        self.refractory_s = float(refractory_s)
        self.latch = bool(latch)
        self.restart = bool(restart)
        self.last_on_s = float("-inf")
        self.last_active_s: float | None = None
        self._on = False
        self._highs: deque[tuple[DebounceInput, bool]] = deque(maxlen=self.on_window)
        self._lows: deque[tuple[DebounceInput, bool]] = deque(maxlen=self.off_window or 1)

    @property
    def on(self) -> bool:
        """Current state."""
        return self._on

    def high(self, value: Any) -> bool:
        """Whether ``value`` counts toward turning on."""
        return bool(value) if self.on_threshold is None else bool(value >= self.on_threshold)

    def low(self, value: Any) -> bool:
        """Whether ``value`` counts toward turning off."""
        return not value if self.off_threshold is None else bool(value < self.off_threshold)

    def reset(self) -> None:
        """Forget the inputs and return to off (``last_on_s`` is kept)."""
        self._on = False
        self._highs.clear()
        self._lows.clear()

    def step(self, t_s: float, value: Any, item: Any = None) -> Transition | None:
        """Feed the next input (in time order); return the transition it caused, if any."""
        inp = DebounceInput(t_s, value, item)
        low = self.low(value)
        if not low:
            self.last_active_s = t_s
        self._highs.append((inp, self.high(value)))
        if self.off_count is not None:
            self._lows.append((inp, low))
        if not self._on:
            hits = tuple(i for i, h in self._highs if h)
            if len(hits) >= self.on_count and t_s - self.last_on_s >= self.refractory_s:
                self.last_on_s = t_s
                self._transition(self.latch)
                return Transition("on", t_s, hits)
            return None
        lows = tuple(i for i, lo in self._lows if lo)
        if self.off_count is not None and len(lows) >= self.off_count:
            self._transition(False)
            return Transition("off", t_s, lows)
        if self.hold_s is not None and (self.last_active_s is None
                                        or t_s - self.last_active_s >= self.hold_s):
            self._transition(False)
            return Transition("off", t_s)
        return None

    def _transition(self, on: bool) -> None:
        self._on = on
        if self.restart:
            self._highs.clear()
            self._lows.clear()
