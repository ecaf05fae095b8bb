"""One owner per profile: an exclusive ``flock`` on the path's lock file and on the file's.

Two owners of one profile share one peer id: a contact's link jumps to whichever opened
last, and in a signaling room the two knock each other off for ever.  So opening takes
two locks (``flock(LOCK_EX | LOCK_NB)``) before anything is read, and writes the
owner's pid, host and start time into each, so the one refused can be told who holds it:

- ``<profile>.lock`` beside the path (resolved, so a symlink is the same profile): it
  serialises the creation of a new profile, which has no file yet;
- a lock keyed by the file's *identity*, its device and inode, in a private folder of
  this user (``$VOLLI_LOCK_DIR``, else ``volli-profile-locks-<uid>`` in the temporary
  folder): a hard link is another path to the same file, and without it had an owner of
  its own.  It is taken as soon as the file exists (:meth:`ProfileLock.cover`, right
  after a creation).

- A lock belongs to an open file description, so a second open in the *same* process
  is refused too, and the OS drops it when the owner dies (SIGKILL included): a crashed
  owner never blocks the next open.
- Closing unlinks each lock file while still holding it.  An opener therefore checks,
  after locking, that the file it locked is still the one at that path (same inode), and
  starts over if not; without that, two processes could each lock a different inode.
  Likewise the profile must still be the file whose identity was locked.
- The descriptors are close-on-exec; after ``fork`` only the process that locked unlinks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import tempfile
from pathlib import Path

from volli_nb.base.clock import Clock, system_clock
from volli_nb.base.errors import ProfileInUse, StorageError

LOCK_SUFFIX = ".lock"
LOCK_DIR_ENV = "VOLLI_LOCK_DIR"
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
        self.file_lock: ProfileLock | None = None  # the file identity's lock, once it exists

    @classmethod
    def acquire(cls, profile: Path, *, clock: Clock = system_clock) -> ProfileLock:
        """Lock ``profile`` (its path, and its file if there is one yet) or raise
        :class:`ProfileInUse` naming the holder."""
        lock = cls._take(lock_path(profile), profile, clock)
        try:
            if profile.exists():
                lock.cover(profile, clock=clock)
        except BaseException:
            lock.release()
            raise
        return lock

    def cover(self, profile: Path, *, clock: Clock = system_clock) -> None:
        """Also lock the file now at ``profile`` by its identity (device and inode): any
        other path to it, a hard link included, finds it owned.  Idempotent."""
        while self.file_lock is None:
            before = _identity(profile)
            taken = self._take(identity_lock_path(*before), profile, clock)
            if _identity(profile) == before:
                self.file_lock = taken
            else:
                taken.release()  # replaced meanwhile: lock the file there now

    @classmethod
    def _take(cls, path: Path, profile: Path, clock: Clock) -> ProfileLock:
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
        try:  # who holds it is advice for the next opener; the flock is the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
        except OSError:  # a full disk: still locked, only the advice is missing
            pass
        return cls(path, fd, holder)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlink each lock file (still holding it), then let go."""
        if self.file_lock is not None:
            self.file_lock.release()
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if os.getpid() == self._pid:  # a forked child must not remove its parent's lock
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(fd)

    def __repr__(self) -> str:
        return f"<ProfileLock {str(self.path)!r} {'held' if self.held else 'released'}>"


def lock_dir() -> Path:
    """This user's folder of file-identity locks (created private, checked to be ours)."""
    base = os.environ.get(LOCK_DIR_ENV) or tempfile.gettempdir()
    folder = Path(base) / f"volli-profile-locks-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        raise StorageError(
            f"cannot create the lock folder {folder} ({exc}); set {LOCK_DIR_ENV} to a "
            "writable folder"
        ) from exc
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise StorageError(
            f"{folder} is not a private folder of this user; remove it, or set "
            f"{LOCK_DIR_ENV} to one"
        )
    return folder


def identity_lock_path(device: int, inode: int) -> Path:
    return lock_dir() / f"{device:x}-{inode:x}{LOCK_SUFFIX}"


def _identity(profile: Path) -> tuple[int, int]:
    try:
        info = os.stat(profile)
    except OSError as exc:
        raise StorageError(f"cannot read {profile} ({exc.strerror})") from exc
    return info.st_dev, info.st_ino


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
        who = f"this process (pid {pid})"
        then = (
            "close the other MessagesStore or Database (a cell run twice? its first run's "
            "store still holds it: close that one, or keep using it)"
        )
    else:
        who, then = f"process {pid} on {host}", "close it there"
    return (
        f"{profile} is already open by {who}; a profile has one owner at a time (two would "
        f"share one peer id and knock each other's connections off): {then}, or use "
        "another profile"
    )


__all__ = ["LOCK_DIR_ENV", "LOCK_SUFFIX", "ProfileLock", "identity_lock_path", "lock_path"]
