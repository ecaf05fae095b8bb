"""Message bodies: the bytes a text becomes before it is sealed, deflated when that pays.

A body is UTF-8 JSON ``{"type": "text", "text": ...}``, or, for a large body that
compresses well, ``b"\\x00z"`` + raw DEFLATE of that JSON (JSON never starts with NUL).

One decoder, :func:`decode_body`, serves the receiver (before a message is stored or
acknowledged) and the display, so what was accepted can always be shown: it takes exactly
that schema and nothing deeper.  The text is checked to be one flat JSON object of
string keys and string values (a linear regular expression) *before* ``json`` parses it,
so a body that inflates to deeply nested JSON is refused without recursing at all.

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
import re
import zlib

from volli_nb.base.errors import MalformedBody, MalformedEnvelope, OversizedInput
from volli_nb.core.crypto.envelope_wire import MIN_BUCKET
from volli_nb.core.crypto.padding import bucket_size
from volli_nb.core.encoding import require_fields, strict_loads

COMPRESSED = b"\x00z"
COMPRESS_MIN = 4096  # bytes of JSON before compression is considered
MAX_BODY_BYTES = 12 * 1024 * 1024 + 1024  # a 12 MiB text plus its JSON wrapping

_STRING = r'"(?:[^"\\]++|\\.)*+"'
_PAIR = rf"{_STRING}\s*+:\s*+{_STRING}"
_FLAT_OBJECT = re.compile(rf"\s*+\{{\s*+(?:{_PAIR}(?:\s*+,\s*+{_PAIR})*+)?\s*+\}}\s*+", re.DOTALL)


def encode_body(text: str, *, compress: bool = True) -> bytes:
    """The body for ``text`` (compact JSON: a 100-character line fits the first 128-byte
    bucket); deflated only when that lands in a smaller padding bucket."""
    body = {"type": "text", "text": text}
    plain = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    if not compress or len(plain) < COMPRESS_MIN:
        return plain
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = COMPRESSED + packer.compress(plain) + packer.flush()
    smaller = bucket_size(len(packed), MIN_BUCKET) < bucket_size(len(plain), MIN_BUCKET)
    return packed if smaller else plain


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
    """Refuse a body :func:`decode_body` would refuse (the receiver, before storing it)."""
    decode_body(body)


def decode_body(body: bytes) -> str:
    """The text of a body: exactly ``{"type": "text", "text": str}``, or a typed error
    (:class:`MalformedBody`, or :class:`OversizedInput` for a deflated one that inflates
    too far)."""
    plain = inflate(body)
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("message body is not UTF-8") from None
    if not _FLAT_OBJECT.fullmatch(text):
        raise MalformedBody(
            'message body is not one flat JSON object {"type": "text", "text": ...}'
        )
    value = strict_loads(plain, max_size=MAX_BODY_BYTES, what="message body", error=MalformedBody)
    require_fields(value, {"type": str, "text": str}, what="message body", error=MalformedBody)
    if value["type"] != "text":
        raise MalformedBody(f"message body type {value['type']!r} is not 'text'")
    result: str = value["text"]
    return result


__all__ = ["COMPRESS_MIN", "check_body", "decode_body", "encode_body", "inflate", "is_compressed"]
