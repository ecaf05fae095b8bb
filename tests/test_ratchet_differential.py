"""Differential test: our Double Ratchet against Syndace's ``doubleratchet`` (PyPI).

The oracle is configured with exactly our parameters, through its own independent code
paths: its HKDF root chain (``cryptography``'s HKDF, info ``volli-ratchet-root-v1``), its
"separate HMACs" chain KDF with constant ``02 01`` (next chain key = HMAC(ck, 0x02),
message key = HMAC(ck, 0x01)), its X25519 DH ratchet (``cryptography``), fed the same
private keys our ``random`` yields, our ENCRYPT (XChaCha20-Poly1305 under a nonce derived
from the message key, the associated data and the plaintext) and our ``CONCAT(AD,
header)`` encoding, both written out again here.
Each conversation runs on both implementations in lock step: every header and
ciphertext must be byte-identical, every plaintext equal, and after each step the whole
state (root, chain keys, counters, ratchet keys, skipped keys in order) must match.

Matched exactly: the KDF chains, the DH ratchet, initialisation (``encrypt_initial_message``
is our initiator, ``decrypt_initial_message`` our responder's pre-applied DH step),
skipped keys and their FIFO eviction (``max_num_skipped_message_keys`` = ``max_skipped``,
``dos_protection_threshold`` = ``max_skip``).  Not matched, by design, and not exercised
as a comparison: expiry over time (the oracle has none); a previous chain with more
than ``max_skip`` missing keys (the oracle warns and steps without storing them, the spec
and we raise ``TooManySkipped`` - asserted below); the error *types* for refused messages
(each side must refuse, with its own exception).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import nacl.bindings
from doubleratchet import DoubleRatchet, EncryptedMessage
from doubleratchet import Header as OracleHeader
from doubleratchet.recommended import (
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)
from doubleratchet.recommended.crypto_provider import HashFunction
from hypothesis import given, settings
from hypothesis import strategies as st
from session_pairs import NOW, identities

from volli_nb.base.errors import TooManySkipped, VolliError
from volli_nb.core.crypto import ratchet
from volli_nb.core.crypto.ratchet import Limits, RatchetState

ALICE, BOB = identities(51, 2)


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class FedDH(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
    """The oracle's X25519 ratchet, with private keys from the side being driven."""

    source: ClassVar[Iterator[bytes]]

    @staticmethod
    def _generate_priv() -> bytes:
        return next(FedDH.source)


class RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"volli-ratchet-root-v1"


class ChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


def _keyed(key: bytes, person: bytes, data: bytes = b"", size: int = 32) -> bytes:
    return hashlib.blake2b(data, digest_size=size, key=key, person=person).digest()


class XChaChaAEAD:
    """Our ENCRYPT(mk, plaintext, ad), written out again from its description: the
    message key split by BLAKE2b into an AEAD key and a nonce key; the nonce is
    BLAKE2b(nonce key, u64 len(ad) | ad | plaintext), 24 bytes, sent before the
    XChaCha20-Poly1305 ciphertext and checked again after decryption."""

    @staticmethod
    def _keys(key: bytes) -> tuple[bytes, bytes]:
        return _keyed(key, b"volli-mk-aead"), _keyed(key, b"volli-mk-nonce")

    @staticmethod
    def _nonce(nonce_key: bytes, ad: bytes, plaintext: bytes) -> bytes:
        return _keyed(nonce_key, b"", len(ad).to_bytes(8, "big") + ad + plaintext, 24)

    @staticmethod
    async def encrypt(plaintext: bytes, key: bytes, associated_data: bytes) -> bytes:
        aead_key, nonce_key = XChaChaAEAD._keys(key)
        nonce = XChaChaAEAD._nonce(nonce_key, associated_data, plaintext)
        return nonce + nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, associated_data, nonce, aead_key
        )

    @staticmethod
    async def decrypt(ciphertext: bytes, key: bytes, associated_data: bytes) -> bytes:
        aead_key, nonce_key = XChaChaAEAD._keys(key)
        nonce, body = ciphertext[:24], ciphertext[24:]
        plaintext: bytes = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            body, associated_data, nonce, aead_key
        )
        if nonce != XChaChaAEAD._nonce(nonce_key, associated_data, plaintext):
            raise ValueError("nonce does not match")
        return plaintext


class Oracle(DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: OracleHeader) -> bytes:
        # Ours: the 32-byte session AD, the encoded header, then the caller's AD.
        encoded = (
            header.ratchet_pub
            + leb128(header.previous_sending_chain_length)
            + leb128(header.sending_chain_length)
        )
        return associated_data[:32] + encoded + associated_data[32:]


