"""The seed's sequence diagrams, drawn from what the event log records: plain data.

Each log entry that means a step of the story (a call into the store, a frame on the
wire, an ACK, a retry timer, a stuck message, a manual retry, a peer going offline)
becomes one or more arrows between lifelines: ``UI``, ``Store``, ``Queue``, ``Network``
and one per peer, as in the seed's two mermaid diagrams (the rules that say which are
in :mod:`.sequence_steps`).  Entries that are only state chatter (ICE gathering,
signaling states, pings) draw nothing.  The model keeps the last
``cap`` arrows and counts the ones that fell off, so a long session stays readable.

No widgets here: the SVG renderer, the panel and the tests all read these arrows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from volli_nb.core.eventlog import LogEntry, format_since, wall_clock
from volli_nb.ui.widgets.sequence_steps import (
    LIFELINES,
    NAME,
    PEER,
    ids_text,
    size_text,
    steps_for,
)

DEFAULT_CAP = 150


@dataclass(frozen=True)
class Arrow:
    """One step: ``source`` → ``target`` (equal for a self-call; a note spans both).

    ``style`` is "call" (solid), "reply" (dashed) or "note"; ``tone`` colours it
    ("wire", "queue", "ok", "bad" or ""); ``number`` counts from 1 over the whole story,
    dropped arrows included, so a reader can tell how much is off the top."""

    number: int
    time: float
    since: float
    source: str
    target: str
    label: str
    kind: str
    style: str
    tone: str
    details: tuple[tuple[str, str], ...]
    peer_id: str | None = None
    ahead: float = 0.0  # how far the store's (virtual) clock had run ahead of real time

    @property
    def shown_since(self) -> float:
        """The time column: seconds since the first event, on the store's clock (a
        notebook's virtual clock jumps the retries 1, 5, 15, 60 s apart, as labelled)."""
        return self.since + self.ahead

    @property
    def is_self(self) -> bool:
        return self.source == self.target and self.style != "note"


_DETAIL_KEYS = (
    ("message_id", "message"),
    ("bytes", "size"),
    ("chunks", "chunks"),
    ("seconds", "took"),
    ("rtt", "round trip"),
    ("attempt", "attempt"),
    ("attempts", "failed attempts"),
    ("wait", "retry wait"),
    ("reason", "reason"),
    ("row", "outbox row"),
    ("rows", "outbox rows"),
    ("conversation", "conversation"),
    ("session", "session"),
    ("step", "DH ratchet step"),
)


