"""Pinned contacts: the keys we accept for each peer id (trust on first use).

A mixin over :class:`~volli_nb.core.store.row_macs.RowMacs`, composed into
:class:`~volli_nb.core.store.database.Database`, which owns the schema.  Keys are public,
so they are stored in clear: a profile's contacts can be listed without its passphrase.
They cannot be *edited* without it: each row carries a MAC (see ``SealedDatabase``)
over its keys, device epoch, name and ``verified``, checked on every read, and the
device signature is verified again whenever a contact is loaded.

A pin moves only forward: the same identity key with a device record of a strictly
newer epoch replaces the device key (a rotation); an older record, or another device key
under the same epoch, is :class:`StaleDeviceRecord` (an old, validly signed record
replayed to roll the key back), and another identity key is :class:`KeyMismatch`.

A row MAC cannot tell a current row from the same row put back from an older copy of
the file (its MAC still matches): that would re-pin a retired device key, or bring back
a ``verified`` flag since withdrawn.  So the contacts have an *index* (from schema 3):
one MAC'd row, ``contact_marks``, mapping each pinned peer id to its row's current MAC,
rewritten with every pin change.  A contact whose row MAC is not the one the index
holds, or that the index does not list, is :class:`TamperedRow`; putting the index
back too makes every contact changed since that copy fail instead.  Only the whole
contacts table put back together with its index, as it was at some earlier time, goes
unnoticed (docs/security.md).  The index is read once and kept until the next write.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from volli_nb.base.errors import (
    BadSignature,
    KeyMismatch,
    MalformedEnvelope,
    NotFound,
    StaleDeviceRecord,
    TamperedRow,
    UsageError,
)
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.crypto.primitives import KEY_BYTES, SIGNATURE_BYTES
from volli_nb.core.eventlog import wall_clock
from volli_nb.core.store.keyring import row_mac_key
from volli_nb.core.store.row_macs import MAC_COLUMN, RowMacs
from volli_nb.core.store.sealed_db import Row

CONTACT_COLUMNS = (
    "peer_id",
    "name",
    "identity_key",
    "device_key",
    "device_signature",
    "device_epoch",
    "verified",
)
"""What a contact row's MAC covers (``added_at`` and ``last_seen`` are bookkeeping)."""
MARKS_TABLE = "contact_marks"
MARKS_COLUMNS = ("id", "marks")


@dataclass(frozen=True)
class Contact:
    """A pinned contact: the keys we accept for this peer id until it is removed."""

    peer_id: str
    identity_key: bytes
    device_key: bytes
    device_signature: bytes
    name: str | None
    verified: bool
    added_at: float
    last_seen: float | None
    device_epoch: int = 0

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(
            self.identity_key, self.device_key, self.device_signature, self.device_epoch
        )

    def __repr__(self) -> str:
        """Name and id, whether the safety number was checked, when last seen: no raw keys."""
        seen = "never seen" if self.last_seen is None else f"last seen {wall_clock(self.last_seen)}"
        checked = "verified" if self.verified else "not verified"
        return f"<Contact {self.name or '(no name)'} {self.peer_id}, {checked}, {seen}>"


@functools.lru_cache(maxsize=4096)
def _signed(identity: PublicIdentity) -> bool:
    """Whether the identity key signed this device record (cached: every envelope loads
    its sender's contact, and a record's signature does not change)."""
    try:
        identity.verify()
    except (BadSignature, MalformedEnvelope):
        return False
    return True


