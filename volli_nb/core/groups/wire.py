"""Group traffic inside envelopes: which record a message was sent under, and the two
control messages that carry records.

Every group envelope's conversation id (in the envelope's signed common header, and in
the associated data of every pairwise key wrap) says what it is:

- ``grp-<id>.v<version>.<record hash, 64 hex>``: a chat message, bound to the record it
  was sent under; the body is an ordinary text body (:mod:`volli_nb.core.body`);
- ``grp-<id>.records``: a chain of records (a change, or the answer to a fetch); body:
  ``varint count (1..MAX_CHAIN) | (varint length + record) each``, in version order (a
  longer chain goes as several, :func:`encode_chains`);
- ``grp-<id>.fetch``: "send me the chain up to this record"; body: its 32-byte hash.

So a message is bound by hash to one membership version without a new envelope format,
and a receiver reads the binding before it opens anything of the group's state.  Any
other ``grp-`` id is :class:`~volli_nb.base.errors.ConversationRefused`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from volli_nb.base.errors import ConversationRefused, MalformedGroupRecord, UsageError
from volli_nb.core.body import wire_body
from volli_nb.core.crypto.wire import Reader, as_bytes, uvarint
from volli_nb.core.groups.record import (
    GROUP_PREFIX,
    HASH_BYTES,
    MAX_RECORD_BYTES,
    MembershipRecord,
    decode_record,
)

MAX_CHAIN = 512  # records in one control message
MESSAGE, RECORDS, FETCH = "message", "records", "fetch"
_ADDRESS = re.compile(
    r"(grp-[a-z2-7]{24})(?:\.v([1-9][0-9]{0,15})\.([0-9a-f]{64})|\.(records|fetch))\Z"
)


@dataclass(frozen=True)
class GroupAddress:
    """A group envelope's conversation id, parsed."""

    group_id: str
    kind: str  # MESSAGE, RECORDS or FETCH
    version: int = 0  # MESSAGE only
    record_hash: bytes = b""  # MESSAGE only


def is_group_conversation(conversation_id: str) -> bool:
    """Whether an id belongs to group traffic (all of it is for :func:`parse_address`)."""
    return conversation_id.startswith(GROUP_PREFIX)


def payload_on_wire(conversation_id: str, payload: bytes) -> bytes:
    """What a queued row's payload is sealed as: a group's records or fetch body is binary
    (a records message starts with its count, so two records read as a deflated text's
    kind byte) and goes as it is; a text body as :func:`~volli_nb.core.body.wire_body`
    makes it."""
    if is_group_conversation(conversation_id) and conversation_id.endswith(
        (f".{RECORDS}", f".{FETCH}")
    ):
        return payload
    return wire_body(payload)


def message_address(record: MembershipRecord) -> str:
    """The conversation id a message sent under ``record`` carries."""
    return f"{record.group_id}.v{record.version}.{record.hash.hex()}"


def control_address(group_id: str, kind: str) -> str:
    if kind not in (RECORDS, FETCH):
        raise ValueError(f"a control address is for {RECORDS!r} or {FETCH!r}, not {kind!r}")
    return f"{group_id}.{kind}"


def parse_address(conversation_id: str) -> GroupAddress:
    """:class:`ConversationRefused` for a ``grp-`` id that is none of the three forms."""
    found = _ADDRESS.fullmatch(conversation_id)
    if found is None:
        raise ConversationRefused(
            f"{conversation_id[:120]!r} is not a group message, records or fetch address"
        )
    group_id, version, digest, control = found.groups()
    if control:
        return GroupAddress(group_id, control)
    return GroupAddress(group_id, MESSAGE, int(version), bytes.fromhex(digest))


def encode_chain(records: list[MembershipRecord]) -> bytes:
    """One records message (:class:`UsageError` past ``MAX_CHAIN``: see :func:`encode_chains`)."""
    if not 1 <= len(records) <= MAX_CHAIN:
        raise UsageError(f"a records message carries 1 to {MAX_CHAIN} records")
    out = [uvarint(len(records))]
    for record in records:
        raw = record.raw
        out += [uvarint(len(raw)), raw]
    return b"".join(out)


def encode_chains(records: list[MembershipRecord]) -> list[bytes]:
    """``records`` as records messages of at most ``MAX_CHAIN`` each, in order: a receiver
    applies them one after another (one that comes before its predecessor is refused and
    comes again), so a chain of any length still reaches a new member."""
    return [encode_chain(records[i : i + MAX_CHAIN]) for i in range(0, len(records), MAX_CHAIN)]


def decode_chain(data: bytes, group_id: str) -> list[MembershipRecord]:
    """The records of a records message, each of ``group_id``, in increasing version order
    (not yet verified: that is :class:`~.chain.GroupChain`'s); :class:`MalformedGroupRecord`."""
    reader = Reader(as_bytes(data, "a records message"), MalformedGroupRecord, "records message")
    count = reader.uvarint("record count", 1, MAX_CHAIN)
    records = [decode_record(reader.sized("record", 1, MAX_RECORD_BYTES)) for _ in range(count)]
    reader.end()
    for record in records:
        if record.group_id != group_id:
            raise MalformedGroupRecord(f"a {record.group_id} record sent as {group_id}'s")
    versions = [r.version for r in records]
    if versions != sorted(versions):
        raise MalformedGroupRecord("records are not in version order")
    return records


def decode_fetch(data: bytes) -> bytes:
    """The record hash a fetch asks for."""
    if not isinstance(data, bytes) or len(data) != HASH_BYTES:
        raise MalformedGroupRecord(f"a fetch carries one {HASH_BYTES}-byte record hash")
    return data


__all__ = [
    "FETCH",
    "MAX_CHAIN",
    "MESSAGE",
    "RECORDS",
    "GroupAddress",
    "control_address",
    "decode_chain",
    "decode_fetch",
    "encode_chain",
    "encode_chains",
    "is_group_conversation",
    "message_address",
    "parse_address",
    "payload_on_wire",
]
