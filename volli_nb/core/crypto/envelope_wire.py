"""Envelope v2 and bundle layouts: encoding, strict parsing and the digests that get signed.

Fixed binary layouts (integers are minimal LEB128 varints, see
:mod:`volli_nb.core.crypto.wire`); sizes in bytes::

    envelope = u8 version=2
             | varint len (1..1024) + conversation id (UTF-8, 1..256 characters)
             | message id 16 | sender device id 10
             | varint counter (1..2**53-1) | varint timestamp ms (0..2**53-1)
             | commitment 32
             | varint recipient count (1..1024), then per recipient, in increasing id order:
                 device id 10 | ratchet header (dh 32, varint pn, varint n) | encryptedKey 72
             | varint len + ciphertext (a padded size bucket + 16)
    bundle   = u8 version=2 | varint count (1..512) | (varint len + envelope) each
             | Ed25519 signature 64

The *common header* is every envelope byte before the first recipient plus the sorted
recipient ids: conversation, message id, sender, counter, timestamp, commitment and the
recipient set.  Three digests (BLAKE2b-256, each with its own personalisation):

- ``bind = H_bind(common header | H_ct(ciphertext))``: every recipient's key wrap
  authenticates it, so each recipient knows, from the pairwise ratchet key alone, that
  the sender made exactly this header and ciphertext;
- ``digest = H_env(bind | recipient sections)``: the whole envelope, signed in a bundle;
- ``H_bundle(version | count | digest_1 .. digest_n)``: what the bundle signature covers.

A device id is the peer id's 10 raw bytes (its 16 base32 characters on screen).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from volli_nb.base.errors import MalformedEnvelope, OversizedInput, UsageError
from volli_nb.core.crypto.identity import DEVICE_ID_BYTES, device_id_bytes, device_id_text
from volli_nb.core.crypto.padding import is_bucket
from volli_nb.core.crypto.primitives import SIGNATURE_BYTES
from volli_nb.core.crypto.ratchet import Header, read_header
from volli_nb.core.crypto.wire import MAX_SAFE_INT, Reader, as_bytes, uvarint
from volli_nb.core.message_id import MESSAGE_ID_BYTES

VERSION = 2
MIN_BUCKET = 128
TAG_BYTES = 16
COMMITMENT_BYTES = 32
WRAPPED_KEY_BYTES = 72  # its 24-byte nonce, a 32-byte content key and its 16-byte tag
MAX_RECIPIENTS = 1024
MAX_CONVERSATION_ID = 256  # characters
MAX_CONVERSATION_ID_BYTES = 1024
MAX_BUNDLE = 512
MAX_ENVELOPE_BYTES = 24 * 1024 * 1024
MAX_BUNDLE_BYTES = MAX_ENVELOPE_BYTES + 64 * 1024
CT_PERSON = b"volli-v2-ct"
BIND_PERSON = b"volli-v2-bind"
ENVELOPE_PERSON = b"volli-v2-env"
BUNDLE_PERSON = b"volli-v2-bundle"


def blake(data: bytes, person: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32, person=person).digest()


def encode_head(
    conversation_id: str,
    message_id: bytes,
    sender: bytes,
    counter: int,
    timestamp_ms: int,
    commitment: bytes,
    recipient_count: int,
) -> bytes:
    """Version .. recipient count, exactly as on the wire (``sender`` as raw id bytes)."""
    cid = conversation_id.encode("utf-8")
    return b"".join(
        [
            bytes((VERSION,)),
            uvarint(len(cid)),
            cid,
            message_id,
            sender,
            uvarint(counter),
            uvarint(timestamp_ms),
            commitment,
            uvarint(recipient_count),
        ]
    )


def bind_digest(common: bytes, ciphertext: bytes) -> bytes:
    """What each key wrap authenticates: the common header and the ciphertext's hash."""
    return blake(common + blake(ciphertext, CT_PERSON), BIND_PERSON)


def envelope_digest(bind: bytes, sections: bytes) -> bytes:
    """The whole envelope, as a bundle signature covers it."""
    return blake(bind + sections, ENVELOPE_PERSON)


