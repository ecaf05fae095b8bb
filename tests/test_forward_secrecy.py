"""Forward secrecy and post-compromise recovery, end to end, with peers in two OS processes.

An observer records every frame at the data channel (inside DTLS: what the peers
themselves exchange).  Afterwards a thief gets both identity and device keys, copies of
both profile files and both passphrases.  The stored history is readable; the recorded
frames stay closed, because no session key was ever written anywhere: the handshake's
ephemeral secrets and every chain key lived in the two processes' memory only.  The same
conversation sealed as the retired v1 envelopes (to the static device keys) opens under
the very same theft.

Post-compromise: a thief who copies one side's live ratchet state reads along, and stops
after one round trip.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_network import arun
from test_two_process import pair_processes

from volli_nb.core.body import decode_body, encode_body
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.crypto.ratchet_state import decode_state
from volli_nb.core.store.database import Database
from volli_nb.lab.peer_handle import PeerProcess
from volli_nb.lab.recording import Recording
from volli_nb.lab.static_key_envelope import open_envelope, seal
from volli_nb.lab.thief import read_along, steal, try_frames

pytestmark = pytest.mark.network
PASSPHRASE = "demo passphrase"  # what a peer process opens its profile with
NOW_MS = 1_800_000_000_000


async def conversation(a: PeerProcess, b: PeerProcess, rounds: int) -> list[str]:
    texts = []
    for i in range(rounds):
        for sender, receiver in ((a, b), (b, a)):
            text = f"{sender.name} says {i}"
            mid = (await sender.request("send", to=receiver.peer_id, text=text))["message_id"]
            await sender.wait_event("delivered", message_id=mid)
            texts.append(text)
    return texts


def stolen(profile: Path, tmp: Path) -> tuple[Identity, Database]:
    """A copy of the profile file, opened with its passphrase: keys and history."""
    loot = steal(profile, PASSPHRASE, tmp)
    return loot.identity, loot.database


def test_recorded_frames_stay_closed_after_the_keys_and_files_are_stolen(tmp_path: Path) -> None:
    async def main() -> None:
        a_db, b_db = tmp_path / "alice.sqlite", tmp_path / "bob.sqlite"
        record = tmp_path / "frames.jsonl"
        a = await PeerProcess(str(a_db), "alice", extra=["--record", str(record)]).start()
        b = await PeerProcess(str(b_db), "bob").start()
        try:
            await pair_processes(a, b)
            texts = await conversation(a, b, rounds=6)
            snapshot = await a.request("snapshot", peer_id=b.peer_id)
            live = decode_state(bytes.fromhex(snapshot["state"]))
        finally:
            await asyncio.gather(a.quit(), b.quit())
        rec = Recording.read(record)
        alice, alice_db = stolen(a_db, tmp_path)
        bob, bob_db = stolen(b_db, tmp_path)
        # The stored history is readable with the passphrase: that is what it is for.
        conversation_id = alice_db.list_conversations()[0].id
        stored = [decode_body(m.body) for m in bob_db.history(conversation_id)]
        assert stored == texts
        # The recorded frames: every envelope, tried with everything the thief can build.
        bundles = rec.bundles()
        assert sum(len(b.envelopes) for _, b in bundles) >= len(texts)
        tried = try_frames(rec, alice, bob, now_ms=NOW_MS)
        assert len(tried) == len(bundles)
        assert [t.opened for t in tried] == [0] * len(tried), "a recorded frame opened"
        # Nothing of a live session is anywhere in either profile's files.
        secrets = [s for s in (live.root_key, live.dhs_secret, live.cks, live.ckr) if s]
        for path in [*tmp_path.glob("alice.sqlite*"), *tmp_path.glob("bob.sqlite*")]:
            data = path.read_bytes()
            assert not any(secret in data for secret in secrets), path.name
        # The retired v1 envelope, sealed to the static device keys: the same theft opens
        # every one of the same conversation's messages.
        for i, text in enumerate(texts):
            v1 = seal(alice, [bob.public], conversation_id=conversation_id,
                      plaintext=encode_body(text), counter=i + 1, timestamp_ms=NOW_MS)  # fmt: skip
            opened_v1 = open_envelope(v1, bob, contacts={alice.peer_id: alice.public}.get,
                                      now_ms=NOW_MS)  # fmt: skip
            assert decode_body(opened_v1.plaintext) == text
        alice_db.close()
        bob_db.close()

    arun(main, timeout=120)


def test_a_copied_ratchet_state_reads_along_and_stops_after_one_round_trip(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        a_db, record = tmp_path / "alice.sqlite", tmp_path / "frames.jsonl"
        a = await PeerProcess(str(a_db), "alice", extra=["--record", str(record)]).start()
        b = await PeerProcess(str(tmp_path / "bob.sqlite"), "bob").start()
        try:
            await pair_processes(a, b)
            await conversation(a, b, rounds=2)
            snapshot = await b.request("snapshot", peer_id=a.peer_id)  # the thief's copy
            before = len(Recording.read(record).crossed())
            await conversation(a, b, rounds=2)  # A, B, A, B
        finally:
            await asyncio.gather(a.quit(), b.quit())
        alice, alice_db = stolen(a_db, tmp_path)
        bob_contact = alice_db.get_contact(b.peer_id)
        alice_db.close()
        assert bob_contact is not None  # public keys: in alice's contacts
        later = Recording.read(record).crossed()[before:]  # both ways, after the copy
        assert [d for d, _ in later] == ["out", "in", "out", "in"]
        senders = {"out": alice.peer_id, "in": b.peer_id}
        readable = read_along(
            decode_state(bytes.fromhex(snapshot["state"])),
            [(senders[d], bundle) for d, bundle in later],
            victim=bob_contact.public,
            other=alice,
            now_ms=NOW_MS,
        )
        # Bob's copy had just sent: it reads Alice's next message (sealed to Bob's ratchet
        # key it holds), then Bob's reply comes under a new key of his own, and Alice's
        # after it under a DH with that key: healed one round trip after the theft.
        assert readable == [True, False, False, False]

    arun(main, timeout=120)
