"""An envelope's bytes, field by field: the wire's v2 beside the retired v1 of the same text.

For notebook 01.  Each field is cut from the envelope's own bytes where the parser found
it (v2: re-encoded from the parsed fields and checked to add up to exactly the bytes
given; v1: each top-level member of its canonical JSON), so the sizes shown are the
sizes on the wire, and :func:`table` prints both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from volli_nb.core.crypto.envelope_wire import parse_envelope
from volli_nb.core.crypto.identity import device_id_bytes
from volli_nb.core.crypto.wire import uvarint
from volli_nb.core.encoding import canonical_json

Field = tuple[str, bytes]


def v2_fields(raw: bytes) -> list[Field]:
    """Envelope v2's fields in wire order; they join to exactly ``raw``."""
    env = parse_envelope(raw).envelope
    cid = env.conversation_id.encode()
    fields: list[Field] = [
        ("version", raw[:1]),
        ("conversation id (length + UTF-8)", uvarint(len(cid)) + cid),
        ("message id (sender tag + random)", env.message_id),
        ("sender device id", device_id_bytes(env.sender)),
        ("counter (varint)", uvarint(env.counter)),
        ("timestamp ms (varint)", uvarint(env.timestamp_ms)),
        ("key commitment", env.commitment),
        ("recipient count", uvarint(len(env.recipients))),
    ]
    for rid, wrap in env.recipients.items():
        fields += [
            (f"recipient {rid[:8]}: device id", device_id_bytes(rid)),
            ("  nonce = ratchet header (key, pn, n)", wrap.header.encode()),
            ("  encryptedKey (nonce, K, tag)", wrap.encrypted_key),
        ]
    fields.append(
        ("ciphertext (length + padded body)", uvarint(len(env.ciphertext)) + env.ciphertext)
    )
    if b"".join(value for _, value in fields) != raw:
        raise AssertionError("the v2 fields do not add up to the envelope")
    return fields


def v1_fields(raw: bytes) -> list[Field]:
    """Envelope v1's top-level JSON members in order (``"name":value`` each), and the
    braces and commas between them."""
    obj = json.loads(raw)
    members = [(name, canonical_json({name: value})[1:-1]) for name, value in obj.items()]
    fields: list[Field] = [(name, text) for name, text in members]
    fields.append(("braces and commas", b"{}" + b"," * (len(members) - 1)))
    if sum(len(value) for _, value in fields) != len(raw):
        raise AssertionError("the v1 members do not add up to the envelope")
    return fields


def _readable(member: str) -> str:
    """A JSON member with a time in milliseconds since 1970 shows it as a date."""
    name, _, value = member.partition(":")
    if value.isdigit() and len(value) >= 12:
        when = datetime.fromtimestamp(int(value) / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return f"{name}:<ms: {when}>"
    return member


def table(title: str, fields: Sequence[Field], *, text: bool = False, width: int = 44) -> str:
    """``field  bytes  value`` lines (the value in hex, or as JSON text), and the total."""
    lines = [title, f"{'field':38} {'bytes':>5}  value ({'JSON text' if text else 'hex'})"]
    for name, value in fields:
        shown = _readable(value.decode()) if text else value.hex()
        shown = shown if len(shown) <= width else shown[: width - 1] + "…"
        lines.append(f"{name:38} {len(value):5}  {shown}")
    lines.append(f"{'total':38} {sum(len(v) for _, v in fields):5}")
    return "\n".join(lines)


__all__ = ["Field", "table", "v1_fields", "v2_fields"]
