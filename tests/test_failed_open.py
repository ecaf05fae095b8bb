"""A failed open gives back everything it took: the profile lock, file handles, tasks.

For each kind of damaged file, ``MessagesStore.open`` fails with its own error, and a
second open (here, and in another process) fails with the same error: never
``ProfileInUse`` because the first one kept the lock.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import ProfileInUse, StorageError, VolliError, WrongPassphrase
from volli_nb.core.store.database import KDF_MIN
from volli_nb.core.store.profile_lock import lock_path

PASS = "failed open passphrase"


def _profile(path: Path) -> None:
    store = MessagesStore.open(path, PASS, kdf=KDF_MIN)
    asyncio.run(store.close())


def _edit(sql: str) -> Callable[[Path], None]:
    """A change made with plain SQLite, as someone with the file (or a bad disk) would."""

    def damage(path: Path) -> None:
        _profile(path)
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(sql)
        conn.close()

    return damage


def _write(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _truncate(path: Path) -> None:
    _profile(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 3])


def _not_a_profile(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (text TEXT)")
    conn.close()


DAMAGE: dict[str, tuple[Callable[[Path], None], type[VolliError], str]] = {
    "folder": (lambda p: p.mkdir(), StorageError, "is a folder"),
    "empty file": (_write(b""), StorageError, "empty file"),
    "text file": (_write(b"not a profile\n" * 100), StorageError, "not a readable"),
    "another SQLite file": (_not_a_profile, StorageError, "not a volli profile"),
    "damaged header": (
        _edit("UPDATE meta SET value = 'x' WHERE key = 'format'"),
        StorageError,
        "header is damaged",
    ),
    "newer schema": (
        _edit("UPDATE meta SET value = '99' WHERE key = 'schema_version'"),
        StorageError,
        "upgrade volli_nb",
    ),
    "damaged keyring": (
        _edit("UPDATE keyring SET wrapped = zeroblob(length(wrapped))"),
        WrongPassphrase,
        "",
    ),
    "damaged identity secret": (
        _edit("UPDATE identity SET secret = CAST(X'00' || secret AS BLOB)"),
        StorageError,
        "identity.secret of row 1 does not open",
    ),
    "truncated file": (_truncate, StorageError, ""),
}


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_failed_open_releases_the_lock_handles_and_tasks(tmp_path: Path, kind: str) -> None:
    damage, error, words = DAMAGE[kind]
    path = tmp_path / "me.sqlite"
    damage(path)

    async def main() -> None:
        before_fds, before_tasks = _fds(), asyncio.all_tasks()
        for _ in range(2):  # the second open meets the same damage, not "in use"
            with pytest.raises(VolliError) as caught:
                MessagesStore.open(path, PASS, kdf=KDF_MIN)
            assert not isinstance(caught.value, ProfileInUse), caught.value
            assert isinstance(caught.value, error), caught.value
            assert words in str(caught.value)
            assert not lock_path(path).exists()  # given back, and no file left behind
            assert _fds() == before_fds  # no SQLite connection or lock descriptor kept
            assert asyncio.all_tasks() == before_tasks

    asyncio.run(main())


# After a failed open in a process that lives on, another process opening the same file
# is told what is wrong with it (as volli-shell would be), not that it is in use.
OTHER = """
import sys
from volli_nb.core.store.database import KDF_MIN, Database
try:
    Database.open(sys.argv[1], sys.argv[2], kdf=KDF_MIN).load_identity_secret()
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_another_process_hears_damaged_not_in_use(tmp_path: Path) -> None:
    path = tmp_path / "me.sqlite"
    _edit("UPDATE identity SET secret = CAST(X'00' || secret AS BLOB)")(path)
    with pytest.raises(StorageError):
        MessagesStore.open(path, PASS, kdf=KDF_MIN)
    other = subprocess.run(
        [sys.executable, "-c", OTHER, str(path), PASS],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert other.stdout.startswith("StorageError "), other.stdout + other.stderr
    assert "restore" in other.stdout and "in use" not in other.stdout
