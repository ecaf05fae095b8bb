"""A simulator: two protocol sessions over a lossy link, on a virtual clock.

It models a *datagram* link under the session (loss, duplication, reordering,
latency, jitter), which is harsher than a real data channel (SCTP is reliable
and ordered), so the sessions retransmit here.  Frames are never chunked in
the simulator (a lost chunk could not be recovered without SCTP); the
session's ``max_message_size`` is set high enough for that.

Deterministic for a seed: the same conditions and sends give the same trace.
Used by the property tests and the network-conditions notebook.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Literal

from .identity import Identity
from .protocol import MESSAGE, TYPE_NAMES, Acked, MessageReceived, Session

Side = Literal["A", "B"]


@dataclass(frozen=True)
class LinkConditions:
    latency: float = 0.05  # seconds, one way
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0  # probability of an extra delay of up to 2 × latency
    seed: int = 0


@dataclass
class Delivery:
    message_id: bytes
    payload: bytes
    sent_at: float
    received_at: float

    @property
    def latency(self) -> float:
        return self.received_at - self.sent_at


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    kind: str = field(compare=False)  # "frame" or "timer"
    to: Side = field(compare=False, default="A")
    data: bytes = field(compare=False, default=b"")


class Simulator:
    """Two peers, A and B, each with a session and an application that accepts everything."""

    def __init__(
        self,
        conditions: LinkConditions = LinkConditions(),
        *,
        ack_timeout: float | None = None,
        rto_initial: float = 0.5,
        start: float = 0.0,
    ) -> None:
        self.conditions = conditions
        self.rng = random.Random(conditions.seed)
        ident_rng = random.Random(conditions.seed + 1_000_003)
        self.identities = {
            side: Identity.generate(lambda n: ident_rng.randbytes(n)) for side in ("A", "B")
        }
        session_rng = random.Random(conditions.seed + 7)
        self.sessions: dict[Side, Session] = {
            side: Session(
                self.identities[side],
                self.identities["B" if side == "A" else "A"].public,
                ack_timeout=ack_timeout,
                rto_initial=rto_initial,
                max_message_size=1 << 30,
                random=lambda n: session_rng.randbytes(n),
            )
            for side in ("A", "B")
        }
        self.now = start
        self.delivered: dict[Side, list[Delivery]] = {"A": [], "B": []}
        self.acked: dict[Side, set[bytes]] = {"A": set(), "B": set()}
        self.trace: list[str] = []
        self.frames_sent = 0
        self.frames_lost = 0
        self._queue: list[_Event] = []
        self._seq = 0
        self._sent_at: dict[bytes, float] = {}
        self._ids = random.Random(conditions.seed + 99)

    # --- the application side -------------------------------------------------------

    def send(self, side: Side, payload: bytes) -> bytes:
        """The app on ``side`` sends ``payload``; returns its message id."""
        message_id = self._ids.randbytes(16)
        self._sent_at[message_id] = self.now
        for frame in self.sessions[side].send_message(message_id, payload, self.now):
            self._transmit(side, frame)
        self._schedule_timer(side)
        return message_id

    @property
    def pending(self) -> int:
        """Messages sent but not yet acknowledged, both directions."""
        return sum(len(s.in_flight) for s in self.sessions.values())

    # --- the link -------------------------------------------------------------------------

    def _push(self, event: _Event) -> None:
        heapq.heappush(self._queue, event)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _log(self, line: str) -> None:
        self.trace.append(f"t={self.now:8.3f} {line}")

    def _describe(self, frame: bytes) -> str:
        kind = frame[1] if len(frame) > 1 else 0
        name = TYPE_NAMES.get(kind, "?")
        return f"{name} {frame[2:6].hex()}" if kind == MESSAGE else name

    def _transmit(self, side: Side, frame: bytes) -> None:
        other: Side = "B" if side == "A" else "A"
        c, rng = self.conditions, self.rng
        self.frames_sent += 1
        what = f"{side}→{other} {self._describe(frame)}"
        if rng.random() < c.loss:
            self.frames_lost += 1
            self._log(f"{what}  ✕ lost")
            return
        copies = 2 if rng.random() < c.duplicate else 1
        for copy in range(copies):
            delay = c.latency + (rng.uniform(-c.jitter, c.jitter) if c.jitter else 0.0)
            if c.reorder and rng.random() < c.reorder:
                delay += rng.uniform(0, 2 * max(c.latency, 0.01))
            self._push(_Event(self.now + max(0.0, delay), self._next_seq(), "frame", other, frame))
            self._log(what + ("  (duplicate)" if copy else ""))

    def _schedule_timer(self, side: Side) -> None:
        deadline = self.sessions[side].next_deadline()
        if deadline is not None:
            self._push(_Event(max(deadline, self.now), self._next_seq(), "timer", side))

    # --- running --------------------------------------------------------------------------

    def _flush(self, side: Side) -> None:
        session = self.sessions[side]
        for frame in session.data_to_send(self.now):
            self._transmit(side, frame)
        for event in session.handle_timer(self.now):
            self._log(f"{side} gave up on a message: {type(event).__name__}")
        self._schedule_timer(side)

    def _on_frame(self, side: Side, frame: bytes) -> None:
        session = self.sessions[side]
        for event in session.receive(frame, self.now):
            if isinstance(event, MessageReceived):
                self.delivered[side].append(
                    Delivery(
                        event.message_id, event.envelope, self._sent_at[event.message_id], self.now
                    )
                )
                self._log(f"{side} app got {event.message_id[:4].hex()}")
                session.accept(event.message_id)
            elif isinstance(event, Acked):
                self.acked[side].update(event.message_ids)
        self._flush(side)

    def step(self) -> bool:
        """Process the next event; False when nothing is left to do."""
        if not self._queue:
            return False
        event = heapq.heappop(self._queue)
        self.now = max(self.now, event.time)
        if event.kind == "frame":
            self._on_frame(event.to, event.data)
        else:
            self._flush(event.to)
        return True

    def run(self, until: float | None = None, max_events: int = 2_000_000) -> int:
        """Run until everything is delivered and acknowledged, ``until``, or the event cap."""
        for count in range(max_events):
            if self.pending == 0 and not any(e.kind == "frame" for e in self._queue):
                return count
            if until is not None and self._queue and self._queue[0].time > until:
                self.now = until
                return count
            if not self.step():
                return count
        return max_events

    # --- results --------------------------------------------------------------------------

    def retransmissions(self) -> int:
        return sum(s.stats.retransmissions for s in self.sessions.values())


__all__ = ["Delivery", "LinkConditions", "Simulator"]
