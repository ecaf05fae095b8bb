"""Message bodies: the bytes a text becomes before it is sealed, deflated when that pays.

A body is UTF-8 JSON ``{"type": "text", "text": ...}``, or, for a large body that
compresses well, ``b"\\x00z"`` + raw DEFLATE of that JSON (JSON never starts with NUL).

Length leak: padding already rounds a sealed body up to a size bucket (a power of
two up to 1 MiB, then whole MiB), so an observer learns the bucket, not the length.
Compression changes *which* bucket: it then depends on how repetitive the content
is, not only on its length.  If an attacker can put chosen text into the same
message as a secret and watch sizes (CRIME/BREACH), that leaks.  Hence compression
applies only from ``COMPRESS_MIN`` bytes (short chat lines keep their plain bucket),
only when it saves at least a whole bucket, and it can be turned off per message.
"""

from __future__ import annotations

import json
import zlib

from volli_nb.base.errors import MalformedEnvelope, OversizedInput
from volli_nb.core.crypto.envelope import bucket_size

COMPRESSED = b"\x00z"
COMPRESS_MIN = 4096  # bytes of JSON before compression is considered
MAX_BODY_BYTES = 12 * 1024 * 1024 + 1024  # a 12 MiB text plus its JSON wrapping


def encode_body(text: str, *, compress: bool = True) -> bytes:
    """The body for ``text``; deflated only when that lands in a smaller padding bucket."""
    plain = json.dumps({"type": "text", "text": text}, ensure_ascii=False).encode()
    if not compress or len(plain) < COMPRESS_MIN:
        return plain
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = COMPRESSED + packer.compress(plain) + packer.flush()
    return packed if bucket_size(len(packed)) < bucket_size(len(plain)) else plain


def is_compressed(body: bytes) -> bool:
    return body.startswith(COMPRESSED)


def inflate(body: bytes, max_size: int = MAX_BODY_BYTES) -> bytes:
    """The JSON of a body; a deflated one is inflated with a cap (no decompression bombs)."""
    if not is_compressed(body):
        return body
    unpacker = zlib.decompressobj(-15)
    try:
        plain = unpacker.decompress(body[len(COMPRESSED) :], max_size + 1)
    except zlib.error as exc:
        raise MalformedEnvelope(f"compressed body does not inflate: {exc}") from None
    if len(plain) > max_size or unpacker.unconsumed_tail:
        raise OversizedInput(f"compressed body inflates past {max_size} bytes")
    if not unpacker.eof or unpacker.unused_data:
        raise MalformedEnvelope("compressed body is truncated or has trailing bytes")
    return plain


def check_body(body: bytes) -> None:
    """Refuse a body that cannot be shown: bad DEFLATE, oversized, or not UTF-8."""
    try:
        inflate(body).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedEnvelope("message body is not UTF-8") from None


def decode_body(body: bytes) -> str:
    """The text of a body (tolerant: a body from another client shows as its raw text)."""
    plain = inflate(body)
    try:
        value = json.loads(plain.decode())
        text = value["text"]
        if isinstance(text, str):
            return text
    except (ValueError, KeyError, TypeError):
        pass
    return plain.decode(errors="replace")


__all__ = ["COMPRESS_MIN", "check_body", "decode_body", "encode_body", "inflate", "is_compressed"]
