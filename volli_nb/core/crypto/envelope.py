"""The envelope (v2): the seed's ``EncryptedMessage`` on per-device Double Ratchet sessions.

Shape (layout and digests in :mod:`volli_nb.core.crypto.envelope_wire`):
``conversation_id``, ``sender``, ``recipients{device_id: {encryptedKey, nonce}}``,
``ciphertext``, plus the message id, counter, timestamp and key commitment that bind
it.  Envelopes travel in a signed *bundle* (one to 512 of them, one signature).

Construction, per sealing (the outbox re-seals on every attempt, same message id):

- a random 32-byte content key K; ``commitment = BLAKE2b-256(message_id, key=K,
  person="volli-v2-commit")`` sits in the common header, so one ciphertext cannot open
  to two bodies for two recipients (XChaCha20-Poly1305 alone does not commit to its key);
- ``ciphertext = XChaCha20-Poly1305(K, nonce=0^24, pad(plaintext), ad=common header)``:
  a fixed nonce is safe because K is used for exactly one message;
- per recipient device, K is encrypted under the next message key of that pair's
  ratchet (:func:`volli_nb.core.crypto.ratchet.encrypt`) with ``bind`` (the common
  header and the ciphertext's hash) as associated data: ``encryptedKey`` is those 72
  bytes (the ratchet's synthetic nonce, K, a tag), and the seed's ``nonce`` is the
  ratchet header (dh, pn, n) that selects the key.  Each recipient thereby knows from
  its pairwise key alone that the sender made exactly this header and ciphertext;
- a bundle carries one Ed25519 signature of the sender's identity key (domain
  ``volli-bundle-v2``) over the digests of all its envelopes: per-message cost is one
  AEAD for the body, one per recipient for the key, and 1/n of a signature.

Receiving (:func:`open_bundle`), cheapest and least trusting first.  For the whole
bundle (raised): size cap (``OversizedInput``) -> strict parse (``MalformedEnvelope``)
-> every envelope's sender is this session's peer (``UnknownPeer``) -> signature with
the pinned identity key (``BadSignature``).  Then per envelope (returned in
``refused``, the rest still open): recipient (``NotARecipient``) -> the id carries the
sender's tag (``UnboundMessageId``) -> already accepted (``ReplayError``: the ``seen``
callback, asked once per envelope, or an earlier envelope of this bundle; before the
clock, so a resend of something stored is always answered) -> clock (``StaleMessage``:
more than ``max_skew_ms`` ahead, or older than ``max_age_ms`` if set) -> unwrap with the
ratchet (``DecryptionFailed``, ``TooManySkipped``, also once the frame's
:class:`~.ratchet.WorkBudget` is spent, ``MessageKeyUnavailable``, ``LowOrderKey``) ->
commitment (``KeyCommitmentMismatch``) -> body (``DecryptionFailed``) -> padding
(``MalformedEnvelope``).

Integration (:mod:`volli_nb.core.crypto.channel_keys`): one owner per channel holds the
ratchet state; :func:`seal` runs when a message leaves the outbox, for the recipients
attempted now, and :func:`bundle` once per frame.  The receiver calls
:func:`open_bundle` with the state, stores ``messages`` in one transaction, adopts
``OpenedBundle.state`` after the commit, then acknowledges ``messages`` and the
``ReplayError`` ids; other refused ids stay unacknowledged, so the sender re-seals them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from volli_nb.base.errors import (
    KeyCommitmentMismatch,
    MalformedEnvelope,
    NotARecipient,
    PeerError,
    ReplayError,
    StaleMessage,
    UnboundMessageId,
    UnknownPeer,
    UsageError,
)
from volli_nb.core.crypto import ratchet
from volli_nb.core.crypto.envelope_wire import (
    MAX_CONVERSATION_ID,
    MAX_ENVELOPE_BYTES,
    MAX_RECIPIENTS,
    MIN_BUCKET,
    TAG_BYTES,
    ParsedBundle,
    ParsedEnvelope,
    bind_digest,
    bundle_digest,
    encode_bundle,
    encode_head,
    envelope_digest,
    parse_bundle,
    parse_envelope,
)
from volli_nb.core.crypto.identity import Identity, PublicIdentity, device_id_bytes, verify
from volli_nb.core.crypto.padding import bucket_size, pad, unpad
from volli_nb.core.crypto.primitives import Random, aead_decrypt, aead_encrypt, random_bytes
from volli_nb.core.crypto.ratchet_limits import SkipAllowance
from volli_nb.core.crypto.wire import MAX_SAFE_INT, uvarint
from volli_nb.core.message_id import MESSAGE_ID_BYTES, bound_to

COMMIT_PERSON = b"volli-v2-commit"
SIGN_DOMAIN = b"volli-bundle-v2"
BODY_NONCE = bytes(24)
DEFAULT_MAX_SKEW_MS = 2 * 60 * 1000  # how far ahead of our clock a sender's time may be
DEFAULT_MAX_AGE_MS = 10 * 60 * 1000  # how old a (freshly sealed) envelope may be


@dataclass(frozen=True, slots=True)
class Sealed:
    """One sealed envelope and the recipients' new ratchet states (adopt them at once)."""

    envelope: bytes
    digest: bytes
    message_id: bytes
    states: Mapping[str, ratchet.RatchetState]
    sender: str


