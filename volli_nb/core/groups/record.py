"""A group's membership record: who is in it, who may change it, signed and chained by hash.

A record is ``{group_id, version, name, members (peer id + identity key), admins,
prev_hash}``, signed by one member (an admin of the version before it, or the creator
for version 1).  Its hash (BLAKE2b-256 of every byte, signature included) is what the
next version names as ``prev_hash`` and what every group message is bound to.

**Group ids cannot be squatted.**  ``group_id = "grp-" + base32(BLAKE2b-120(creator's
identity key ‖ origin))`` with ``origin`` 16 random bytes carried in version 1, which
the creator signs.  A record 1 whose id is not derived from its own signer's key and
origin is :class:`~volli_nb.base.errors.SquattedGroupId`: nobody can pre-create a group
under an id someone else will use, or answer for one they did not make.

**Layout** (one accepted encoding; any defect is
:class:`~volli_nb.base.errors.MalformedGroupRecord`)::

    u8 format = 1
    group id          15 bytes (the id's raw digest)
    version           varint 1..2^53-1
    prev_hash         32 bytes (zero for version 1)
    origin            16 bytes, in version 1 only
    name              varint length 0..240 + UTF-8, printable
    member count      varint 1..256
    members           identity key (32) each, in increasing peer-id order, distinct
    admin count       varint 1..member count
    admins            varint index into members each, strictly increasing
    signer            10 bytes (a peer id's raw bytes)
    signature         64 bytes: Ed25519, domain ``volli-group-record-v1``, over all above

A member's peer id is its key's fingerprint, so the record names both at once and they
cannot disagree.  Who may sign, and how versions chain, is :mod:`.chain`'s business.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from dataclasses import dataclass, field
from functools import cached_property

from volli_nb.base.errors import (
    BadSignature,
    ForgedGroupRecord,
    MalformedGroupRecord,
    UsageError,
)
from volli_nb.core.crypto.identity import (
    DEVICE_ID_BYTES,
    Identity,
    device_id_bytes,
    device_id_text,
    peer_id_for,
    verify,
)
from volli_nb.core.crypto.primitives import KEY_BYTES, SIGNATURE_BYTES, Random, random_bytes
from volli_nb.core.crypto.wire import MAX_SAFE_INT, Reader, as_bytes, uvarint

FORMAT = 1
GROUP_PREFIX = "grp-"
GROUP_ID_BYTES = 15  # 120 bits: 24 base32 characters, no padding
ORIGIN_BYTES = 16
HASH_BYTES = 32
ZERO_HASH = bytes(HASH_BYTES)
MAX_NAME_BYTES = 240
MAX_MEMBERS = 256
MAX_RECORD_BYTES = (
    64
    + GROUP_ID_BYTES
    + 9
    + HASH_BYTES
    + ORIGIN_BYTES
    + MAX_NAME_BYTES
    + 2
    + (MAX_MEMBERS * (KEY_BYTES + 2))
    + DEVICE_ID_BYTES
    + SIGNATURE_BYTES
)
SIGN_DOMAIN = b"volli-group-record-v1"
ID_PERSON = b"volli-group-id"
HASH_PERSON = b"volli-group-rec"


def derive_group_id(creator_key: bytes, origin: bytes) -> str:
    """The id a group created by ``creator_key`` with ``origin`` has (see the docstring)."""
    digest = hashlib.blake2b(
        creator_key + origin, digest_size=GROUP_ID_BYTES, person=ID_PERSON
    ).digest()
    return GROUP_PREFIX + base64.b32encode(digest).decode("ascii").lower()


def is_group_id(value: object) -> bool:
    """Whether ``value`` has a group id's shape (``grp-`` and 24 base32 characters)."""
    if not isinstance(value, str) or not value.startswith(GROUP_PREFIX):
        return False
    try:
        _group_id_bytes(value)
    except UsageError:
        return False
    return True


