"""Issue 12, items 2, 3, 5 and 7 (replay): what a paired contact can try, with real peers.

Mallory is a contact of Bob's, paired over a real data channel; she crafts envelopes
under her own session with Bob (or replays Alice's) and sends them on her channel.
Every attack must be refused with a typed error, and nothing stored, ACKed or changed.
"Not ACKed" is checked after a control message Bob does acknowledge: the channel is
ordered and Bob ACKs in order, so an ACK for the attack would have come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from netutil import open_store, pair
from sample_sdp import SDP
from test_network import arun

from volli_nb.app.chat import dm_conversation_id
from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import BadPairingCode
from volli_nb.core import pairing_code as pairing
from volli_nb.core.crypto import envelope
from volli_nb.core.crypto.channel_keys import seal_for
from volli_nb.core.crypto.envelope import SIGN_DOMAIN, Sealed, bundle
from volli_nb.core.crypto.envelope_wire import bundle_digest, encode_bundle
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.message_id import new_message_id
from volli_nb.core.protocol import frames
from volli_nb.core.protocol.frames import make_bundle_frame
from volli_nb.lab.bench.core import channel_pair
from volli_nb.net.events import Delivered, NetworkEvent

pytestmark = pytest.mark.network


class Acks:
    """Every message id ``store`` got a signed ACK for."""

    def __init__(self, store: MessagesStore) -> None:
        self.store, self.ids = store, set[bytes]()

        def on_event(event: NetworkEvent) -> None:
            if isinstance(event, Delivered):
                self.ids.update(event.message_ids)

        store.network_store.on_event(on_event)

    async def settle(self, to: MessagesStore) -> None:
        """Send a control message and wait for its ACK: every earlier ACK is in."""
        sent = await self.store.send_message(to.peer_id, "control")
        await self.store.wait_delivered(sent.message_id)


def craft(
    sender: MessagesStore,
    to: MessagesStore,
    conversation_id: str,
    plaintext: bytes = b"\x01crafted",  # a text body (version 2)
    message_id: bytes | None = None,
    also: Sequence[Identity] = (),
) -> tuple[bytes, Sealed]:
    """An envelope ``sender`` seals under its live session with ``to`` (and, for ``also``,
    under sessions it makes up), whatever it claims inside: a modified client, so an id
    taken from someone else is sealed too (the honest ``seal`` refuses to)."""
    keys = sender.sessions.get(to.peer_id)
    assert keys is not None
    made_up = [channel_pair(sender.identity, other)[0] for other in also]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(envelope, "bound_to", lambda _mid, _sender: True)
        sealed = seal_for(
            [keys, *made_up],
            conversation_id=conversation_id,
            message_id=message_id or new_message_id(sender.peer_id),
            counter=1,
            timestamp_ms=int(time.time() * 1000),
            plaintext=plaintext,
        )
    return sealed.message_id, sealed


async def send(sender: MessagesStore, to: MessagesStore, sealed: Sealed) -> None:
    keys = sender.sessions.get(to.peer_id)
    assert keys is not None
    await sender.network_store.send_sealed(to.peer_id, keys.session_id, sealed)


def inject(sender: MessagesStore, to: MessagesStore, item: Sealed) -> None:
    """A bundle ``sender`` signs around someone else's envelope, on its own channel."""
    keys = sender.sessions.get(to.peer_id)
    assert keys is not None
    signature = sender.identity.sign(SIGN_DOMAIN, bundle_digest([item.digest]))
    frame = make_bundle_frame(keys.tag, encode_bundle([item.envelope], signature))
    sender.network_store.data_channels[to.peer_id].send(frame)


@contextlib.asynccontextmanager
async def alice_bob_mallory(
    tmp_path: Path,
) -> AsyncIterator[tuple[MessagesStore, MessagesStore, MessagesStore]]:
    """Bob paired with Alice and with Mallory; all three closed at the end."""
    alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
    mallory = open_store(tmp_path, "mallory")
    try:
        await pair(alice, bob)
        await pair(mallory, bob)
        yield alice, bob, mallory
    finally:
        await asyncio.gather(alice.close(), bob.close(), mallory.close())


def errors(store: MessagesStore) -> str:
    return " ".join(e.message for e in store.log.entries(category="error"))


