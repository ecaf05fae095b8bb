"""Injected time: the core never reads the wall clock itself.

Times are float seconds since the epoch (``now``).  Envelopes carry integer
milliseconds, converted at the edge.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> float: ...


def system_clock() -> float:
    """Wall-clock seconds since the epoch."""
    return time.time()


def monotonic_clock() -> float:
    """Seconds that never jump back: for timers and deadlines (``time.monotonic``)."""
    return time.monotonic()


class VirtualClock:
    """A clock that only moves when told to; for tests, the simulator and notebooks."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self.now += seconds
        return self.now
