"""A simulator: two protocol sessions over a seeded lossy link, on a virtual clock.

Peers A and B each get a real :class:`~volli_nb.core.crypto.identity.Identity` (derived from
the seed), a :class:`~volli_nb.core.protocol.session.Session` pinned to the other, the
session's ratchet (:class:`~volli_nb.core.crypto.channel_keys.ChannelKeys`) and an
application that stores every message that opens (by id, so a resend is acknowledged
again, not delivered twice).  Between them is a *datagram* link with latency, jitter,
loss, duplication and reordering.  Every message is a real envelope, sealed and opened
by the Double Ratchet: the property tests exercise the ratchet under loss too.

That link is harsher than reality: a WebRTC data channel is reliable and ordered (SCTP
retransmits), so there the session does not need to.  Here the sessions retransmit
(``retransmit=True``), which the exactly-once property test exercises.  Frames are never
chunked here (``max_message_size`` is 1 GiB): a lost chunk needs SCTP to recover.
The handshake runs before the link starts, with stand-in certificate digests (over a
data channel a HELLO cannot be lost); channel binding is tested in ``test_protocol``.

Everything runs off one heap of timed events (frame arrivals and session
deadlines), so thousands of messages take well under a second.  The same
conditions and the same calls give the same trace, line for line.

Example::

    sim = Simulator(LinkConditions(latency=0.05, loss=0.2, seed=1))
    sim.send("A", b"hello")
    sim.run()
    print("\\n".join(sim.trace))
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import ReplayError, UsageError
from volli_nb.core.crypto.channel_keys import TAG_BYTES, ChannelKeys
from volli_nb.core.crypto.envelope_wire import peek_message_ids
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.message_id import new_message_id
from volli_nb.core.protocol.events import (
    Acked,
    DeliveryTimeout,
    FrameReceived,
    PeerVerified,
    Verdict,
)
from volli_nb.core.protocol.frames import (
    ACK,
    BUNDLE,
    AckFrame,
    decode_frame,
    frame_type_name,
)
from volli_nb.core.protocol.session import Session

Side = Literal["A", "B"]
SIDES: tuple[Side, Side] = ("A", "B")


def _other(side: Side) -> Side:
    return "B" if side == "A" else "A"


def _short(message_id: bytes) -> str:
    return message_id[:4].hex() + "…"


@dataclass(frozen=True)
class LinkConditions:
    """One-way conditions, the same in both directions; probabilities are per frame."""

    latency: float = 0.05  # seconds, one way
    jitter: float = 0.0  # uniform ± jitter added to the latency
    loss: float = 0.0  # probability a frame is dropped
    duplicate: float = 0.0  # probability a frame is delivered twice
    reorder: float = 0.0  # probability a frame gets up to 2 × latency of extra delay
    seed: int = 0

    def __post_init__(self) -> None:
        if self.latency < 0 or self.jitter < 0:
            raise UsageError("latency and jitter cannot be negative")
        if not 0 <= self.loss < 1:
            raise UsageError("loss must be in [0, 1): with loss 1 nothing ever arrives")
        for name in ("duplicate", "reorder"):
            if not 0 <= getattr(self, name) <= 1:
                raise UsageError(f"{name} is a probability in [0, 1]")


@dataclass(frozen=True)
class Delivery:
    """One message handed to the receiving application."""

    message_id: bytes
    payload: bytes
    sent_at: float
    received_at: float

    @property
    def time(self) -> float:
        return self.received_at

    @property
    def latency(self) -> float:
        return self.received_at - self.sent_at


@dataclass(frozen=True)
class FrameRecord:
    """One copy of a frame on the link, for sequence diagrams (``arrives_at`` None: lost)."""

    sender: Side
    sent_at: float
    arrives_at: float | None
    label: str  # e.g. "MESSAGE 3f2a1b0c… (resend 1)"


@dataclass(order=True, frozen=True)
class _Event:
    time: float
    seq: int
    to: Side
    frame: bytes | None  # None: a timer for side ``to``
    note: str = ""


class Simulator:
    """Two peers, A and B, over :class:`LinkConditions`; see the module docstring."""

    def __init__(
        self,
        conditions: LinkConditions | None = None,
        *,
        clock: VirtualClock | None = None,
        ack_timeout: float | None = None,
        rto_initial: float = 0.5,
        rto_min: float = 0.2,
        rto_max: float = 10.0,
    ) -> None:
        self.conditions = conditions = conditions or LinkConditions()
        self.clock = clock or VirtualClock(0.0)
        seeds = random.Random(conditions.seed)
        self._link_rng = random.Random(seeds.getrandbits(64))
        self._id_rng = random.Random(seeds.getrandbits(64))
        key_rng = random.Random(seeds.getrandbits(64))
        self.identities = {side: Identity.generate(key_rng.randbytes) for side in SIDES}
        nonce_rng = random.Random(seeds.getrandbits(64))
        certificate = {
            s: hashlib.sha256(f"simulated certificate {s}".encode()).digest() for s in SIDES
        }
        self.sessions: dict[Side, Session] = {
            side: Session(
                self.identities[side],
                self.identities[_other(side)].public,
                local_certificate=certificate[side],
                remote_certificate=certificate[_other(side)],
                ack_timeout=ack_timeout,
                rto_initial=rto_initial,
                rto_min=rto_min,
                rto_max=rto_max,
                max_message_size=1 << 30,
                retransmit=True,
                random=nonce_rng.randbytes,
            )
            for side in SIDES
        }
        self.keys = self._handshake(nonce_rng)
        self.stored: dict[Side, set[bytes]] = {"A": set(), "B": set()}
        self._counter = 0
        self.delivered: dict[Side, list[Delivery]] = {"A": [], "B": []}
        self.acked: dict[Side, dict[bytes, float]] = {"A": {}, "B": {}}  # id -> ack time
        self.timed_out: dict[Side, list[bytes]] = {"A": [], "B": []}
        self.retransmitted: Counter[bytes] = Counter()  # message id -> resends
        self.trace: list[str] = []  # arrivals when they arrive, losses when sent
        self.frames: list[FrameRecord] = []
        self.frames_sent = self.frames_lost = self.frames_duplicated = 0
        self._sent_at: dict[bytes, float] = {}
        self._queue: list[_Event] = []
        self._seq = 0
        self._on_link = 0  # frames scheduled to arrive
        self._armed: dict[Side, float | None] = {"A": None, "B": None}

    @property
    def now(self) -> float:
        return self.clock.now

    def _handshake(self, rng: random.Random) -> dict[Side, ChannelKeys]:
        """Both hellos exchanged before the link starts; each side keeps its ratchet."""
        hellos = {side: self.sessions[side].hello()[0] for side in SIDES}
        keys: dict[Side, ChannelKeys] = {}
        for side in SIDES:
            for event in self.sessions[side].receive(hellos[_other(side)], self.now):
                assert isinstance(event, PeerVerified)
                me = self.identities[side].peer_id
                keys[side] = ChannelKeys(event.handshake, me, started_ms=0, random=rng.randbytes)
        return keys

    # --- the applications --------------------------------------------------------

    def send(self, side: Side, payload: bytes) -> bytes:
        """The app on ``side`` seals ``payload`` and sends it; returns its message id."""
        message_id = new_message_id(self.identities[side].peer_id, self._id_rng.randbytes)
        self._sent_at[message_id] = self.now
        self._counter += 1
        keys = self.keys[side]
        sealed = keys.seal(
            conversation_id="simulated",
            message_id=message_id,
            counter=self._counter,
            timestamp_ms=int(self.now * 1000),
            plaintext=payload,
        )
        for frame in self.sessions[side].send_sealed(keys.session_id, sealed, self.now):
            self._transmit(side, frame)
        self._arm(side)
        return message_id

    @property
    def pending(self) -> int:
        """Messages sent and not yet acknowledged (or given up), both directions."""
        return sum(len(s.in_flight) for s in self.sessions.values())

    @property
    def idle(self) -> bool:
        """Nothing in flight and nothing on the link."""
        return self.pending == 0 and self._on_link == 0

    # --- the link ------------------------------------------------------------------

    def _log(self, line: str) -> None:
        self.trace.append(f"t={self.now:.3f} {line}")

    @staticmethod
    def _label(frame: bytes) -> str:
        name = frame_type_name(frame)
        if len(frame) > 1 and frame[1] == BUNDLE:
            count, ids = peek_message_ids(frame[2 + TAG_BYTES :], 4)
            if count == 1:  # one message: MESSAGE, as the seed's diagrams say
                return f"MESSAGE {_short(ids[0])}"
            more = f" +{count - 4}" if count > 4 else ""
            return f"{name} {', '.join(_short(m) for m in ids)}{more}"
        if len(frame) > 1 and frame[1] == ACK:
            ack = decode_frame(frame)
            assert isinstance(ack, AckFrame)
            listed = ", ".join(_short(m) for m in ack.message_ids[:4])
            more = f" +{len(ack.message_ids) - 4}" if len(ack.message_ids) > 4 else ""
            return f"{name} [{listed}{more}]"
        return name

    def _transmit(self, side: Side, frame: bytes, note: str = "") -> None:
        c, rng = self.conditions, self._link_rng
        self.frames_sent += 1
        label = self._label(frame) + note
        if rng.random() < c.loss:
            self.frames_lost += 1
            self._log(f"{side}→{_other(side)} {label}  lost")
            self.frames.append(FrameRecord(side, self.now, None, label))
            return
        copies = 2 if rng.random() < c.duplicate else 1
        self.frames_duplicated += copies - 1
        for copy in range(copies):
            delay = c.latency + (rng.uniform(-c.jitter, c.jitter) if c.jitter else 0.0)
            if c.reorder and rng.random() < c.reorder:
                delay += rng.uniform(0.0, 2 * max(c.latency, 0.01))
            self._seq += 1
            tag = note + ("  dup" if copy else "")
            arrival = self.now + max(0.0, delay)
            heapq.heappush(self._queue, _Event(arrival, self._seq, _other(side), frame, tag))
            self._on_link += 1
            self.frames.append(FrameRecord(side, self.now, arrival, label + tag[len(note) :]))

    def _arm(self, side: Side) -> None:
        """Schedule a timer at the session's next deadline unless one is already earlier."""
        deadline = self.sessions[side].next_deadline()
        armed = self._armed[side]
        if deadline is not None and (armed is None or deadline < armed):
            self._armed[side] = deadline = max(deadline, self.now)
            self._seq += 1
            heapq.heappush(self._queue, _Event(deadline, self._seq, side, None))

    # --- running -------------------------------------------------------------------

    def _flush(self, side: Side) -> None:
        session = self.sessions[side]
        for event in session.handle_timer(self.now):
            assert isinstance(event, DeliveryTimeout)
            self.timed_out[side].append(event.message_id)
            self._log(f"{side} gave up on {_short(event.message_id)} (no ACK in time)")
        for frame in session.data_to_send(self.now):
            note = ""
            if frame[1] == BUNDLE:  # from data_to_send, a BUNDLE is always a resend
                _, ids = peek_message_ids(frame[2 + TAG_BYTES :], 1 << 16)
                for mid in ids:
                    self.retransmitted[mid] += 1
                note = f" (resend {self.retransmitted[ids[0]]})"
            self._transmit(side, frame, note)
        self._arm(side)

    def _arrive(self, side: Side, frame: bytes, note: str) -> None:
        self._log(f"{_other(side)}→{side} {self._label(frame)}{note}")
        session = self.sessions[side]
        for event in session.receive(frame, self.now):
            if isinstance(event, FrameReceived):
                session.settle(self._open(side, event), clock_ms=int(self.now * 1000))
            elif isinstance(event, Acked):
                for mid in event.message_ids:
                    self.acked[_other(side)][mid] = self.now
        self._flush(side)

    def _open(self, side: Side, received: FrameReceived) -> Verdict:
        """The app: open the frame, store what is new, acknowledge it and confirmed
        duplicates (a resend of what was stored); anything else stays unacknowledged."""
        keys, stored = self.keys[side], self.stored[side]
        opening = keys.open(
            received.bundle, now_ms=int(self.now * 1000), seen=stored.__contains__, max_age_ms=None
        )
        acked = []
        for message in opening.result.messages:
            mid = message.message_id
            stored.add(mid)
            acked.append(mid)
            self.delivered[side].append(
                Delivery(mid, message.plaintext, self._sent_at[mid], self.now)
            )
            self._log(f"{side} app ← {_short(mid)}")
        keys.commit(opening)
        refused = []
        for item in opening.result.refused:
            if isinstance(item.error, ReplayError):
                acked.append(item.message_id)
            else:
                refused.append((item.message_id, item.error))
        return Verdict(tuple(acked), tuple(refused))

    def step(self) -> bool:
        """Process the next event; False when the queue is empty."""
        if not self._queue:
            return False
        event = heapq.heappop(self._queue)
        self.clock.now = max(self.clock.now, event.time)
        if event.frame is not None:
            self._on_link -= 1
            self._arrive(event.to, event.frame, event.note)
        elif self._armed[event.to] == event.time:
            self._armed[event.to] = None
            self._flush(event.to)
        return True

    def run(self, until: float | None = None, max_events: int = 5_000_000) -> int:
        """Process events until all is delivered and acknowledged, or until ``until``.

        With ``until`` the clock ends at ``until`` (also when the work finished earlier),
        so ``run(until=sim.now + 1)`` reads as "one second passes".  Returns the number
        of events processed; stops after ``max_events``.
        """
        count = 0
        for count in range(max_events):  # noqa: B007 (count is returned)
            if self.idle or not self._queue:
                break
            if until is not None and self._queue[0].time > until:
                break
            self.step()
        else:
            return max_events
        if until is not None:
            self.clock.now = max(self.clock.now, until)
        return count

    # --- results -------------------------------------------------------------------

    def retransmissions(self) -> int:
        """Messages resent by both sessions."""
        return sum(s.stats.retransmissions for s in self.sessions.values())

    def latencies(self, side: Side) -> dict[bytes, float]:
        """Message id → seconds from the app's send to the app on ``side`` receiving it."""
        return {d.message_id: d.latency for d in self.delivered[side]}

    def summary(self) -> dict[str, float | int]:
        """Counts for a notebook table."""
        lat = [d.latency for side in SIDES for d in self.delivered[side]]
        return {
            "time": self.now,
            "sent": len(self._sent_at),
            "delivered": sum(len(v) for v in self.delivered.values()),
            "pending": self.pending,
            "frames_sent": self.frames_sent,
            "frames_lost": self.frames_lost,
            "frames_duplicated": self.frames_duplicated,
            "retransmissions": self.retransmissions(),
            "mean_latency": sum(lat) / len(lat) if lat else 0.0,
            "max_latency": max(lat, default=0.0),
        }


__all__ = ["Delivery", "FrameRecord", "LinkConditions", "Side", "Simulator"]
