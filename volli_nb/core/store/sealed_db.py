"""An SQLite file whose rows are sealed with a key that a passphrase unlocks.

This is the machinery under :class:`volli_nb.core.store.database.Database`: opening and
creating the file, the keyring, schema migrations, sealing fields, row MACs, and
transactions.  Opening takes the profile's lock first (one owner at a time, see
:mod:`.profile_lock`), then reads the keyring through a read-only connection, so a
wrong passphrase changes no byte of the file; only an unlocked file is switched to WAL
and migrated.  A new profile is built in a temporary file and renamed into place.

One connection per object, used from one thread.  Writes run in ``BEGIN
IMMEDIATE`` transactions (a write waits up to ``timeout`` seconds for another
process's lock, then fails as :class:`StorageBusy`: see :mod:`.sqlite_errors`).
WAL with ``synchronous=NORMAL``: a committed write survives the process being killed
at any point (SIGKILL included); only a power cut or OS crash may lose the last few
commits, which costs an fsync per commit less.
"""

from __future__ import annotations

import hmac
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

import sqlite_utils

from volli_nb.base.clock import Clock, system_clock
from volli_nb.base.errors import StorageError, UsageError
from volli_nb.core.crypto.primitives import AEAD_KEY_BYTES, Random, random_bytes
from volli_nb.core.store.keyring import (
    KDF_MODERATE,
    KdfCost,
    WrappedKey,
    aead_open,
    aead_seal,
    field_context,
    passphrase_bytes,
)
from volli_nb.core.store.profile_files import (
    FORMAT,
    check_not_empty,
    check_not_folder,
    connect,
    durable_rename,
    read_header,
    remove_with_side_files,
    temporary_path,
)
from volli_nb.core.store.profile_lock import ProfileLock
from volli_nb.core.store.sqlite_errors import BUSY_TIMEOUT, storage_error

Params = Sequence[Any] | dict[str, Any]
Migration = Callable[[Any], None]
Row = sqlite3.Row


