""" "This machine only" ICE: offer 127.0.0.1 as the sole host candidate.

aioice never offers loopback when it gathers host candidates, so two peers on
one machine pair over its interface addresses, and a machine (or namespace)
with only loopback cannot pair at all.  aiortc has no hook for this; aioice's
module-level ``get_host_addresses`` decides.  We wrap that function once; the
wrapper answers ``["127.0.0.1"]`` only while :data:`LOOPBACK_ONLY` is set in the
current context, so other connections in the process gather as usual.

aiortc gathers inside ``RTCPeerConnection.setLocalDescription``, in the
caller's task, so setting the context variable around that call scopes it.
Checked against aioice 0.13 (``tests/test_loopback.py`` fails if it changes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import aioice.ice

LOOPBACK_ONLY: ContextVar[bool] = ContextVar("volli_loopback_only", default=False)
_ADDRESSES = ["127.0.0.1"]
_original: Any = None


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    if LOOPBACK_ONLY.get():
        return list(_ADDRESSES) if use_ipv4 else []
    result: list[str] = _original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
    return result


def install() -> None:
    """Wrap aioice's address lookup once per process (idempotent)."""
    global _original
    if _original is None:
        _original = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _get_host_addresses


@contextlib.contextmanager
def loopback_only(enabled: bool = True) -> Iterator[None]:
    """Within this block, ICE gathering in this task offers only 127.0.0.1."""
    install()
    token = LOOPBACK_ONLY.set(enabled)
    try:
        yield
    finally:
        LOOPBACK_ONLY.reset(token)
