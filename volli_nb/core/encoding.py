"""Strict, canonical encodings shared by envelopes, frames and pairing codes.

Each value has exactly one accepted spelling, so two parsers can never
disagree about what was signed: base64url without padding whose re-encoding
must match byte for byte, JSON without duplicate keys or non-finite numbers,
and canonical JSON (sorted keys, no spaces) for everything that is signed.

Every parser here lets only the caller's typed :class:`PeerError` out, whatever the
bytes: ``NaN``, ``Infinity`` and a number too large for a float (``1e999``, which
Python reads as infinity) are refused while parsing, and so is a string holding half a
surrogate pair (``"\\ud800"``), which no UTF-8 encoder can write back; either used to
come out later as a bare ``ValueError`` (issue 26, item 4).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable
from typing import Any

from volli_nb.base.errors import OversizedInput, PeerError


def b64encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(
    text: object,
    *,
    length: int | None = None,
    what: str = "field",
    error: type[PeerError] = PeerError,
) -> bytes:
    """Decode canonical base64url; padding, whitespace or stray bits raise ``error``."""
    if not isinstance(text, str):
        raise error(f"{what}: expected a base64url string, got {type(text).__name__}")
    if len(text) % 4 == 1 or not text.isascii():
        raise error(f"{what}: not valid base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise error(f"{what}: not valid base64url ({exc})") from None
    if b64encode(data) != text:
        raise error(f"{what}: non-canonical base64url (use unpadded base64url)")
    if length is not None and len(data) != length:
        raise error(f"{what}: expected {length} bytes, got {len(data)}")
    return data


def canonical_json(value: Any) -> bytes:
    """The one byte string that is signed and hashed for ``value``."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _no_duplicates(error: type[PeerError]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise error(f"duplicate JSON key {key!r}")
            out[key] = value
        return out

    return hook


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def _finite(error: type[PeerError], what: str) -> Callable[[str], float]:
    def hook(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise error(f"{what}: the number {text[:40]} is too large for a float")
        return value

    return hook


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_strings(value: Any, error: type[PeerError], what: str) -> None:
    """Every string (keys too) encodes as UTF-8: no half of a surrogate pair."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise error(f"{what} holds half a surrogate pair (not Unicode text)") from None


def strict_loads(
    data: bytes, *, max_size: int, what: str, error: type[PeerError] = PeerError
) -> dict[str, Any]:
    """Parse a JSON object after checking the size cap; only typed errors come out."""
    if len(data) > max_size:
        raise OversizedInput(
            f"{what} is {len(data)} bytes, over the {max_size}-byte cap; it was not parsed"
        )
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates(error),
            parse_constant=_reject_constant,
            parse_float=_finite(error, what),
        )
    except PeerError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise error(f"{what} must be a JSON object, got {type(value).__name__}")
    if _SURROGATE_ESCAPE.search(text):  # only an escape can spell one: the rare case
        _check_strings(value, error, what)
    return value


def require_fields(
    obj: dict[str, Any],
    fields: dict[str, type | tuple[type, ...]],
    *,
    what: str,
    error: type[PeerError] = PeerError,
) -> None:
    """Exactly these keys, each of the given JSON type (bool is never an int)."""
    keys = set(obj)
    if keys != set(fields):
        missing = ", ".join(sorted(set(fields) - keys))
        unknown = ", ".join(sorted(keys - set(fields)))
        wrong = [f"missing {missing}" if missing else "", f"unknown {unknown}" if unknown else ""]
        raise error(f"{what}: fields {'; '.join(w for w in wrong if w)} (exact fields only)")
    for name, kind in fields.items():
        value = obj[name]
        if isinstance(value, bool) and kind is not bool:
            raise error(f"{what}: field {name!r} has the wrong type")
        if not isinstance(value, kind):
            raise error(f"{what}: field {name!r} has the wrong type")


def canonical_loads(
    data: bytes, *, max_size: int, what: str, error: type[PeerError] = PeerError
) -> dict[str, Any]:
    """:func:`strict_loads`, and the bytes must be the canonical spelling (what is signed)."""
    obj = strict_loads(data, max_size=max_size, what=what, error=error)
    try:
        canonical = canonical_json(obj)
    except (ValueError, TypeError, RecursionError) as exc:  # strict_loads leaves none; still
        raise error(f"{what} cannot be written back as canonical JSON: {exc}") from None
    if canonical != data:
        raise error(f"{what} is not canonical JSON (sorted keys, no whitespace)")
    return obj
