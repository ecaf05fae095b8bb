"""Clock skew between two peers, read from the clocks their PINGs carry.

An envelope carries its sender's signed time, and a receiver refuses one more than
``DEFAULT_MAX_SKEW_MS`` (2 minutes) ahead of its own clock or ``DEFAULT_MAX_AGE_MS``
(10 minutes) behind it.  A wrong clock therefore gets every message refused, however
often it is retried.  Each PING carries its sender's wall clock; the side that receives
it compares it with its own (the one-way delay, milliseconds, is noise against a
threshold of seconds).  Both sides ping, so both see the skew: at connect time (the first
PING follows the HELLO) and whenever it crosses the threshold.  Pure: the caller passes
its own wall clock with each reading.
"""

from __future__ import annotations

from dataclasses import dataclass

from volli_nb.core.crypto.envelope import DEFAULT_MAX_AGE_MS, DEFAULT_MAX_SKEW_MS

SKEW_WARN = 30.0  # seconds: past this, both sides are warned
HYSTERESIS = 1.0  # seconds back under the threshold before "agree again" (no flapping)
MAX_AHEAD = DEFAULT_MAX_SKEW_MS / 1000  # how far ahead an envelope may be
MAX_AGE = DEFAULT_MAX_AGE_MS / 1000  # how old an envelope may be


@dataclass(frozen=True)
class SkewReading:
    skew: float  # the peer's clock minus ours, seconds (positive: the peer is ahead)
    within: bool  # the clocks agree within the threshold
    first: bool  # the first reading of this connection


class SkewMonitor:
    """The latest skew of one connection, and when its verdict changes."""

    def __init__(self, threshold: float = SKEW_WARN) -> None:
        self.threshold = threshold
        self.skew: float | None = None
        self.within: bool | None = None

    def observe(self, peer_clock_ms: int, now: float) -> SkewReading | None:
        """Record a reading (``now``: our wall clock); returned if it is the first one or
        crosses the threshold, else None."""
        skew = peer_clock_ms / 1000 - now
        first = self.within is None
        limit = self.threshold - HYSTERESIS if self.within is False else self.threshold
        within = abs(skew) <= limit
        self.skew = skew
        if not first and within == self.within:
            return None
        self.within = within
        return SkewReading(skew, within, first)


def describe_skew(skew: float) -> str:
    """The skew and what it does to messages, from our side ("their clock is …")."""
    amount = f"{abs(skew):.0f} s" if abs(skew) >= 1 else f"{abs(skew):.1f} s"
    if abs(skew) < 1:
        return f"their clock agrees with ours (within {amount})"
    side = "ahead of" if skew > 0 else "behind"
    text = f"their clock is {amount} {side} ours"
    theirs = skew > MAX_AHEAD or skew < -MAX_AGE  # their envelopes fail our check
    ours = skew < -MAX_AHEAD or skew > MAX_AGE
    refused = {(True, True): "messages both ways are", (True, False): "what they send us is"}
    refused[False, True] = "what we send them is"
    if theirs or ours:
        return f"{text}: {refused[theirs, ours]} refused until a clock is fixed"
    return f"{text} (envelopes still pass: {MAX_AHEAD:.0f} s ahead or {MAX_AGE:.0f} s old)"


__all__ = ["HYSTERESIS", "SKEW_WARN", "SkewMonitor", "SkewReading", "describe_skew"]
