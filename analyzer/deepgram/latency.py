"""Streaming latency by Deepgram's method.

latency = audio cursor (seconds of audio sent when a result arrives)
          - (start + duration) of the latest INTERIM result.
Final results are ignored: they are held back until the utterance settles, so
they measure endpointing, not transcription speed.
"""
from __future__ import annotations

import math
from typing import Optional

from ..model import Latency


def percentile(sorted_values: list[float], p: float) -> Optional[float]:
    """Linear interpolation between closest ranks (numpy's default method)."""
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


class LatencySamples:
    """Latency samples with bounded memory.

    Past MAX samples every other one is dropped and only every 2nd, 4th, ... new one
    kept, so a long session keeps an even spread across its whole length.
    """
    MAX = 20000

    def __init__(self) -> None:
        self.values: list[float] = []
        self.count = 0
        self.max: Optional[float] = None
        self._stride = 1

    def add(self, value: float) -> None:
        self.count += 1
        self.max = value if self.max is None else max(self.max, value)
        if (self.count - 1) % self._stride:
            return
        self.values.append(value)
        if len(self.values) >= self.MAX:
            self.values = self.values[::2]
            self._stride *= 2

    def summary(self) -> Latency:
        ordered = sorted(self.values)

        def r(x: Optional[float]) -> Optional[float]:
            return None if x is None else round(x, 3)

        return Latency(p50=r(percentile(ordered, 50)), p95=r(percentile(ordered, 95)),
                       max=r(self.max), samples=self.count)
