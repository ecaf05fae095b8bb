"""Row MACs: trust data stays readable in clear, but not editable without the passphrase.

Contacts (keys, device epoch, name, ``verified``), conversations (members, title),
messages (conversation, sender, direction, counter, time) and outbox rows (message,
conversation, recipient) are plain columns, so ``sqlite-utils`` can list a profile
without its passphrase.  Whoever can write the file could also *edit* them: add a
contact to a conversation so the next message is encrypted to them, re-attribute a
received message, flip ``verified``.  So each such row carries a MAC
(:func:`~volli_nb.core.store.keyring.row_mac`: keyed BLAKE2b under a key derived from
the database key, bound to the table, the primary key and the schema version), written
with every change and checked on every read; a mismatch is
:class:`~volli_nb.base.errors.TamperedRow`, which names the row.

A MAC is always computed from the values the code writes (with the covered values it
read and checked just before), never from the row read back after writing: a trigger
planted in the file (refused on open, see :mod:`.known_schema`, but one could be added
while the profile is open) would otherwise get its own change blessed.

A *part MAC* (``PART_MACS``) covers a few more columns of a row that change on their own,
keyed by what identifies the row: an outbox row's status (an ACK sets it without reading
the row), a sent message's record of its pruned outbox rows.  What a MAC cannot see: a
row deleted, or a whole row put back from an older copy of the file; the contacts are
covered against that by their index (:mod:`.contacts`), the outbox by
:mod:`.message_queue`'s expected recipients (see docs/security.md).

:meth:`RowMacs.rekey` renews the database key, and with it the MAC key: moving sealed
values to a new key or schema version (``_reseal``) moves the MACs along.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, ClassVar

from volli_nb.base.errors import TamperedRow, UsageError
from volli_nb.core.crypto.primitives import AEAD_KEY_BYTES
from volli_nb.core.store.keyring import KdfCost, row_mac, row_mac_key
from volli_nb.core.store.sealed_db import Row, SealedDatabase

MAC_COLUMN = "mac"
AnyRow = Mapping[str, Any] | Row


class RowMacs(SealedDatabase):
    """Rows with a ``mac`` column, listed in ``AUTHENTICATED``; see the module docstring."""

    AUTHENTICATED: ClassVar[Mapping[str, tuple[str, tuple[str, ...]]]] = {}
    """Table → (primary key, covered columns).  Covered columns hold TEXT, INTEGER, BLOB
    or NULL, so a value reads back exactly as it was written (no REAL affinity games)."""
    PART_MACS: ClassVar[Mapping[str, tuple[str, tuple[str, ...]]]] = {}
    """Table → (part MAC column, covered columns: what identifies the row, then the value
    the part MAC is for), beside the row MAC of ``AUTHENTICATED``."""

    _mac_cache: tuple[bytes, bytes] | None = None  # (database key, MAC key)

    @property
    def _mac_key(self) -> bytes:
        if self._mac_cache is None or self._mac_cache[0] is not self._key:
            self._mac_cache = (self._key, row_mac_key(self._key))
        return self._mac_cache[1]

    def row_mac(self, table: str, row: AnyRow) -> bytes:
        """The MAC ``row`` (its covered columns, by name) must carry in ``table``."""
        return self._row_mac_at(self.schema_version, table, row, self._mac_key)

    def check_row(self, table: str, row: AnyRow) -> None:
        """:class:`TamperedRow`, naming the row, unless its MAC matches its columns."""
        self._check_row_at(self.schema_version, table, row)

    def part_mac(self, table: str, values: AnyRow) -> bytes:
        """The part MAC (``PART_MACS[table]``) of these covered values."""
        return self._part_mac_at(self.schema_version, table, values, self._mac_key)

    def check_part(self, table: str, row: AnyRow) -> None:
        """:class:`TamperedRow` unless ``row``'s part MAC matches; a part whose last covered
        column and MAC are both NULL is absent (nothing recorded), which is no claim."""
        self._check_part_at(self.schema_version, table, row)

    def authenticate_all(self, tables: tuple[str, ...]) -> int:
        """Compute the MAC of every row of these authenticated tables (the migration that
        adds their MAC columns); returns how many rows."""
        count = 0
        for table in tables:
            pk, _ = self.AUTHENTICATED[table]
            for row in self.fetch(f"SELECT * FROM {table}"):
                self._write_mac(table, row[pk], self.row_mac(table, row))
                count += 1
        return count

    def rekey(self, passphrase: str | bytes, *, kdf: KdfCost | None = None) -> None:
        """A new random database key: every sealed field re-sealed and every row MAC
        recomputed under it, and the key wrapped under ``passphrase``, in one transaction.

        Protects against someone who holds the *old database key* (who copied the file
        while they knew an old passphrase; :meth:`change_passphrase` alone lets them read
        every later copy): later copies open only with the new key.  What they copied
        before stays readable to them.  Costs one pass over every sealed value and MAC.
        """
        if self._conn.in_transaction:
            raise UsageError("rekey() commits on its own; call it outside a transaction")
        new_key = self._random(AEAD_KEY_BYTES)
        version = self.schema_version
        self._rewrap(
            passphrase, passphrase, new_key, kdf, lambda: self._reseal(version, version, new_key)
        )

    # --- moving to a new schema version or key ------------------------------------

    def _reseal(self, old: int, new: int, key: bytes | None = None) -> None:
        super()._reseal(old, new, key)
        mac_key = self._mac_key if key is None else row_mac_key(key)
        for table, (pk, _) in self.AUTHENTICATED.items():
            if MAC_COLUMN not in self.columns(table):
                continue  # the step that adds the MACs computes them
            for row in self.fetch(f"SELECT * FROM {table}"):
                self._check_row_at(old, table, row)
                self._write_mac(table, row[pk], self._row_mac_at(new, table, row, mac_key))
        for table, (column, _) in self.PART_MACS.items():
            if column not in self.columns(table):
                continue
            pk, _ = self.AUTHENTICATED[table]
            for row in self.fetch(f"SELECT * FROM {table}"):
                self._check_part_at(old, table, row)
                if row[column] is not None:
                    mac = self._part_mac_at(new, table, row, mac_key)
                    self.execute(f"UPDATE {table} SET {column} = ? WHERE {pk} = ?", (mac, row[pk]))

    def _write_mac(self, table: str, key: object, mac: bytes) -> None:
        pk, _ = self.AUTHENTICATED[table]
        self.execute(f"UPDATE {table} SET {MAC_COLUMN} = ? WHERE {pk} = ?", (mac, key))

    def _row_mac_at(self, version: int, table: str, row: AnyRow, mac_key: bytes) -> bytes:
        _, columns = self.AUTHENTICATED[table]
        return row_mac(mac_key, table, version, [(c, row[c]) for c in columns])

    def _part_mac_at(self, version: int, table: str, values: AnyRow, mac_key: bytes) -> bytes:
        column, covered = self.PART_MACS[table]
        return row_mac(mac_key, f"{table}.{column}", version, [(c, values[c]) for c in covered])

    def _check_part_at(self, version: int, table: str, row: AnyRow) -> None:
        column, covered = self.PART_MACS[table]
        stored = row[column]
        if stored is None and row[covered[-1]] is None:
            return
        expected = self._part_mac_at(version, table, row, self._mac_key)
        if not isinstance(stored, bytes) or not hmac.compare_digest(stored, expected):
            pk, _ = self.AUTHENTICATED[table]
            raise TamperedRow(
                table,
                row[pk],
                f"{table} row {row[pk]!r}: its {covered[-1]} does not "
                f"match its MAC ({column}): it was edited without the passphrase (or put back "
                f"from an older copy); restore {self.path} from a backup",
            )

    def _check_row_at(self, version: int, table: str, row: AnyRow) -> None:
        pk, _ = self.AUTHENTICATED[table]
        stored = row[MAC_COLUMN]
        expected = self._row_mac_at(version, table, row, self._mac_key)
        if not isinstance(stored, bytes) or not hmac.compare_digest(stored, expected):
            raise TamperedRow(
                table,
                row[pk],
                f"{table} row {row[pk]!r} does not match its MAC: it was edited (or added) "
                f"without the passphrase; restore {self.path} from a backup, or delete the row",
            )


__all__ = ["MAC_COLUMN", "RowMacs"]