@dataclass(frozen=True, slots=True)
class KeyWrap:
    """The seed's ``{encryptedKey, nonce}``: ``header`` plays the nonce's part (it selects
    the single-use ratchet message key, from which the AEAD nonce is derived)."""

    header: Header
    encrypted_key: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """Every field of one envelope, decoded; ``recipients`` is in wire (raw id) order."""

    conversation_id: str
    message_id: bytes
    sender: str
    counter: int
    timestamp_ms: int
    commitment: bytes
    recipients: Mapping[str, KeyWrap]
    ciphertext: bytes

    def head(self) -> bytes:
        """Every byte before the first recipient section (version .. recipient count)."""
        return encode_head(
            self.conversation_id,
            self.message_id,
            device_id_bytes(self.sender),
            self.counter,
            self.timestamp_ms,
            self.commitment,
            len(self.recipients),
        )

    def common_header(self) -> bytes:
        """What every recipient shares: the head and the recipient ids."""
        return self.head() + b"".join(device_id_bytes(r) for r in self.recipients)

    def recipient_sections(self) -> bytes:
        return b"".join(
            device_id_bytes(rid) + wrap.header.encode() + wrap.encrypted_key
            for rid, wrap in self.recipients.items()
        )

    def encode(self) -> bytes:
        """The one encoding of this envelope (recipients must already be in id order)."""
        ct = self.ciphertext
        return self.head() + self.recipient_sections() + uvarint(len(ct)) + ct

    def to_dict(self) -> dict[str, object]:
        """The seed's field names, readable in a notebook."""
        return {
            "version": VERSION,
            "conversationId": self.conversation_id,
            "messageId": self.message_id.hex(),
            "sender": self.sender,
            "counter": self.counter,
            "timestamp": self.timestamp_ms,
            "commitment": self.commitment.hex(),
            "recipients": {
                rid: {"encryptedKey": w.encrypted_key.hex(), "nonce": w.header.to_dict()}
                for rid, w in self.recipients.items()
            },
            "ciphertext": f"{len(self.ciphertext)} bytes: {self.ciphertext[:16].hex()}...",
        }


@dataclass(frozen=True, slots=True)
class ParsedEnvelope:
    """An envelope, its exact bytes and its digests; nothing verified yet."""

    envelope: Envelope
    raw: bytes
    common: bytes
    bind: bytes
    digest: bytes


