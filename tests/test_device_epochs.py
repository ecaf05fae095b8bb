"""Issue 12, item 7 (device records): the signed epoch on the wire, one encoding each.

Epoch 0 is every identity made before epochs: its JSON and its signature are unchanged
(so old pairing codes, presence entries and envelopes still verify).  From epoch 1 the
signature covers the epoch, and the JSON carries it.
"""

from __future__ import annotations

import time

import pytest
from sample_sdp import SDP

from volli_nb.base.errors import BadSignature, KeyMismatch, MalformedEnvelope
from volli_nb.core import pairing_code as pairing
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.lab import static_key_envelope as envelopes

SEED = bytes(range(32))


def test_epoch_zero_records_are_unchanged() -> None:
    bob = Identity(SEED, b"\x01" * 32)
    assert bob.public.device_epoch == 0
    assert set(bob.public.to_json()) == {
        "peer_id",
        "identity_key",
        "device_key",
        "device_signature",
    }
    assert len(bob.to_secret_bytes()) == 64
    assert Identity.from_secret_bytes(bob.to_secret_bytes()).public == bob.public


def test_a_rotated_record_round_trips_and_its_epoch_is_signed() -> None:
    rotated = Identity(SEED, b"\x01" * 32).with_new_device().with_new_device()
    public = rotated.public
    assert public.device_epoch == 2 and public.to_json()["device_epoch"] == 2
    assert PublicIdentity.from_json(public.to_json()) == public
    assert Identity.from_secret_bytes(rotated.to_secret_bytes()).public == public
    with pytest.raises(BadSignature):  # a later epoch claimed for the same signature
        PublicIdentity.from_json({**public.to_json(), "device_epoch": 3})
    with pytest.raises(BadSignature):  # dropping the epoch does not give an epoch-0 record
        PublicIdentity.from_json({k: v for k, v in public.to_json().items() if k != "device_epoch"})


@pytest.mark.parametrize("epoch", [0, -1, True, 1.0, 2**53, "1"])
def test_device_epoch_has_one_encoding(epoch: object) -> None:
    record = Identity(SEED, b"\x01" * 32).with_new_device().public.to_json()
    with pytest.raises(MalformedEnvelope):
        PublicIdentity.from_json({**record, "device_epoch": epoch})


def test_rotated_identities_pair_and_seal() -> None:
    alice, bob = Identity.generate().with_new_device(), Identity.generate()
    code = pairing.encode_code("offer", SDP, alice.public, "alice", "pair-1")
    assert pairing.decode_code(code).identity == alice.public
    data = envelopes.seal(
        alice,
        [bob.public],
        conversation_id="dm-x",
        plaintext=b"hi",
        counter=1,
        timestamp_ms=int(time.time() * 1000),
    )
    pinned = {alice.peer_id: alice.public}
    opened = envelopes.open_envelope(data, bob, contacts=pinned.get, now_ms=int(time.time() * 1000))
    assert opened.sender == alice.public and opened.plaintext == b"hi"
    older = {alice.peer_id: Identity.from_secret_bytes(alice.to_secret_bytes()[:64]).public}
    with pytest.raises(KeyMismatch):  # pinned at another epoch: not the pinned record
        envelopes.open_envelope(data, bob, contacts=older.get, now_ms=int(time.time() * 1000))
