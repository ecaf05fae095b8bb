"""A hypothesis state machine over one ratchet session: any order, loss and duplication.

Two sides send in any interleaving; any sent message may be delivered at any time, any
number of times, and a delivery may be "crashed" (decrypted but never committed).  A
small model of the spec predicts each outcome: within the skip bounds every message
decrypts exactly once (a crashed delivery leaves it deliverable again); a duplicate,
an expired or an evicted key raises ``MessageKeyUnavailable``; beyond a bound,
``TooManySkipped``; and the real states agree with the model after every step
(counters, and exactly which skipped keys are held).
"""

from __future__ import annotations

import copy
import random
from collections import OrderedDict
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from session_pairs import NOW, identities, make_pair

from volli_nb.base.errors import (
    DecryptionFailed,
    MessageKeyUnavailable,
    TooManySkipped,
    VolliError,
)
from volli_nb.core.crypto import ratchet
from volli_nb.core.crypto.ratchet_state import open_state, seal_state

ALICE, BOB = identities(41, 2)
LIMITS = ratchet.Limits(max_skip=4, max_skipped=5, skipped_ttl_ms=10_000)
OK = "ok"


@dataclass
class Sent:
    side: str
    epoch: int
    n: int
    header: ratchet.Header
    ciphertext: bytes
    plaintext: bytes


@dataclass
class Side:
    """What the spec says one side holds, in epochs (the peer's ratchet key numbers)."""

    send_epoch: int
    recv_epoch: int  # -1: the initiator has the responder's hello key but no chain yet
    ns: int = 0
    pn: int = 0
    recv_n: int = 0
    skipped: OrderedDict[tuple[int, int], int] = field(default_factory=OrderedDict)
    history: list[int] = field(default_factory=list)
    evicted: bool = False  # for the statistics only

    def _skip(self, epoch: int, start: int, until: int, now: int) -> None:
        for n in range(start, until):
            self.skipped[(epoch, n)] = now

    def predict(self, msg: Sent, now: int) -> tuple[object, Side]:
        """The outcome of receiving ``msg`` and the side afterwards (if it is committed)."""
        m = copy.deepcopy(self)
        m.skipped = OrderedDict(
            (k, t) for k, t in m.skipped.items() if now - t < LIMITS.skipped_ttl_ms
        )
        key = (msg.epoch, msg.n)
        if key in m.skipped:
            del m.skipped[key]
            return OK, m
        if msg.epoch == m.recv_epoch:
            if msg.n < m.recv_n:
                return MessageKeyUnavailable, m
            if msg.n - m.recv_n > LIMITS.max_skip:
                return TooManySkipped, m
            m._skip(m.recv_epoch, m.recv_n, msg.n, now)
            m.recv_n = msg.n + 1
        elif msg.epoch in m.history:
            return MessageKeyUnavailable, m
        else:  # a new ratchet key (or one forgotten): the spec's DH step
            if msg.header.pn - m.recv_n > LIMITS.max_skip or msg.n > LIMITS.max_skip:
                return TooManySkipped, m
            if msg.epoch < m.recv_epoch:
                return DecryptionFailed, m  # a forgotten old chain: the bogus step fails
            assert msg.epoch == m.recv_epoch + 1, "ratchet keys arrive one epoch at a time"
            if m.recv_epoch >= 0:
                m._skip(m.recv_epoch, m.recv_n, msg.header.pn, now)
            m.history = [*m.history, m.recv_epoch][-ratchet.HISTORY :]
            m.recv_epoch, m.recv_n = msg.epoch, msg.n + 1
            m._skip(msg.epoch, 0, msg.n, now)
            m.send_epoch, m.pn, m.ns = m.send_epoch + 1, m.ns, 0
        while len(m.skipped) > LIMITS.max_skipped:
            m.skipped.popitem(last=False)
            m.evicted = True
        return OK, m


class RatchetMachine(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**16))
    def start(self, seed: int) -> None:
        pair = make_pair(ALICE, BOB, seed)
        self.rng = random.Random(f"machine {seed}")  # not the handshake's seed
        self.states = {"I": pair.initiator, "R": pair.responder}
        self.model = {"I": Side(send_epoch=0, recv_epoch=-1), "R": Side(send_epoch=0, recv_epoch=0)}
        self.keys: dict[tuple[str, int], bytes] = {}  # (side, epoch) -> its ratchet key
        self.sent: list[Sent] = []
        self.delivered: set[int] = set()
        self.now = NOW

    @rule(side=st.sampled_from("IR"), count=st.integers(1, 6))
    def send(self, side: str, count: int) -> None:
        for _ in range(count):
            self._send_one(side)

    def _send_one(self, side: str) -> None:
        model = self.model[side]
        text = b"%s%d" % (side.encode(), len(self.sent))
        state, header, ciphertext = ratchet.encrypt(self.states[side], text)
        assert (header.n, header.pn) == (model.ns, model.pn)
        known = self.keys.setdefault((side, model.send_epoch), header.dh)
        assert known == header.dh, "one ratchet key per epoch"
        self.sent.append(Sent(side, model.send_epoch, model.ns, header, ciphertext, text))
        model.ns += 1
        self.states[side] = state

    @precondition(lambda self: self.sent)
    @rule(data=st.data(), commit=st.booleans())
    def deliver(self, data: st.DataObject, commit: bool) -> None:
        last = len(self.sent) - 1  # the newest message often: that is what skips keys
        index = data.draw(st.just(last) | st.integers(0, last), label="message")
        msg = self.sent[index]
        receiver = "R" if msg.side == "I" else "I"
        expected, after = self.model[receiver].predict(msg, self.now)
        try:
            state, plaintext = ratchet.decrypt(
                self.states[receiver],
                msg.header,
                msg.ciphertext,
                now_ms=self.now,
                limits=LIMITS,
                random=self.rng.randbytes,
            )
        except VolliError as exc:
            assert type(exc) is expected, f"expected {expected}, got {exc!r}"
            event(type(exc).__name__)
            return
        assert expected == OK, f"expected {expected}, but message {index} decrypted"
        assert plaintext == msg.plaintext
        assert index not in self.delivered, "a message decrypted twice"
        event("decrypted" if commit else "decrypted, crashed before commit")
        if after.evicted and not self.model[receiver].evicted:
            event("oldest skipped key evicted")
        if commit:  # otherwise: crashed before the commit; the old state stays
            self.states[receiver], self.model[receiver] = state, after
            self.delivered.add(index)

    @rule(ms=st.integers(0, 15_000))
    def wait(self, ms: int) -> None:
        self.now += ms

    @rule(side=st.sampled_from("IR"))
    def reload(self, side: str) -> None:
        key, context = bytes(32), side.encode()
        sealed = seal_state(self.states[side], key, context, random=self.rng.randbytes)
        reopened = open_state(sealed, key, context)
        assert reopened == self.states[side]
        self.states[side] = reopened

    @invariant()
    def states_match_the_model(self) -> None:
        if not hasattr(self, "states"):
            return
        for side, state in self.states.items():
            model, peer = self.model[side], "R" if side == "I" else "I"
            assert (state.ns, state.pn, state.nr) == (model.ns, model.pn, model.recv_n)
            expected = {(self.keys[(peer, e)], n) for e, n in model.skipped}
            assert set(state.skipped) == expected


TestRatchetMachine = RatchetMachine.TestCase
TestRatchetMachine.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
