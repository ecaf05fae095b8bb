"""Message ids: 16 random bytes, minted once when a message is written.

The same id names the message in the outbox, in every envelope sealed for it (so a
receiver deduplicates retries), in the frames that carry it and in the signed ACK
that settles it.  128 random bits make a collision negligible without coordination.
"""

from __future__ import annotations

from volli_nb.base.errors import UsageError
from volli_nb.core.crypto.primitives import Random, random_bytes

MESSAGE_ID_BYTES = 16


def new_message_id(random: Random = random_bytes) -> bytes:
    return random(MESSAGE_ID_BYTES)


def check_message_id(value: object) -> bytes:
    """``value`` if it is a 16-byte id; else :class:`UsageError` (a caller's mistake)."""
    if not isinstance(value, bytes) or len(value) != MESSAGE_ID_BYTES:
        shown = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise UsageError(f"a message id is {MESSAGE_ID_BYTES} bytes, not {shown}")
    return value


__all__ = ["MESSAGE_ID_BYTES", "check_message_id", "new_message_id"]
