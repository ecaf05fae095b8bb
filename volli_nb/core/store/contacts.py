"""Pinned contacts: the keys we accept for each peer id (trust on first use).

A mixin over :class:`~volli_nb.core.store.sealed_db.SealedDatabase`, composed into
:class:`~volli_nb.core.store.database.Database`, which owns the schema.  Keys are public,
so they are stored in clear: a profile's contacts can be listed without its passphrase.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from volli_nb.base.errors import KeyMismatch, NotFound, UsageError
from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.core.crypto.primitives import KEY_BYTES, SIGNATURE_BYTES
from volli_nb.core.store.sealed_db import Row, SealedDatabase


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

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(self.identity_key, self.device_key, self.device_signature)


class Contacts(SealedDatabase):
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
    ) -> None:
        """Pin a contact's keys (trust on first use).

        The caller verifies the keys first (``PublicIdentity.verify()``).  The same
        identity key may bring a new device key; a different identity key raises
        :class:`KeyMismatch`, and only an explicit :meth:`remove_contact` unpins it.
        """
        if (len(identity_key), len(device_key), len(device_signature)) != (
            KEY_BYTES,
            KEY_BYTES,
            SIGNATURE_BYTES,
        ):
            raise UsageError("contact keys are 32 bytes each and the device signature 64 bytes")
        with self.transaction():
            old = self.get_contact(peer_id)
            if old is None:
                self.execute(
                    "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                    (
                        peer_id,
                        name,
                        identity_key,
                        device_key,
                        device_signature,
                        verified,
                        self.clock(),
                    ),
                )
            elif not hmac.compare_digest(old.identity_key, identity_key):
                raise KeyMismatch(
                    f"contact {peer_id} is pinned to identity key {old.identity_key.hex()[:16]}… "
                    f"but was offered {identity_key.hex()[:16]}…: someone may be impersonating "
                    "them, or they reset their identity.  Compare safety numbers out of band; "
                    f"only if they match, remove_contact({peer_id!r}) and add them again"
                )
            else:
                self.execute(
                    """UPDATE contacts SET device_key = ?, device_signature = ?,
                    name = COALESCE(?, name), verified = MAX(verified, ?) WHERE peer_id = ?""",
                    (device_key, device_signature, name, verified, peer_id),
                )

    def get_contact(self, peer_id: str) -> Contact | None:
        rows = self.fetch("SELECT * FROM contacts WHERE peer_id = ?", (peer_id,))
        return _contact(rows[0]) if rows else None

    def list_contacts(self) -> list[Contact]:
        return [_contact(r) for r in self.fetch("SELECT * FROM contacts ORDER BY added_at, rowid")]

    def set_verified(self, peer_id: str, verified: bool = True) -> None:
        """Record that the safety number was compared (or withdraw that)."""
        self._update_contact(peer_id, "verified = ?", verified)

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


def _contact(row: Row) -> Contact:
    return Contact(
        row["peer_id"],
        row["identity_key"],
        row["device_key"],
        row["device_signature"],
        row["name"],
        bool(row["verified"]),
        row["added_at"],
        row["last_seen"],
    )