def test_a_contact_cannot_squat_conversation_ids(tmp_path: Path) -> None:
    """Attack: Mallory creates dm-<bob>-<carol> (and look-alikes, and a group) with
    herself as a member, so Bob's later pairing with Carol fails and his messages
    "to Carol" are encrypted to Mallory."""

    async def main() -> None:
        bob, mallory = open_store(tmp_path, "bob"), open_store(tmp_path, "mallory")
        carol = Identity.generate()
        try:
            await pair(mallory, bob)
            acks = Acks(mallory)
            squat = dm_conversation_id(bob.peer_id, carol.peer_id)
            ours = dm_conversation_id(bob.peer_id, mallory.peer_id)
            look_alike = ours.replace("a", "\u0430", 1) if "a" in ours else ours[:-1] + "\u0430"
            attacks = [
                craft(mallory, bob, squat),
                craft(mallory, bob, look_alike),
                craft(mallory, bob, "team", also=[carol]),  # members beyond sender and receiver
                craft(mallory, bob, squat, also=[carol]),
            ]
            for _, sealed in attacks:
                await send(mallory, bob, sealed)
            await acks.settle(bob)
            assert not acks.ids & {mid for mid, _ in attacks}, "a squatting message was ACKed"
            assert "ConversationRefused" in errors(bob)
            assert [c.id for c in bob.conversations()] == [ours]
            assert [m.text for m in bob.history(mallory.peer_id)] == ["control"]
            # Carol pairs as if nothing happened, and "to Carol" is encrypted to Carol only.
            bob.add_contact(carol.public, name="carol")
            sent = await bob.send_message(carol.peer_id, "for carol only")
            assert sent.conversation_id == squat
            assert set(bob.delivery_status(sent.message_id)) == {carol.peer_id}
        finally:
            await asyncio.gather(bob.close(), mallory.close())

    arun(main)


def test_pinning_a_contact_and_its_conversation_is_one_transaction(tmp_path: Path) -> None:
    """A conversation squatted before this fix makes pairing fail: then nothing is pinned."""

    async def main() -> None:
        bob, carol, mallory = open_store(tmp_path, "bob"), Identity.generate(), Identity.generate()
        try:
            squat = dm_conversation_id(bob.peer_id, carol.peer_id)
            bob.database.ensure_conversation(squat, [bob.peer_id, mallory.peer_id])
            with pytest.raises(Exception, match="membership"):
                bob.add_contact(carol.public, name="carol")
            assert bob.contact(carol.peer_id) is None
        finally:
            await bob.close()

    arun(main)


def nested_json_bomb(depth: int = 200_000) -> bytes:
    """A body that inflates to deeply nested JSON (a few hundred bytes on the wire)."""
    text = b'{"type":"text","text":"hi","x":' + b"[" * depth + b"]" * depth + b"}"
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return b"\x00z" + packer.compress(text) + packer.flush()


def test_a_body_that_inflates_to_deep_json_is_refused_and_history_survives(
    tmp_path: Path,
) -> None:
    """Attack: a valid envelope whose body inflates to deeply nested JSON was stored and
    ACKed, and from then on history() and the chat panel raised for the conversation."""

    async def main() -> None:
        bob, mallory = open_store(tmp_path, "bob"), open_store(tmp_path, "mallory")
        try:
            await pair(mallory, bob)
            acks = Acks(mallory)
            ours = dm_conversation_id(bob.peer_id, mallory.peer_id)
            bad = [
                craft(mallory, bob, ours, nested_json_bomb()),
                craft(mallory, bob, ours, b'{"type":"text","text":1}'),
                craft(mallory, bob, ours, b'{"type":"html","text":"x"}'),
                craft(mallory, bob, ours, b"\x01\xff\xfe not UTF-8"),
                craft(mallory, bob, ours, b"\x03 an unknown kind"),
            ]
            for _, sealed in bad:
                await send(mallory, bob, sealed)
            await acks.settle(bob)
            assert not acks.ids & {mid for mid, _ in bad}, "a poisoned body was ACKed"
            assert "MalformedBody" in errors(bob)
            assert [m.text for m in bob.history(mallory.peer_id)] == ["control"]
            # A row an older version stored shows as unreadable, and the rest still shows.
            stale, later = bytes(range(16)), int(time.time() * 1000) + 60_000
            bob.database.store_received(stale, ours, mallory.peer_id, 9, later, nested_json_bomb())
            shown = bob.history(mallory.peer_id)
            assert [m.status for m in shown] == ["received", "unreadable"]
            assert shown[1].text.startswith("[unreadable message: MalformedBody")
        finally:
            await asyncio.gather(bob.close(), mallory.close())

    arun(main)


