"""Message bodies: the bytes a text becomes before it is sealed, deflated when that pays.

**Version 2** (protocol 3 on), binary like the envelope around it: one kind byte, then
the data, so a 126-character line fits the first 128-byte padding bucket::

    0x01 | UTF-8 text
    0x02 | raw DEFLATE of the UTF-8 text (only when that lands in a smaller bucket)

**Version 1** (history stored before protocol 3, and outbox rows queued then): UTF-8 JSON
``{"type": "text", "text": ...}``, or ``b"\\x00z"`` + raw DEFLATE of that JSON.  JSON
starts with ``{`` or white space and a v1 deflated body with NUL, so the first byte
tells every version apart.  The wire carries version 2 only (:func:`decode_body` with
``legacy=False``, the receiver's check; :func:`wire_body` re-encodes a v1 body when the
sender seals it); the display reads both.

One decoder serves the receiver (before a message is stored or acknowledged) and the
display, so what was accepted can always be shown.  A v1 text is checked to be one flat
JSON object of string keys and string values (a linear regular expression) *before*
``json`` parses it, so a body that inflates to deeply nested JSON is refused without
recursing at all; inflation is capped in both versions (no decompression bombs).

Inflation ratio: DEFLATE reaches ~1,030:1, so a 12 KiB body could make a receiver
inflate (and store, and re-inflate on every ``history()``) 12 MiB of text.  Real text
does not come near: prose and code deflate 2.5-4:1, logs ~10:1.  So what arrives on the
wire (``legacy=False``) may inflate to at most ``MAX_RATIO`` times its deflated size, or
``RATIO_FREE`` bytes whatever the ratio (a pasted run of one line still compresses); past
that it is refused as :class:`OversizedInput` after inflating no more than that bound,
never stored nor acknowledged.  Our sender keeps to the same rule: :func:`encode_body`
sends such a text plain, and :func:`wire_body` re-encodes a body queued before the rule.

Length leak: padding already rounds a sealed body up to a size bucket (a power of
two up to 1 MiB, then whole MiB), so an observer learns the bucket, not the length.
Compression changes *which* bucket: it then depends on how repetitive the content
is, not only on its length.  If an attacker can put chosen text into the same
message as a secret and watch sizes (CRIME/BREACH), that leaks.  Hence compression
applies only from ``COMPRESS_MIN`` bytes (short chat lines keep their plain bucket),
only when it saves at least a whole bucket, and it can be turned off per message.
"""

from __future__ import annotations

import re
import zlib

from volli_nb.base.errors import MalformedBody, MalformedEnvelope, OversizedInput, UsageError
from volli_nb.core.crypto.envelope_wire import MIN_BUCKET
from volli_nb.core.crypto.padding import bucket_size
from volli_nb.core.encoding import require_fields, strict_loads

TEXT = b"\x01"  # version 2: UTF-8 text
DEFLATED = b"\x02"  # version 2: raw DEFLATE of UTF-8 text
COMPRESSED = b"\x00z"  # version 1: raw DEFLATE of the JSON
COMPRESS_MIN = 4096  # bytes of text before compression is considered
MAX_TEXT_BYTES = 12 * 1024 * 1024  # of UTF-8: what a receiver inflates a body to at most
MAX_BODY_BYTES = MAX_TEXT_BYTES + 1024  # a 12 MiB text plus its wrapping
MAX_RATIO = 64  # inflated / deflated bytes a received body may reach (real text: 2-12)
RATIO_FREE = 256 * 1024  # bytes any deflated body may inflate to, whatever its ratio

_STRING = r'"(?:[^"\\]++|\\.)*+"'
_PAIR = rf"{_STRING}\s*+:\s*+{_STRING}"
_FLAT_OBJECT = re.compile(rf"\s*+\{{\s*+(?:{_PAIR}(?:\s*+,\s*+{_PAIR})*+)?\s*+\}}\s*+", re.DOTALL)


def check_text(text: object) -> str:
    """A chat message as a person sends it: text with something in it."""
    if not isinstance(text, str):
        raise UsageError(
            f"a message is text (a str), not {type(text).__name__}; decode bytes, or format "
            "other values, first"
        )
    if not text.strip():
        raise UsageError("the message is empty (or only spaces); type some text")
    return text


