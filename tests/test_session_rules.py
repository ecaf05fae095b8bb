"""The rules that keep sessions safe on the wire, checked without a network.

- A frame's work is capped, counted in keys derived (not timed): a signed bundle of 512
  envelopes that each ask for the largest skip is refused within the cap.
- Whatever a sender restores (an old profile file, at any moment), no message key ever
  encrypts two different plaintexts: sessions live in memory with their channel, so a
  restart (a restore is one) always starts a fresh session, never an old state.
- The state of a channel is adopted only by its single owner, in order.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from protocol_pairs import NOW_MS, A, B, mid, pair
from session_pairs import make_pair

from volli_nb.base.errors import DecryptionFailed, TooManySkipped
from volli_nb.core.crypto import envelope, kdf, ratchet
from volli_nb.core.crypto import envelope_wire as wire
from volli_nb.core.crypto.channel_keys import ChannelKeys, StaleOpening
from volli_nb.core.crypto.envelope_wire import encode_bundle
from volli_nb.core.crypto.ratchet_limits import (
    MAX_DH_STEPS_PER_FRAME,
    SKIP_BURST,
    SKIPS_PER_MINUTE,
    WorkBudget,
)
from volli_nb.core.message_id import new_message_id

# --- the work one frame may cause ----------------------------------------------------


def skip_bomb(count: int, new_chains: bool) -> bytes:
    """A bundle, signed by the channel's genuine peer, of ``count`` envelopes whose headers
    each claim a message ``max_skip`` further on, and (``new_chains``) each a new ratchet
    key after a full previous chain: without a cap, up to 512 x 2,048 derivations and 512
    DH steps (5.2 s measured, synchronously on the event loop) for one frame of 200 kB."""
    pair_ = make_pair(A, B, seed=3)
    state = pair_.result_a.state if pair_.result_a.initiator else pair_.result_b.state
    sender, receiver = (A, B) if pair_.result_a.initiator else (B, A)
    step = ratchet.DEFAULT_LIMITS.max_skip
    envelopes, digests = [], []
    for i in range(count):
        sealed = envelope.seal(
            {receiver.peer_id: state}, sender=sender.peer_id, conversation_id="c",
            message_id=mid(i), counter=i + 1, timestamp_ms=NOW_MS, plaintext=b"x",
        )  # fmt: skip
        parsed = wire.parse_envelope(sealed.envelope).envelope
        (rid, wrap) = next(iter(parsed.recipients.items()))
        if new_chains:
            fresh = ratchet.generate_dh(random.Random(i).randbytes)[1]
            header = dataclasses.replace(wrap.header, dh=fresh, pn=step, n=step)
        else:
            header = dataclasses.replace(wrap.header, n=step * (i + 1))
        bomb = dataclasses.replace(
            parsed, recipients={rid: dataclasses.replace(wrap, header=header)}
        )
        again = wire.parse_envelope(bomb.encode())
        envelopes.append(again.raw)
        digests.append(again.digest)
    signature = sender.sign(envelope.SIGN_DOMAIN, wire.bundle_digest(digests))
    return encode_bundle(envelopes, signature)


@pytest.mark.parametrize("new_chains", [False, True], ids=["one chain", "a new chain each"])
def test_a_bundle_of_skip_bombs_is_refused_within_its_cap(
    monkeypatch: pytest.MonkeyPatch, new_chains: bool
) -> None:
    pair_ = make_pair(A, B, seed=3)
    receiver = pair_.result_b if pair_.result_a.initiator else pair_.result_a
    sender_id = A.peer_id if pair_.result_a.initiator else B.peer_id
    data = skip_bomb(512, new_chains)  # made before the derivations are counted
    derived = [0]
    real = kdf.kdf_ck

    def counting(chain_key: bytes) -> tuple[bytes, bytes]:
        derived[0] += 1
        return real(chain_key)

    monkeypatch.setattr(ratchet, "kdf_ck", counting)
    monkeypatch.setattr("volli_nb.core.crypto.ratchet_limits.kdf_ck", counting)
    sender, me = (A, B) if sender_id == A.peer_id else (B, A)
    opened = envelope.open_bundle(
        data, me=me.peer_id, peer=sender.public, state=receiver.state, now_ms=NOW_MS
    )
    assert opened.messages == () and len(opened.refused) == 512
    budget = WorkBudget.for_frame(512)
    assert derived[0] <= budget.keys  # counted in keys derived, not timed
    assert sum(isinstance(r.error, TooManySkipped) for r in opened.refused) >= 510
    assert opened.state is receiver.state  # nothing adopted from a refused frame


def test_a_genuine_full_bundle_fits_its_budget() -> None:
    a, b = pair(max_message_size=1 << 30)
    for i in range(512):
        a.queue(i, 0.0)
    (frame,) = a.session.data_to_send(0.0)
    b.handle(frame, 0.0)
    assert len(b.stored) == 512 and b.refusals == []


def test_dh_steps_per_frame_are_capped_too() -> None:
    budget = WorkBudget.for_frame(1)
    for _ in range(MAX_DH_STEPS_PER_FRAME):
        budget.spend_dh_step()
    with pytest.raises(TooManySkipped):
        budget.spend_dh_step()


# --- no message key for two plaintexts, whatever is restored ----------------------------

Key = tuple[bytes, bytes, int]  # (session, the sender's ratchet key, message number)


class Uses:
    """Every message key an envelope used, with the ciphertext it made."""

    def __init__(self) -> None:
        self.by_key: dict[Key, bytes] = {}
        self.reused: list[Key] = []

    def record(self, session_id: bytes, sealed: envelope.Sealed) -> None:
        parsed = wire.parse_envelope(sealed.envelope).envelope
        for wrap in parsed.recipients.values():
            key = (session_id, wrap.header.dh, wrap.header.n)
            if self.by_key.setdefault(key, wrap.encrypted_key) != wrap.encrypted_key:
                self.reused.append(key)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.integers(1, 5)),
            st.tuples(st.just("receive"), st.integers(0, 5)),
            st.tuples(st.just("restore"), st.integers(0, 10)),
        ),
        max_size=40,
    ),
    st.integers(0, 2**16),
)
def test_a_sender_restoring_any_older_state_never_reuses_a_message_key(
    steps: list[tuple[str, int]], seed: int
) -> None:
    """The sender's profile is a list of snapshots (its outbox of unacknowledged texts);
    "restore k" brings back the k-th last one and restarts the process: the channel
    reconnects with a fresh handshake (sessions are never stored), and the outbox seals
    again what it holds.  Across any such history, each message key is used once."""
    rng = random.Random(seed)
    uses = Uses()
    outbox: list[bytes] = []
    snapshots: list[list[bytes]] = [[]]
    keys: tuple[ChannelKeys, ChannelKeys] = _connect(rng)
    counter = 0
    for op, arg in steps:
        sender, receiver = keys
        if op == "send":
            for _ in range(arg):
                counter += 1
                outbox.append(f"text {counter}".encode())
            snapshots.append(list(outbox))
        elif op == "receive":  # the peer acknowledges up to ``arg`` of the oldest
            outbox = outbox[arg:]
            snapshots.append(list(outbox))
        else:  # a restore of an older file, then a restart: a new channel, a new session
            outbox = list(snapshots[max(0, len(snapshots) - 1 - arg)])
            keys = _connect(rng)
            continue
        for i, text in enumerate(outbox):  # every attempt seals afresh (same id)
            digest = hashlib.sha256(text).digest()
            message_id = new_message_id(A.peer_id, lambda n, d=digest: d[:n])
            sealed = sender.seal(
                conversation_id="c", message_id=message_id, counter=i + 1,
                timestamp_ms=NOW_MS, plaintext=text,
            )  # fmt: skip
            uses.record(sender.session_id, sealed)
        del receiver
    assert uses.reused == []


def _connect(rng: random.Random) -> tuple[ChannelKeys, ChannelKeys]:
    pair_ = make_pair(A, B, seed=rng.randrange(1 << 30))
    return (
        ChannelKeys(pair_.result_a, A.peer_id, started_ms=NOW_MS),
        ChannelKeys(pair_.result_b, B.peer_id, started_ms=NOW_MS),
    )


def test_an_opening_is_adopted_only_from_the_state_it_was_opened_from() -> None:
    a, b = pair()
    frames = a.send(1, 0.0)
    (event,) = [e for f in frames for e in b.session.receive(f, 0.0)]
    opening = b.k.open(event.bundle, now_ms=NOW_MS, seen=lambda _m: False)  # type: ignore[union-attr]
    b.seal(9)  # a seal ran in between: the state moved on
    with pytest.raises(StaleOpening):
        b.k.commit(opening)


def test_a_session_may_skip_only_so_many_keys_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """A single-envelope frame skipping ``max_skip`` keys fits its frame's cap; sent again
    and again (refused, it moves nothing) it cost 1,024 derivations every time.  The
    session's allowance stops that once ``SKIP_BURST`` keys are spent, before deriving,
    and earns ``SKIPS_PER_MINUTE`` back a minute."""
    pair_ = make_pair(A, B, seed=3)
    initiator_a = pair_.result_a.initiator
    receiver = pair_.result_b if initiator_a else pair_.result_a
    me = B if initiator_a else A
    keys = ChannelKeys(receiver, me.peer_id, started_ms=NOW_MS)
    frame = skip_bomb(1, new_chains=False)  # skips 1,024 keys, then fails its tag
    derived = [0]
    real = kdf.kdf_ck

    def counting(chain_key: bytes) -> tuple[bytes, bytes]:
        derived[0] += 1
        return real(chain_key)

    monkeypatch.setattr("volli_nb.core.crypto.ratchet_limits.kdf_ck", counting)

    def attempt(now_ms: int) -> type[Exception]:
        (refused,) = keys.open(frame, now_ms=now_ms, seen=lambda _m: False).result.refused
        return type(refused.error)

    step = ratchet.DEFAULT_LIMITS.max_skip
    assert 2 * step == SKIP_BURST and SKIPS_PER_MINUTE == SKIP_BURST
    assert [attempt(NOW_MS) for _ in range(2)] == [DecryptionFailed] * 2
    assert derived[0] == 2 * step
    assert [attempt(NOW_MS + 1000) for _ in range(20)] == [TooManySkipped] * 20
    assert derived[0] == 2 * step  # refused before deriving
    assert attempt(NOW_MS + 30_000) is DecryptionFailed  # half a minute: 1,024 earned
    assert attempt(NOW_MS + 30_000) is TooManySkipped and derived[0] == 3 * step


def test_the_skip_allowance_is_the_peers_across_its_sessions() -> None:
    """A hello re-keys at will, and a refused skip makes us re-key: were the allowance a
    session's, each new session would bring a fresh one.  It is the peer's."""
    from volli_nb.app.peer_sessions import PeerSessions
    from volli_nb.core.eventlog import EventLog

    pair_ = make_pair(A, B, seed=3)
    initiator_a = pair_.result_a.initiator
    receiver = pair_.result_b if initiator_a else pair_.result_a
    me, peer = (B, A) if initiator_a else (A, B)
    sessions = PeerSessions(me, EventLog(), clock=lambda: NOW_MS / 1000)
    frame = skip_bomb(1, new_chains=False)

    def attempt() -> type[Exception]:
        keys = sessions.get(peer.peer_id)
        assert keys is not None
        (refused,) = keys.open(frame, now_ms=NOW_MS, seen=lambda _m: False).result.refused
        return type(refused.error)

    sessions.started(peer.peer_id, receiver)
    assert [attempt(), attempt(), attempt()] == [DecryptionFailed] * 2 + [TooManySkipped]
    sessions.started(peer.peer_id, receiver)  # a new session with the same peer
    assert attempt() is TooManySkipped
