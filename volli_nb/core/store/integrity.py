"""Checking a whole profile: SQLite's own structure check, the schema, every sealed value.

Reading a damaged row raises only when something reads it, maybe days later in the
middle of a send.  :func:`check_integrity` looks at everything at once, so a user can
ask before trusting a file (``volli-shell --profile P --verify``, or
``MessagesStore.verify()``): ``PRAGMA quick_check`` for the B-trees and pages; the
schema against the known one (each planted or altered object named, see
:mod:`.known_schema`); each sealed column of each row opened with the database key,
which also proves it was not edited or moved; each trust-bearing row's MAC and part MAC
checked (an edited member list, ``verified`` flag or outbox status); each contact
against the index of the contacts (a row put back from an older copy); and each sent
message's outbox rows present or recorded by the pruner.  It reads only; nothing is
repaired.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from volli_nb.base.errors import StorageError, TamperedRow
from volli_nb.core.store import outbox_ledger
from volli_nb.core.store.known_schema import (
    SCHEMA_QUERY,
    expected_schema,
    read_schema,
    schema_problems,
)
from volli_nb.core.store.row_macs import MAC_COLUMN

if TYPE_CHECKING:
    from volli_nb.core.store.database import Database

MAX_PROBLEMS = 100  # a badly damaged file is summarised, not listed row by row


@dataclass(frozen=True, repr=False)
class IntegrityReport:
    """What :func:`check_integrity` found; ``ok`` when there is nothing to report."""

    path: str
    quick_check: tuple[str, ...]  # ("ok",) from SQLite when the structure is sound
    sealed_values: int  # sealed values that opened
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def __repr__(self) -> str:  # what the shell's verify() shows
        return str(self)

    def __str__(self) -> str:
        if self.ok:
            return f"{self.path}: ok (SQLite quick_check ok; {_sealed(self.sealed_values)})"
        head = f"{self.path}: {len(self.problems)} problem(s); restore it from a backup"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


def _sealed(n: int) -> str:
    if n == 1:
        return "1 sealed value opens and sits in its own row"
    return f"{n} sealed values open and sit in their own rows"


def check_integrity(db: Database) -> IntegrityReport:
    """Run ``quick_check`` and every check above on ``db``; never raises for damage."""
    try:
        quick = tuple(str(r[0]) for r in db.fetch("PRAGMA quick_check"))
        found = read_schema(tuple(r) for r in db.fetch(SCHEMA_QUERY))
    except StorageError as exc:
        return IntegrityReport(str(db.path), (str(exc),), 0, (f"quick_check failed: {exc}",))
    problems = [f"quick_check: {line}" for line in quick if line != "ok"][:MAX_PROBLEMS]
    expected = expected_schema(type(db), db.schema_version)
    problems += [f"schema: {p}" for p in schema_problems(found, expected, db.schema_version)]
    opened = 0
    for table, (pk, columns) in db.SEALED_COLUMNS.items():
        try:
            present = {r["name"] for r in db.fetch(f"PRAGMA table_info({table})")}
            for column in [c for c in columns if c in present]:
                opened += _open_column(db, table, pk, column, problems)
        except StorageError as exc:
            problems.append(f"table {table} cannot be read: {exc}")
    for table in db.AUTHENTICATED:
        try:
            _check_macs(db, table, problems)
        except StorageError as exc:
            problems.append(f"table {table} cannot be read: {exc}")
    for check in (_check_index, outbox_ledger.missing_rows):
        try:
            problems += check(db)
        except StorageError as exc:
            problems.append(str(exc))
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"… and {len(problems) - MAX_PROBLEMS} more"]
    return IntegrityReport(str(db.path), quick, opened, tuple(problems))


def _open_column(db: Database, table: str, pk: str, column: str, problems: list[str]) -> int:
    """Open each sealed value of one column (read as bytes, whatever was written there)."""
    opened = 0
    sql = f"SELECT {pk} AS pk, CAST({column} AS BLOB) AS v FROM {table} WHERE {column} NOT NULL"
    for row in db.fetch(sql):
        try:
            db.unseal(table, column, row["pk"], row["v"])
            opened += 1
        except StorageError:
            problems.append(f"{table}.{column} of row {row['pk']!r} does not open")
    return opened


__all__ = ["IntegrityReport", "check_integrity"]


def _check_macs(db: Database, table: str, problems: list[str]) -> None:
    """Each row of a MAC'd table against its MAC and its part MAC (see :mod:`.row_macs`)."""
    pk, covered = db.AUTHENTICATED[table]
    part = db.PART_MACS.get(table)
    present = db.columns(table)
    if MAC_COLUMN not in present:
        return  # not in this schema version
    extra = (part[0], *part[1]) if part is not None and part[0] in present else ()
    names = ", ".join(dict.fromkeys((pk, *covered, MAC_COLUMN, *extra)))  # what the MACs cover
    for row in db.fetch(f"SELECT {names} FROM {table}"):
        try:
            db.check_row(table, row)
            if extra:
                db.check_part(table, row)
        except TamperedRow as exc:
            problems.append(f"{table} row {exc.key!r} was edited: {exc}")


def _check_index(db: Database) -> list[str]:
    """Each contact against the index of the contacts, and the index against them."""
    marks = db.contact_marks(fresh=True)
    if marks is None:
        return []
    problems = []
    rows = {r["peer_id"]: r["mac"] for r in db.fetch("SELECT peer_id, mac FROM contacts")}
    for peer_id, mac in rows.items():
        if peer_id not in marks:
            problems.append(
                f"contacts row {peer_id!r} is not in the index of the contacts: "
                "added without the passphrase, or put back after its removal"
            )
        elif not isinstance(mac, bytes) or not hmac.compare_digest(marks[peer_id], mac):
            problems.append(
                f"contacts row {peer_id!r} is not the one last pinned: put back "
                "from an older copy of the file (or edited)"
            )
    problems += [
        f"contacts row {p!r} is missing: deleted without the passphrase" for p in marks
        if p not in rows
    ]  # fmt: skip
    return problems
