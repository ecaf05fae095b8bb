"""The ratchet picture's content, from a :class:`~volli_nb.core.crypto.session_view.SessionSummary`:
plain data, no widgets, no drawing.

One row per chain, oldest first: our sending chains and the peer's (our receiving
chains), each started by a DH ratchet step (or the handshake).  A row holds a box per
message key the record knows: used once and deleted, held as a skipped key (with its
expiry), used late, expired or evicted; the current chains end in a "next" box, where
the chain key stands now.  Old chains and old keys beyond the caps are counted, not
drawn, so a long session stays one screen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from volli_nb.core.crypto.session_view import (
    CHAIN,
    EVICTED,
    EXPIRED,
    HELD,
    RECEIVE,
    SEND,
    USED,
    USED_HELD,
    SessionSummary,
)
from volli_nb.ui.widgets.cells import Cell, plural

NEXT = "next"
MAX_CHAINS = 6
MAX_KEYS = 12
_NOTES = {
    USED: "used once, then deleted",
    USED_HELD: "held as a skipped key, then used for its late message and deleted",
    EXPIRED: "held as a skipped key, dropped unused when its time was up",
    EVICTED: "held as a skipped key, dropped unused: too many were held",
    NEXT: "not derived yet: the chain key stands here, and moves one step per message",
}


@dataclass(frozen=True)
class KeyBox:
    n: int
    state: str  # used, held, used_held, expired, evicted, or next
    note: str
    expires_in_ms: int | None = None  # a held key: how long it is kept still


@dataclass(frozen=True)
class ChainRow:
    direction: str  # SEND or RECEIVE
    chain: str  # the ratchet public key's first hex digits
    step: int  # the DH step that started it (0: the handshake)
    current: bool
    boxes: tuple[KeyBox, ...]
    hidden: int = 0  # older used keys of this chain not drawn

    @property
    def started_by(self) -> str:
        return "the handshake" if self.step == 0 else f"DH step {self.step}"


@dataclass(frozen=True)
class RatchetPicture:
    """What the picture shows: a title, a line of counters, the chains."""

    title: str
    stats: tuple[str, ...]
    rows: tuple[ChainRow, ...]
    earlier: int = 0  # chains older than the rows drawn
    counts: dict[str, int] = field(default_factory=dict)  # for tests and data attributes


@dataclass
class _Chain:
    direction: str
    chain: str
    step: int = 0
    keys: dict[int, str] = field(default_factory=dict)


def _duration(ms: int) -> str:
    seconds = max(0, ms) // 1000
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return (
        f"{minutes} min {seconds:02d} s"
        if minutes < 60
        else f"{minutes // 60} h {minutes % 60:02d} min"
    )


def _boxes(chain: _Chain, next_n: int | None, expiry: dict[int, int], now_ms: int) -> list[KeyBox]:
    boxes = []
    for n in sorted(chain.keys):
        state = chain.keys[n]
        until = expiry.get(n) if state == HELD else None
        left = None if until is None else max(0, until - now_ms)
        if state == HELD:
            expires = "" if left is None else f", expires in {_duration(left)}"
            note = f"held as a skipped key for a message not arrived yet{expires}"
        else:
            note = _NOTES[state]
        boxes.append(KeyBox(n, state, f"message key {n}: {note}", left))
    if next_n is not None:
        boxes.append(KeyBox(next_n, NEXT, f"message key {next_n}: {_NOTES[NEXT]}"))
    return boxes


def _fit(boxes: list[KeyBox], max_keys: int) -> tuple[tuple[KeyBox, ...], int]:
    """At most ``max_keys`` boxes: the oldest used keys go first (held ones stay)."""
    hidden = 0
    while len(boxes) > max_keys:
        old = next((b for b in boxes if b.state in (USED, USED_HELD)), None)
        if old is None:
            break
        boxes.remove(old)
        hidden += 1
    return tuple(boxes), hidden


def session_cell(summary: SessionSummary | None, verified: bool) -> Cell:
    """The peers panel's session column: its id and age, DH steps, skipped keys held."""
    if summary is None:  # the handshake has not finished (or the channel just closed)
        why = "verified, ended" if verified else "not verified yet"
        return Cell(f"none ({why})", ("none", why), sub=True)
    first = f"{summary.session} · {summary.age_s:.0f} s"
    steps = plural(summary.dh_steps, "DH step")
    held = f"{len(summary.held)} skipped held"
    hover = f"session {summary.session}, verified: both DTLS certificates signed in its handshake"
    return Cell(f"{first}, {steps}, {held}", (first, steps, held), sub=True, hover=hover)


def ratchet_picture(
    summary: SessionSummary,
    *,
    me: str = "me",
    peer: str = "the peer",
    max_chains: int = MAX_CHAINS,
    max_keys: int = MAX_KEYS,
) -> RatchetPicture:
    """The picture of one side's session (see the module docstring)."""
    chains: dict[tuple[str, str], _Chain] = {}
    for event in summary.events:
        chain = chains.setdefault(
            (event.direction, event.chain), _Chain(event.direction, event.chain, event.step)
        )
        if event.kind == CHAIN:
            chain.step = event.step
            continue
        for n in range(event.n, event.n + event.count):
            chain.keys[n] = event.kind
    current = {(SEND, summary.sending_chain): summary.ns}
    if summary.receiving_chain is not None:
        current[(RECEIVE, summary.receiving_chain)] = summary.nr
    for key in current:
        chains.setdefault(key, _Chain(*key, step=summary.dh_steps))
    expiry: dict[tuple[str, int], int] = {}
    for held in summary.held:  # what is held now, whatever the record kept
        chain = chains.setdefault((RECEIVE, held.chain), _Chain(RECEIVE, held.chain))
        chain.keys[held.n] = HELD
        expiry[(held.chain, held.n)] = held.expires_ms
    rows = []
    for key, chain in chains.items():
        mine = {n: until for (c, n), until in expiry.items() if c == chain.chain}
        boxes, hidden = _fit(_boxes(chain, current.get(key), mine, summary.now_ms), max_keys)
        rows.append(
            ChainRow(chain.direction, chain.chain, chain.step, key in current, boxes, hidden)
        )
    shown = rows[-max_chains:]
    held_now = len(summary.held)
    stats = (
        f"session {summary.session}",
        f"{_duration(summary.now_ms - summary.started_ms)} old",
        plural(summary.dh_steps, "DH step"),
        f"sent {summary.sent}",
        f"received {summary.received}",
        f"{plural(held_now, 'skipped key')} held",
    )
    role = "initiator" if summary.initiator else "responder"
    return RatchetPicture(
        title=f"{me} ⇄ {peer}: the Double Ratchet ({me} is the {role})",
        stats=stats,
        rows=tuple(shown),
        earlier=len(rows) - len(shown),
        counts={
            "sent": summary.sent,
            "received": summary.received,
            "steps": summary.dh_steps,
            "held": held_now,
        },
    )


__all__ = [
    "MAX_CHAINS",
    "MAX_KEYS",
    "NEXT",
    "ChainRow",
    "KeyBox",
    "RatchetPicture",
    "ratchet_picture",
    "session_cell",
]
