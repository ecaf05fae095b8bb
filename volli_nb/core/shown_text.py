"""Text from elsewhere (a message, a peer's goodbye, a server's error), as one line shows it.

A terminal acts on what it is sent: an escape sequence clears the screen or sets the
title, a backspace or carriage return writes over what was printed (a sender's name), a
newline starts a line that looks like another event or another sender's message, and a
bidirectional override reorders what follows.  So every string that did not come from
this program is shown through :func:`shown`: printable characters as they are, the rest
as a visible escape (``\\x1b``, ``\\u202e``; a newline as ``⏎``), never acting.
"""

from __future__ import annotations

_NAMED = {"\n": "⏎", "\r": "␍", "\t": " "}


def shown(text: str) -> str:
    """``text`` with every character that would act on a terminal made visible instead."""
    if text.isprintable():  # nearly always: one pass in C
        return text
    return "".join(c if c.isprintable() else _NAMED.get(c) or _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


__all__ = ["shown"]
