"""Fuzzing the file writer (issue 26): random planted objects and random edited rows.

Whatever objects are planted in the schema, opening raises :class:`TamperedSchema` naming
each (and nothing else comes out); planted into an open profile, ``verify()`` names each.
Whatever trust-bearing cells are edited, ``verify()`` names every edited row.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volli_nb.base.clock import VirtualClock
from volli_nb.base.errors import TamperedSchema, VolliError
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TABLES = {  # table → columns a planted object may name
    "contacts": ("peer_id", "name", "verified"),
    "conversations": ("id", "members"),
    "messages": ("message_id", "sender"),
    "outbox": ("id", "recipient", "status"),
    "seen": ("message_id",),
    "meta": ("key",),
}
NAMES = st.from_regex(r"x_[a-z0-9_]{0,10}", fullmatch=True)  # never a keyword, nor sqlite_


@st.composite
def planted(draw: st.DrawFn, name: str) -> tuple[str, str]:
    """One object named ``name``: (SQL, how it is named)."""
    table = draw(st.sampled_from(sorted(TABLES)))
    column = draw(st.sampled_from(TABLES[table]))
    kind = draw(st.sampled_from(["trigger", "view", "index", "table"]))
    if kind == "trigger":
        when = draw(st.sampled_from(["BEFORE", "AFTER"]))
        event = draw(st.sampled_from(["INSERT", "UPDATE", "DELETE", f"UPDATE OF {column}"]))
        body = draw(
            st.sampled_from(
                [
                    "SELECT 1;",
                    f"UPDATE {table} SET {column} = {column};",
                    f"DELETE FROM {table} WHERE 0;",
                    "SELECT RAISE(IGNORE);",
                ]
            )
        )
        sql = f"CREATE TRIGGER {name} {when} {event} ON {table} BEGIN {body} END"
        return sql, f"trigger {name!r} on {table!r}"
    if kind == "view":
        return f"CREATE VIEW {name} AS SELECT {column} FROM {table}", f"view {name!r}"
    if kind == "index":
        expression = draw(st.sampled_from([column, f"{column} || ''", f"length({column})"]))
        unique = draw(st.sampled_from(["", "UNIQUE "]))
        sql = f"CREATE {unique}INDEX {name} ON {table} ({expression}) WHERE 0"
        return sql, f"index {name!r} on {table!r}"
    return f"CREATE TABLE {name} (x)", f"table {name!r}"


@st.composite
def plantings(draw: st.DrawFn) -> list[tuple[str, str]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    return [draw(planted(n)) for n in names]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A profile with two contacts, a conversation, messages both ways and outbox rows."""
    path = tmp_path_factory.mktemp("fuzz") / "template.sqlite"
    clock = VirtualClock(1_800_000_000.0)
    with Database.open(path, "pw", kdf=KDF_MIN, clock=clock) as db:
        me = Identity.generate()
        queue = PersistentMessageQueue(db)
        for n, peer in enumerate(Identity.generate() for _ in range(2)):
            p = peer.public
            db.add_contact(peer.peer_id, p.identity_key, p.device_key, p.device_signature,
                           name=f"peer{n}", verified=bool(n))  # fmt: skip
            conversation = f"c{n}"
            db.ensure_conversation(conversation, [me.peer_id, peer.peer_id], title=f"t{n}")
            db.store_received(bytes([n]) * 16, conversation, peer.peer_id, 1, 1, b"{}")
            mid = bytes([0x10 + n]) * 16
            with db.transaction():
                db.store_sent(mid, conversation, me.peer_id, 1, 1, b"{}")
                queue.add(OutgoingMessage(mid, conversation, peer.peer_id, b"{}", 1))
            if n:
                queue.acknowledge(mid, peer.peer_id)
    return path


@pytest.fixture
def copies(template: Path, tmp_path: Path) -> Iterator[Iterator[Path]]:
    def fresh() -> Iterator[Path]:
        n = 0
        while True:
            n += 1
            path = tmp_path / f"p{n}.sqlite"
            shutil.copy(template, path)
            yield path

    yield fresh()