def config(limits: Limits) -> dict[str, Any]:
    return {
        "diffie_hellman_ratchet_class": FedDH,
        "root_chain_kdf": RootKDF,
        "message_chain_kdf": ChainKDF,
        "message_chain_constant": b"\x02\x01",
        "dos_protection_threshold": limits.max_skip,
        "max_num_skipped_message_keys": limits.max_skipped,
        "aead": XChaChaAEAD,
    }


def same_state(mine: RatchetState, oracle: Oracle) -> None:
    model = oracle.model
    dh = model.diffie_hellman_ratchet
    chains = dh.symmetric_key_ratchet
    assert mine.root_key == dh.root_chain.key
    assert (mine.dhs_secret, mine.dhr) == (dh.own_ratchet_priv, dh.other_ratchet_pub)
    assert chains.sending_chain is not None
    assert (mine.cks, mine.ns) == (chains.sending_chain.key, chains.sending_chain.length)
    receiving = chains.receiving_chain
    assert (mine.ckr, mine.nr) == ((receiving.key, receiving.length) if receiving else (None, 0))
    assert mine.pn == (chains.previous_sending_chain_length or 0)
    theirs = [((k.ratchet_pub, k.index), k.message_key) for k in model.skipped_message_keys]
    assert [(key, mk) for key, (mk, _t) in mine.skipped.items()] == theirs


def dh_secret(who: str, peer_key: bytes) -> bytes:
    """The private key ``who`` generates in the DH step for ``peer_key``, on both sides.

    Keyed by the step rather than drawn from a stream, so both implementations get the
    same key even where one draws and the other does not (a refused message)."""
    return hashlib.sha256(who.encode() + peer_key).digest()


@dataclass
class Side:
    name: str
    mine: RatchetState
    oracle: Oracle | None = None
    inbox: list[tuple[ratchet.Header, bytes, bytes, bytes]] = field(default_factory=list)


@dataclass
class Conversation:
    """Both implementations, driven in lock step from one shared key and two ratchet keys."""

    limits: Limits
    runner: asyncio.Runner
    shared: bytes
    session_ad: bytes
    responder_key: tuple[bytes, bytes]
    sides: dict[str, Side] = field(default_factory=dict)
    counter: int = 0

    @classmethod
    def start(cls, runner: asyncio.Runner, limits: Limits, seed: int) -> Conversation:
        rng = random.Random(seed)
        shared, ad = rng.randbytes(32), rng.randbytes(32)
        key_i, key_r = ratchet.generate_dh(rng.randbytes), ratchet.generate_dh(rng.randbytes)
        talk = cls(limits, runner, shared, ad, key_r)
        mine_i = ratchet.init_initiator(shared, ad, key_i, key_r[1])
        mine_r = ratchet.init_responder(
            shared, ad, key_r, key_i[1], lambda _n: dh_secret("R", key_i[1])
        )
        talk.sides = {"I": Side("I", mine_i), "R": Side("R", mine_r)}
        return talk

    def can_send(self, who: str) -> bool:
        """The oracle's responder exists only once the initiator's first message arrived."""
        return who == "I" or self.sides["R"].oracle is not None

    def send(self, who: str, extra_ad: bytes = b"") -> None:
        side, peer = self.sides[who], self.sides["R" if who == "I" else "I"]
        text = b"%s says %d" % (who.encode(), self.counter)
        self.counter += 1
        side.mine, header, ciphertext = ratchet.encrypt(side.mine, text, extra_ad)
        ad = self.session_ad + extra_ad
        if side.oracle is None:  # RatchetInitAlice: the initiator's first message
            FedDH.source = iter([side.mine.dhs_secret])
            side.oracle, message = self.runner.run(
                Oracle.encrypt_initial_message(
                    **config(self.limits),
                    shared_secret=self.shared,
                    recipient_ratchet_pub=self.responder_key[1],
                    message=text,
                    associated_data=ad,
                )
            )
        else:
            message = self.runner.run(side.oracle.encrypt_message(text, ad))
        theirs = message.header
        assert (header.dh, header.pn, header.n) == (
            theirs.ratchet_pub,
            theirs.previous_sending_chain_length,
            theirs.sending_chain_length,
        )
        assert ciphertext == message.ciphertext
        same_state(side.mine, side.oracle)
        peer.inbox.append((header, ciphertext, text, extra_ad))

    def deliver(self, who: str, pick: int) -> bool:
        """Deliver one message waiting for ``who``; False where the two must diverge."""
        side = self.sides[who]
        header, ciphertext, text, extra_ad = side.inbox.pop(pick % len(side.inbox))
        key = dh_secret(who, header.dh)
        mine_error: VolliError | None = None
        try:
            new_state, plain = ratchet.decrypt(
                side.mine,
                header,
                ciphertext,
                extra_ad,
                now_ms=NOW,
                limits=self.limits,
                random=lambda _n: key,
            )
        except VolliError as exc:
            mine_error = exc
        theirs, oracle_error, warned = self._oracle_decrypt(
            side, header, ciphertext, self.session_ad + extra_ad
        )
        if warned:  # the oracle steps past a too-long previous chain; the spec refuses
            assert isinstance(mine_error, TooManySkipped)
            return False
        assert (mine_error is None) == (oracle_error is None), (mine_error, oracle_error)
        if mine_error is None:
            assert plain == theirs == text
            side.mine = new_state
            assert side.oracle is not None
            same_state(side.mine, side.oracle)
        return True

    def _oracle_decrypt(
        self, side: Side, header: ratchet.Header, ciphertext: bytes, ad: bytes
    ) -> tuple[bytes | None, Exception | None, bool]:
        message = EncryptedMessage(OracleHeader(header.dh, header.pn, header.n), ciphertext)
        FedDH.source = iter([dh_secret(side.name, header.dh)])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if side.oracle is None:  # RatchetInitBob and the first DH step
                    side.oracle, plain = self.runner.run(
                        Oracle.decrypt_initial_message(
                            **config(self.limits),
                            shared_secret=self.shared,
                            own_ratchet_priv=self.responder_key[0],
                            message=message,
                            associated_data=ad,
                        )
                    )
                else:
                    plain = self.runner.run(side.oracle.decrypt_message(message, ad))
            except Exception as exc:  # the oracle's own exception types
                return None, exc, bool(caught)
        return plain, None, bool(caught)


