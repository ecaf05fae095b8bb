"""Scratch profiles' folders: made fresh, deleted by ``close()``, and at interpreter exit
when ``close()`` never ran.

A kernel restarted or shut down with a scratch store open, or a script that ends without
closing one, left a ``volli-<name>-*`` folder in the temporary folder each time.  At
exit this process deletes the folders it made, except one whose profile another process
holds open (its profile lock, :mod:`volli_nb.core.store.profile_lock`): that process
uses it.  A forked child exiting leaves its parent's folders alone.  A process killed
outright (SIGKILL) runs no exit handler; its folders stay.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from volli_nb.base.errors import ProfileInUse, VolliError
from volli_nb.core.store.profile_lock import ProfileLock

SCRATCH_PASSPHRASE = "volli scratch profile"  # protects nothing: KDF_MIN, deleted on close
SCRATCH_FILE = "profile.sqlite"  # inside a fresh folder named after the profile

_folders: set[Path] = set()  # this process's scratch folders not deleted yet
_owner = os.getpid()


def new_folder(name: str, directory: str | Path | None = None) -> Path:
    """A fresh folder for a scratch profile named ``name``, deleted at exit at the latest."""
    folder = Path(tempfile.mkdtemp(prefix=f"volli-{name}-", dir=directory))
    _folders.add(folder)
    return folder


def remove(folder: Path) -> None:
    """Delete a scratch folder (``close()``, or a profile that failed to open)."""
    _folders.discard(folder)
    shutil.rmtree(folder, ignore_errors=True)


def used_elsewhere(folder: Path) -> bool:
    """Whether another process holds the profile in ``folder`` open (or is opening it);
    when in doubt (the lock cannot be read), yes."""
    try:
        ProfileLock.acquire(folder / SCRATCH_FILE).release()
    except ProfileInUse as exc:
        return exc.holder.get("pid") != os.getpid()  # ours: a store never closed
    except VolliError:
        return True
    return False


def remove_left_over() -> None:
    """At exit: delete this process's scratch folders that no other process uses."""
    if os.getpid() != _owner:
        return
    for folder in sorted(_folders):
        if not used_elsewhere(folder):
            remove(folder)


atexit.register(remove_left_over)

__all__ = ["SCRATCH_FILE", "SCRATCH_PASSPHRASE", "new_folder", "remove", "used_elsewhere"]
