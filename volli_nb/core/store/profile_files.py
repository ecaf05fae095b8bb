"""The files of one profile on disk: what may be opened, and how a new one appears.

A profile is created only where nothing exists yet: an empty file or a folder given as a
profile is refused (an empty file once silently became a new identity).  A new profile is
built in a temporary file beside the final path and renamed over it in one step, so a
crash or a racing opener never sees half a profile.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from volli_nb.base.errors import StorageError

SIDE_FILES = ("", "-wal", "-shm", "-journal")


def check_not_folder(path: Path) -> None:
    if path.is_dir():
        raise StorageError(f"{path} is a folder; give the path of a profile file inside it")


def check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise StorageError(
            f"{path} is an empty file (0 bytes), not a profile; a new profile is created "
            "only where no file exists: delete it, or pick another path"
        )


def temporary_path(path: Path) -> Path:
    """Where a new profile is built (only under the profile's lock, so never shared)."""
    return path.with_name(f".{path.name}.new")


def remove_with_side_files(path: Path) -> None:
    """``path`` and SQLite's -wal, -shm and -journal files beside it, if present."""
    for suffix in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()


def durable_rename(temp: Path, path: Path) -> None:
    """``temp`` becomes ``path`` in one step, and is on disk before we go on."""
    _fsync(temp)
    os.replace(temp, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "check_not_empty",
    "check_not_folder",
    "durable_rename",
    "remove_with_side_files",
    "temporary_path",
]
