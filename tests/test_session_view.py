"""The key record a ChannelKeys keeps for the panels: what each seal, open and expiry did
to the message keys, read from real sessions (session_view.py)."""

from __future__ import annotations

import random
import re

from volli_nb.core.body import encode_body
from volli_nb.core.crypto import envelope
from volli_nb.core.crypto.ratchet import Limits
from volli_nb.core.crypto.session_view import (
    CHAIN,
    EVICTED,
    EXPIRED,
    HELD,
    RECEIVE,
    SEND,
    USED,
    USED_HELD,
    KeyEvent,
    KeyLog,
)
from volli_nb.core.message_id import new_message_id
from volli_nb.lab.channel_pair import ChannelPair

HOUR = 3600.0


def kinds(events: tuple[KeyEvent, ...], direction: str | None = None) -> list[tuple[str, int, int]]:
    return [(e.kind, e.n, e.count) for e in events if direction in (None, e.direction)]


def initiator_first() -> tuple[ChannelPair, str, str]:
    pair = ChannelPair(random=random.Random(1).randbytes)
    first = next(n for n in pair.names if pair.keys[n].initiator)
    return pair, first, pair.other(first)


def test_a_fresh_session_has_a_sending_chain_and_the_responder_a_receiving_one() -> None:
    pair, ini, res = initiator_first()
    a, b = pair.summary(ini), pair.summary(res)
    assert (a.dh_steps, a.receiving_chain, kinds(a.events)) == (0, None, [(CHAIN, 0, 1)])
    assert b.dh_steps == 1 and b.receiving_chain == a.sending_chain  # the initiator's key
    assert [(e.kind, e.direction, e.chain) for e in b.events] == [
        (CHAIN, RECEIVE, a.sending_chain),
        (CHAIN, SEND, b.sending_chain),
    ]
    assert a.session == b.session and re.fullmatch(r"[0-9a-f]{8}", a.session)


def test_keys_used_in_order_merge_into_runs_and_a_reply_is_a_dh_step() -> None:
    pair, a, b = initiator_first()
    for i in range(3):
        assert pair.deliver(pair.send(a, f"m{i}")) == f"m{i}"
    sa, sb = pair.summary(a), pair.summary(b)
    assert (sa.sent, sa.ns, sb.received, sb.nr) == (3, 3, 3, 3)
    assert kinds(sa.events, SEND)[-1] == (USED, 0, 3)  # one run: keys 0, 1 and 2
    assert kinds(sb.events, RECEIVE)[-1] == (USED, 0, 3)
    assert pair.deliver(pair.send(b, "reply")) == "reply"
    after = pair.summary(a)
    assert after.dh_steps == 1 and after.receiving_chain == sb.sending_chain
    steps = [e for e in after.events if e.kind == CHAIN and e.step == 1]
    assert [(e.direction, e.chain) for e in steps] == [
        (RECEIVE, sb.sending_chain),
        (SEND, after.sending_chain),
    ]
    assert after.sending_chain != sa.sending_chain  # a new ratchet key: a new chain


def test_a_late_letter_leaves_held_keys_that_are_used_or_expire() -> None:
    pair, a, b = initiator_first()
    letters = [pair.send(a, f"m{i}") for i in range(3)]
    assert pair.deliver(letters[2]) == "m2"
    held = pair.summary(b)
    until = pair.now_ms + 3_600_000
    assert [(k.n, k.expires_ms) for k in held.held] == [(0, until), (1, until)]
    assert kinds(held.events, RECEIVE)[-2:] == [(HELD, 0, 2), (USED, 2, 1)]
    assert pair.deliver(letters[0]) == "m0"
    assert kinds(pair.summary(b).events)[-1] == (USED_HELD, 0, 1)
    pair.advance(HOUR)  # the owner's timer drops what is past its time
    late = pair.summary(b)
    assert late.held == () and kinds(late.events)[-1] == (EXPIRED, 1, 1)
    assert pair.deliver(letters[1]) == "refused: MessageKeyUnavailable"
    assert late.received == 2


def test_held_keys_past_the_cap_are_evicted() -> None:
    pair = ChannelPair(random=random.Random(2).randbytes, limits=Limits(max_skip=2, max_skipped=2))
    a, b = pair.names
    letters = [pair.send(a, f"m{i}") for i in range(4)]
    pair.deliver(letters[1])  # holds key 0
    pair.deliver(letters[3])  # holds key 2: two held, the cap
    assert [k.n for k in pair.summary(b).held] == [0, 2]
    more = [pair.send(a, f"n{i}") for i in (4, 5, 6)]
    pair.deliver(more[2])  # holds keys 4 and 5: the two oldest go
    summary = pair.summary(b)
    assert [k.n for k in summary.held] == [4, 5]
    assert kinds(summary.events, RECEIVE)[-4:] == [
        (HELD, 4, 2),
        (USED, 6, 1),
        (EVICTED, 0, 1),
        (EVICTED, 2, 1),
    ]


def test_the_summary_names_public_keys_only() -> None:
    pair, a, b = initiator_first()
    for sender in (a, b, a):
        pair.deliver(pair.send(sender, "x"))
    for name in pair.names:
        state = pair.keys[name].state
        text = repr(pair.summary(name))
        secrets = [s for s in (state.root_key, state.dhs_secret, state.cks, state.ckr) if s]
        assert not any(s[:4].hex() in text for s in secrets)
        assert state.dhs_public[:4].hex() in text


def test_a_key_log_is_bounded_and_merges_only_contiguous_runs() -> None:
    log = KeyLog(limit=3)
    log.add([KeyEvent(USED, SEND, "aa", 0), KeyEvent(USED, SEND, "aa", 1)])
    log.add([KeyEvent(USED, SEND, "aa", 3)])  # a gap: a new run
    log.add([KeyEvent(USED, RECEIVE, "aa", 4), KeyEvent(CHAIN, SEND, "bb")])
    assert [(e.kind, e.n, e.count) for e in log.events()] == [
        (USED, 3, 1),
        (USED, 4, 1),
        (CHAIN, 0, 1),
    ]


def test_one_frame_of_many_envelopes_records_runs_not_keys() -> None:
    pair = ChannelPair(random=random.Random(3).randbytes)
    a, b = pair.names
    sender, me = pair.keys[a], pair.identities[a]
    rng = random.Random(4)
    sealed = [
        sender.seal(conversation_id="lab", message_id=new_message_id(me.peer_id, rng.randbytes),
                    counter=i + 1, timestamp_ms=pair.now_ms, plaintext=encode_body(f"m{i}"))
        for i in range(6)
    ]  # fmt: skip
    frame = envelope.bundle(me, [s for i, s in enumerate(sealed) if i != 2])  # 2 never sent
    receiver = pair.keys[b]
    receiver.commit(receiver.open(frame, now_ms=pair.now_ms, seen=lambda _m: False))
    events = kinds(pair.summary(b).events, RECEIVE)
    assert events[-3:] == [(HELD, 2, 1), (USED, 0, 2), (USED, 3, 3)]
    assert pair.summary(b).received == 5