@dataclass(frozen=True, slots=True)
class OpenedMessage:
    """A verified, decrypted message from the session's peer."""

    message_id: bytes
    conversation_id: str
    sender: str
    counter: int
    timestamp_ms: int
    recipients: tuple[str, ...]  # sorted device ids
    plaintext: bytes


@dataclass(frozen=True, slots=True)
class Refused:
    message_id: bytes
    error: PeerError


@dataclass(frozen=True, slots=True)
class OpenedBundle:
    """One answer per frame: the new state, what opened, what was refused and why."""

    state: ratchet.RatchetState
    messages: tuple[OpenedMessage, ...]
    refused: tuple[Refused, ...]


def commitment(message_id: bytes, key: bytes) -> bytes:
    return hashlib.blake2b(message_id, digest_size=32, key=key, person=COMMIT_PERSON).digest()


def _check_seal(
    sessions: Mapping[str, ratchet.RatchetState],
    conversation_id: str,
    message_id: bytes,
    counter: int,
    timestamp_ms: int,
    plaintext: bytes,
) -> None:
    if not 1 <= len(sessions) <= MAX_RECIPIENTS:
        raise UsageError(f"an envelope needs 1 to {MAX_RECIPIENTS} recipient sessions")
    if not isinstance(conversation_id, str) or not 1 <= len(conversation_id) <= (
        MAX_CONVERSATION_ID
    ):
        raise UsageError(f"conversation_id must be 1 to {MAX_CONVERSATION_ID} characters")
    try:
        conversation_id.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("conversation_id must be valid Unicode (no lone surrogates)") from None
    if not isinstance(message_id, bytes) or len(message_id) != MESSAGE_ID_BYTES:
        raise UsageError(f"a message id is {MESSAGE_ID_BYTES} bytes")
    for name, value, low in (("counter", counter, 1), ("timestamp_ms", timestamp_ms, 0)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not low <= value <= (MAX_SAFE_INT)
        ):
            raise UsageError(f"{name} must be an int from {low} to 2**53-1")
    if not isinstance(plaintext, bytes | bytearray | memoryview):
        raise UsageError("plaintext must be bytes; encode text first")
    estimate = bucket_size(len(plaintext), MIN_BUCKET) + TAG_BYTES + 200 * len(sessions) + 2048
    if estimate > MAX_ENVELOPE_BYTES:
        raise UsageError(
            f"a {len(plaintext)}-byte message would exceed the {MAX_ENVELOPE_BYTES}-byte "
            "envelope cap that receivers enforce; send less"
        )


