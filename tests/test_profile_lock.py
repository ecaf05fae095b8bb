"""One owner per profile, and safer opening: real files, real processes, real SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.errors import ProfileInUse, StorageBusy, StorageError
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.keyring import PASSPHRASE_ENV
from volli_nb.core.store.profile_files import temporary_path
from volli_nb.core.store.profile_lock import LOCK_DIR_ENV, identity_lock_path, lock_path

PASS = "lock test passphrase"

# Opens the profile when the file named by argv[2] appears (so many start together),
# prints one JSON line saying how that went, and holds the profile until stdin closes.
OPENER = """
import json, os, sys, time
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.keyring import PASSPHRASE_ENV
path, go = sys.argv[1], sys.argv[2]
while go != "-" and not os.path.exists(go):
    time.sleep(0.001)
try:
    db = Database.open(path, sys.argv[3], kdf=KDF_MIN)
except Exception as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}), flush=True)
    sys.exit(0)
print(json.dumps({"ok": True, "pid": os.getpid()}), flush=True)
sys.stdin.read()
db.close()
"""


def opener(path: Path, go: str = "-") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", OPENER, str(path), go, PASS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def outcome(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"opener exited without a word (code {proc.wait()})"
    result: dict[str, Any] = json.loads(line)
    return result


def finish(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_a_second_open_in_the_same_process_is_refused_until_the_first_closes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "me.sqlite"
    first = Database.open(path, PASS, kdf=KDF_MIN)
    with pytest.raises(ProfileInUse, match=r"already open by this process") as caught:
        Database.open(path, PASS, kdf=KDF_MIN)
    assert caught.value.holder["pid"] == os.getpid()
    assert caught.value.holder["host"] == socket.gethostname()
    with pytest.raises(ProfileInUse):  # the facade too: two `open` calls in one kernel
        MessagesStore.open(path, PASS, kdf=KDF_MIN)
    link = tmp_path / "alias.sqlite"
    link.symlink_to(path)
    with pytest.raises(ProfileInUse):  # another name for the same file: the same owner
        Database.open(link, PASS, kdf=KDF_MIN)
    first.close()
    first.close()  # idempotent
    assert not lock_path(path).exists()  # closing leaves no lock file behind
    with Database.open(path, PASS, kdf=KDF_MIN) as again:
        assert again.fetch("SELECT value FROM meta WHERE key = 'format'")[0][0] == "volli-profile"


def test_a_second_process_is_refused_and_a_sigkilled_holder_blocks_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared.sqlite"
    holder = opener(path)
    try:
        held = outcome(holder)
        assert held["ok"]
        second = opener(path)
        refused = outcome(second)
        finish(second)
        assert refused["error"] == "ProfileInUse"
        assert f"process {held['pid']} on {socket.gethostname()}" in refused["message"]
        with pytest.raises(ProfileInUse, match=f"process {held['pid']}"):
            Database.open(path, PASS, kdf=KDF_MIN)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    assert lock_path(path).exists()  # a crash leaves the file; the OS dropped the lock
    with Database.open(path, PASS, kdf=KDF_MIN) as db:  # at once, no waiting
        assert db.verify().ok


def test_ten_concurrent_creations_give_one_profile_and_nine_profile_in_use(
    tmp_path: Path,
) -> None:
    path, go = tmp_path / "new.sqlite", tmp_path / "go"
    procs = [opener(path, str(go)) for _ in range(10)]
    try:
        go.touch()
        results = [outcome(p) for p in procs]
    finally:
        for proc in procs:
            finish(proc)
    errors = sorted(r.get("error", "") for r in results if not r.get("ok"))
    assert sum(1 for r in results if r.get("ok")) == 1, results
    assert errors == ["ProfileInUse"] * 9, results
    assert not temporary_path(path).exists()
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        report = db.verify()
        assert report.ok, str(report)


def test_a_leftover_half_built_profile_is_not_taken_for_one(tmp_path: Path) -> None:
    path = tmp_path / "me.sqlite"
    temporary_path(path).write_bytes(b"a creation that crashed halfway")
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        assert db.schema_version >= 1
    assert not temporary_path(path).exists()


def test_an_empty_file_a_folder_or_another_file_is_refused_and_left_alone(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.raises(StorageError, match=r"empty file \(0 bytes\)"):
        MessagesStore.open(empty, PASS, kdf=KDF_MIN)
    assert empty.stat().st_size == 0  # not silently turned into a new identity
    with pytest.raises(StorageError, match="is a folder"):
        Database.open(tmp_path, PASS, kdf=KDF_MIN)
    text = tmp_path / "notes.txt"
    text.write_text("not a profile")
    with pytest.raises(StorageError, match="not a readable volli profile"):
        Database.open(text, PASS, kdf=KDF_MIN)
    assert text.read_text() == "not a profile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite", "notes.txt"]
    with pytest.raises(StorageError, match="does not exist"):
        Database.open(tmp_path / "no" / "such" / "folder.sqlite", PASS, kdf=KDF_MIN)


def test_verify_runs_quick_check_and_opens_every_sealed_value(tmp_path: Path) -> None:
    path, first, second = tmp_path / "me.sqlite", bytes(16), b"\x01" * 16
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        db.store_received(first, "conv", "bob", 1, 1000, b"first")
        db.store_received(second, "conv", "bob", 2, 2000, b"second")
        report = db.verify()
        assert report.ok and report.quick_check == ("ok",) and report.sealed_values == 2
        assert "ok" in str(report)
        db.execute(  # an edit by someone with the file: a body moved to another row
            "UPDATE messages SET body = (SELECT body FROM messages WHERE message_id = ?) "
            "WHERE message_id = ?",
            (first.hex(), second.hex()),
        )
        report = db.verify()
        assert not report.ok and report.sealed_values == 1
        assert report.problems == (f"messages.body of row {second.hex()!r} does not open",)
        assert "restore it from a backup" in str(report)


def test_verify_reports_a_row_whose_trust_columns_were_edited(tmp_path: Path) -> None:
    """Attack: whoever can write the file adds themselves to a conversation's members; the
    row opens nothing sealed, so only its MAC shows the edit, and verify() must report it."""
    path = tmp_path / "me.sqlite"
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        db.ensure_conversation("group", ["alice", "bob"])
        assert db.verify().ok
        db.execute("UPDATE conversations SET members = ? WHERE id = 'group'", ('["alice","eve"]',))
        report = db.verify()
    assert not report.ok
    assert [p.split(" was edited")[0] for p in report.problems] == ["conversations row 'group'"]


def test_verify_reports_a_damaged_page(tmp_path: Path) -> None:
    path = tmp_path / "me.sqlite"
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        for i in range(200):
            db.store_received(i.to_bytes(16, "big"), "conv", "bob", i, i, b"x" * 200)
        pages = db.fetch("PRAGMA page_count")[0][0]
        page_size = db.fetch("PRAGMA page_size")[0][0]
    with contextlib.closing(sqlite3.connect(path)) as conn:  # a leaf of the messages table
        (page,) = conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf' "
            "ORDER BY pageno LIMIT 1 OFFSET 3"
        ).fetchone()
    raw = bytearray(path.read_bytes())
    assert len(raw) == pages * page_size
    start = (page - 1) * page_size
    raw[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(raw))
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        report = db.verify()
    assert not report.ok
    assert any(p.startswith(("quick_check", "table", "messages")) for p in report.problems)


def test_volli_shell_verify_checks_a_profile_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "me.sqlite"
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        db.store_received(bytes(16), "conv", "bob", 1, 1000, b"first")
    shell = Path(sys.executable).with_name("volli-shell")
    env = {**os.environ, PASSPHRASE_ENV: PASS}

    def verify() -> subprocess.CompletedProcess[str]:
        command = [str(shell), "--profile", str(path), "--verify"]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert f"{path}: ok (SQLite quick_check ok;" in ok.stdout
    with Database.open(path, PASS, kdf=KDF_MIN) as db:  # someone edits a sealed body
        db.execute("UPDATE messages SET body = X'00' || body")
    bad = verify()
    assert bad.returncode == 1
    assert "1 problem(s); restore it from a backup" in bad.stdout
    assert f"messages.body of row {bytes(16).hex()!r} does not open" in bad.stdout


def test_a_hard_link_to_an_open_profile_is_refused(tmp_path: Path) -> None:
    """Issue 26, item 6.  Attack: open the profile a second time through a hard link (a
    path of its own, so a lock beside the path did not see it): two owners of one peer id.
    The lock is keyed by the file's identity (device and inode), in this process and in
    another."""
    path, link = tmp_path / "me.sqlite", tmp_path / "elsewhere" / "alias.sqlite"
    link.parent.mkdir()
    Database.open(path, PASS, kdf=KDF_MIN).close()
    os.link(path, link)
    first = Database.open(path, PASS, kdf=KDF_MIN)
    try:
        with pytest.raises(ProfileInUse, match="already open by this process"):
            second = Database.open(link, PASS, kdf=KDF_MIN)
            second.close()
        other = opener(link)
        refused = outcome(other)
        finish(other)
        assert refused["error"] == "ProfileInUse", refused
    finally:
        first.close()
    with Database.open(link, PASS, kdf=KDF_MIN) as db:  # once closed, through either name
        with pytest.raises(ProfileInUse):
            Database.open(path, PASS, kdf=KDF_MIN)
        assert db.verify().ok
    assert not any(identity_lock_path(0, 0).parent.glob(identity_name(path)))


def test_a_new_profile_is_locked_by_its_identity_from_its_creation(tmp_path: Path) -> None:
    path, link = tmp_path / "new.sqlite", tmp_path / "link.sqlite"
    with Database.open(path, PASS, kdf=KDF_MIN):
        os.link(path, link)
        with pytest.raises(ProfileInUse):
            Database.open(link, PASS, kdf=KDF_MIN)


def test_the_lock_folder_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    folder = tmp_path / "locks" / f"volli-profile-locks-{os.getuid()}"
    folder.mkdir(parents=True, mode=0o777)
    folder.chmod(0o777)  # another user could plant or hold its locks
    with pytest.raises(StorageError, match="not a private folder"):
        Database.open(tmp_path / "p.sqlite", PASS, kdf=KDF_MIN)
    folder.chmod(0o700)
    Database.open(tmp_path / "p.sqlite", PASS, kdf=KDF_MIN).close()


def identity_name(path: Path) -> str:
    info = os.stat(path)
    return identity_lock_path(info.st_dev, info.st_ino).name


def test_a_write_lock_another_program_holds_is_storage_busy_after_a_short_wait(
    tmp_path: Path,
) -> None:
    """A ``sqlite3`` shell left in a transaction holds the write lock: each of our writes
    waited SQLite's busy timeout (10 s, the event loop with it) and failed as a plain
    StorageError; the wait is now short (it is the connection's busy timeout, read back
    here, not timed) and the error says what holds the lock and what to do."""
    path = tmp_path / "p.sqlite"
    with Database.open(path, PASS, kdf=KDF_MIN) as db:
        assert db.fetch("PRAGMA busy_timeout")[0][0] <= 250  # milliseconds
        shell = sqlite3.connect(path, isolation_level=None)
        try:
            shell.execute("BEGIN IMMEDIATE")
            assert db.list_conversations() == []  # reading is not blocked (WAL)
            with pytest.raises(StorageBusy, match=r"another program's write.*retried"):
                db.ensure_conversation("c", ["a", "b"])
            shell.execute("ROLLBACK")
            assert db.ensure_conversation("c", ["a", "b"]).members  # free again: it works
        finally:
            shell.close()