Op = tuple[str, str, int]  # ("send" | "deliver", side, pick)
ops = st.lists(
    st.tuples(st.sampled_from(["send", "deliver"]), st.sampled_from("IR"), st.integers(0, 99)),
    max_size=60,
)


def run(script: list[Op], limits: Limits, seed: int, extra_ad: bytes = b"") -> int:
    """Play ``script`` on both implementations; the number of messages both opened."""
    opened = 0
    with asyncio.Runner() as runner:
        talk = Conversation.start(runner, limits, seed)
        talk.send("I", extra_ad)
        for op, who, pick in script:
            if op == "send" and talk.can_send(who):
                talk.send(who, extra_ad)
            elif op == "deliver" and talk.sides[who].inbox:
                before = talk.sides[who].mine
                if not talk.deliver(who, pick):
                    break
                opened += talk.sides[who].mine is not before
    return opened


@settings(max_examples=60, deadline=None)
@given(script=ops, seed=st.integers(0, 1000))
def test_random_conversations_match_the_oracle(script: list[Op], seed: int) -> None:
    run(script, Limits(max_skip=1000, max_skipped=2000), seed)


@settings(max_examples=60, deadline=None)
@given(script=ops, seed=st.integers(0, 1000))
def test_eviction_and_refusals_match_the_oracle(script: list[Op], seed: int) -> None:
    """Small bounds: keys evicted first in, first out, and refused messages on both sides."""
    run(script, Limits(max_skip=3, max_skipped=4), seed, extra_ad=b"envelope digest")


def test_a_long_conversation_matches_the_oracle() -> None:
    rng = random.Random(2026)
    script: list[Op] = [
        (rng.choice(["send", "send", "deliver"]), rng.choice("IR"), rng.randrange(100))
        for _ in range(600)
    ]
    opened = run(script, Limits(), seed=7)
    assert opened > 150  # most of it was delivered and compared, not skipped


def test_the_documented_difference_a_too_long_previous_chain() -> None:
    """The oracle warns and steps on; the spec (and we) refuse the message."""
    limits = Limits(max_skip=2, max_skipped=10)
    with asyncio.Runner() as runner:
        talk = Conversation.start(runner, limits, 1)
        talk.send("I")
        assert talk.deliver("R", 0)
        for _ in range(3):
            talk.send("I")  # never delivered
        talk.send("R")
        assert talk.deliver("I", 0)
        talk.send("I")  # pn = 4, three keys to skip > 2
        assert not talk.deliver("R", -1)


def test_fifo_eviction_matches_the_oracle() -> None:
    """Two chains of skipped keys overflow ``max_skipped``: the same keys go on both sides."""
    limits = Limits(max_skip=4, max_skipped=5)
    with asyncio.Runner() as runner:
        talk = Conversation.start(runner, limits, 3)
        for _round in range(2):
            for _ in range(4):
                talk.send("I")
            assert talk.deliver("R", -1)  # the newest: three keys skipped
            talk.send("R")
            assert talk.deliver("I", 0)
        assert len(talk.sides["R"].mine.skipped) == 5  # six skipped, the oldest evicted
        while talk.sides["R"].inbox:  # the evicted one is refused by both, the rest open
            assert talk.deliver("R", 0)
        assert not talk.sides["R"].mine.skipped