def _conversation_id(reader: Reader) -> str:
    raw = reader.sized("conversation id", 1, MAX_CONVERSATION_ID_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise reader.fail("conversation id is not UTF-8") from None
    if len(text) > MAX_CONVERSATION_ID:
        raise reader.fail(f"conversation id is longer than {MAX_CONVERSATION_ID} characters")
    return text


def _recipients(reader: Reader, count: int) -> tuple[dict[str, KeyWrap], bytes]:
    wraps: dict[str, KeyWrap] = {}
    ids: list[bytes] = []
    for _ in range(count):
        raw_id = reader.take(DEVICE_ID_BYTES, "recipient device id")
        if ids and raw_id <= ids[-1]:
            raise reader.fail("recipients must be in increasing id order, each once")
        ids.append(raw_id)
        header = read_header(reader)
        wraps[device_id_text(raw_id)] = KeyWrap(
            header, reader.take(WRAPPED_KEY_BYTES, "encryptedKey")
        )
    return wraps, b"".join(ids)


def read_envelope(reader: Reader) -> ParsedEnvelope:
    """Read one envelope at the reader's position (alone, or inside a bundle)."""
    start = reader.position
    version = reader.byte("version")
    if version != VERSION:
        raise reader.fail(f"envelope version {version} is not supported (expected {VERSION})")
    conversation_id = _conversation_id(reader)
    message_id = reader.take(MESSAGE_ID_BYTES, "message id")
    sender = device_id_text(reader.take(DEVICE_ID_BYTES, "sender device id"))
    counter = reader.uvarint("counter", 1, MAX_SAFE_INT)
    timestamp_ms = reader.uvarint("timestamp", 0, MAX_SAFE_INT)
    commitment = reader.take(COMMITMENT_BYTES, "commitment")
    count = reader.uvarint("recipient count", 1, MAX_RECIPIENTS)
    head_end = reader.position
    wraps, ids = _recipients(reader, count)
    sections_end = reader.position
    ciphertext = reader.sized("ciphertext", TAG_BYTES + MIN_BUCKET, MAX_ENVELOPE_BYTES)
    if not is_bucket(len(ciphertext) - TAG_BYTES, MIN_BUCKET):
        raise reader.fail("ciphertext length is not a padded size bucket plus a tag")
    envelope = Envelope(
        conversation_id,
        message_id,
        sender,
        counter,
        timestamp_ms,
        commitment,
        MappingProxyType(wraps),
        ciphertext,
    )
    common = reader.slice(start, head_end) + ids
    bind = bind_digest(common, ciphertext)
    digest = envelope_digest(bind, reader.slice(head_end, sections_end))
    return ParsedEnvelope(envelope, reader.slice(start, reader.position), common, bind, digest)


def parse_envelope(data: bytes, *, max_size: int = MAX_ENVELOPE_BYTES) -> ParsedEnvelope:
    """Strictly parse one standalone envelope; verifies nothing."""
    raw = as_bytes(data, "an envelope")
    if len(raw) > max_size:
        raise OversizedInput(f"envelope of {len(raw)} bytes exceeds the {max_size}-byte cap")
    reader = Reader(raw, MalformedEnvelope, "envelope v2")
    parsed = read_envelope(reader)
    reader.end()
    return parsed


@dataclass(frozen=True, slots=True)
class ParsedBundle:
    """A bundle's envelopes and signature; nothing verified yet."""

    envelopes: tuple[ParsedEnvelope, ...]
    signature: bytes
    raw: bytes  # exactly the bytes parsed

    def signed_digest(self) -> bytes:
        return bundle_digest([e.digest for e in self.envelopes])

    def to_dict(self) -> dict[str, object]:
        return {
            "version": VERSION,
            "envelopes": [e.envelope.to_dict() for e in self.envelopes],
            "signature": self.signature.hex(),
        }


def bundle_digest(envelope_digests: Sequence[bytes]) -> bytes:
    head = bytes((VERSION,)) + uvarint(len(envelope_digests))
    return blake(head + b"".join(envelope_digests), BUNDLE_PERSON)


def peek_message_ids(data: bytes, limit: int) -> tuple[int, list[bytes]]:
    """A bundle's envelope count and its first ``limit`` message ids, read from the
    front without parsing the rest (for traces: also from a chunked frame's first
    chunk).  Verifies nothing; a truncated front is :class:`MalformedEnvelope`."""
    reader = Reader(as_bytes(data, "a bundle"), MalformedEnvelope, "bundle v2")
    if reader.byte("version") != VERSION:
        raise reader.fail("not a version 2 bundle")
    count = reader.uvarint("envelope count", 1, MAX_BUNDLE)
    ids = []
    for index in range(min(count, limit)):
        end = reader.uvarint(f"envelope {index} length", 1, MAX_ENVELOPE_BYTES) + reader.position
        reader.byte("version")
        reader.sized("conversation id", 1, MAX_CONVERSATION_ID_BYTES)
        ids.append(reader.take(MESSAGE_ID_BYTES, "message id"))
        if index + 1 < min(count, limit):
            reader.take(end - reader.position, "envelope")
    return count, ids


def encode_bundle(envelopes: Sequence[bytes], signature: bytes) -> bytes:
    if not 1 <= len(envelopes) <= MAX_BUNDLE:
        raise UsageError(f"a bundle holds 1 to {MAX_BUNDLE} envelopes")
    parts = [bytes((VERSION,)), uvarint(len(envelopes))]
    for envelope in envelopes:
        parts += [uvarint(len(envelope)), envelope]
    return b"".join([*parts, signature])


def parse_bundle(data: bytes, *, max_size: int = MAX_BUNDLE_BYTES) -> ParsedBundle:
    """Strictly parse a bundle and every envelope in it; verifies nothing."""
    raw = as_bytes(data, "a bundle")
    if len(raw) > max_size:
        raise OversizedInput(f"bundle of {len(raw)} bytes exceeds the {max_size}-byte cap")
    reader = Reader(raw, MalformedEnvelope, "bundle v2")
    version = reader.byte("version")
    if version != VERSION:
        raise reader.fail(f"bundle version {version} is not supported (expected {VERSION})")
    envelopes = []
    for index in range(reader.uvarint("envelope count", 1, MAX_BUNDLE)):
        length = reader.uvarint(f"envelope {index} length", 1, MAX_ENVELOPE_BYTES)
        end = reader.position + length
        envelopes.append(read_envelope(reader))
        if reader.position != end:
            raise reader.fail(f"envelope {index} does not fill its stated length")
    signature = reader.take(SIGNATURE_BYTES, "signature")
    reader.end()
    return ParsedBundle(tuple(envelopes), signature, raw)
