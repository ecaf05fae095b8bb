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
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass

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
from volli_nb.core.store.row_macs import RowMacs
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
    """The ``contacts`` table."""

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
            self.check_pin(old, record)
            if record.peer_id != peer_id:
                raise UsageError(f"peer id {peer_id!r} is not the id of that identity key")
            record.verify()
            if old is None:
                self.execute(
                    "INSERT INTO contacts (peer_id, name, identity_key, device_key, "
                    "device_signature, device_epoch, verified, added_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (peer_id, name, identity_key, device_key, device_signature, device_epoch,
                     int(verified), self.clock()),
                )  # fmt: skip
            else:
                self.execute(
                    """UPDATE contacts SET device_key = ?, device_signature = ?,
                    device_epoch = ?, name = COALESCE(?, name), verified = MAX(verified, ?)
                    WHERE peer_id = ?""",
                    (device_key, device_signature, device_epoch, name, int(verified), peer_id),
                )
            self.update_mac("contacts", peer_id)

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
            self._update_contact(peer_id, "verified = ?", int(verified))
            self.update_mac("contacts", peer_id)

    def remove_contact(self, peer_id: str) -> None:
        """Unpin a contact, e.g. after a :class:`KeyMismatch` was checked out of band."""
        if self.execute("DELETE FROM contacts WHERE peer_id = ?", (peer_id,)).rowcount == 0:
            raise NotFound(f"no contact {peer_id!r}; see list_contacts()")

    def touch_contact(self, peer_id: str, now: float) -> bool:
        """Record ``last_seen``; False (not an error) for an unknown peer."""
        cursor = self.execute("UPDATE contacts SET last_seen = ? WHERE peer_id = ?", (now, peer_id))
        return cursor.rowcount > 0

    def _update_contact(self, peer_id: str, assignment: str, value: object) -> None:
        sql = f"UPDATE contacts SET {assignment} WHERE peer_id = ?"
        if self.execute(sql, (value, peer_id)).rowcount == 0:
            raise NotFound(f"no contact {peer_id!r}; see list_contacts()")

    def _contact(self, row: Row) -> Contact:
        """A row, once its MAC and its device signature verified."""
        self.check_row("contacts", row)
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
