"""``lora_rssi_motion``: coarse motion near a LoRa link from a module's per-packet RSSI/SNR.

A static link's RSSI varies only by the module's 1 dB reporting step and a few tenths of a
dB of jitter; a person moving near the link makes its multipath fade, several dB. Every
``hop_s`` the robust spread (1.4826 × median absolute deviation) of the RSSI of the packets
of the last ``window_s`` is compared with ``threshold_db`` (on; off below
``release × threshold``); ``motion`` events (``value`` 1/0) are emitted on every change.
The SNR is used instead when a log has no RSSI. Coarse: a module reports one number per
packet, at the packet rate (≤ a few Hz), so breathing is out of reach; movement is not.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from agent.pipelines.base import PIPELINES, Pipeline
from sensing.detections import Detection
from sensing.frames import Frames
from sensing.params import Params, param

NAME = "lora_rssi_motion"


class RssiMotionParams(Params):
    """Options of the ``lora_rssi_motion`` pipeline."""

    window_s: float = param(10.0, unit="s", gt=0, le=3600, doc="analysis window")
    hop_s: float = param(2.0, unit="s", gt=0, le=3600, doc="time between decisions")
    threshold_db: float = param(1.5, unit="dB", gt=0, le=40,
                                doc="RSSI spread (robust sd) that means motion")
    release: float = param(0.7, gt=0, le=1, doc="motion ends below release x threshold")
    min_packets: int = param(5, ge=3, le=10000, doc="packets a window needs")
    link: str = param("", doc="name of the link in the events (default: the source)")


@PIPELINES.register(NAME)
class LoraRssiMotionPipeline(Pipeline):
    """Motion on/off near a LoRa link from per-packet RSSI (module packet logs).

    ``motion`` extras: ``link``, ``rssi_spread_db``, ``packets``, ``window_s``.
    """

    name = NAME
    Params = RssiMotionParams
    modalities = ("lora_packets",)
    default = True
    event_types = ("motion",)
    description = "coarse motion near a LoRa link from the per-packet RSSI spread"

    params: RssiMotionParams

    def __init__(self, params: RssiMotionParams | None = None, /, **options: Any) -> None:
        super().__init__(params, **options)
        self._t: deque[float] = deque()
        self._v: deque[float] = deque()
        self._next: float | None = None
        self._state: bool | None = None
        self._windows = 0
        self._link = self.params.link
        self._column: int | None = None

    def push(self, frames: Frames) -> list[Detection]:
        if not len(frames):
            return []
        if not self._link:
            self._link = frames.source
        data = np.asarray(frames.data, float)
        if self._column is None:
            self._column = 0 if np.isfinite(data[:, 0]).any() else 1
        vals = data[:, self._column]
        out: list[Detection] = []
        for t, v in zip(frames.times_s, vals, strict=True):
            if self._next is None:
                self._next = float(t) + self.params.window_s
            while t >= self._next:
                det = self._decide(self._next)
                if det is not None:
                    out.append(det)
                self._next += self.params.hop_s
            if math.isfinite(v):
                self._t.append(float(t))
                self._v.append(float(v))
        return out

    def _decide(self, end: float) -> Detection | None:
        p = self.params
        while self._t and self._t[0] < end - p.window_s:
            self._t.popleft()
            self._v.popleft()
        if len(self._v) < p.min_packets:
            return None
        self._windows += 1
        v = np.fromiter(self._v, float)
        spread = float(1.4826 * np.median(np.abs(v - np.median(v))))
        # a 1 dB-quantised static link has MAD 0: use the sd, bounded by the MAD spread
        spread = max(spread, float(np.std(v)) * 0.5)
        on = spread >= (p.release * p.threshold_db if self._state else p.threshold_db)
        if on == self._state:
            return None
        self._state = on
        conf = min(1.0, spread / (2 * p.threshold_db)) if on else \
            max(0.0, 1 - spread / p.threshold_db)
        return Detection("motion", round(end, 3), int(on), "", round(conf, 3),
                         {"link": self._link, "rssi_spread_db": round(spread, 2),
                          "packets": len(v), "window_s": p.window_s})

    def quiet_reason(self) -> str | None:
        if self._state is not None:
            return None
        if not self._windows:
            return (f"fewer than {self.params.min_packets} packets in every "
                    f"{self.params.window_s:g} s window")
        return None
