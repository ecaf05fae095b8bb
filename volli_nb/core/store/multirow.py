"""Multi-row statements: many rows in one ``INSERT … VALUES`` or ``UPDATE … FROM (VALUES …)``.

A burst of sends, a received bundle or an ACK touches hundreds of rows of one table.
``executemany`` still runs one statement per row (SQLite resets and steps it again for
each, and a trace callback hears each); one statement over a ``VALUES`` list of many
rows is compiled once and stepped once, which is where the time goes in Python.  Rows
are cut into statements of at most :data:`MAX_ROWS` rows and SQLite's variable limit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from volli_nb.core.store.sealed_db import SealedDatabase

MAX_ROWS = 500  # rows per statement: the statement cache keeps a few sizes, not thousands


def _variable_limit() -> int:
    """SQLite's limit on ``?`` per statement in this build (999 on old ones, 32,766 on most)."""
    with sqlite3.connect(":memory:") as conn:
        return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


VARIABLE_LIMIT = _variable_limit()


def chunks(rows: Sequence[Sequence[Any]], width: int) -> Iterator[Sequence[Sequence[Any]]]:
    """``rows`` in pieces small enough for one statement of ``width`` values per row
    (plus a few more variables the statement binds)."""
    step = max(1, min(MAX_ROWS, (VARIABLE_LIMIT - 8) // max(width, 1)))
    for start in range(0, len(rows), step):
        yield rows[start : start + step]


def values_list(count: int, width: int) -> str:
    """``(?, ?), (?, ?)`` for ``count`` rows of ``width`` values."""
    one = "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * count)


def flat(rows: Sequence[Sequence[Any]]) -> list[Any]:
    return [value for row in rows for value in row]


def insert_rows(
    db: SealedDatabase,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    suffix: str = "",
) -> int:
    """Insert ``rows`` (values in ``columns`` order), one statement per piece; how many
    rows SQLite inserted (``suffix``, e.g. ``ON CONFLICT … DO NOTHING``, may skip some).
    All or nothing only inside the caller's transaction."""
    inserted = 0
    names = ", ".join(columns)
    for piece in chunks(rows, len(columns)):
        sql = f"INSERT INTO {table} ({names}) VALUES {values_list(len(piece), len(columns))}"
        inserted += db.execute(f"{sql} {suffix}".rstrip(), flat(piece)).rowcount
    return inserted


__all__ = ["MAX_ROWS", "VARIABLE_LIMIT", "chunks", "flat", "insert_rows", "values_list"]
