"""Two sans-IO sessions over a handshake, with their ratchets and a minimal storing app.

What the protocol tests (and the session fuzzers) drive: each :class:`Peer` holds a
:class:`~volli_nb.core.protocol.session.Session`, the :class:`ChannelKeys` its handshake
gave, and a set of stored ids; :meth:`Peer.handle` answers every received frame the way
the real receiver does (store what opens, acknowledge it and confirmed duplicates).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from volli_nb.base.errors import ReplayError, VolliError
from volli_nb.core.crypto.channel_keys import ChannelKeys
from volli_nb.core.crypto.envelope import Sealed
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.message_id import new_message_id
from volli_nb.core.protocol import session as p
from volli_nb.core.protocol.events import FrameReceived, PeerVerified, Rekeyed, Verdict

_r = random.Random(3)
A, B, EVE = (Identity.generate(_r.randbytes) for _ in range(3))
CERT_A, CERT_B = (hashlib.sha256(name).digest() for name in (b"cert a", b"cert b"))
NOW_MS = 1_800_000_000_000
TEXT = b'{"type":"text","text":"e"}'


def mid(i: int, sender: Identity = A) -> bytes:
    """Message ``i`` of ``sender`` (A unless said): its tag, then ``i``."""
    return new_message_id(sender.peer_id, lambda n: i.to_bytes(n, "big"))


def session(me: Identity, peer: Identity, **kw: Any) -> p.Session:
    local, remote = (CERT_A, CERT_B) if me is A else (CERT_B, CERT_A)
    return p.Session(me, peer.public, local_certificate=local, remote_certificate=remote, **kw)


@dataclass
class Peer:
    me: Identity
    session: p.Session
    keys: ChannelKeys | None = None
    stored: set[bytes] = field(default_factory=set)
    delivered: list[bytes] = field(default_factory=list)  # plaintexts, in order
    refusals: list[tuple[bytes, VolliError]] = field(default_factory=list)

    @property
    def k(self) -> ChannelKeys:
        assert self.keys is not None
        return self.keys

    def seal(self, i: int, text: bytes = TEXT) -> Sealed:
        return self.k.seal(
            conversation_id="c", message_id=mid(i, self.me), counter=i + 1, timestamp_ms=NOW_MS,
            plaintext=text,
        )  # fmt: skip

    def send(self, i: int, now: float, text: bytes = TEXT) -> list[bytes]:
        return self.session.send_sealed(self.k.session_id, self.seal(i, text), now)

    def queue(self, i: int, now: float, text: bytes = TEXT) -> None:
        self.session.queue_sealed(self.k.session_id, self.seal(i, text), now)

    def handle(self, frame: bytes, now: float) -> list[p.Event]:
        """Receive one frame; a FrameReceived is opened, stored and settled here."""
        events = self.session.receive(frame, now)
        for event in events:
            if isinstance(event, PeerVerified | Rekeyed):
                self.keys = ChannelKeys(event.handshake, self.me.peer_id, started_ms=0)
            elif isinstance(event, FrameReceived):
                self.session.settle(self.app(event), clock_ms=NOW_MS)
        return events

    def app(self, received: FrameReceived) -> Verdict:
        opening = self.k.open(
            received.bundle, now_ms=NOW_MS, seen=self.stored.__contains__, max_age_ms=None
        )
        stored = []
        for message in opening.result.messages:
            self.stored.add(message.message_id)
            self.delivered.append(message.plaintext)
            stored.append(message.message_id)
        self.k.commit(opening)
        refused = []
        for item in opening.result.refused:
            if isinstance(item.error, ReplayError):
                stored.append(item.message_id)
            else:
                refused.append((item.message_id, item.error))
        self.refusals += refused
        return Verdict(tuple(stored), tuple(refused))

    def flush(self, other: Peer, now: float) -> list[p.Event]:
        """Everything this side would send now, received by ``other``."""
        return [e for frame in self.session.data_to_send(now) for e in other.handle(frame, now)]


def pair(**kw: Any) -> tuple[Peer, Peer]:
    """A's and B's sessions after a handshake, each with its ratchet."""
    a, b = Peer(A, session(A, B, **kw)), Peer(B, session(B, A, **kw))
    hello_a, hello_b = a.session.hello(), b.session.hello()
    for frame in hello_a:
        b.handle(frame, 0.0)
    for frame in hello_b:
        a.handle(frame, 0.0)
    assert a.keys is not None and b.keys is not None
    assert a.keys.session_id == b.keys.session_id
    return a, b
