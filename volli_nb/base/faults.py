"""Fault points: named steps where a test may make this process die, as kill -9 would.

Crash tests need a real process to die at an exact step (after an envelope is sealed and
before its frame leaves, after a frame is opened and before its commit, after the commit
and before its ACK), many times over.  Timing a SIGKILL from outside cannot hit those
windows reliably; a point the process itself reaches can.  ``VOLLI_FAULTS`` arms them,
``point:n`` (comma-separated): the n-th time the process reaches ``point`` it sends
itself SIGKILL (no cleanup, no flush: what a power cut leaves of a process).  Unarmed,
which is always outside such tests, a point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "VOLLI_FAULTS"
POINTS = ("sealed", "opened", "stored")


def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        if name not in POINTS or not count.isdigit() or int(count) < 1:
            raise ValueError(f"{ENV}: {item!r} is not POINT:N with POINT in {POINTS}, N >= 1")
        armed[name] = int(count)
    return armed


_armed = _parse(os.environ.get(ENV, ""))


def reach(point: str) -> None:
    """This process is at ``point``: die here if a test armed it for this visit."""
    left = _armed.get(point)
    if left is None:
        return
    if left > 1:
        _armed[point] = left - 1
        return
    os.kill(os.getpid(), signal.SIGKILL)


__all__ = ["ENV", "POINTS", "reach"]