def encode_body(text: str, *, compress: bool = True) -> bytes:
    """The version-2 body for ``text``; deflated only when that lands in a smaller
    padding bucket.  The limit is on the text, before compression: a receiver refuses a
    body that inflates past it, however small it travels."""
    if not isinstance(text, str):
        raise UsageError(f"a message body is made of text (a str), not {type(text).__name__}")
    try:
        plain = text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the text is not valid Unicode (a lone surrogate); fix it") from None
    if len(plain) > MAX_TEXT_BYTES:
        raise UsageError(
            f"the text is {len(plain) / 2**20:.1f} MiB of UTF-8; a message holds at most "
            f"{MAX_TEXT_BYTES // 2**20} MiB (receivers refuse more): split it"
        )
    if not compress or len(plain) < COMPRESS_MIN:
        return TEXT + plain
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = DEFLATED + packer.compress(plain) + packer.flush()
    if len(plain) > _wire_cap(len(packed) - 1):
        return TEXT + plain  # so repetitive a receiver would refuse it deflated
    smaller = bucket_size(len(packed), MIN_BUCKET) < bucket_size(len(plain) + 1, MIN_BUCKET)
    return packed if smaller else TEXT + plain


def is_compressed(body: bytes) -> bool:
    return body[:1] == DEFLATED or body.startswith(COMPRESSED)


def is_legacy(body: bytes) -> bool:
    """A version-1 body (JSON, or deflated JSON)."""
    return body[:1] not in (TEXT, DEFLATED)


def wire_body(body: bytes) -> bytes:
    """The body as the wire carries it: version 2 as is, a stored version-1 body
    re-encoded (its compression kept or not, as the new rule decides)."""
    if body[:1] == DEFLATED:
        try:
            decode_body(body, legacy=False)
        except OversizedInput:  # queued by a sender before the ratio rule
            return TEXT + decode_body(body).encode("utf-8")
    if not is_legacy(body):
        return body
    return encode_body(decode_body(body), compress=is_compressed(body))


def _wire_cap(deflated: int) -> int:
    """How far a deflated body of ``deflated`` bytes from the wire may inflate."""
    return min(MAX_BODY_BYTES, max(RATIO_FREE, MAX_RATIO * deflated))


def _inflate(data: bytes, max_size: int = MAX_BODY_BYTES) -> bytes:
    """Raw DEFLATE, inflated with a cap (never more than ``max_size + 1`` bytes)."""
    unpacker = zlib.decompressobj(-15)
    try:
        plain = unpacker.decompress(data, max_size + 1)
    except zlib.error as exc:
        raise MalformedEnvelope(f"compressed body does not inflate: {exc}") from None
    if len(plain) > max_size or unpacker.unconsumed_tail:
        raise OversizedInput(
            f"compressed body ({len(data)} bytes) inflates past {max_size} bytes (at most "
            f"{MAX_TEXT_BYTES // 2**20} MiB, and on the wire at most {MAX_RATIO}x its "
            f"size past {RATIO_FREE // 1024} KiB): refused; a sender sends such text plain"
        )
    if not unpacker.eof or unpacker.unused_data:
        raise MalformedEnvelope("compressed body is truncated or has trailing bytes")
    return plain


def check_body(body: bytes, *, legacy: bool = True) -> None:
    """Refuse a body :func:`decode_body` would refuse (the receiver, before storing it)."""
    decode_body(body, legacy=legacy)


def decode_body(body: bytes, *, legacy: bool = True) -> str:
    """The text of a body, or a typed error (:class:`MalformedBody`, or
    :class:`OversizedInput` for a deflated one that inflates too far).  ``legacy=False``
    (what arrives on the wire) refuses version 1 and bounds the inflation ratio."""
    kind = body[:1]
    if kind in (TEXT, DEFLATED):
        cap = MAX_BODY_BYTES if legacy else _wire_cap(len(body) - 1)
        data = body[1:] if kind == TEXT else _inflate(body[1:], cap)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedBody("message body is not UTF-8") from None
    if not legacy:
        raise MalformedBody(
            "a version-1 (JSON) body on the wire: the sender runs an older volli_nb; "
            "upgrade both sides"
        )
    return _decode_v1(body)


def _decode_v1(body: bytes) -> str:
    """Exactly ``{"type": "text", "text": str}``, inflated first if deflated."""
    plain = _inflate(body[len(COMPRESSED) :]) if body.startswith(COMPRESSED) else body
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


__all__ = [
    "COMPRESS_MIN",
    "MAX_RATIO",
    "MAX_TEXT_BYTES",
    "RATIO_FREE",
    "check_body",
    "check_text",
    "decode_body",
    "encode_body",
    "is_compressed",
    "is_legacy",
    "wire_body",
]
