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
import hashlib
import itertools
import shutil
from pathlib import Path

import pytest
from recorded import Recording
from test_network import arun
from test_two_process import pair_processes

from volli_nb.base.errors import PeerError
from volli_nb.core.body import decode_body, encode_body
from volli_nb.core.crypto import envelope, handshake, ratchet
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.crypto.kdf import hkdf
from volli_nb.core.crypto.ratchet_state import decode_state
from volli_nb.core.store.database import Database
from volli_nb.lab.peer_handle import PeerProcess
from volli_nb.lab.static_key_envelope import open_envelope, seal

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
    copy = tmp / f"stolen-{profile.name}"
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{profile}{suffix}").exists():
            shutil.copy(f"{profile}{suffix}", f"{copy}{suffix}")
    db = Database.open(copy, PASSPHRASE)
    secret = db.load_identity_secret()
    assert secret is not None
    return Identity.from_secret_bytes(secret), db


def best_guesses(rec: Recording, alice: Identity, bob: Identity) -> list[ratchet.RatchetState]:
    """What the thief can build from the recorded hellos and the stolen long-term keys:
    the transcript, DH1 and DH2.  DH3 needs an ephemeral secret and the first ratchet
    keys their own secrets; none was ever stored, so these are guesses, and all wrong."""
    (_, first), (_, second) = rec.hellos()[:2]
    raw = {handshake.decode_hello(h).identity_key: h for h in (first, second)}
    people = {p.public.identity_key: p for p in (alice, bob)}
    ini, res = sorted(people.values(), key=lambda p: (p.public.identity_key, p.public.device_key))
    hi = handshake.decode_hello(raw[ini.public.identity_key])
    hr = handshake.decode_hello(raw[res.public.identity_key])
    transcript = raw[ini.public.identity_key] + raw[res.public.identity_key]
    th = hashlib.sha256(handshake.TRANSCRIPT_PREFIX + transcript).digest()
    dh1, dh2 = res.shared_secret(hi.ephemeral_key), ini.shared_secret(hr.ephemeral_key)
    static = ini.shared_secret(res.public.device_key)
    device_secrets = [p.to_secret_bytes()[32:64] for p in (ini, res)]
    guesses = []
    for dh3 in (bytes(32), static, dh1, dh2):
        ikm = b"\xff" * 32 + dh1 + dh2 + dh3
        root = hkdf(ikm, salt=bytes(32), info=handshake.ROOT_INFO + th, length=32)
        for secret in (bytes(32), *device_secrets):
            own = (secret, ratchet.generate_dh(lambda _n, s=secret: s)[1])
            guesses.append(ratchet.init_initiator(root, th, own, hr.ratchet_key))
            guesses.append(ratchet.init_responder(root, th, own, hi.ratchet_key))
    return guesses


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
        for state, (_, bundle), me, peer in itertools.product(
            best_guesses(rec, alice, bob), bundles, (alice, bob), (alice, bob)
        ):
            if me is peer:
                continue
            try:
                opened = envelope.open_bundle(
                    bundle, me=me.peer_id, peer=peer.public, state=state, now_ms=NOW_MS
                )
            except PeerError:
                continue
            assert opened.messages == (), "a recorded frame opened with stolen keys"
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
            before = len(Recording.read(record).bundles("out"))
            await conversation(a, b, rounds=2)  # A, B, A, B
        finally:
            await asyncio.gather(a.quit(), b.quit())
        alice, alice_db = stolen(a_db, tmp_path)
        alice_db.close()
        later = Recording.read(record).bundles("out")[before:]  # Alice's, after the copy
        assert len(later) == 2
        state = decode_state(bytes.fromhex(snapshot["state"]))
        readable = []
        for _, bundle in later:  # the thief plays Bob's receiving side with its copy
            try:
                opened = envelope.open_bundle(
                    bundle, me=b.peer_id, peer=alice.public, state=state, now_ms=NOW_MS
                )
            except PeerError:
                readable.append(False)
                continue
            state = opened.state
            readable.append(bool(opened.messages) and not opened.refused)
        # It reads along until Bob's next DH step reaches Alice: one round trip.
        assert readable == [True, False]

    arun(main, timeout=120)