def write(path: Path, statements: list[str]) -> None:
    conn = sqlite3.connect(path, timeout=5)
    with conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


@SETTINGS
@given(objects=plantings())
def test_random_planted_objects_are_refused_on_open_each_named(
    copies: Iterator[Path], objects: list[tuple[str, str]]
) -> None:
    path = next(copies)
    write(path, [sql for sql, _ in objects])
    try:
        Database.open(path, "pw", kdf=KDF_MIN).close()
    except TamperedSchema as exc:
        for _, name in objects:
            assert any(o.startswith(name + " ") for o in exc.objects), (name, exc.objects)
        assert len(exc.objects) == len(objects)
    except VolliError as exc:
        raise AssertionError(f"a typed error, but not TamperedSchema: {exc!r}") from exc
    else:
        raise AssertionError(f"opened a profile holding {objects}")


@SETTINGS
@given(objects=plantings())
def test_random_objects_planted_while_open_are_each_named_by_verify(
    copies: Iterator[Path], objects: list[tuple[str, str]]
) -> None:
    path = next(copies)
    with Database.open(path, "pw", kdf=KDF_MIN) as db:
        assert db.verify().ok
        write(path, [sql for sql, _ in objects])
        problems = db.verify().problems
    for _, name in objects:
        assert any(p.startswith(f"schema: {name} ") for p in problems), (name, problems)
    assert len(problems) == len(objects)


COVERED = {  # table → (primary key, trust-bearing columns an attacker may edit)
    "contacts": ("peer_id", ("name", "verified", "device_epoch", "device_key")),
    "conversations": ("id", ("title", "members")),
    "messages": ("message_id", ("sender", "direction", "conversation_id", "counter")),
    "outbox": ("id", ("recipient", "status", "conversation_id", "counter")),
}
VALUES = st.one_of(
    st.integers(-2, 2),
    st.sampled_from(["in", "out", "delivered", "pending", "x", "", '["a"]']),
    st.binary(min_size=0, max_size=33),
)


@st.composite
def edits(draw: st.DrawFn, rows: dict[str, list[object]]) -> list[tuple[str, object, str, object]]:
    cells = [(t, k, c) for t, keys in rows.items() for k in keys for c in COVERED[t][1]]
    chosen = draw(st.lists(st.sampled_from(cells), min_size=1, max_size=6, unique=True))
    return [(t, k, c, draw(VALUES)) for t, k, c in chosen]


def rows_of(path: Path) -> dict[str, list[object]]:
    conn = sqlite3.connect(path)
    keys = {
        t: [r[0] for r in conn.execute(f"SELECT {pk} FROM {t}")] for t, (pk, _) in COVERED.items()
    }
    conn.close()
    return keys


@SETTINGS
@given(data=st.data())
def test_verify_names_every_edited_row(
    copies: Iterator[Path], template: Path, data: st.DataObject
) -> None:
    path = next(copies)
    changes = data.draw(edits(rows_of(template)))
    conn = sqlite3.connect(path)
    edited = set()
    with conn:
        for table, key, column, value in changes:
            pk = COVERED[table][0]
            before = conn.execute(f"SELECT {column} FROM {table} WHERE {pk} = ?", (key,))
            if before.fetchone()[0] == value:
                continue
            try:
                conn.execute(f"UPDATE {table} SET {column} = ? WHERE {pk} = ?", (value, key))
            except sqlite3.IntegrityError:
                continue  # a CHECK or a unique index refused the edit
            edited.add((table, key))
    conn.close()
    with Database.open(path, "pw", kdf=KDF_MIN) as db:
        problems = db.verify().problems
    for table, key in edited:
        assert any(p.startswith(f"{table} row {key!r} was edited") for p in problems), (
            table,
            key,
            problems,
        )