class SequenceModel:
    """Arrows from log entries, capped; feed it with :meth:`add` (or :meth:`extend`)."""

    def __init__(self, *, cap: int = DEFAULT_CAP) -> None:
        if cap < 1:
            raise ValueError("the cap must be at least 1 arrow")
        self.cap = cap
        self.arrows: deque[Arrow] = deque(maxlen=cap)
        self.total = 0
        self._last_time: float | None = None
        self._clock0: float | None = None  # first store-clock reading seen (virtual or not)
        self._offset: float | None = None  # store clock minus log clock, at that reading
        self._ahead = 0.0  # how far the store's clock has since run ahead of the log's

    @property
    def dropped(self) -> int:
        """Arrows that fell off the top because of the cap."""
        return self.total - len(self.arrows)

    def clear(self) -> None:
        self.arrows.clear()
        self.total = 0

    def extend(self, entries: Iterable[LogEntry]) -> list[Arrow]:
        return [arrow for entry in entries for arrow in self.add(entry)]

    def _follow_clock(self, entry: LogEntry) -> None:
        """A virtual store clock moves by jumps (``clock.advance(60)``) while the log's
        runs in real time: keep how far ahead it got, so the time column shows it."""
        if "clock" not in entry.data:
            return
        offset = float(entry.data["clock"]) - entry.time
        if self._offset is None:
            self._offset = offset
        elif offset - self._offset > self._ahead + 0.001:  # a jump, not a read's jitter
            self._ahead = offset - self._offset

    def add(self, entry: LogEntry) -> list[Arrow]:
        steps = steps_for(entry)
        if not steps:
            return []
        self._follow_clock(entry)
        details = self._details(entry)
        peer = entry.peer_id if entry.peer_id and not entry.peer_id.startswith("pair-") else None
        new = []
        for step in steps:
            source, target = (
                (peer or PEER) if s == PEER else s for s in (step.source, step.target)
            )
            self.total += 1
            arrow = Arrow(
                self.total,
                entry.time,
                entry.since,
                source,
                target,
                step.label,
                str(entry.data.get("kind") or entry.category),
                step.style,
                step.tone,
                details,
                peer,
                self._ahead,
            )
            self.arrows.append(arrow)
            new.append(arrow)
        self._last_time = entry.time
        return new

    def _details(self, entry: LogEntry) -> tuple[tuple[str, str], ...]:
        data = entry.data
        out = [("time", f"{wall_clock(entry.time)} ({format_since(entry.since)})")]
        if self._ahead:
            out.append(("virtual clock", f"{self._ahead:+.0f} s ahead of real time"))
        if self._last_time is not None:
            out.append(("after previous", f"{(entry.time - self._last_time) * 1000:.1f} ms"))
        if entry.peer_id:
            out.append(("peer", entry.peer_id))
        if data.get("message_ids"):
            out.append(("messages", ids_text(data, full=True)))
        for key, name in _DETAIL_KEYS:
            if key not in data or data[key] is None:
                continue
            value = data[key]
            if key == "bytes":
                value = size_text(value)
            elif key in ("seconds", "rtt"):
                value = f"{float(value) * 1000:.1f} ms"
            elif key == "wait":
                value = f"{value:g} s"
            out.append((name, str(value)))
        if "clock" in data:  # the store's clock, which a notebook may run virtually
            clock = float(data["clock"])
            self._clock0 = clock if self._clock0 is None else self._clock0
            out.append(("store clock", f"+{clock - self._clock0:g} s"))
            if data.get("due_at") is not None:
                out.append(("next attempt", f"+{float(data['due_at']) - self._clock0:g} s"))
        out.append(("event", f"{entry.category}: {entry.message}"))
        return tuple(out)

    # --- what lifelines to draw, and mermaid text --------------------------------

    def lifelines(self) -> list[str]:
        """UI, Store, Queue, Network, then each peer in order of first appearance."""
        peers: list[str] = []
        for arrow in self.arrows:
            for end in (arrow.source, arrow.target):
                if end not in LIFELINES and end not in peers:
                    peers.append(end)
        return [*LIFELINES, *peers]

    def to_mermaid(self, names: Callable[[str], str] = str) -> str:
        """The visible arrows as mermaid ``sequenceDiagram`` text (GitHub renders it)."""
        lines = ["sequenceDiagram"]
        alias = {}
        for i, lifeline in enumerate(self.lifelines()):
            if lifeline in LIFELINES:
                alias[lifeline] = lifeline
                lines.append(f"    participant {lifeline}")
            else:
                alias[lifeline] = f"P{i}"
                lines.append(f"    participant P{i} as {_mermaid_text(names(lifeline))}")
        if self.dropped:
            lines.append(f"    Note over UI,Network: {self.dropped} earlier arrows not shown")
        for arrow in self.arrows:
            label = _mermaid_text(label_for(arrow, names))
            src, dst = alias[arrow.source], alias[arrow.target]
            if arrow.style == "note":
                span = src if src == dst else f"{src},{dst}"
                lines.append(f"    Note over {span}: {label}")
            else:
                lines.append(
                    f"    {src}{'-->>' if arrow.style == 'reply' else '->>'}{dst}: {label}"
                )
        return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Mermaid reads ``;`` as a line break and ``#`` as an entity: keep them out."""
    return text.replace(";", ",").replace("#", "no. ").replace("\n", " ")


def label_for(arrow: Arrow, names: Callable[[str], str]) -> str:
    """The arrow's label with the peer placeholder replaced by the peer's name."""
    return arrow.label.replace(NAME, names(arrow.peer_id) if arrow.peer_id else "the peer")
