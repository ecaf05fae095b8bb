"""A profile's schema holds exactly what its migrations made: nothing planted, nothing altered.

Whoever can write the file could add SQLite objects that *act*: a trigger that edits a
row each time volli writes one (adds a member to a new conversation, marks a new contact
verified), a view or an index with an expression, a column default or CHECK changed with
``PRAGMA writable_schema``.  Row MACs see an edited value only if nothing blesses it
first, so the schema itself is checked: every object in ``sqlite_master`` must be one
that the migrations up to the file's schema version create, with the same SQL (compared
with whitespace runs folded).  The known schema is not a list kept by hand: it is read
from an in-memory database built by the same migrations, once per class and version.

Opening checks this before the passphrase is tried and before anything is written (a
trigger would fire during a migration); :func:`schema_problems` also feeds ``verify()``,
which names each object.  Connections run with ``PRAGMA trusted_schema=OFF`` as well, so
a planted object could not call a function with side effects even if it were not caught.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from volli_nb.base.clock import system_clock
from volli_nb.base.errors import TamperedSchema
from volli_nb.core.crypto.primitives import AEAD_KEY_BYTES
from volli_nb.core.store.keyring import WrappedKey

if TYPE_CHECKING:
    from volli_nb.core.store.sealed_db import SealedDatabase

SCHEMA_QUERY = "SELECT type, name, tbl_name, sql FROM sqlite_master"
MAX_NAMED = 50  # objects named in one error message; the rest are counted


@dataclass(frozen=True, order=True)
class SchemaObject:
    """One row of ``sqlite_master``: a table, index, view or trigger."""

    type: str
    name: str
    table: str
    sql: str | None

    def __str__(self) -> str:
        on = f" on {self.table!r}" if self.table != self.name else ""
        return f"{self.type} {self.name!r}{on}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.type, self.name)

    def same_as(self, other: SchemaObject) -> bool:
        return self.table == other.table and _folded(self.sql) == _folded(other.sql)


def _folded(sql: str | None) -> str | None:
    return None if sql is None else re.sub(r"\s+", " ", sql).strip()


def read_schema(rows: Iterable[tuple[object, ...]]) -> frozenset[SchemaObject]:
    """The objects of ``SELECT type, name, tbl_name, sql FROM sqlite_master`` rows."""
    return frozenset(
        SchemaObject(str(t), str(n), str(tb), None if sql is None else str(sql))
        for t, n, tb, sql in rows
    )


_built: dict[tuple[type[SealedDatabase], int], frozenset[SchemaObject]] = {}


def expected_schema(cls: type[SealedDatabase], version: int) -> frozenset[SchemaObject]:
    """What ``cls``'s migrations create up to ``version``: built in memory, no key needed,
    once per class and version."""
    known = _built.get((cls, version))
    if known is None:
        known = _built[(cls, version)] = _build(cls, version)
    return known


def _build(cls: type[SealedDatabase], version: int) -> frozenset[SchemaObject]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    db = cls(Path(":memory:"), conn, b"\0" * AEAD_KEY_BYTES, 0, clock=system_clock,
             random=lambda n: b"\0" * n)  # fmt: skip
    try:
        db._create_header(WrappedKey(b"\0" * 16, 1, 8192, b""))
        for step in cls.MIGRATIONS[:version]:
            db.schema_version += 1
            step(db)
        return read_schema(conn.execute(SCHEMA_QUERY).fetchall())
    finally:
        conn.close()


def schema_problems(
    found: frozenset[SchemaObject], expected: frozenset[SchemaObject], version: int
) -> list[str]:
    """One sentence per object that is planted, altered or missing, sorted."""
    known = {o.key: o for o in expected}
    present = {o.key: o for o in found}
    problems = []
    for obj in sorted(found):
        twin = known.get(obj.key)
        if twin is None:
            problems.append(f"{obj} is not part of a volli profile: it was planted")
        elif not obj.same_as(twin):
            problems.append(f"{obj} is not as schema {version} defines it: it was altered")
    problems += [f"{o} is missing" for o in sorted(expected) if o.key not in present]
    return problems


def check_schema(path: Path, found: frozenset[SchemaObject], cls: type[SealedDatabase],
                 version: int) -> None:  # fmt: skip
    """:class:`TamperedSchema`, naming every object, unless ``found`` is the known schema."""
    problems = schema_problems(found, expected_schema(cls, version), version)
    if not problems:
        return
    named = "; ".join(problems[:MAX_NAMED])
    more = f"; and {len(problems) - MAX_NAMED} more" if len(problems) > MAX_NAMED else ""
    raise TamperedSchema(
        tuple(problems),
        f"{path} was not opened: its schema holds what a volli profile never has ({named}"
        f"{more}).  Someone edited the file without the passphrase, and such objects act "
        "when volli writes; restore it from a backup (or, if you added them yourself with "
        "sqlite3, drop them).",
    )


__all__ = ["SchemaObject", "check_schema", "expected_schema", "read_schema", "schema_problems"]
