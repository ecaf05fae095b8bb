"""A bounded, timestamped log of what happened to the peers, with listeners.

It is the Python side of webrtc-internals' event list: signaling, ICE, DTLS,
channel and message events.  Pure (no asyncio), so panels, the shell and the
tests read the same entries; listeners run synchronously and must be quick (one that
raises is logged, and the others still run).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from volli_nb.base.clock import Clock, system_clock
from volli_nb.base.listeners import Listeners

CATEGORIES = ("signaling", "ice", "dtls", "connection", "channel", "message", "queue", "error")


@dataclass(frozen=True)
class LogEntry:
    time: float
    category: str
    peer_id: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)

    def format(self) -> str:
        peer = f" [{self.peer_id}]" if self.peer_id else ""
        return f"{self.time:.3f} {self.category:<10}{peer} {self.message}"


Listener = Callable[[LogEntry], None]


class EventLog:
    def __init__(self, *, clock: Clock = system_clock, maxlen: int = 5000) -> None:
        self._clock = clock
        self._entries: deque[LogEntry] = deque(maxlen=maxlen)
        self._listeners = Listeners[[LogEntry]]("event log listener", logging.getLogger(__name__))

    def add(
        self, category: str, message: str, *, peer_id: str | None = None, **data: Any
    ) -> LogEntry:
        entry = LogEntry(self._clock(), category, peer_id, message, data)
        self._entries.append(entry)
        self._listeners.emit(entry)
        return entry

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for each new entry; returns the function that unsubscribes."""
        return self._listeners.add(listener)

    def entries(
        self, *, category: str | None = None, peer_id: str | None = None, text: str = ""
    ) -> list[LogEntry]:
        return [
            e
            for e in self._entries
            if (category is None or e.category == category)
            and (peer_id is None or e.peer_id == peer_id)
            and text.lower() in e.message.lower()
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(list(self._entries))

    def to_json(self) -> str:
        """The whole log as JSON, like webrtc-internals' dump."""
        return json.dumps([asdict(e) for e in self._entries], default=str, indent=1)
