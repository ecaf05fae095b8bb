"""One owner per profile: an exclusive ``flock`` on a lock file beside it.

Two owners of one profile share one peer id: a contact's link jumps to whichever opened
last, and in a signaling room the two knock each other off for ever.  So opening takes
``<profile>.lock`` (``flock(LOCK_EX | LOCK_NB)``) before anything is read, and writes the
owner's pid, host and start time into it, so the one refused can be told who holds it.

- The lock belongs to an open file description, so a second open in the *same* process
  is refused too, and the OS drops it when the owner dies (SIGKILL included): a crashed
  owner never blocks the next open.
- Closing unlinks the file while still holding the lock.  An opener therefore checks,
  after locking, that the file it locked is still the one at that path (same inode), and
  starts over if not; without that, two processes could each lock a different inode.
- The descriptor is close-on-exec; after ``fork`` only the process that locked unlinks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
from pathlib import Path

from volli_nb.base.clock import Clock, system_clock
from volli_nb.base.errors import ProfileInUse, StorageError

LOCK_SUFFIX = ".lock"
MAX_HOLDER_BYTES = 4096


def lock_path(profile: Path) -> Path:
    return profile.with_name(profile.name + LOCK_SUFFIX)


class ProfileLock:
    """A held lock on one profile; :meth:`release` (idempotent) gives it up."""

    def __init__(self, path: Path, fd: int, holder: dict[str, object]) -> None:
        self.path = path
        self.holder = holder
        self._fd: int | None = fd
        self._pid = os.getpid()

    @classmethod
    def acquire(cls, profile: Path, *, clock: Clock = system_clock) -> ProfileLock:
        """Lock ``profile`` or raise :class:`ProfileInUse` naming the holder."""
        path = lock_path(profile)
        while True:
            fd = _open(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                found = _read_holder(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StorageError(f"cannot lock {path}: {exc}") from exc
                raise ProfileInUse(_in_use_message(profile, found), found) from None
            if _same_file(fd, path):
                break
            os.close(fd)  # its owner unlinked it on close meanwhile: lock the new one
        holder: dict[str, object] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": clock(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        return cls(path, fd, holder)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlink the lock file (still holding it), then let go."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if os.getpid() == self._pid:  # a forked child must not remove its parent's lock
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(fd)

    def __repr__(self) -> str:
        return f"<ProfileLock {str(self.path)!r} {'held' if self.held else 'released'}>"


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise StorageError(
            f"cannot create {path}: the folder {path.parent} does not exist; create it first"
        ) from None
    except OSError as exc:
        raise StorageError(
            f"cannot create the lock file {path} ({exc.strerror}); a profile needs a "
            "writable folder"
        ) from exc


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _read_holder(fd: int) -> dict[str, object]:
    try:
        raw = os.pread(fd, MAX_HOLDER_BYTES, 0)
        holder = json.loads(raw) if raw else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _in_use_message(profile: Path, holder: dict[str, object]) -> str:
    pid, host = holder.get("pid"), holder.get("host")
    if not pid:
        who, then = "another process (it is opening it right now)", "close it there"
    elif pid == os.getpid() and host == socket.gethostname():
        who, then = f"this process (pid {pid})", "close the other MessagesStore or Database"
    else:
        who, then = f"process {pid} on {host}", "close it there"
    return (
        f"{profile} is already open by {who}; a profile has one owner at a time (two would "
        f"share one peer id and knock each other's connections off): {then}, or use "
        "another profile"
    )


__all__ = ["LOCK_SUFFIX", "ProfileLock", "lock_path"]