class SealedDatabase:
    """The file, its key and its schema version; subclasses add the tables.

    ``MIGRATIONS[n]`` takes schema ``n`` to ``n + 1`` (append; never edit a
    released step).  ``SEALED_COLUMNS`` maps each table to its primary key and
    sealed columns, so a migration can re-seal them under the new version (and
    :meth:`rekey` under a new key); :class:`~volli_nb.core.store.row_macs.RowMacs` extends
    that to the rows that carry a MAC.
    """

    MIGRATIONS: ClassVar[Sequence[Migration]] = ()
    SEALED_COLUMNS: ClassVar[Mapping[str, tuple[str, tuple[str, ...]]]] = {}
    PADDED_FROM: ClassVar[int | None] = None
    """The schema version from which sealed values are padded (None: never)."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        key: bytes,
        schema_version: int,
        *,
        clock: Clock,
        random: Random,
    ) -> None:
        self.path = path
        self.clock = clock
        self.schema_version = schema_version
        self._conn = conn
        self._key = key
        self._random = random
        self._savepoints = 0
        self._lock: ProfileLock | None = None  # set by open(); released by close()
        self.db = sqlite_utils.Database(conn)  # for inspection and ad-hoc queries

    # --- opening, keys, migrations --------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        passphrase: str | bytes,
        *,
        kdf: KdfCost = KDF_MODERATE,
        clock: Clock = system_clock,
        random: Random = random_bytes,
        timeout: float = BUSY_TIMEOUT,
    ) -> Self:
        """Unlock the profile at ``path``, or create one if nothing exists there (with ``kdf``).

        The lock comes first (:mod:`.profile_lock`): another open, here or in another
        process, raises :class:`ProfileInUse`.  Raises :class:`WrongPassphrase` (file
        untouched) or :class:`StorageError` (a folder, an empty file, not a profile,
        damaged, or written by a newer volli_nb)."""
        path = Path(path)
        check_not_folder(path)
        lock = ProfileLock.acquire(path.resolve(), clock=clock)  # a symlink is the same profile
        try:
            if not path.exists():
                db = cls._create(path, passphrase, kdf, clock, random, timeout)
            else:
                db = cls._unlock(path, passphrase, clock, random, timeout)
            lock.cover(path)  # (a new file's) identity: a hard link to it is no other owner
        except BaseException:
            lock.release()
            raise
        db._lock = lock
        return db

    @classmethod
    def _unlock(
        cls, path: Path, passphrase: str | bytes, clock: Clock, random: Random, timeout: float
    ) -> Self:
        check_not_empty(path)
        version, wrapped = read_header(path, cls)
        if version > len(cls.MIGRATIONS):
            raise StorageError(
                f"{path} has schema version {version} but this volli_nb knows only up to "
                f"{len(cls.MIGRATIONS)}; upgrade volli_nb to open it (the file was not changed)"
            )
        key = wrapped.unwrap(passphrase)
        db = cls(path, connect(path, timeout), key, version, clock=clock, random=random)
        try:
            db._migrate()
        except BaseException:
            db.close()
            raise
        return db

    @classmethod
    def _create(
        cls,
        path: Path,
        passphrase: str | bytes,
        kdf: KdfCost,
        clock: Clock,
        random: Random,
        timeout: float,
    ) -> Self:
        """A new profile, built in a temporary file renamed into place (under the lock):
        ``path`` never holds half a profile, and the next creation removes a crash's."""
        if not passphrase_bytes(passphrase):
            raise UsageError("choose a non-empty passphrase for a new profile")
        key = random(AEAD_KEY_BYTES)
        wrapped = WrappedKey.wrap(key, passphrase, kdf, random)
        temp = temporary_path(path)
        remove_with_side_files(temp)
        db = cls(temp, connect(temp, timeout), key, 0, clock=clock, random=random)
        try:
            with db.transaction():
                db._create_header(wrapped)
                db._migrate()
            db._conn.close()  # the last connection: the WAL is folded in and removed
            durable_rename(temp, path)
        except BaseException:
            db._conn.close()
            remove_with_side_files(temp)
            raise
        conn = connect(path, timeout)
        return cls(path, conn, key, db.schema_version, clock=clock, random=random)

    def _create_header(self, wrapped: WrappedKey) -> None:
        """The unversioned part of the file: format marker, schema version, keyring."""
        self.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.execute(
            """CREATE TABLE keyring (id INTEGER PRIMARY KEY CHECK (id = 1), kdf TEXT NOT NULL,
            aead TEXT NOT NULL, salt BLOB NOT NULL, opslimit INTEGER NOT NULL,
            memlimit INTEGER NOT NULL, wrapped BLOB NOT NULL)"""
        )
        meta = {"format": FORMAT, "schema_version": "0", "created_at": str(self.clock())}
        self.execute_many("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        self._write_keyring(wrapped)

    def _write_keyring(self, wrapped: WrappedKey) -> None:
        row = wrapped.to_row()
        names, marks = ", ".join(row), ", ".join("?" * len(row))
        self.execute(
            f"INSERT OR REPLACE INTO keyring ({names}) VALUES ({marks})", list(row.values())
        )

    def _migrate(self) -> None:
        """Apply each missing step in its own transaction; re-seal first, then migrate."""
        while self.schema_version < len(self.MIGRATIONS):
            old = self.schema_version
            try:
                with self.transaction():
                    self._reseal(old, old + 1)
                    self.schema_version = old + 1
                    self.MIGRATIONS[old](self)
                    self.execute(
                        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(old + 1),)
                    )
            except BaseException:
                self.schema_version = old
                raise

    def columns(self, table: str) -> set[str]:
        """The column names ``table`` has now (migrations add some)."""
        return {r["name"] for r in self.fetch(f"PRAGMA table_info({table})")}

    def _reseal(self, old: int, new: int, key: bytes | None = None) -> None:
        """Sealed values name the schema version; move every one from ``old`` to ``new``
        (and to ``key``, when rekeying)."""
        for table, (pk, columns) in self.SEALED_COLUMNS.items():
            present = self.columns(table)
            for column in [c for c in columns if c in present]:
                rows = self.fetch(f"SELECT {pk} AS pk, {column} AS v FROM {table}")
                for row in [r for r in rows if r["v"] is not None]:
                    plain = self._unseal_at(old, table, column, row["pk"], row["v"])
                    sealed = self._seal_at(new, table, column, row["pk"], plain, key)
                    self.execute(
                        f"UPDATE {table} SET {column} = ? WHERE {pk} = ?", (sealed, row["pk"])
                    )

    def change_passphrase(
        self, old: str | bytes, new: str | bytes, *, kdf: KdfCost | None = None
    ) -> None:
        """Re-wrap the database key under ``new`` (and a new salt) in one transaction.

        Protects against someone who learns ``old`` *from now on*: the file no longer
        opens with it.  The database key is unchanged, so whoever already holds it (who
        copied the file while ``old`` was known) still reads every later copy; use
        :meth:`~volli_nb.core.store.row_macs.RowMacs.rekey` against that.  ``kdf``
        defaults to the current cost.
        """
        if not passphrase_bytes(new):
            raise UsageError("the new passphrase is empty; choose a non-empty one")
        self._rewrap(old, new, self._key, kdf)

    def _rewrap(
        self,
        passphrase: str | bytes,
        new_passphrase: str | bytes,
        key: bytes,
        kdf: KdfCost | None,
        then: Callable[[], None] = lambda: None,
    ) -> None:
        """If ``passphrase`` opens the keyring: wrap ``key`` under ``new_passphrase``, then
        in one transaction run ``then`` and write the new keyring; ``key`` is the open
        database's key from that commit on (before the checkpoint, which may fail)."""
        current = self._keyring()
        if not hmac.compare_digest(current.unwrap(passphrase), self._key):
            raise StorageError("the keyring does not match the open database; reopen the profile")
        cost = kdf or KdfCost(current.opslimit, current.memlimit)
        wrapped = WrappedKey.wrap(key, new_passphrase, cost, self._random)  # slow: before the lock
        with self.transaction():
            if self._keyring() != current:
                raise StorageError("the passphrase was changed concurrently; try again")
            then()
            self._write_keyring(wrapped)
        self._key = key  # committed: whatever is sealed next must open with the file's key
        if not self._conn.in_transaction:  # else the caller's commit comes later
            # Drop the old wrap (and old ciphertexts) from the WAL, so they do not linger.
            self.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _keyring(self) -> WrappedKey:
        return WrappedKey.from_row(dict(self.fetch("SELECT * FROM keyring WHERE id = 1")[0]))

    # --- sealed fields ----------------------------------------------------------

    def seal(self, table: str, column: str, row_id: str | int, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` for exactly this table, column, row and schema version."""
        return self._seal_at(self.schema_version, table, column, row_id, plaintext)

    def unseal(self, table: str, column: str, row_id: str | int, sealed: bytes) -> bytes:
        """Decrypt a value from :meth:`seal`; :class:`StorageError` if altered or moved."""
        return self._unseal_at(self.schema_version, table, column, row_id, sealed)

    def _padded(self, version: int) -> bool:
        """Whether values sealed at ``version`` are padded to a size bucket first."""
        return self.PADDED_FROM is not None and version >= self.PADDED_FROM

    def _seal_at(
        self,
        version: int,
        table: str,
        column: str,
        row_id: str | int,
        plaintext: bytes,
        key: bytes | None = None,
    ) -> bytes:
        context = field_context(table, column, row_id, version)
        key = self._key if key is None else key
        return aead_seal(key, context, bytes(plaintext), self._random, pad=self._padded(version))

    def _unseal_at(
        self, version: int, table: str, column: str, row_id: str | int, sealed: bytes
    ) -> bytes:
        context = field_context(table, column, row_id, version)
        padded = self._padded(version)
        plain = aead_open(self._key, context, sealed, padded) if isinstance(sealed, bytes) else None
        if plain is None:
            raise StorageError(
                f"sealed {table}.{column} of row {row_id!r} does not open: it was tampered "
                f"with or moved from another row or column; restore {self.path} from a backup"
            )
        return plain

    # --- plumbing -------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Atomic block; nested blocks become savepoints that roll back on their own."""
        if self._conn.in_transaction:
            self._savepoints += 1
            name = f"volli_sp{self._savepoints}"
            self.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                if self._conn.in_transaction:
                    self.execute(f"ROLLBACK TO {name}")
                    self.execute(f"RELEASE {name}")
                raise
            else:
                self.execute(f"RELEASE {name}")
            finally:
                self._savepoints -= 1
            return
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.rollback()
            raise

    def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        """Run one statement; SQLite errors come out as :class:`StorageError`."""
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def execute_many(self, sql: str, rows: Sequence[Params]) -> None:
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def trace_statements(self, callback: Callable[[str], None] | None) -> None:
        """``callback`` hears every statement SQLite runs (None stops it): what a benchmark
        counts.  Off by default: a callback per statement costs time."""
        self._conn.set_trace_callback(callback)

    def fetch(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        """All rows of a query, addressable by column name."""
        cursor = self.execute(sql, params)
        cursor.row_factory = sqlite3.Row
        try:
            return cursor.fetchall()
        except sqlite3.Error as exc:  # a damaged page shows while reading rows
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> StorageError:
        return storage_error(self.path, exc)

    def close(self) -> None:
        """Close the connection (SQLite folds the WAL back into the main file) and give up
        the profile's lock (idempotent)."""
        self._conn.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {str(self.path)!r} schema={self.schema_version}>"
