"""Message ids: 16 random bytes, minted once when a message is written.

The same id names the message in the outbox, in every envelope sealed for it (so a
receiver deduplicates retries), in the frames that carry it and in the signed ACK
that settles it.  128 random bits make a collision negligible without coordination.
ACK and REFUSE frames list ids in one binary form: a u16 count, then the ids.
"""

from __future__ import annotations

import struct

from volli_nb.base.errors import UsageError
from volli_nb.core.crypto.identity import DEVICE_ID_BYTES, device_id_text
from volli_nb.core.crypto.primitives import Random, random_bytes
from volli_nb.core.crypto.wire import Reader

MESSAGE_ID_BYTES = 16
COUNT = struct.Struct(">H")


def new_message_id(random: Random = random_bytes) -> bytes:
    return random(MESSAGE_ID_BYTES)


def check_message_id(value: object) -> bytes:
    """``value`` if it is a 16-byte id; else :class:`UsageError` (a caller's mistake)."""
    if not isinstance(value, bytes) or len(value) != MESSAGE_ID_BYTES:
        shown = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise UsageError(f"a message id is {MESSAGE_ID_BYTES} bytes, not {shown}")
    return value


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
    "check_message_id",
    "id_list",
    "new_message_id",
    "read_device_id",
    "read_id_list",
]