def test_a_replayed_envelope_is_checked_against_its_channel_before_any_ack(
    tmp_path: Path,
) -> None:
    """Attack: Mallory replays, on her own channel, Alice's envelope (or a fresh one of
    hers under Alice's message id): it was ACKed because the id was seen, before its
    sender and id were compared with the channel (a signed "Bob has X" for Mallory).
    Now the bundle's signature names its sender, every envelope must be that sender's,
    and an id minted by another sender is refused (UNBOUND_ID), never acknowledged."""

    async def main() -> None:
        async with alice_bob_mallory(tmp_path) as (alice, bob, mallory):
            conversation = dm_conversation_id(alice.peer_id, bob.peer_id)
            message_id, alices = craft(alice, bob, conversation)
            alice_acks, acks = Acks(alice), Acks(mallory)
            await send(alice, bob, alices)
            await alice_acks.settle(bob)
            assert message_id in alice_acks.ids  # Bob has it, from Alice
            ours = dm_conversation_id(bob.peer_id, mallory.peer_id)
            _, same_id = craft(mallory, bob, ours, message_id=message_id)
            inject(mallory, bob, alices)
            await acks.settle(bob)
            assert message_id not in acks.ids, "Bob acknowledged Alice's envelope to Mallory"
            assert "UnknownPeer" in errors(bob)
            await send(mallory, bob, same_id)
            await acks.settle(bob)
            assert message_id not in acks.ids, "Bob acknowledged Alice's message id to Mallory"
            assert "UnboundMessageId" in errors(bob)
            assert [m.text for m in bob.history(mallory.peer_id)] == ["control", "control"]
            # Alice's own retransmission is still acknowledged again (her first ACK may be lost).
            alice_acks.ids.clear()
            await send(alice, bob, alices)
            await alice_acks.settle(bob)
            assert message_id in alice_acks.ids

    arun(main)


def test_a_co_recipient_cannot_take_a_message_id_first(tmp_path: Path) -> None:
    """Attack (issue 26, item 3): Mallory has seen the id of a message Alice is sending
    Bob (she is a co-recipient) and reaches Bob first with her own message under it.
    Before ids named their sender, Bob stored Mallory's and then refused Alice's as a
    duplicate: no ACK, and Alice saw only "stuck".  Now Mallory's is refused as unbound
    and Alice's is stored and acknowledged."""

    async def main() -> None:
        async with alice_bob_mallory(tmp_path) as (alice, bob, mallory):
            message_id, alices = craft(alice, bob, dm_conversation_id(alice.peer_id, bob.peer_id))
            ours = dm_conversation_id(bob.peer_id, mallory.peer_id)
            _, first = craft(mallory, bob, ours, b'{"type":"text","text":"mine"}', message_id)
            mallory_acks, alice_acks = Acks(mallory), Acks(alice)
            await send(mallory, bob, first)
            await mallory_acks.settle(bob)
            assert message_id not in mallory_acks.ids
            assert "UnboundMessageId" in errors(bob)
            await send(alice, bob, alices)
            await alice_acks.settle(bob)
            assert message_id in alice_acks.ids, "Alice's message was refused"
            assert [m.text for m in bob.history(alice.peer_id)] == ["crafted", "control"]
            assert [m.text for m in bob.history(mallory.peer_id)] == ["control"]

    arun(main)