def _group_id_bytes(group_id: str) -> bytes:
    tail = group_id[len(GROUP_PREFIX) :]
    wrong = f"a group id is 'grp-' and 24 base32 characters, not {group_id!r}"
    if not group_id.startswith(GROUP_PREFIX) or len(tail) != 24 or tail != tail.lower():
        raise UsageError(wrong)
    try:
        return base64.b32decode(tail.upper())
    except ValueError:
        raise UsageError(wrong) from None


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A member as a record names it: its identity key, and the peer id that key gives."""

    identity_key: bytes

    @property
    def peer_id(self) -> str:
        return peer_id_for(self.identity_key)

    def __repr__(self) -> str:
        return f"GroupMember({self.peer_id})"


@dataclass(frozen=True)
class MembershipRecord:
    """One version of a group's membership, as signed (see the module docstring)."""

    group_id: str
    version: int
    prev_hash: bytes
    name: str
    members: tuple[GroupMember, ...]  # increasing peer id
    admins: tuple[str, ...]  # peer ids, increasing
    signer: str
    signature: bytes
    origin: bytes | None = None  # version 1 only
    raw: bytes = field(default=b"", repr=False, compare=False)

    @cached_property
    def hash(self) -> bytes:
        """BLAKE2b-256 of the whole encoding: what the next version and messages name."""
        return record_hash(self.raw or encode_record(self))

    @property
    def member_ids(self) -> tuple[str, ...]:
        return tuple(m.peer_id for m in self.members)

    def key_of(self, peer_id: str) -> bytes | None:
        """The identity key this record gives ``peer_id``, or None if not a member."""
        for member in self.members:
            if member.peer_id == peer_id:
                return member.identity_key
        return None

    def short(self) -> str:
        """``v3 1a2b3c4d``: how logs and panels name a record."""
        return f"v{self.version} {self.hash.hex()[:8]}"

    def __repr__(self) -> str:
        names = ", ".join(p[:8] for p in self.member_ids)
        return (
            f"<MembershipRecord {self.group_id} {self.short()} {self.name!r} by "
            f"{self.signer[:8]}: members [{names}], admins "
            f"[{', '.join(a[:8] for a in self.admins)}]>"
        )


def record_hash(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=HASH_BYTES, person=HASH_PERSON).digest()


def _body(
    group_id: str,
    version: int,
    prev_hash: bytes,
    origin: bytes | None,
    name: str,
    members: tuple[GroupMember, ...],
    admins: tuple[str, ...],
    signer: str,
) -> bytes:
    """Everything the signature covers, checked as the decoder would check it."""
    if (
        isinstance(version, bool)
        or not isinstance(version, int)
        or not 1 <= version <= (MAX_SAFE_INT)
    ):
        raise UsageError(f"a record version is an int from 1 to 2**53-1, not {version!r}")
    if len(prev_hash) != HASH_BYTES or (version == 1) != (prev_hash == ZERO_HASH):
        raise UsageError("prev_hash is 32 bytes: zero for version 1 only")
    if (version == 1) != (origin is not None) or (origin is not None and len(origin) != 16):
        raise UsageError("version 1, and only version 1, carries a 16-byte origin")
    encoded_name = name.encode("utf-8")
    if len(encoded_name) > MAX_NAME_BYTES or not name.isprintable():
        raise UsageError(f"a group name is printable and at most {MAX_NAME_BYTES} bytes of UTF-8")
    ids = [m.peer_id for m in members]
    if not 1 <= len(ids) <= MAX_MEMBERS or ids != sorted(set(ids)):
        raise UsageError(f"a record has 1 to {MAX_MEMBERS} distinct members, sorted by peer id")
    if any(len(m.identity_key) != KEY_BYTES for m in members):
        raise UsageError("a member's identity key is 32 bytes")
    if not admins or list(admins) != sorted(set(admins)) or not set(admins) <= set(ids):
        raise UsageError("admins are a non-empty, sorted set of members")
    parts = [
        bytes((FORMAT,)),
        _group_id_bytes(group_id),
        uvarint(version),
        prev_hash,
        origin or b"",
        uvarint(len(encoded_name)),
        encoded_name,
        uvarint(len(members)),
        *(m.identity_key for m in members),
        uvarint(len(admins)),
        *(uvarint(ids.index(a)) for a in admins),
        device_id_bytes(signer),
    ]
    return b"".join(parts)


def encode_record(record: MembershipRecord) -> bytes:
    return (
        _body(
            record.group_id,
            record.version,
            record.prev_hash,
            record.origin,
            record.name,
            record.members,
            record.admins,
            record.signer,
        )
        + record.signature
    )


