"""Keys typed in volli-shell while a statement runs reach the next prompt: Ctrl-D too.

Between prompts the terminal is back in its cooked mode.  There the line discipline keeps
typed keys for the next reader (the prompt reads them when it returns), but it takes
Ctrl-D as end-of-file: a read that nobody made, so the key was lost and the shell stayed
open after the ``await``.  While a statement runs, Ctrl-D is an ordinary key (its VEOF
meaning disabled), kept with the rest of what was typed; the prompt then reads it as if
pressed there: at an empty prompt it closes the shell.  Without a terminal, nothing changes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import termios
from collections.abc import Iterator


@contextlib.contextmanager
def ctrl_d_kept(fd: int | None = None) -> Iterator[None]:
    """While inside, Ctrl-D on terminal ``fd`` (stdin) is typed ahead, not end-of-file."""
    try:
        fd = sys.stdin.fileno() if fd is None else fd
        saved = termios.tcgetattr(fd)
        disabled = os.fpathconf(fd, "PC_VDISABLE")
    except (OSError, ValueError, termios.error):
        yield  # not a terminal (a pipe, a test's stdin)
        return
    kept = [*saved[:6], list(saved[6])]
    kept[6][termios.VEOF] = bytes([disabled])
    termios.tcsetattr(fd, termios.TCSANOW, kept)  # TCSANOW: never drop what was typed
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)


__all__ = ["ctrl_d_kept"]
