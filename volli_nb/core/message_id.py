"""Message ids: 16 random bytes, minted once when a message is written.

The same id names the message in the outbox, in every envelope sealed for it (so a
receiver deduplicates retries), in the frames that carry it and in the signed ACK
that settles it.  128 random bits make a collision negligible without coordination.
"""

from __future__ import annotations

from volli_nb.base.errors import MalformedFrame, UsageError
from volli_nb.core.crypto.primitives import Random, random_bytes
from volli_nb.core.encoding import b64decode

MESSAGE_ID_BYTES = 16


def new_message_id(random: Random = random_bytes) -> bytes:
    return random(MESSAGE_ID_BYTES)


def check_message_id(value: object) -> bytes:
    """``value`` if it is a 16-byte id; else :class:`UsageError` (a caller's mistake)."""
    if not isinstance(value, bytes) or len(value) != MESSAGE_ID_BYTES:
        shown = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise UsageError(f"a message id is {MESSAGE_ID_BYTES} bytes, not {shown}")
    return value


def decode_id_list(values: list[object], *, limit: int, what: str) -> tuple[bytes, ...]:
    """The ids a signed ACK or REFUSE lists: 1 to ``limit`` distinct base64url ids."""
    if not 1 <= len(values) <= limit:
        raise MalformedFrame(f"{what} must cover 1 to {limit} ids")
    ids = tuple(
        b64decode(i, length=MESSAGE_ID_BYTES, what=f"{what} id", error=MalformedFrame)
        for i in values
    )
    if len(set(ids)) != len(ids):
        raise MalformedFrame(f"{what} lists the same message id twice")
    return ids


__all__ = ["MESSAGE_ID_BYTES", "check_message_id", "decode_id_list", "new_message_id"]
