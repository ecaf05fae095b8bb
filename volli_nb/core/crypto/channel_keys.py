"""One channel's ratchet: the single owner of its state, for sealing and for opening.

A session is born from the handshake when a data channel opens
(:mod:`volli_nb.core.crypto.handshake`) and dies with the channel.  It lives in memory
only: no ratchet state is ever written to disk, so a stolen file, a backup or a
restored copy holds no session key, and a restart cannot resume from a stale state
(docs/sessions.md explains why this beats storing sessions here).  Whatever the last
session left unacknowledged is still in the outbox and is sealed again under the next.

The rules that keep every message key single-use, all enforced here:

- **one writer**: every seal and every open of the channel goes through this object;
- **seal advances at once**: :meth:`seal` adopts the new state before it returns, so the
  next seal (also one made while a receive ran in between) uses the next key; a sealed
  envelope that is never sent costs the receiver one skipped key, never a reuse;
- **open adopts after the store**: :meth:`open` computes the new state without adopting
  it; :meth:`commit` adopts it once the messages it opened are stored, and only if no
  seal or open changed the state meanwhile (:class:`StaleOpening` otherwise: the frame
  is refused and sent again, never opened twice from one state);
- **bounded work and memory**: a frame's decrypts share a
  :class:`~volli_nb.core.crypto.ratchet.WorkBudget`; skipped keys expire on
  :meth:`expire` (the owner's timer) as well as on every open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from volli_nb.base.errors import UsageError
from volli_nb.core.crypto import envelope, ratchet
from volli_nb.core.crypto.envelope import OpenedBundle, Sealed
from volli_nb.core.crypto.envelope_wire import ParsedBundle
from volli_nb.core.crypto.handshake import HandshakeResult
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.crypto.primitives import Random, random_bytes

TAG_BYTES = 8  # the session tag frames carry: the first bytes of the session id


class StaleOpening(UsageError):
    """The state changed between opening a frame and committing it (a seal or another
    open ran in between); the frame's messages are refused and sent again."""


@dataclass(frozen=True, slots=True)
class Opening:
    """A frame opened from ``base``: adopt ``result.state`` with :meth:`ChannelKeys.commit`."""

    result: OpenedBundle
    base: ratchet.RatchetState


class ChannelKeys:
    """The ratchet of one data channel (see the module docstring)."""

    def __init__(
        self,
        result: HandshakeResult,
        me: str,
        *,
        started_ms: int,
        limits: ratchet.Limits = ratchet.DEFAULT_LIMITS,
        random: Random = random_bytes,
    ) -> None:
        self.session_id = result.session_id
        self.tag = result.session_id[:TAG_BYTES]
        self.peer: PublicIdentity = result.peer
        self.initiator = result.initiator
        self.me = me
        self.started_ms = started_ms
        self.limits = limits
        self._random = random
        self._state = result.state
        self.dh_steps = 0 if result.initiator else 1  # the responder's first step is taken
        self.sealed = 0
        self.opened = 0

    @property
    def state(self) -> ratchet.RatchetState:
        """The current state (read-only; for panels, notebooks and tests)."""
        return self._state

    def __repr__(self) -> str:
        return (
            f"ChannelKeys({self.me} -> {self.peer.peer_id}, session {self.session_id[:4].hex()}, "
            f"{self.dh_steps} DH steps, sent {self.sealed}, received {self.opened})"
        )

    # --- sealing ----------------------------------------------------------------------

    def seal(
        self,
        *,
        conversation_id: str,
        message_id: bytes,
        counter: int,
        timestamp_ms: int,
        plaintext: bytes,
    ) -> Sealed:
        """An envelope for this channel's peer alone (see :func:`seal_for` for several)."""
        return seal_for(
            [self],
            conversation_id=conversation_id,
            message_id=message_id,
            counter=counter,
            timestamp_ms=timestamp_ms,
            plaintext=plaintext,
        )

    def _sealed(self, state: ratchet.RatchetState) -> None:
        self._state = state
        self.sealed += 1

    # --- opening ----------------------------------------------------------------------

    def open(
        self,
        bundle: ParsedBundle | bytes,
        *,
        now_ms: int,
        seen: Callable[[bytes], bool],
        max_age_ms: int | None = envelope.DEFAULT_MAX_AGE_MS,
        max_skew_ms: int = envelope.DEFAULT_MAX_SKEW_MS,
    ) -> Opening:
        """Verify and open one received frame's bundle; nothing is adopted yet."""
        base = self._state
        result = envelope.open_bundle(
            bundle,
            me=self.me,
            peer=self.peer,
            state=base,
            now_ms=now_ms,
            seen=seen,
            max_age_ms=max_age_ms,
            max_skew_ms=max_skew_ms,
            limits=self.limits,
            random=self._random,
        )
        return Opening(result, base)

    def commit(self, opening: Opening) -> None:
        """Adopt what ``opening`` computed: its messages are stored now."""
        if opening.base is not self._state:
            raise StaleOpening(
                "the ratchet state changed after this frame was opened; refuse the frame "
                "(the sender seals its messages again)"
            )
        new = opening.result.state
        if new.dhs_public != opening.base.dhs_public:
            self.dh_steps += 1
        self._state = new
        self.opened += len(opening.result.messages)

    # --- housekeeping -------------------------------------------------------------------

    def expire(self, now_ms: int) -> int:
        """Drop skipped keys past their time; how many were dropped."""
        before = len(self._state.skipped)
        self._state = ratchet.expire(self._state, now_ms, self.limits)
        return before - len(self._state.skipped)

    def info(self, now_ms: int) -> dict[str, object]:
        """What a panel shows: never a key, only counters and short public ids."""
        state = self._state
        return {
            "session": self.session_id[:4].hex(),
            "age_s": max(0, now_ms - self.started_ms) / 1000,
            "dh_steps": self.dh_steps,
            "sent": self.sealed,
            "received": self.opened,
            "skipped_keys": len(state.skipped),
            "ns": state.ns,
            "nr": state.nr,
        }


def seal_for(
    channels: Sequence[ChannelKeys],
    *,
    conversation_id: str,
    message_id: bytes,
    counter: int,
    timestamp_ms: int,
    plaintext: bytes,
    random: Random = random_bytes,
) -> Sealed:
    """One envelope for the peers of ``channels`` (one body, a key wrap each); every
    channel adopts its new state before this returns."""
    if not channels:
        raise UsageError("seal for at least one channel")
    me = channels[0].me
    by_peer = {c.peer.peer_id: c for c in channels}
    if len(by_peer) != len(channels) or any(c.me != me for c in channels):
        raise UsageError("seal once per peer, from one device")
    sealed = envelope.seal(
        {peer: c.state for peer, c in by_peer.items()},
        sender=me,
        conversation_id=conversation_id,
        message_id=message_id,
        counter=counter,
        timestamp_ms=timestamp_ms,
        plaintext=plaintext,
        random=random,
    )
    for peer, channel in by_peer.items():
        channel._sealed(sealed.states[peer])
    return sealed


__all__ = ["TAG_BYTES", "ChannelKeys", "Opening", "StaleOpening", "seal_for"]
