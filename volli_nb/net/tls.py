"""Which TLS certificates a client trusts: the system's CAs, a CA file, or a caller's context.

Shared by the signaling client (``wss://``) and TURN over TLS (``turns:``), and never a
process-wide setting: each connection is handed its own context.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path

from volli_nb.base.errors import UsageError

TlsTrust = ssl.SSLContext | str | Path | None


def trust_context(trust: TlsTrust, what: str = "the server") -> ssl.SSLContext:
    """The client context for ``trust``; a CA file that cannot be read is a UsageError."""
    if isinstance(trust, ssl.SSLContext):
        return trust
    return _context(None if trust is None else str(trust), what)


def client_tls(url: str, trust: TlsTrust) -> ssl.SSLContext | None:
    """The TLS context for ``url``: None for ``ws://``; the system's CAs, a CA file, or the
    caller's context for ``wss://`` (never a process-wide setting)."""
    if not url.startswith("wss://"):
        if trust is not None:
            raise UsageError(f"a CA was given but {url} is not a wss:// URL; use wss://")
        return None
    return trust_context(trust, url)


@functools.lru_cache(maxsize=32)
def _context(cafile: str | None, what: str) -> ssl.SSLContext:
    """Cached: loading the system's CAs takes milliseconds, and every connection asks."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot read the CA file {cafile} for {what}: {exc}") from None
