"""Admission on ``volli-signal``: how many connections may wait unregistered, and how
fast a registered one may send.

Before it registers, a connection is anyone's, and it holds a file descriptor for up to
``register_timeout`` (10 s).  Unbounded, one host opening sockets faster than they time
out runs the server out of descriptors (``ulimit -n`` is often 1,024) and every class
with it.  So at most ``max_pending`` connections wait unregistered at a time, and at most
``max_pending_per_host`` from one address; one more is answered "busy" and closed at once,
its descriptor freed.  Per address, but not low: a classroom sits behind one NAT address,
and registering takes one round trip, so even 60 students reconnecting together after a
Wi-Fi drop hold a few milliseconds each, far under the 128 one address may hold.

Frames: a token bucket per connection (``rate`` a second, ``burst`` at once); a frame over
it is refused ("rate-limited") and is a strike, and more than ``MAX_STRIKES`` strikes
within ``STRIKE_WINDOW`` seconds close the connection.  Counted per window, not for life:
a client that overran now and then over a day-long lesson is not closed for it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

RATE, BURST = 50.0, 100.0  # frames a second per connection, and at once
MAX_PENDING = 512  # unregistered connections at once, from anywhere
MAX_PENDING_PER_HOST = 128  # … from one address (a whole class behind one NAT fits)
MAX_STRIKES = 100  # refused frames within one window before the connection is closed
STRIKE_WINDOW = 60.0  # seconds


class Verdict(Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # this frame: over the rate
    CLOSE = "close"  # the connection: far over the rate, for a while


@dataclass
class FrameBudget:
    """One connection's token bucket and its strikes in the current window."""

    tokens: float
    refilled: float
    strikes: int = 0
    window_start: float = 0.0


class Admission:
    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        max_pending: int = MAX_PENDING,
        max_pending_per_host: int = MAX_PENDING_PER_HOST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.max_pending, self.max_pending_per_host = max_pending, max_pending_per_host
        self._pending: Counter[str] = Counter()

    def enter(self, host: str) -> str | None:
        """Count one more unregistered connection from ``host``, or say why not."""
        if self._pending.total() >= self.max_pending:
            return f"{self.max_pending} connections are registering already; retry shortly"
        if self._pending[host] >= self.max_pending_per_host:
            return (
                f"{self.max_pending_per_host} connections from your address are registering "
                "already; retry shortly"
            )
        self._pending[host] += 1
        return None

    def leave(self, host: str) -> None:
        """That connection registered, was refused, or went away."""
        self._pending[host] -= 1
        if self._pending[host] <= 0:
            del self._pending[host]

    def pending(self) -> int:
        return self._pending.total()

    def budget(self) -> FrameBudget:
        now = self.clock()
        return FrameBudget(tokens=self.burst, refilled=now, window_start=now)

    def frame(self, budget: FrameBudget) -> Verdict:
        """Spend a token on one frame; a frame without one is a strike."""
        now = self.clock()
        budget.tokens = min(self.burst, budget.tokens + (now - budget.refilled) * self.rate)
        budget.refilled = now
        if budget.tokens >= 1:
            budget.tokens -= 1
            return Verdict.ALLOW
        if now - budget.window_start >= STRIKE_WINDOW:
            budget.strikes, budget.window_start = 0, now
        budget.strikes += 1
        return Verdict.CLOSE if budget.strikes > MAX_STRIKES else Verdict.REFUSE


__all__ = [
    "BURST",
    "MAX_PENDING",
    "MAX_PENDING_PER_HOST",
    "RATE",
    "Admission",
    "FrameBudget",
    "Verdict",
]
