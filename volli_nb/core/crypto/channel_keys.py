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
  :class:`~volli_nb.core.crypto.ratchet.WorkBudget`, and the session's frames a
  :class:`~volli_nb.core.crypto.ratchet_limits.SkipAllowance`; skipped keys expire on
  :meth:`expire` (the owner's timer) as well as on every open.

What each seal, commit and expiry did to the message keys is recorded (bounded, no key:
:mod:`.session_view`), so :meth:`summary` can show the ratchet turning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from volli_nb.base.errors import UsageError
from volli_nb.core.crypto import envelope, ratchet, session_view
from volli_nb.core.crypto.envelope import OpenedBundle, Sealed
from volli_nb.core.crypto.envelope_wire import ParsedBundle, parse_bundle
from volli_nb.core.crypto.handshake import HandshakeResult
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.crypto.primitives import Random, random_bytes
from volli_nb.core.crypto.ratchet_limits import SkipAllowance
from volli_nb.core.crypto.session_view import HeldKey, KeyEvent, SessionSummary

TAG_BYTES = 8  # the session tag frames carry: the first bytes of the session id


class StaleOpening(UsageError):
    """The state changed between opening a frame and committing it (a seal or another
    open ran in between); the frame's messages are refused and sent again."""


@dataclass(frozen=True, slots=True)
class Opening:
    """A frame opened from ``base``: adopt ``result.state`` with :meth:`ChannelKeys.commit`."""

    result: OpenedBundle
    base: ratchet.RatchetState
    headers: tuple[ratchet.Header, ...] = ()  # ours in the frame, in order (for the key log)
    now_ms: int = 0


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
        clock_ms: Callable[[], int] | None = None,
        skips: SkipAllowance | None = None,  # the peer's, kept across its sessions
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
        self._clock_ms = clock_ms
        self._skips = skips or SkipAllowance()  # skipped keys over time (ratchet_limits)
        self._keys = session_view.KeyLog()
        self._keys.add(session_view.started(result.state, self.dh_steps, started_ms))
        # Told each DH step as it is adopted (the app logs it for the sequence diagram).
        self.on_step: Callable[[KeyEvent], None] | None = None

    @property
    def state(self) -> ratchet.RatchetState:
        """The current state (read-only; for panels, notebooks and tests)."""
        return self._state

    @property
    def sending_chain(self) -> str:
        """The current sending chain's name (its ratchet public key, short)."""
        return session_view.short(self._state.dhs_public)

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

    def _sealed(self, state: ratchet.RatchetState, timestamp_ms: int) -> None:
        at_ms = self._clock_ms() if self._clock_ms is not None else timestamp_ms
        self._keys.add((session_view.sent(self._state, at_ms),))
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
        parsed = bundle if isinstance(bundle, ParsedBundle) else parse_bundle(bundle)
        self._skips.refill(now_ms)
        result = envelope.open_bundle(
            parsed,
            me=self.me,
            peer=self.peer,
            state=base,
            now_ms=now_ms,
            seen=seen,
            max_age_ms=max_age_ms,
            max_skew_ms=max_skew_ms,
            limits=self.limits,
            random=self._random,
            allowance=self._skips,
        )
        mine = [e.envelope.recipients.get(self.me) for e in parsed.envelopes]
        return Opening(result, base, tuple(w.header for w in mine if w is not None), now_ms)

    def commit(self, opening: Opening) -> None:
        """Adopt what ``opening`` computed: its messages are stored now."""
        if opening.base is not self._state:
            raise StaleOpening(
                "the ratchet state changed after this frame was opened; refuse the frame "
                "(the sender seals its messages again)"
            )
        new = opening.result.state
        events = session_view.received(
            opening.base,
            new,
            opening.headers,
            now_ms=opening.now_ms,
            ttl_ms=self.limits.skipped_ttl_ms,
            dh_steps=self.dh_steps,
        )
        self._keys.add(events)
        self.dh_steps += session_view.new_steps(events)
        self._state = new
        self.opened += len(opening.result.messages)
        if self.on_step is not None:
            for event in events:
                if event.kind == session_view.CHAIN and event.direction == session_view.RECEIVE:
                    self.on_step(event)

    # --- housekeeping -------------------------------------------------------------------

    def expire(self, now_ms: int) -> int:
        """Drop skipped keys past their time; how many were dropped."""
        before = self._state
        self._state = ratchet.expire(before, now_ms, self.limits)
        self._keys.add(session_view.dropped(before, self._state, now_ms))
        return len(before.skipped) - len(self._state.skipped)

    def summary(self, now_ms: int) -> SessionSummary:
        """What a panel shows (see :mod:`.session_view`): counters, short public ids, the
        key events; never a key."""
        state, short = self._state, session_view.short
        ttl, skipped = self.limits.skipped_ttl_ms, state.skipped.items()
        return SessionSummary(
            session=self.session_id[:4].hex(),
            initiator=self.initiator,
            started_ms=self.started_ms,
            now_ms=now_ms,
            dh_steps=self.dh_steps,
            sent=self.sealed,
            received=self.opened,
            sending_chain=self.sending_chain,
            ns=state.ns,
            receiving_chain=None if state.ckr is None or state.dhr is None else short(state.dhr),
            nr=state.nr,
            held=tuple(HeldKey(short(dh), n, at + ttl) for (dh, n), (_, at) in skipped),
            events=self._keys.events(),
        )


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
        channel._sealed(sealed.states[peer], timestamp_ms)
    return sealed


__all__ = ["TAG_BYTES", "ChannelKeys", "Opening", "StaleOpening", "seal_for"]
