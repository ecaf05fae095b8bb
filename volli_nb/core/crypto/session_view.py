"""What a channel's ratchet did, as a panel or a notebook shows it: never a key.

Why its own module: the ratchet picture (``ui/widgets/ratchet*.py``) and the peers panel
must not reach into a :class:`~volli_nb.core.crypto.ratchet.RatchetState`, whose fields
are secrets.  :class:`~volli_nb.core.crypto.channel_keys.ChannelKeys` records here, on
every seal, commit and expiry, which message keys were used (and so deleted), held as
skipped, expired or evicted, and each DH ratchet step; :class:`SessionSummary` is the
read-only view it hands out.  Chains are named by the first 8 hex digits of their ratchet
*public* key (the one every header carries), message keys by their number in the chain.

The record is bounded (the last :data:`EVENTS` events) and cheap: consecutive keys of one
chain merge into one event (``n``, ``count``), so a long conversation costs a few events
per change of direction.  What a frame's opening did is read from the two states and the
frame's headers (:func:`received`): a key was used if it was available before and is not
after, the rest is the difference of the skipped-key sets.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from volli_nb.core.crypto.ratchet import Header, RatchetState

SEND, RECEIVE = "send", "receive"
CHAIN, USED, HELD, USED_HELD, EXPIRED, EVICTED = (
    "chain",
    "used",
    "held",
    "used_held",
    "expired",
    "evicted",
)
EVENTS = 256  # events kept per session (runs merged)
SHORT = 8  # hex digits naming a chain


def short(key: bytes) -> str:
    """A chain's name: the first hex digits of its ratchet public key."""
    return key[: SHORT // 2].hex()


@dataclass(frozen=True, slots=True)
class KeyEvent:
    """Message keys ``n .. n+count-1`` of one chain: what happened to them, and when.

    ``kind``: ``chain`` (the chain starts; ``step`` is the DH ratchet step that made it,
    0 for the handshake's), ``used`` (derived, used once, deleted), ``held`` (derived
    ahead of a later message and kept as a skipped key until ``until_ms``), ``used_held``
    (a held key used and deleted), ``expired`` or ``evicted`` (a held key dropped unused:
    its time was up, or too many were held)."""

    kind: str
    direction: str  # SEND: our chain; RECEIVE: the peer's
    chain: str
    n: int = 0
    count: int = 1
    at_ms: int = 0
    step: int = 0
    until_ms: int | None = None

    @property
    def last(self) -> int:
        return self.n + self.count - 1


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A skipped message key held now: of which chain, which number, until when."""

    chain: str
    n: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One channel's session as a panel shows it: ids, counters, events; no secret."""

    session: str  # the session id's first 8 hex digits (frames carry its first 8 bytes)
    initiator: bool
    started_ms: int
    now_ms: int
    dh_steps: int
    sent: int
    received: int
    sending_chain: str
    ns: int  # the next message number on the sending chain
    receiving_chain: str | None  # None until the peer's first message (the initiator)
    nr: int  # the next message number expected on the receiving chain
    held: tuple[HeldKey, ...]
    events: tuple[KeyEvent, ...]  # oldest first, the last EVENTS of them

    @property
    def age_s(self) -> float:
        return max(0, self.now_ms - self.started_ms) / 1000


class KeyLog:
    """The bounded record of one session's key events; runs merge as they come."""

    __slots__ = ("_events",)

    def __init__(self, limit: int = EVENTS) -> None:
        self._events: deque[KeyEvent] = deque(maxlen=limit)

    def add(self, events: Iterable[KeyEvent]) -> None:
        for event in events:
            last = self._events[-1] if self._events else None
            if (
                last is not None
                and event.kind != CHAIN
                and (last.kind, last.direction, last.chain, last.until_ms)
                == (event.kind, event.direction, event.chain, event.until_ms)
                and event.n == last.n + last.count
            ):
                count = last.count + event.count  # (dataclasses.replace costs 2 us here)
                self._events[-1] = KeyEvent(
                    last.kind, last.direction, last.chain, last.n, count, last.at_ms, last.step,
                    last.until_ms,
                )  # fmt: skip
            else:
                self._events.append(event)

    def events(self) -> tuple[KeyEvent, ...]:
        return tuple(self._events)


def started(state: RatchetState, step: int, at_ms: int) -> list[KeyEvent]:
    """The chains a fresh session has: its sending chain, and the receiving chain the
    responder's first DH step made (the initiator has none until the peer's first
    message)."""
    events = []
    if state.ckr is not None and state.dhr is not None:
        events.append(KeyEvent(CHAIN, RECEIVE, short(state.dhr), at_ms=at_ms, step=step))
    events.append(KeyEvent(CHAIN, SEND, short(state.dhs_public), at_ms=at_ms, step=step))
    return events


def sent(before: RatchetState, at_ms: int) -> KeyEvent:
    """A seal used the sending chain's next key (and deleted it)."""
    return KeyEvent(USED, SEND, short(before.dhs_public), before.ns, at_ms=at_ms)


def _chains(state: RatchetState) -> tuple[bytes, ...]:
    return state.previous_dhr if state.dhr is None else (*state.previous_dhr, state.dhr)


def _available(state: RatchetState, dh: bytes, n: int) -> bool:
    """Can ``state`` still open message ``n`` of chain ``dh``?  (A chain it never saw: yes.)"""
    if (dh, n) in state.skipped:
        return True
    if dh == state.dhr:
        return state.ckr is not None and n >= state.nr
    return dh not in state.previous_dhr


def received(
    before: RatchetState,
    after: RatchetState,
    headers: Sequence[Header],
    *,
    now_ms: int,
    ttl_ms: int,
    dh_steps: int,
) -> list[KeyEvent]:
    """What one frame's opening did, from the states before and after and its headers
    (for this device, in frame order): new chains (one DH step each), keys used, keys
    held as skipped, held keys dropped."""
    known = set(_chains(before))
    new = [dh for dh in _chains(after) if dh not in known]
    events: list[KeyEvent] = []
    for i, dh in enumerate(new, 1):
        events.append(KeyEvent(CHAIN, RECEIVE, short(dh), at_ms=now_ms, step=dh_steps + i))
    if new:  # the last step's sending chain (an earlier one's was replaced unused)
        chain = short(after.dhs_public)
        events.append(KeyEvent(CHAIN, SEND, chain, at_ms=now_ms, step=dh_steps + len(new)))
    added = sorted(k for k in after.skipped if k not in before.skipped)
    for dh, n in added:
        until = after.skipped[(dh, n)][1] + ttl_ms
        events.append(KeyEvent(HELD, RECEIVE, short(dh), n, at_ms=now_ms, until_ms=until))
    used: set[tuple[bytes, int]] = set()
    run: tuple[str, bytes, int] | None = None  # (kind, dh, first n) of the run under way
    count = 0
    for h in headers:  # one event per run of consecutive keys, not per key
        key = (h.dh, h.n)
        if key in used or not _available(before, *key) or _available(after, *key):
            continue
        used.add(key)
        kind = USED_HELD if key in before.skipped else USED
        if run is not None and run[0] == kind and run[1] == h.dh and run[2] + count == h.n:
            count += 1
            continue
        if run is not None:
            events.append(KeyEvent(run[0], RECEIVE, short(run[1]), run[2], count, at_ms=now_ms))
        run, count = (kind, h.dh, h.n), 1
    if run is not None:
        events.append(KeyEvent(run[0], RECEIVE, short(run[1]), run[2], count, at_ms=now_ms))
    for key, (_mk, stored_ms) in before.skipped.items():
        if key not in after.skipped and key not in used:
            kind = EXPIRED if now_ms - stored_ms >= ttl_ms else EVICTED
            events.append(KeyEvent(kind, RECEIVE, short(key[0]), key[1], at_ms=now_ms))
    return events


def dropped(before: RatchetState, after: RatchetState, now_ms: int) -> list[KeyEvent]:
    """Held keys the owner's timer expired."""
    return [
        KeyEvent(EXPIRED, RECEIVE, short(dh), n, at_ms=now_ms)
        for (dh, n) in before.skipped
        if (dh, n) not in after.skipped
    ]


def new_steps(events: Iterable[KeyEvent]) -> int:
    """How many DH ratchet steps ``events`` hold (one per new receiving chain)."""
    return sum(1 for e in events if e.kind == CHAIN and e.direction == RECEIVE)


__all__ = [
    "CHAIN",
    "EVENTS",
    "EVICTED",
    "EXPIRED",
    "HELD",
    "RECEIVE",
    "SEND",
    "USED",
    "USED_HELD",
    "HeldKey",
    "KeyEvent",
    "KeyLog",
    "SessionSummary",
    "dropped",
    "new_steps",
    "received",
    "sent",
    "short",
    "started",
]
