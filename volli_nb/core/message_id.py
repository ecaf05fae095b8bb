"""Message ids: 16 bytes that name their sender, minted once when a message is written.

The same id names the message in the outbox, in every envelope sealed for it (so a
receiver deduplicates retries), in the frames that carry it and in the signed ACK
that settles it.

An id is ``8 random bytes | tag(sender)``, the tag an unkeyed BLAKE2b of the sender's
peer id.  (Random first: people and panels name a message by its first 8 hex digits,
which must differ between one sender's messages.)  A receiver refuses an envelope whose
id does not carry its (signed) sender's tag, so nobody can send under an id that belongs
to someone else: a co-recipient who has seen alice's id cannot reach bob first with its
own message under it and have alice's refused as a duplicate.  Ids of different senders
therefore never meet, and the seen-set keyed by id is keyed by (sender, id).  64 random
bits per sender make a collision negligible (billions of messages for one in a billion).

Ids minted before this rule (schema < 4) are unbound.  :func:`rebound` maps one to its
bound form deterministically, so the sender's migration and the receiver's re-mint a
message they both hold to the same id: a message stored before the upgrade and sent
again after it (its ACK was lost) is still a duplicate.

ACK and REFUSE frames list ids in one binary form: a u16 count, then the ids.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

from volli_nb.base.errors import UsageError
from volli_nb.core.crypto.identity import DEVICE_ID_BYTES, device_id_text
from volli_nb.core.crypto.primitives import Random, random_bytes
from volli_nb.core.crypto.wire import Reader

MESSAGE_ID_BYTES = 16
TAG_BYTES = 8
COUNT = struct.Struct(">H")


def sender_tag(sender: str) -> bytes:
    """The second half of every id ``sender`` mints."""
    return hashlib.blake2b(
        sender.encode(), digest_size=TAG_BYTES, person=b"volli-msgid-tag"
    ).digest()


def new_message_id(sender: str, random: Random = random_bytes) -> bytes:
    return random(MESSAGE_ID_BYTES - TAG_BYTES) + sender_tag(sender)


def bound_to(message_id: bytes, sender: str) -> bool:
    """Whether ``message_id`` is one ``sender`` may send (it carries its tag)."""
    return hmac.compare_digest(message_id[-TAG_BYTES:], sender_tag(sender))


def rebound(legacy_id: bytes, sender: str) -> bytes:
    """The bound id that stands for ``sender``'s pre-binding id ``legacy_id``, the same
    on every profile that holds the message."""
    check_message_id(legacy_id)
    rest = hashlib.blake2b(
        legacy_id, digest_size=MESSAGE_ID_BYTES - TAG_BYTES, person=b"volli-msgid-re"
    ).digest()
    return rest + sender_tag(sender)


def check_message_id(value: object) -> bytes:
    """``value`` if it is a 16-byte id; else :class:`UsageError` (a caller's mistake)."""
    if not isinstance(value, bytes) or len(value) != MESSAGE_ID_BYTES:
        shown = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise UsageError(f"a message id is {MESSAGE_ID_BYTES} bytes, not {shown}")
    return value


def as_message_id(value: object) -> bytes:
    """A message id as a person may pass it: the 16 bytes (``sent.message_id``) or their
    32 hex digits.  The 8-digit short id that lists and logs show names a message for
    people only (it is not unique across senders): refused with that said."""
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) == 2 * MESSAGE_ID_BYTES and all(c in "0123456789abcdef" for c in text):
            return bytes.fromhex(text)
        raise UsageError(
            f"{value!r} is not a message id: pass the message's ``message_id`` (16 bytes) or "
            f"its 32 hex digits; a short id like {value[:8]!r} only names it in lists and logs"
        )
    return check_message_id(value)


def id_list(message_ids: list[bytes] | tuple[bytes, ...], limit: int, what: str) -> bytes:
    """u16 count + the ids: 1 to ``limit`` distinct 16-byte ids (a caller's mistake else)."""
    ids = tuple(dict.fromkeys(message_ids))
    if not 1 <= len(ids) <= limit:
        raise UsageError(f"{what} covers 1 to {limit} distinct ids, not {len(ids)}")
    for message_id in ids:
        check_message_id(message_id)
    return COUNT.pack(len(ids)) + b"".join(ids)


def read_id_list(reader: Reader, limit: int, what: str) -> tuple[bytes, ...]:
    """The ids :func:`id_list` wrote; any defect is the reader's typed error."""
    (count,) = COUNT.unpack(reader.take(COUNT.size, f"{what} id count"))
    if not 1 <= count <= limit:
        raise reader.fail(f"{what} must cover 1 to {limit} ids, not {count}")
    raw = reader.take(count * MESSAGE_ID_BYTES, f"{what} ids")
    ids = tuple(raw[i : i + MESSAGE_ID_BYTES] for i in range(0, len(raw), MESSAGE_ID_BYTES))
    if len(set(ids)) != count:
        raise reader.fail(f"{what} lists the same message id twice")
    return ids


def read_device_id(reader: Reader, field: str) -> str:
    """A 10-byte device id, as its 16-character peer id."""
    return device_id_text(reader.take(DEVICE_ID_BYTES, field))


__all__ = [
    "MESSAGE_ID_BYTES",
    "as_message_id",
    "bound_to",
    "check_message_id",
    "id_list",
    "new_message_id",
    "read_device_id",
    "read_id_list",
    "rebound",
    "sender_tag",
]