def seal(
    sessions: Mapping[str, ratchet.RatchetState],
    *,
    sender: str,
    conversation_id: str,
    message_id: bytes,
    counter: int,
    timestamp_ms: int,
    plaintext: bytes,
    random: Random = random_bytes,
) -> Sealed:
    """Encrypt ``plaintext`` once and wrap its key for every device in ``sessions``.

    ``sessions`` maps each recipient device id to this device's ratchet state with it;
    the returned ``states`` replace them (the old ones stay valid until committed).
    """
    _check_seal(sessions, conversation_id, message_id, counter, timestamp_ms, plaintext)
    if not bound_to(message_id, sender):
        raise UsageError(f"message id {message_id.hex()} is not one {sender} minted")
    order = sorted((device_id_bytes(rid), rid) for rid in sessions)
    key = random(32)
    head = encode_head(
        conversation_id,
        message_id,
        device_id_bytes(sender),
        counter,
        timestamp_ms,
        commitment(message_id, key),
        len(order),
    )
    common = head + b"".join(raw for raw, _ in order)
    ciphertext = aead_encrypt(key, BODY_NONCE, pad(plaintext, MIN_BUCKET), common)
    bind = bind_digest(common, ciphertext)
    states: dict[str, ratchet.RatchetState] = {}
    sections: list[bytes] = []
    for raw, rid in order:
        states[rid], header, wrapped = ratchet.encrypt(sessions[rid], key, bind)
        sections.append(raw + header.encode() + wrapped)
    body = b"".join(sections)
    envelope = head + body + uvarint(len(ciphertext)) + ciphertext
    digest = envelope_digest(bind, body)
    return Sealed(envelope, digest, message_id, MappingProxyType(states), sender)


def bundle(signer: Identity, items: Sequence[Sealed | bytes]) -> bytes:
    """One signed frame body for 1..512 envelopes from ``signer`` (sealed or stored)."""
    envelopes: list[bytes] = []
    digests: list[bytes] = []
    for item in items:
        if isinstance(item, Sealed):
            if item.sender != signer.peer_id:
                raise UsageError(
                    f"a bundle signed by {signer.peer_id} holds only its own envelopes"
                )
            envelopes.append(item.envelope)
            digests.append(item.digest)
            continue
        try:
            parsed = parse_envelope(item)
        except MalformedEnvelope as exc:
            raise UsageError(f"not an envelope v2: {exc}") from None
        if parsed.envelope.sender != signer.peer_id:
            raise UsageError(f"a bundle signed by {signer.peer_id} holds only its own envelopes")
        envelopes.append(parsed.raw)
        digests.append(parsed.digest)
    return encode_bundle(envelopes, signer.sign(SIGN_DOMAIN, bundle_digest(digests)))


def _stale(timestamp_ms: int, now_ms: int, max_age_ms: int | None, max_skew_ms: int) -> str:
    if timestamp_ms > now_ms + max_skew_ms:
        return (
            f"envelope is {(timestamp_ms - now_ms) / 1000:.0f} s in the future; "
            "check the sender's or this machine's clock"
        )
    if max_age_ms is not None and timestamp_ms < now_ms - max_age_ms:
        return f"envelope is {(now_ms - timestamp_ms) / 1000:.0f} s old"
    return ""


@dataclass(frozen=True, slots=True)
class _Receiving:
    me: str
    now_ms: int
    seen: Callable[[bytes], bool]
    max_age_ms: int | None
    max_skew_ms: int
    limits: ratchet.Limits
    random: Random
    budget: ratchet.WorkBudget
    stepped: set[bytes] = field(default_factory=set)  # chains a duplicate stepped toward


def _unwrap(
    parsed: ParsedEnvelope, header: ratchet.Header, state: ratchet.RatchetState, how: _Receiving
) -> tuple[ratchet.RatchetState, bytes]:
    wrap = parsed.envelope.recipients[how.me]
    return ratchet.decrypt(
        state,
        header,
        wrap.encrypted_key,
        parsed.bind,
        now_ms=how.now_ms,
        limits=how.limits,
        random=how.random,
        budget=how.budget,
    )


def _duplicate(
    parsed: ParsedEnvelope, header: ratchet.Header, state: ratchet.RatchetState, how: _Receiving
) -> tuple[ratchet.RatchetState, PeerError]:
    """An id accepted before (or earlier in this bundle): acknowledged again, unopened.

    Its key is consumed, so a copy sealed again leaves no gap: from the current chain,
    from those held as skipped, or from a chain not reached yet (a new session's sender
    seals the messages a dropped link left unacknowledged first: were they not stepped
    into, its first new message would skip them all, past ``max_skip``).  A chain's step
    is tried once a frame: one long gone fails, and costs the frame's budget as any
    envelope's step does.  Checked before the clock and the ratchet, so a resend of
    something stored is always answered, however old its seal."""
    ahead = header.dh != state.dhr and header.dh not in how.stepped
    if ahead or header.dh == state.dhr or (header.dh, header.n) in state.skipped:
        how.stepped.add(header.dh)
        with contextlib.suppress(PeerError):
            state = _unwrap(parsed, header, state, how)[0]
    return state, ReplayError(f"message {parsed.envelope.message_id.hex()} was already accepted")


