"""The outbox's retry policy, a pure function: the seed's 1 s, 5 s, 15 s, 60 s, then stuck.

The queue (:mod:`.message_queue`) applies it to a row's failure count; keeping it apart
keeps *when* separate from *where* rows are stored, and lets a test read the schedule
without a database.
"""

from __future__ import annotations

from collections.abc import Sequence

from volli_nb.base.errors import UsageError

RETRY_DELAYS: tuple[float, ...] = (1.0, 5.0, 15.0, 60.0)


def next_attempt_after(
    failures: int, now: float, delays: Sequence[float] = RETRY_DELAYS
) -> float | None:
    """When to try again after the ``failures``-th failure (1-based), or None: stuck.

    With the default delays, failures 1..4 wait 1, 5, 15 and 60 seconds; the 5th
    failure (the fourth retry failed) means manual intervention.
    """
    if failures < 1:
        raise UsageError(f"failures counts from 1, got {failures}")
    if failures > len(delays):
        return None
    return now + delays[failures - 1]


__all__ = ["RETRY_DELAYS", "next_attempt_after"]