def sign_record(
    signer: Identity,
    *,
    group_id: str,
    version: int,
    prev_hash: bytes,
    name: str,
    members: list[GroupMember] | tuple[GroupMember, ...],
    admins: list[str] | tuple[str, ...] | set[str],
    origin: bytes | None = None,
) -> MembershipRecord:
    """A record signed by ``signer`` (members sorted and admins normalised here)."""
    ordered = tuple(sorted(members, key=lambda m: m.peer_id))
    chosen = tuple(sorted(set(admins)))
    body = _body(group_id, version, prev_hash, origin, name, ordered, chosen, signer.peer_id)
    signature = signer.sign(SIGN_DOMAIN, body)
    return MembershipRecord(
        group_id, version, prev_hash, name, ordered, chosen, signer.peer_id, signature,
        origin, body + signature,
    )  # fmt: skip


def genesis(
    creator: Identity,
    name: str,
    members: list[GroupMember] | tuple[GroupMember, ...],
    *,
    random: Random = random_bytes,
) -> MembershipRecord:
    """Version 1 of a new group: its id from the creator's key and fresh randomness, the
    creator its first admin (and a member)."""
    origin = random(ORIGIN_BYTES)
    me = GroupMember(creator.public.identity_key)
    everyone = {m.peer_id: m for m in [*members, me]}
    return sign_record(
        creator,
        group_id=derive_group_id(creator.public.identity_key, origin),
        version=1,
        prev_hash=ZERO_HASH,
        name=name,
        members=list(everyone.values()),
        admins=[creator.peer_id],
        origin=origin,
    )


def check_signature(record: MembershipRecord, key: bytes) -> None:
    """:class:`ForgedGroupRecord` unless ``key`` signed ``record``."""
    body = (record.raw or encode_record(record))[:-SIGNATURE_BYTES]
    try:
        verify(key, SIGN_DOMAIN, body, record.signature)
    except BadSignature:
        raise ForgedGroupRecord(
            f"{record.group_id} {record.short()}: the signature is not {record.signer}'s; "
            "the record was altered or forged"
        ) from None


def decode_record(data: bytes) -> MembershipRecord:
    """Strictly parse one record (its signature is checked by :mod:`.chain`, which knows
    the signer's key); every defect is :class:`MalformedGroupRecord`."""
    data = as_bytes(data, "a membership record")
    if len(data) > MAX_RECORD_BYTES:
        raise MalformedGroupRecord(f"a membership record is at most {MAX_RECORD_BYTES} bytes")
    r = Reader(data, MalformedGroupRecord, "membership record")
    if r.byte("format") != FORMAT:
        raise r.fail(f"format is not {FORMAT}")
    raw_id = r.take(GROUP_ID_BYTES, "group id")
    group_id = GROUP_PREFIX + base64.b32encode(raw_id).decode("ascii").lower()
    version = r.uvarint("version", 1, MAX_SAFE_INT)
    prev_hash = r.take(HASH_BYTES, "prev_hash")
    if (version == 1) != (prev_hash == ZERO_HASH):
        raise r.fail("prev_hash is zero for version 1, and only for it")
    origin = r.take(ORIGIN_BYTES, "origin") if version == 1 else None
    try:
        name = r.sized("name", 0, MAX_NAME_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise r.fail("name is not UTF-8") from None
    if not name.isprintable():
        raise r.fail("name has characters that are not printable")
    count = r.uvarint("member count", 1, MAX_MEMBERS)
    members = tuple(GroupMember(r.take(KEY_BYTES, "member key")) for _ in range(count))
    ids = [m.peer_id for m in members]
    if any(a >= b for a, b in itertools.pairwise(ids)):
        raise r.fail("members are not distinct and in increasing peer-id order")
    admin_count = r.uvarint("admin count", 1, count)
    indices = [r.uvarint("admin", 0, count - 1) for _ in range(admin_count)]
    if any(a >= b for a, b in itertools.pairwise(indices)):
        raise r.fail("admins are not distinct and in increasing order")
    signer = device_id_text(r.take(DEVICE_ID_BYTES, "signer"))
    signature = r.take(SIGNATURE_BYTES, "signature")
    r.end()
    return MembershipRecord(
        group_id, version, prev_hash, name, members, tuple(ids[i] for i in indices), signer,
        signature, origin, data,
    )  # fmt: skip


__all__ = [
    "GROUP_PREFIX",
    "MAX_MEMBERS",
    "ZERO_HASH",
    "GroupMember",
    "MembershipRecord",
    "check_signature",
    "decode_record",
    "derive_group_id",
    "encode_record",
    "genesis",
    "is_group_id",
    "record_hash",
    "sign_record",
]
