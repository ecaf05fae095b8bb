"""Reliability for one session: messages in flight until a signed ACK, their timers, the
round trip they measure, and whether the peer is still alive.

A message stays in flight until a signed ACK names it, holding its sealed envelope.  With
``retransmit=True`` (a lossy link, the simulator) the same envelope is resent on an RFC
6298 timer (the same ciphertext under the same message key, never a new one): SRTT/RTTVAR
from one sample per ACK frame (the newest message it acknowledges that was never
retransmitted: Karn's rule), per-message exponential backoff, clamped to
``[rto_min, rto_max]``.  Over a real data channel SCTP is already reliable, so the app
passes ``retransmit=False``.  After ``ack_timeout`` seconds without an ACK the message
leaves with :class:`DeliveryTimeout` and goes back to the persistent queue's 1/5/15/60 s
schedule; ``ack_timeout=None`` retries forever.  With ``adaptive_ack`` the timeout
follows :class:`LinkQuality` (RTT, loss, backlog) between ``ack_floor`` and
``ack_timeout``.

Timers live in two lazy heaps of ``(due, serial, message id)``: an entry whose message
was acknowledged, resent or replaced since is simply skipped when it surfaces.
Pure: every time comes from the caller.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.crypto.primitives import Random
from volli_nb.core.protocol.events import Acked, DeliveryTimeout, Event, Pong, SessionStats
from volli_nb.core.protocol.frames import NONCE_BYTES
from volli_nb.core.protocol.link_quality import LinkQuality

MAX_PINGS = 16  # outstanding pings remembered for RTT

Timer = tuple[float, int, bytes]  # (due, serial, message id)


@dataclass
class InFlight:
    serial: int  # tells this send's timers from those of an earlier send of the same id
    item: Sealed  # the envelope, resent as it is
    first_sent: float
    next_send: float
    backoff: float
    retransmissions: int = 0


class Reliability:
    """In-flight messages, their retransmission and ACK timers, pings, and liveness."""

    def __init__(
        self,
        stats: SessionStats,
        *,
        random: Random,
        rto_initial: float,
        rto_min: float,
        rto_max: float,
        ack_timeout: float | None,
        adaptive_ack: bool,
        ack_floor: float,
        retransmit: bool,
    ) -> None:
        self.stats = stats
        self.quality = LinkQuality()
        self.rto_min, self.rto_max = rto_min, rto_max
        self.ack_timeout = ack_timeout
        self.adaptive_ack, self.ack_floor = adaptive_ack, ack_floor
        self.retransmit = retransmit
        self._random = random
        stats.rto = self.clamp(rto_initial)
        self.last_heard: float | None = None
        self.in_flight_bytes = 0
        self._serial = 0
        self._in_flight: dict[bytes, InFlight] = {}
        self._retx_timers: list[Timer] = []
        self._ack_timers: list[Timer] = []
        self._last_ack_at = float("-inf")
        self._last_data_at = float("-inf")  # MESSAGE, BUNDLE or CHUNK frames from the peer
        self._pings: dict[bytes, float] = {}

    # --- in flight ------------------------------------------------------------------

    @property
    def ids(self) -> list[bytes]:
        """Ids sent and not yet acknowledged, oldest first."""
        return list(self._in_flight)

    def track(self, item: Sealed, now: float) -> InFlight:
        """A message enters flight (replacing an earlier send of the same id)."""
        message_id = item.message_id
        self.untrack(message_id)
        self._serial += 1
        rto = self.stats.rto
        state = InFlight(self._serial, item, now, now + rto, rto)
        self._in_flight[message_id] = state
        self.in_flight_bytes += len(item.envelope)
        return state

    def untrack(self, message_id: bytes) -> InFlight | None:
        state = self._in_flight.pop(message_id, None)
        if state is not None:
            self.in_flight_bytes -= len(state.item.envelope)
        return state

    def untrack_all(self) -> tuple[bytes, ...]:
        """Every id in flight leaves it (their session ended); oldest first."""
        ids = tuple(self._in_flight)
        self._in_flight.clear()
        self.in_flight_bytes = 0
        return ids

    def current(self, message_id: bytes, serial: int) -> InFlight | None:
        """The in-flight state of exactly that send (not a later replacement)."""
        state = self._in_flight.get(message_id)
        return state if state is not None and state.serial == serial else None

    def arm(self, message_id: bytes, state: InFlight, now: float) -> None:
        """Start a message's timers when its frames actually leave."""
        state.first_sent, state.next_send = now, now + state.backoff
        if self.retransmit:
            heapq.heappush(self._retx_timers, (state.next_send, state.serial, message_id))
        timeout = self.current_ack_timeout()
        if timeout is not None:
            heapq.heappush(self._ack_timers, (now + timeout, state.serial, message_id))

    def current_ack_timeout(self) -> float | None:
        if self.ack_timeout is None or not self.adaptive_ack:
            return self.ack_timeout
        return self.quality.ack_timeout(
            self.in_flight_bytes, floor=self.ack_floor, ceiling=self.ack_timeout
        )

    def take_due(self, now: float) -> list[Sealed]:
        """Envelopes whose retransmission timer passed (each with doubled backoff)."""
        bodies: list[Sealed] = []
        while self.retransmit and (top := self._peek(self._retx_timers, retx=True)) is not None:
            due, _, mid = top
            if due > now:
                break
            heapq.heappop(self._retx_timers)
            state = self._in_flight[mid]
            if self.ack_timeout is not None and now >= state.first_sent + self.ack_timeout:
                continue  # handle_timer reports it; no point resending
            state.retransmissions += 1
            state.backoff = self.clamp(state.backoff * 2)
            state.next_send = now + state.backoff
            heapq.heappush(self._retx_timers, (state.next_send, state.serial, mid))
            self.stats.retransmissions += 1
            self.quality.loss_sample(True)
            bodies.append(state.item)
        return bodies

    def acked(self, message_ids: tuple[bytes, ...], now: float) -> list[Event]:
        """A verified ACK named these ids: they leave flight, and the round trip is sampled."""
        acked: list[bytes] = []
        newest: float | None = None  # Karn: sample only messages sent exactly once
        acked_bytes = 0
        for mid in message_ids:
            state = self.untrack(mid)
            if state is None:
                continue
            acked.append(mid)
            acked_bytes += len(state.item.envelope)
            if state.retransmissions == 0 and (newest is None or state.first_sent > newest):
                newest = state.first_sent
        rtt = None if newest is None else now - newest
        if rtt is not None and self.retransmit:
            # Over a reliable channel an ACK's delay includes the time the message queued
            # behind others; only pings measure the path there.
            self._sample_rtt(rtt)
            self.quality.loss_sample(False)
        self.quality.acked(acked_bytes, now)
        self._last_ack_at = now
        if not self._in_flight:
            self.quality.idle()
        return [Acked(tuple(acked), rtt)] if acked else []

    # --- timers ---------------------------------------------------------------------

    def _peek(self, heap: list[Timer], *, retx: bool) -> Timer | None:
        """The earliest live timer; stale entries (acked, resent, replaced) are dropped."""
        while heap:
            due, serial, mid = heap[0]
            state = self._in_flight.get(mid)
            if (
                state is not None
                and state.serial == serial
                and (not retx or state.next_send == due)
            ):
                return heap[0]
            heapq.heappop(heap)
        return None

    def next_deadline(self) -> float | None:
        times = []
        if self.retransmit and (top := self._peek(self._retx_timers, retx=True)):
            times.append(top[0])
        if self.ack_timeout is not None and (top := self._peek(self._ack_timers, retx=False)):
            times.append(top[0])
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Event]:
        """Messages whose ``ack_timeout`` passed leave flight as DeliveryTimeout.

        Over a reliable channel (``retransmit=False``) a message still travelling behind
        others is not lost, only late: while ACKs keep arriving, its deadline moves to
        one timeout after the latest ACK, or after the latest message data from the peer
        (our ACKs then queue behind its own bulk).  So a slow, lossy link makes no false
        timeouts (and no duplicate sends); a silent or refusing peer still times out."""
        events: list[Event] = []
        while (top := self._peek(self._ack_timers, retx=False)) is not None and top[0] <= now:
            heapq.heappop(self._ack_timers)
            _, serial, mid = top
            timeout = self.current_ack_timeout()
            progress = max(self._last_ack_at, self._last_data_at)
            if not self.retransmit and timeout is not None and progress + timeout > now:
                heapq.heappush(self._ack_timers, (progress + timeout, serial, mid))
                continue
            self.untrack(mid)
            self.stats.timeouts += 1
            events.append(DeliveryTimeout(mid))
        return events

    def clamp(self, rto: float) -> float:
        return min(max(rto, self.rto_min), self.rto_max)

    def _sample_rtt(self, rtt: float) -> None:
        """RFC 6298 section 2, kept in :class:`LinkQuality` (which also watches loss)."""
        q, s = self.quality, self.stats
        q.rtt_sample(rtt)
        s.srtt, s.rttvar = q.srtt, q.rttvar
        s.rto = q.rto(self.rto_min, self.rto_max)

    # --- pings and liveness -----------------------------------------------------------

    def ping_nonce(self, now: float) -> bytes:
        """A fresh ping nonce, remembered (the newest MAX_PINGS) to time its PONG."""
        nonce = self._random(NONCE_BYTES)
        self._pings[nonce] = now
        while len(self._pings) > MAX_PINGS:
            del self._pings[next(iter(self._pings))]
        return nonce

    def pong(self, nonce: bytes, now: float) -> list[Event]:
        sent = self._pings.pop(nonce, None)
        if sent is None:
            return []
        if self.retransmit:
            self.quality.rtt_sample(now - sent)
        else:
            self._sample_rtt(now - sent)
        return [Pong(now - sent)]

    def heard(self, now: float) -> None:
        """Some frame arrived (even one refused later); a long gap before it was a stall."""
        if self.last_heard is not None:
            self.quality.stalled(now - self.last_heard)
        self.last_heard = now

    def data_arrived(self, now: float) -> None:
        """A MESSAGE, BUNDLE or CHUNK arrived: the peer is busy sending, not silent."""
        self._last_data_at = now

    def heard_from_transport(self, when: float) -> None:
        if self.last_heard is not None and when > self.last_heard:
            self.last_heard = when

    def is_dead(self, now: float, timeout: float) -> bool:
        return self.last_heard is not None and now - self.last_heard > timeout


__all__ = ["MAX_PINGS", "InFlight", "Reliability"]
