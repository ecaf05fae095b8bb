"""The thief of docs/security.md, as code: what a recording plus stolen keys, files or a
live ratchet state open, and what they do not.

Two thefts, each against frames recorded at the data channel (:mod:`.recording`: inside
DTLS, all the peers themselves exchange):

- **keys and files, later**: copies of both profile files with their passphrases, so both
  identities with their device keys and the stored history.  :func:`best_guesses` builds
  every ratchet state those allow (the transcript, DH1 and DH2 from the recorded hellos;
  DH3 and the first ratchet keys need ephemeral secrets that were never stored, so all
  of them are guesses), and :func:`try_frames` tries each recorded frame with each.
- **a live state, now**: a byte copy of one side's ratchet state (:func:`copy_state`, what a
  thief of the process's memory holds).  :func:`read_along` plays that side's receiving
  chain for the frames it is sent, and the mirror of its sending chain for the frames it
  sends, until the DH steps leave the copy behind.
"""

from __future__ import annotations

import hashlib
import itertools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import PeerError
from volli_nb.core.crypto import envelope, handshake, ratchet
from volli_nb.core.crypto.envelope_wire import ParsedBundle
from volli_nb.core.crypto.identity import Identity, PublicIdentity
from volli_nb.core.crypto.kdf import hkdf
from volli_nb.core.crypto.primitives import x25519_public
from volli_nb.core.crypto.ratchet_state import decode_state, encode_state
from volli_nb.core.store.database import Database
from volli_nb.lab.recording import Recording


@dataclass
class Loot:
    """One stolen profile: its copy opened with the passphrase (keys and history)."""

    identity: Identity
    database: Database
    path: Path

    def close(self) -> None:
        self.database.close()


def steal(profile: str | Path, passphrase: str, into: str | Path) -> Loot:
    """Copy a profile's files (the WAL too) into ``into`` and open the copy."""
    source = Path(profile)
    copy = Path(into) / f"stolen-{source.name}"
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copy(f"{source}{suffix}", f"{copy}{suffix}")
    database = Database.open(copy, passphrase)
    secret = database.load_identity_secret()
    if secret is None:
        database.close()
        raise ValueError(f"{source} holds no identity")
    return Loot(Identity.from_secret_bytes(secret), database, copy)


def best_guesses(rec: Recording, a: Identity, b: Identity) -> list[ratchet.RatchetState]:
    """Every first ratchet state the recorded hellos and both stolen key sets allow: the
    real transcript, DH1 and DH2, and for DH3 and the first ratchet keys whatever the
    thief has (zeros, the static DH, DH1, DH2; the device secrets).  All wrong: the real
    ones came from ephemeral secrets that were never written anywhere."""
    (_, first), (_, second) = rec.hellos()[:2]
    raw = {handshake.decode_hello(h).identity_key: h for h in (first, second)}
    ini, res = sorted((a, b), key=lambda p: (p.public.identity_key, p.public.device_key))
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
            own = (secret, x25519_public(secret))
            guesses.append(ratchet.init_initiator(root, th, own, hr.ratchet_key))
            guesses.append(ratchet.init_responder(root, th, own, hi.ratchet_key))
    return guesses


@dataclass(frozen=True)
class Tried:
    """One recorded frame and what the thief got out of it."""

    direction: str  # as recorded: "out" or "in"
    envelopes: int
    opened: int  # messages opened with any guess (0: the frame stayed closed)


def _open(
    bundle: ParsedBundle, me: Identity, peer: Identity, state: ratchet.RatchetState, now_ms: int
) -> envelope.OpenedBundle | None:
    try:
        return envelope.open_bundle(
            bundle, me=me.peer_id, peer=peer.public, state=state, now_ms=now_ms
        )
    except PeerError:
        return None


def try_frames(rec: Recording, a: Identity, b: Identity, *, now_ms: int) -> list[Tried]:
    """Each recorded BUNDLE frame (in the order they crossed), tried with every guess,
    as either side opening it."""
    guesses = best_guesses(rec, a, b)
    out = []
    for direction, bundle in rec.crossed():
        opened = 0
        for state, (me, peer) in itertools.product(guesses, ((a, b), (b, a))):
            result = _open(bundle, me, peer, state, now_ms)
            opened = max(opened, len(result.messages) if result else 0)
        out.append(Tried(direction, len(bundle.envelopes), opened))
    return out


def copy_state(store: MessagesStore, peer_id: str) -> ratchet.RatchetState:
    """A byte copy of ``store``'s live ratchet state with ``peer_id``: what a thief of the
    process's memory takes home (encoded and decoded, so nothing is shared)."""
    keys = store.sessions.get(peer_id)
    if keys is None:
        raise ValueError(f"{store.name} has no live session with {peer_id}")
    return decode_state(encode_state(keys.state))


def _mirror(state: ratchet.RatchetState) -> ratchet.RatchetState:
    """The victim's sending chain as a receiving one: the peer's view of it, rebuilt from
    the copied chain key (it opens the victim's messages until the victim's next DH step)."""
    return replace(
        state,
        dhr=state.dhs_public,
        ckr=state.cks,
        nr=state.ns,
        skipped=MappingProxyType({}),
        previous_dhr=(),
    )


def read_along(
    copy: ratchet.RatchetState,
    frames: Sequence[tuple[str, ParsedBundle]],
    *,
    victim: Identity | PublicIdentity,
    other: Identity | PublicIdentity,
    now_ms: int,
) -> list[bool]:
    """For each frame (``(sender peer id, bundle)``, in the order they crossed): could
    the thief holding ``copy`` (the victim's state) read it?  Frames to the victim are
    opened with the copy, advancing it as the victim's receiving side would; frames from
    the victim with the mirror of its copied sending chain."""
    victim_public = victim.public if isinstance(victim, Identity) else victim
    other_public = other.public if isinstance(other, Identity) else other
    receiving, sending = copy, _mirror(copy)
    readable = []
    for sender, bundle in frames:
        outgoing = sender == victim_public.peer_id
        me, peer = (other_public, victim_public) if outgoing else (victim_public, other_public)
        try:
            opened = envelope.open_bundle(
                bundle, me=me.peer_id, peer=peer, state=sending if outgoing else receiving,
                now_ms=now_ms,
            )  # fmt: skip
        except PeerError:
            readable.append(False)
            continue
        ok = bool(opened.messages) and not opened.refused
        if ok and outgoing:
            sending = opened.state
        elif ok:
            receiving = opened.state
        readable.append(ok)
    return readable


__all__ = [
    "Loot",
    "Tried",
    "best_guesses",
    "copy_state",
    "read_along",
    "steal",
    "try_frames",
]
