"""A volli error in a notebook cell, as one line: its type, its message (which says what to
do), and ``%tb`` for the full traceback — as volli-shell prints it.

IPython would show 20–35 lines through our modules and asyncio with the clear message
last; a student reads the first line.  ``%load_ext volli_nb`` installs this through
``set_custom_exc``; importing ``volli_nb`` does not: IPython keeps one custom handler per
shell, so installing it as a side effect of an import would silently replace one the user
(or another library) set, and an import should not change how a shell behaves.  The
notebooks load the extension in their first cell.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from volli_nb.base.errors import VolliError
from volli_nb.core.shown_text import shown

HINT = "(%tb shows the full traceback)"


def error_lines(error: BaseException) -> list[str]:
    """What a cell shows for ``error``: its type in red, its message, and the hint."""
    return [f"\x1b[0;31m{type(error).__name__}\x1b[0m: {shown(str(error))}", HINT]


def _handler(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> list[str]:
    """IPython's custom handler: remember the error for ``%tb``, show the short form."""
    sys.last_type, sys.last_value, sys.last_traceback = etype, value, tb
    if sys.version_info >= (3, 12):
        sys.last_exc = value
    lines = error_lines(value)
    shell._showtraceback(etype, value, lines)  # ipykernel: an "error" output of these lines
    return lines


def install(shell: Any) -> None:
    """Show every :class:`VolliError` a cell raises as :func:`error_lines`."""
    shell.set_custom_exc((VolliError,), _handler)


def uninstall(shell: Any) -> None:
    """``%unload_ext volli_nb``: IPython's full tracebacks again (if ours was installed)."""
    if shell.custom_exceptions == (VolliError,):
        shell.set_custom_exc((), None)


__all__ = ["HINT", "error_lines", "install", "uninstall"]
