"""A bounded, timestamped log of what happened to the peers, with listeners.

It is the Python side of webrtc-internals' event list: signaling, ICE, DTLS,
channel, frame and message events.  Pure (no asyncio), so panels, the shell and the
tests read the same entries; listeners run synchronously and must be quick (one that
raises is logged, and the others still run).

Times are kept as exact float seconds (``to_json`` keeps them so), and shown the way
people read them: wall-clock time with milliseconds, and time since the log's first
event, which stays the same origin when old entries fall off the end.
"""

from __future__ import annotations

import html
import json
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from volli_nb.base.clock import Clock, system_clock
from volli_nb.base.listeners import Listeners
from volli_nb.core.shown_text import shown

CATEGORIES = (
    "signaling",
    "ice",
    "dtls",
    "connection",
    "channel",
    "frame",
    "message",
    "queue",
    "group",
    "error",
)


def wall_clock(t: float) -> str:
    """``14:03:27.512``: local wall-clock time with milliseconds."""
    return datetime.fromtimestamp(t).strftime("%H:%M:%S.%f")[:-3]


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis if longer, and
    harmless to print (:func:`~volli_nb.core.shown_text.shown`)."""
    flat = shown(" ".join(text[: 4 * limit + 8].split()))  # (a 12 MiB text: its head only)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def format_since(seconds: float) -> str:
    """``+12.345 s`` (or ``+2:05.120`` past a minute): time since the first event."""
    if seconds < 60:
        return f"+{seconds:.3f} s"
    minutes, rest = divmod(seconds, 60)
    return f"+{int(minutes)}:{rest:06.3f}"


@dataclass(frozen=True)
class LogEntry:
    time: float
    category: str
    peer_id: str | None
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    since: float = 0.0  # seconds since the log's first event

    @property
    def wall_clock(self) -> str:
        return wall_clock(self.time)

    @property
    def since_start(self) -> str:
        return format_since(self.since)

    def format(self) -> str:
        """One line: a message may quote a peer or a server (a goodbye, an error), so it
        is shown, never acted on (:func:`~volli_nb.core.shown_text.shown`)."""
        peer = f" [{self.peer_id}]" if self.peer_id else ""
        line = f"{self.wall_clock} {self.since_start:>11} {self.category:<10}{peer} {self.message}"
        return shown(line)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        """The readable line (the data stay in ``.data``): no epoch floats."""
        return f"<LogEntry {self.format()}>"


Listener = Callable[[LogEntry], None]


def load_entries(text: str) -> list[LogEntry]:
    """Entries back from :meth:`EventLog.to_json` (to draw or filter a saved log later)."""
    return [
        LogEntry(
            float(item["time"]),
            str(item["category"]),
            item.get("peer_id"),
            str(item["message"]),
            dict(item.get("data") or {}),
            float(item.get("since", 0.0)),
        )
        for item in json.loads(text)
    ]


class EventLog:
    def __init__(self, *, clock: Clock = system_clock, maxlen: int = 5000) -> None:
        self._clock = clock
        self._entries: deque[LogEntry] = deque(maxlen=maxlen)
        self._listeners = Listeners[[LogEntry]]("event log listener", logging.getLogger(__name__))
        self.started: float | None = None  # time of the first event ever added

    def add(
        self, category: str, message: str, *, peer_id: str | None = None, **data: Any
    ) -> LogEntry:
        now = self._clock()
        if self.started is None:
            self.started = now
        entry = LogEntry(now, category, peer_id, message, data, now - self.started)
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

    def __repr__(self) -> str:
        return f"<EventLog: {len(self._entries)} entries; .tail(n) prints the last n>"

    def _repr_html_(self, n: int = 20) -> str:
        """The last ``n`` entries as a table, newest last (a log displayed in Jupyter)."""
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(v)}</td>"
                for v in (e.wall_clock, e.since_start, e.category, e.peer_id or "", e.message)
            )
            + "</tr>"
            for e in list(self._entries)[-n:]
        )
        head = "".join(f"<th>{c}</th>" for c in ("time", "since start", "category", "peer", ""))
        shown = min(n, len(self._entries))
        return (
            f"<div>event log: the last {shown} of {len(self._entries)} entries</div>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        )

    def __iter__(self) -> Iterator[LogEntry]:
        return iter(list(self._entries))

    def tail(self, n: int = 20) -> str:
        """The last ``n`` entries as readable lines (for the shell and ``%volli events``)."""
        lines = [e.format() for e in list(self._entries)[-n:]] if n > 0 else []
        return "\n".join(lines) or "(no events yet)"

    def to_json(self) -> str:
        """The whole log as JSON, like webrtc-internals' dump: exact float times, plus the
        readable forms for people reading the file."""
        return json.dumps(
            [
                {**asdict(e), "wall_clock": e.wall_clock, "since_start": e.since_start}
                for e in self._entries
            ],
            default=str,
            indent=1,
        )