def _open_one(
    parsed: ParsedEnvelope, state: ratchet.RatchetState, how: _Receiving, earlier: set[bytes]
) -> tuple[ratchet.RatchetState, OpenedMessage | PeerError]:
    env = parsed.envelope
    mid = env.message_id
    wrap = env.recipients.get(how.me)
    if wrap is None:
        return state, NotARecipient(f"envelope {mid.hex()} is not addressed to {how.me}")
    if not bound_to(mid, env.sender):  # before the seen-set: nobody sends under another's id
        return state, UnboundMessageId(f"message id {mid.hex()} does not name {env.sender}")
    if mid in earlier or how.seen(mid):
        return _duplicate(parsed, wrap.header, state, how)
    stale = _stale(env.timestamp_ms, how.now_ms, how.max_age_ms, how.max_skew_ms)
    if stale:
        return state, StaleMessage(stale)
    try:
        new_state, key = _unwrap(parsed, wrap.header, state, how)
    except PeerError as exc:
        return state, exc
    if not hmac.compare_digest(commitment(mid, key), env.commitment):
        return new_state, KeyCommitmentMismatch(
            f"the content key wrapped for {how.me} is not the one the sender committed to"
        )
    try:
        plaintext = unpad(aead_decrypt(key, BODY_NONCE, env.ciphertext, parsed.common), MIN_BUCKET)
    except PeerError as exc:
        return new_state, exc
    recipients = tuple(sorted(env.recipients))
    return new_state, OpenedMessage(
        mid, env.conversation_id, env.sender, env.counter, env.timestamp_ms, recipients, plaintext
    )


def open_bundle(
    data: bytes | ParsedBundle,
    *,
    me: str,
    peer: PublicIdentity,
    state: ratchet.RatchetState,
    now_ms: int,
    seen: Callable[[bytes], bool] = lambda _mid: False,
    max_age_ms: int | None = None,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    limits: ratchet.Limits = ratchet.DEFAULT_LIMITS,
    random: Random = random_bytes,
    allowance: SkipAllowance | None = None,
) -> OpenedBundle:
    """Verify a bundle from ``peer`` and open what it holds for device ``me`` (skipping
    keys within the frame's cap and ``allowance``, the session's over time).

    Pure: ``state`` is unchanged; adopt the returned state once the messages are stored.
    Raises only for the whole bundle (see the module docstring); each envelope's own
    refusal is in ``refused``.  ``data`` may be parsed already (the session parses a
    frame once, to read its ids).
    """
    parsed = data if isinstance(data, ParsedBundle) else parse_bundle(data)
    for item in parsed.envelopes:
        if item.envelope.sender != peer.peer_id:
            raise UnknownPeer(
                f"envelope from {item.envelope.sender} in a bundle on {peer.peer_id}'s session"
            )
    verify(peer.identity_key, SIGN_DOMAIN, parsed.signed_digest(), parsed.signature)
    budget = ratchet.WorkBudget.for_frame(len(parsed.envelopes), limits, allowance)
    how = _Receiving(me, now_ms, seen, max_age_ms, max_skew_ms, limits, random, budget)
    opened: list[OpenedMessage] = []
    refused: list[Refused] = []
    earlier: set[bytes] = set()
    for item in parsed.envelopes:
        state, outcome = _open_one(item, state, how, earlier)
        if isinstance(outcome, OpenedMessage):
            opened.append(outcome)
            earlier.add(outcome.message_id)
        else:
            refused.append(Refused(item.envelope.message_id, outcome))
    return OpenedBundle(state, tuple(opened), tuple(refused))


__all__ = [
    "OpenedBundle",
    "OpenedMessage",
    "Refused",
    "Sealed",
    "bundle",
    "commitment",
    "open_bundle",
    "seal",
]