def test_complete_pairing_accepts_only_its_own_open_offers(tmp_path: Path) -> None:
    """Attack: a crafted answer code whose ``ref`` is a live contact's peer id pinned a
    new identity and relabelled the existing link; a used-up token was accepted again."""

    async def main() -> None:
        alice, bob = open_store(tmp_path, "alice"), open_store(tmp_path, "bob")
        mallory = Identity.generate()
        try:
            await pair(alice, bob)
            link = alice.network_store._links[bob.peer_id]
            some_sdp = alice.network_store.peers[bob.peer_id].localDescription.sdp
            for ref in (bob.peer_id, "pair-000000000000", None):
                forged = pairing.encode_code("answer", some_sdp, mallory.public, "bob", ref)
                with pytest.raises(BadPairingCode):
                    await alice.complete_pairing(forged)
            assert alice.contact(mallory.peer_id) is None
            assert alice.network_store._links[bob.peer_id] is link and link.peer_id == bob.peer_id
            assert alice.network_store.is_connected(bob.peer_id)
            # A real offer, answered once: the used token is refused to anyone else (the same
            # answer pasted again changes nothing: tests/test_pairing_twice.py).
            carol = open_store(tmp_path, "carol")
            try:
                answer = await carol.accept_pairing_code(await alice.create_pairing_code())
                assert await alice.complete_pairing(answer) == carol.peer_id
                used = pairing.decode_code(answer).ref
                forged = pairing.encode_code("answer", some_sdp, mallory.public, "carol", used)
                with pytest.raises(BadPairingCode):
                    await alice.complete_pairing(forged)
                assert alice.contact(mallory.peer_id) is None
                await alice.wait_connected(carol.peer_id)
            finally:
                await carol.close()
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_a_bad_answer_leaves_the_offer_open_and_nothing_pinned(tmp_path: Path) -> None:
    """All or nothing: an answer whose SDP aiortc refuses pins no one, renames nothing."""

    async def main() -> None:
        alice, stranger = open_store(tmp_path, "alice"), Identity.generate()
        try:
            offer = pairing.decode_code(await alice.create_pairing_code())
            # A well-formed code whose SDP aiortc refuses: an offer's (setup:actpass) as the answer.
            with pytest.raises(BadPairingCode, match="does not apply to our offer"):
                await alice.complete_pairing(
                    pairing.encode_code("answer", SDP, stranger.public, "x", offer.ref)
                )
            assert alice.contact(stranger.peer_id) is None
            assert offer.ref in alice.network_store.peers  # still open: a good answer works
        finally:
            await alice.close()

    arun(main)


def test_a_contact_reusing_one_of_our_message_ids_is_refused_alone(tmp_path: Path) -> None:
    """Attack: Mallory sends, beside a good message, an envelope under the id of a message
    Bob sent her.  The id is in Bob's messages, not in his seen-set; were only the
    seen-set asked, the receive path's batched insert would fail the whole bundle as a
    storage error and report Bob's storage failing.  Only that envelope is refused (the
    id names Bob, not Mallory)."""

    async def main() -> None:
        bob, mallory = open_store(tmp_path, "bob"), open_store(tmp_path, "mallory")
        try:
            await pair(mallory, bob)
            ours = dm_conversation_id(bob.peer_id, mallory.peer_id)
            sent = await bob.send_message(mallory.peer_id, "bob's own")
            await bob.wait_delivered(sent.message_id)
            acks = Acks(mallory)
            reused, data = craft(mallory, bob, ours, message_id=sent.message_id)
            good, fine = craft(mallory, bob, ours)
            await send(mallory, bob, data)
            await send(mallory, bob, fine)
            await acks.settle(bob)
            assert reused not in acks.ids and good in acks.ids
            assert "UnboundMessageId" in errors(bob)
            assert bob.storage.state == "ok", bob.storage.reason
            texts = [(m.direction, m.text) for m in bob.history(mallory.peer_id)]
            assert texts == [("out", "bob's own"), ("in", "crafted"), ("in", "control")]
        finally:
            await asyncio.gather(bob.close(), mallory.close())

    arun(main)


def test_an_id_twice_in_one_frame_is_acknowledged_only_if_stored(tmp_path: Path) -> None:
    """Attack: a bundle carries one id twice, the first copy with a body Bob refuses; the
    second, a duplicate of an id that was never stored, must not earn an ACK either."""

    async def main() -> None:
        bob, mallory = open_store(tmp_path, "bob"), open_store(tmp_path, "mallory")
        try:
            await pair(mallory, bob)
            acks = Acks(mallory)
            acked: set[bytes] = set()  # every id in an ACK frame, tracked in flight or not

            def tap(direction: str, _peer: str, data: bytes) -> None:
                if direction == "in" and data[1:2] == bytes((frames.ACK,)):
                    ack = frames.decode_frame(data)
                    assert isinstance(ack, frames.AckFrame)
                    acked.update(ack.message_ids)

            mallory.network_store.trace.taps.append(tap)
            ours = dm_conversation_id(bob.peer_id, mallory.peer_id)
            mid, bad = craft(mallory, bob, ours, b'{"type":"html","text":"x"}')
            _, good = craft(mallory, bob, ours, message_id=mid)
            keys = mallory.sessions.get(bob.peer_id)
            assert keys is not None
            frame = make_bundle_frame(keys.tag, bundle(mallory.identity, [bad, good]))
            mallory.network_store.data_channels[bob.peer_id].send(frame)
            await acks.settle(bob)
            assert acked and mid not in acked, "an id never stored was acknowledged"
            assert [m.text for m in bob.history(mallory.peer_id)] == ["control"]
        finally:
            await asyncio.gather(bob.close(), mallory.close())

    arun(main)