class Contacts(RowMacs):
    """The ``contacts`` table, and its index ``contact_marks`` (see the module docstring)."""

    MARKS_FROM: ClassVar[int | None] = None
    """The schema version from which the contacts have their index (None: never)."""

    _marks: dict[str, bytes] | None = None  # the index as last read and checked

    def add_contact(
        self,
        peer_id: str,
        identity_key: bytes,
        device_key: bytes,
        device_signature: bytes,
        *,
        name: str | None = None,
        verified: bool = False,
        device_epoch: int = 0,
    ) -> None:
        """Pin a contact's keys (trust on first use), or move its pin to a newer device.

        The record must verify (:class:`BadSignature` otherwise); a conflicting pin is
        refused (:class:`KeyMismatch`, :class:`StaleDeviceRecord`, see the module
        docstring), and only an explicit :meth:`remove_contact` unpins."""
        record = PublicIdentity(identity_key, device_key, device_signature, device_epoch)
        if (len(identity_key), len(device_key), len(device_signature)) != (
            KEY_BYTES,
            KEY_BYTES,
            SIGNATURE_BYTES,
        ):
            raise UsageError("contact keys are 32 bytes each and the device signature 64 bytes")
        with self.transaction():
            old = self.get_contact(peer_id)
            if old is None and peer_id in (self._index() or ()):
                raise TamperedRow(
                    "contacts",
                    peer_id,
                    f"contact {peer_id!r} was deleted from {self.path} without the passphrase "
                    "(the contacts' index still lists it), so it is not pinned again from "
                    "whatever record comes next (an old one would roll its key back); restore "
                    f"the file from a backup, or remove_contact({peer_id!r}) to unpin it",
                )
            self.check_pin(old, record)
            if record.peer_id != peer_id:
                raise UsageError(f"peer id {peer_id!r} is not the id of that identity key")
            record.verify()
            row = {
                "peer_id": peer_id,
                "name": name if name is not None or old is None else old.name,
                "identity_key": identity_key,
                "device_key": device_key,
                "device_signature": device_signature,
                "device_epoch": device_epoch,
                "verified": int(verified or (old is not None and old.verified)),
            }
            self._write_contact(row, insert=old is None)

    def check_pin(self, old: Contact | None, record: PublicIdentity) -> None:
        """Refuse ``record`` if pinning it would replace ``old``'s keys (reads nothing)."""
        if old is None:
            return
        if not hmac.compare_digest(old.identity_key, record.identity_key):
            raise KeyMismatch(
                f"contact {old.peer_id} is pinned to identity key {old.identity_key.hex()[:16]}… "
                f"but was offered {record.identity_key.hex()[:16]}…: someone may be impersonating "
                "them, or they reset their identity.  Compare safety numbers out of band; "
                f"only if they match, remove_contact({old.peer_id!r}) and add them again"
            )
        same_device = hmac.compare_digest(old.device_key, record.device_key)
        if record.device_epoch < old.device_epoch or (
            record.device_epoch == old.device_epoch and not same_device
        ):
            raise StaleDeviceRecord(
                f"contact {old.peer_id}'s pinned device key is epoch {old.device_epoch}; a "
                f"record of epoch {record.device_epoch} with "
                f"{'the same' if same_device else 'another'} device key does not replace it "
                "(an old, validly signed record replayed to roll the key back)"
            )

    def get_contact(self, peer_id: str) -> Contact | None:
        rows = self.fetch("SELECT * FROM contacts WHERE peer_id = ?", (peer_id,))
        return self._contact(rows[0]) if rows else None

    def list_contacts(self) -> list[Contact]:
        rows = self.fetch("SELECT * FROM contacts ORDER BY added_at, rowid")
        return [self._contact(r) for r in rows]

    def set_verified(self, peer_id: str, verified: bool = True) -> None:
        """Record that the safety number was compared (or withdraw that)."""
        with self.transaction():
            old = self.get_contact(peer_id)
            if old is None:
                raise NotFound(f"no contact {peer_id!r}; see list_contacts()")
            row = {c: getattr(old, c) for c in CONTACT_COLUMNS}
            self._write_contact({**row, "verified": int(verified)}, insert=False)

    def remove_contact(self, peer_id: str) -> None:
        """Unpin a contact, e.g. after a :class:`KeyMismatch` was checked out of band."""
        with self.transaction():
            deleted = self.execute("DELETE FROM contacts WHERE peer_id = ?", (peer_id,)).rowcount
            marks = self.contact_marks()
            if not deleted and peer_id not in (marks or {}):
                raise NotFound(f"no contact {peer_id!r}; see list_contacts()")
            if marks is not None:  # (also unpins one deleted from the file by someone else)
                marks.pop(peer_id, None)
                self._write_marks(marks)

    def touch_contact(self, peer_id: str, now: float) -> bool:
        """Record ``last_seen``; False (not an error) for an unknown peer."""
        cursor = self.execute("UPDATE contacts SET last_seen = ? WHERE peer_id = ?", (now, peer_id))
        return cursor.rowcount > 0

    def _write_contact(self, row: Mapping[str, object], *, insert: bool) -> None:
        """Write a contact's covered columns with the MAC of exactly these values, and
        move its index entry along (inside the caller's transaction)."""
        mac = self.row_mac("contacts", row)
        names = [*CONTACT_COLUMNS, MAC_COLUMN]
        values = [*(row[c] for c in CONTACT_COLUMNS), mac]
        if insert:
            marks = ", ".join("?" * (len(names) + 1))
            self.execute(
                f"INSERT INTO contacts ({', '.join(names)}, added_at) VALUES ({marks})",
                [*values, self.clock()],
            )
        else:
            assignments = ", ".join(f"{n} = ?" for n in names[1:])
            self.execute(
                f"UPDATE contacts SET {assignments} WHERE peer_id = ?",
                [*values[1:], row["peer_id"]],
            )
        index = self.contact_marks()
        if index is not None:
            index[str(row["peer_id"])] = mac
            self._write_marks(index)

    # --- the index ------------------------------------------------------------

    def contact_marks(self, *, fresh: bool = False) -> dict[str, bytes] | None:
        """Peer id → the MAC its contact row must carry (a copy), checked; None before the
        schema has the index.  ``fresh`` reads the file again (``verify()``)."""
        if fresh:
            self._marks = None
        index = self._index()
        return None if index is None else dict(index)

    def _index(self) -> dict[str, bytes] | None:
        """The index itself (not a copy: callers only read it)."""
        if self.MARKS_FROM is None or self.schema_version < self.MARKS_FROM:
            return None
        if self._marks is None:
            rows = self.fetch(f"SELECT * FROM {MARKS_TABLE} WHERE id = 1")
            if not rows:
                raise TamperedRow(
                    MARKS_TABLE,
                    1,
                    f"the index of the contacts ({MARKS_TABLE}) is missing: {self.path} was "
                    "edited without the passphrase; restore it from a backup",
                )
            self.check_row(MARKS_TABLE, rows[0])
            self._marks = {p: bytes.fromhex(m) for p, m in json.loads(rows[0]["marks"]).items()}
        return self._marks

    def _write_marks(
        self, marks: dict[str, bytes], *, version: int | None = None, key: bytes | None = None
    ) -> None:
        """Store the index (under ``version`` and ``key`` when a migration or rekey moves
        it); it is read back, checked, at the next use."""
        row = {"id": 1, "marks": json.dumps({p: m.hex() for p, m in sorted(marks.items())})}
        mac_key = self._mac_key if key is None else row_mac_key(key)
        mac = self._row_mac_at(self.schema_version if version is None else version,
                               MARKS_TABLE, row, mac_key)  # fmt: skip
        self._marks = None
        self.execute(
            f"INSERT INTO {MARKS_TABLE} (id, marks, mac) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET marks = excluded.marks, mac = excluded.mac",
            (row["marks"], mac),
        )

    def index_contacts(self) -> None:
        """Write the index from the contacts as they are (the migration that adds it), each
        row's MAC and device signature checked first."""
        rows = self.fetch("SELECT * FROM contacts")
        self._write_marks({self._contact(r, indexed=False).peer_id: r["mac"] for r in rows})

    def _reseal(self, old: int, new: int, key: bytes | None = None) -> None:
        """Row MACs change with the key and the schema version: the index follows them,
        once every contact was checked against it."""
        indexed = self.MARKS_FROM is not None and old >= self.MARKS_FROM
        if indexed:
            for row in self.fetch("SELECT * FROM contacts"):
                self._check_mark(row)
        super()._reseal(old, new, key)
        if indexed:
            macs = {r["peer_id"]: r["mac"] for r in self.fetch("SELECT peer_id, mac FROM contacts")}
            self._write_marks(macs, version=new, key=key)

    def _check_mark(self, row: Row) -> None:
        marks = self._index()
        if marks is None:
            return
        mark, mac = marks.get(row["peer_id"]), row["mac"]
        if mark is None or not isinstance(mac, bytes) or not hmac.compare_digest(mark, mac):
            raise TamperedRow(
                "contacts",
                row["peer_id"],
                f"contact {row['peer_id']!r} is not the one this profile last pinned "
                f"({'not in' if mark is None else 'another row than'} the index of the "
                "contacts): the row was put back from an older copy of the file, or added, "
                f"without the passphrase; restore {self.path} from a backup, or remove and "
                "re-pair the contact",
            )

    def _contact(self, row: Row, *, indexed: bool = True) -> Contact:
        """A row, once its MAC, its index entry and its device signature verified."""
        self.check_row("contacts", row)
        if indexed:
            self._check_mark(row)
        contact = Contact(
            row["peer_id"],
            row["identity_key"],
            row["device_key"],
            row["device_signature"],
            row["name"],
            bool(row["verified"]),
            row["added_at"],
            row["last_seen"],
            row["device_epoch"],
        )
        if contact.public.peer_id != contact.peer_id or not _signed(contact.public):
            raise TamperedRow(
                "contacts",
                contact.peer_id,
                f"contact {contact.peer_id!r}: its device record does not verify (signature "
                f"or peer id); {self.path} was edited; remove and re-pair the contact",
            )
        return contact
