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

import unicodedata

MAX_NAME_BYTES = 64
BLANK = frozenset("\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")
"""Printable by Unicode's categories, and drawn as nothing: a name padded with them looks
like the name without them."""
_LOOKALIKE = str.maketrans(  # Cyrillic and Greek letters (case folded) that pass for Latin
    "аеорсухіјѕԁһӏԛԝнвкмтαεικνορτυχβηζμ",
    "aeopcyxijsdhlqwhbkmtaeikvoptuxbhzm",
)


def claimed_name(value: object) -> str | None:
    """The showable form of a peer's name, or None when nothing showable is left (or
    ``value`` is not text at all)."""
    if not isinstance(value, str):
        return None
    kept = "".join(c for c in value if c.isprintable() and c not in BLANK)
    cut = kept.strip().encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore").strip()
    return cut or None


def looks_like(name: str) -> str:
    """What ``name`` looks like, for telling two names apart: compatibility forms folded
    (NFKC), case folded, blanks dropped, runs of spaces made one, and common Cyrillic and
    Greek look-alikes read as the Latin letters they pass for.  (Not all of Unicode's
    confusables: the warning it feeds is a hint, the safety number is the check.)"""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKE)
    return " ".join("".join(c for c in folded if c not in BLANK).split())


__all__ = ["BLANK", "MAX_NAME_BYTES", "claimed_name", "looks_like"]
