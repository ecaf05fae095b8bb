"""Both sides of one session in one process, no network: frames delivered late, twice or
never, on a virtual clock.

A real data channel delivers in order and at once, so a notebook could never show a
skipped key being held, used late or expiring.  Here the two
:class:`~volli_nb.core.crypto.channel_keys.ChannelKeys` are made by the real handshake
(stand-in certificate digests take the DTLS channel's place) and every letter is a real
signed bundle, opened and committed as the receiver does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from volli_nb.base.errors import PeerError
from volli_nb.core.body import decode_body, encode_body
from volli_nb.core.crypto import envelope, handshake
from volli_nb.core.crypto.channel_keys import ChannelKeys
from volli_nb.core.crypto.envelope_wire import parse_bundle
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.crypto.primitives import Random, random_bytes
from volli_nb.core.crypto.ratchet import DEFAULT_LIMITS, Header, Limits
from volli_nb.core.crypto.session_view import SessionSummary
from volli_nb.core.message_id import new_message_id

START_MS = 1_800_000_000_000


@dataclass(frozen=True)
class Letter:
    """One sealed message in flight: who sent it, its text, its frame, its header."""

    sender: str
    text: str
    bundle: bytes
    header: Header

    def __repr__(self) -> str:
        key = f"{self.header.dh[:4].hex()}#{self.header.n}"
        return f"Letter({self.sender}: {self.text!r}, key {key})"


class ChannelPair:
    """Two named sides with one session between them; ``now_ms`` moves only when told."""

    def __init__(
        self,
        names: tuple[str, str] = ("alice", "bob"),
        *,
        limits: Limits = DEFAULT_LIMITS,
        random: Random = random_bytes,
    ) -> None:
        """``random``: every key's randomness (a seeded one makes the session repeatable)."""
        self.now_ms = START_MS
        self.names = names
        self.identities = {name: Identity.generate(random) for name in names}
        a, b = (self.identities[name] for name in names)
        ca, cb = (hashlib.sha256(f"certificate of {name}".encode()).digest() for name in names)
        pa = handshake.start(
            a, b.public, local_certificate=ca, remote_certificate=cb, random=random
        )
        pb = handshake.start(
            b, a.public, local_certificate=cb, remote_certificate=ca, random=random
        )
        results = {
            names[0]: handshake.finish(pa, pb.hello, random=random),
            names[1]: handshake.finish(pb, pa.hello, random=random),
        }
        self.keys = {
            name: ChannelKeys(
                results[name],
                self.identities[name].peer_id,
                started_ms=self.now_ms,
                limits=limits,
                random=random,
                clock_ms=lambda: self.now_ms,
            )
            for name in names
        }
        self._counter = 0
        self._random = random

    def other(self, name: str) -> str:
        return self.names[1] if name == self.names[0] else self.names[0]

    def send(self, sender: str, text: str) -> Letter:
        """Seal ``text`` from ``sender`` (its chain advances now) into a signed bundle."""
        self._counter += 1
        me = self.identities[sender]
        sealed = self.keys[sender].seal(
            conversation_id="lab",
            message_id=new_message_id(me.peer_id, self._random),
            counter=self._counter,
            timestamp_ms=self.now_ms,
            plaintext=encode_body(text),
        )
        data = envelope.bundle(me, [sealed])
        wrap = parse_bundle(data).envelopes[0].envelope.recipients
        (only,) = wrap.values()
        return Letter(sender, text, data, only.header)

    def deliver(self, letter: Letter) -> str:
        """Open ``letter`` at its recipient and adopt the new state: its text, or why not.

        No age limit (the live receiver refuses envelopes sealed over 10 minutes ago): this
        shows the ratchet's own rules, such as a held key's expiry."""
        keys = self.keys[self.other(letter.sender)]
        try:
            opening = keys.open(
                letter.bundle, now_ms=self.now_ms, seen=lambda _mid: False, max_age_ms=None
            )
        except PeerError as exc:
            return f"refused: {type(exc).__name__}"
        keys.commit(opening)
        result = opening.result
        if result.refused:
            return f"refused: {type(result.refused[0].error).__name__}"
        return decode_body(result.messages[0].plaintext)

    def advance(self, seconds: float) -> None:
        """Move the virtual clock, then run each side's expiry timer, as the app does."""
        self.now_ms += int(seconds * 1000)
        for keys in self.keys.values():
            keys.expire(self.now_ms)

    def summary(self, name: str) -> SessionSummary:
        return self.keys[name].summary(self.now_ms)


__all__ = ["START_MS", "ChannelPair", "Letter"]
