"""Progress of long operations as pure data with listeners: the network and the app
report it, the surfaces render it (bars in a notebook, the shell's toolbar, stderr for
the command line).

The layers below the surfaces cannot know where they run, so they only say what is
going on; nothing is shown unless a surface subscribes, which is why a plain script or
a test sees no bar.  Updates may come once per 16 KiB chunk: listeners must be cheap and
renderers throttle.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from volli_nb.base.clock import Clock
from volli_nb.base.listeners import Listeners

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressUpdate:
    """The state of one task after a change.

    ``key`` names the task (``send:<message>:<peer>``, ``flush:<peer>``, …); ``done`` and
    ``total`` count ``unit`` ("B" or "msg"; ``total`` None while unknown); ``stage`` says
    what it waits for now; ``outcome`` is set once, when it ends ("" while running)."""

    key: str
    description: str
    done: float
    total: float | None
    unit: str
    stage: str
    started: float
    outcome: str = ""
    failed: bool = False

    @property
    def finished(self) -> bool:
        return bool(self.outcome)

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


ProgressListener = Callable[[ProgressUpdate], None]


class ProgressFeed:
    """Tasks under way, by key; listeners hear every start, change and end."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self.active: dict[str, ProgressUpdate] = {}
        # a broken bar must not break a transfer: a raising listener is logged
        self._listeners = Listeners[[ProgressUpdate]]("progress listener", log)

    @property
    def watched(self) -> bool:
        """True if someone listens: sources may skip building updates otherwise."""
        return bool(self._listeners)

    def subscribe(self, listener: ProgressListener) -> Callable[[], None]:
        return self._listeners.add(listener)

    def start(
        self,
        key: str,
        description: str,
        *,
        total: float | None,
        unit: str,
        stage: str = "",
        done: float = 0.0,
    ) -> ProgressUpdate:
        """Begin (or restart) the task ``key``."""
        update = ProgressUpdate(key, description, done, total, unit, stage, self._clock())
        self.active[key] = update
        self._listeners.emit(update)
        return update

    def update(
        self,
        key: str,
        *,
        done: float | None = None,
        advance: float = 0.0,
        total: float | None = None,
        stage: str | None = None,
    ) -> ProgressUpdate | None:
        """Change a running task; unknown (or finished) keys are ignored."""
        current = self.active.get(key)
        if current is None:
            return None
        update = replace(
            current,
            done=(current.done if done is None else done) + advance,
            total=current.total if total is None else total,
            stage=current.stage if stage is None else stage,
        )
        self.active[key] = update
        self._listeners.emit(update)
        return update

    def finish(self, key: str, outcome: str, *, failed: bool = False) -> ProgressUpdate | None:
        """End the task ``key`` with a short outcome ("acknowledged", "peer went offline")."""
        current = self.active.pop(key, None)
        if current is None:
            return None
        done = current.total if not failed and current.total is not None else current.done
        update = replace(current, done=done, outcome=outcome, failed=failed)
        self._listeners.emit(update)
        return update
