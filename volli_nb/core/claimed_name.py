"""The name a peer gives itself (in a pairing code, or its room presence): a claim, shown.

Nobody vouches for it: a peer may call itself anything, so a name is never trusted (a
new contact whose name is a known contact's raises a warning, see ``app.contacts``).
What this module makes sure of is that showing it is harmless and its size bounded: the
text a panel, a notebook or a terminal prints keeps only printable characters (no
control character, so no terminal escape sequence and no newline; no bidirectional
override or other format character, which could make a name read as another), at most
``MAX_NAME_BYTES`` of UTF-8, with no space around it.
"""

from __future__ import annotations

MAX_NAME_BYTES = 64


def claimed_name(value: object) -> str | None:
    """The showable form of a peer's name, or None when nothing showable is left (or
    ``value`` is not text at all)."""
    if not isinstance(value, str):
        return None
    kept = "".join(c for c in value if c.isprintable())
    cut = kept.strip().encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore").strip()
    return cut or None


__all__ = ["MAX_NAME_BYTES", "claimed_name"]
