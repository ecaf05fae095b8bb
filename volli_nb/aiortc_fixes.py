"""Workarounds for aiortc bugs that bite on lossy links, applied once at import.

INIT retransmission (aiortc 1.16): both ends send an SCTP INIT (RFC 8841 §9.3).  An end
that has already received the peer's INIT retransmits its own with the peer's
verification tag in the packet header instead of 0 (RFC 9260 §8.5.1), and the peer
drops it as a bad tag.  If both INIT-ACKs of a collision are lost, neither end ever
completes the handshake: ICE and DTLS say connected, the data channel never opens,
and after eight T1 expiries the association closes.  We send every INIT with tag 0.
Found with the impairment relay (5 % loss, seed 2); see tests/test_aiortc_fixes.py.

Transport-level liveness: on an ordered channel one lost packet holds back every later
message, our heartbeat pongs included, for an SCTP retransmission timeout (1 s, doubling),
so "no pong for 2.5 s" misreads a lossy link as a dead peer.  Every SCTP packet that
arrives (SACKs for our pings, retransmissions) proves the peer alive, so we stamp the
time of the last one on the transport (``last_received``).
"""

from __future__ import annotations

import time
from typing import Any

from aiortc import rtcsctptransport

_MARK = "_volli_init_tag_fix"
_STAMP = "_volli_last_received"


def apply() -> None:
    """Patch ``RTCSctpTransport._send_chunk`` so INIT chunks always carry tag 0 (idempotent)."""
    cls: Any = rtcsctptransport.RTCSctpTransport
    original = cls._send_chunk
    if getattr(original, _MARK, False):
        return

    async def _send_chunk(self: Any, chunk: Any) -> None:
        if not isinstance(chunk, rtcsctptransport.InitChunk):
            await original(self, chunk)
            return
        packet = rtcsctptransport.serialize_packet(self._local_port, self._remote_port, 0, chunk)
        await self._RTCSctpTransport__transport._send_data(packet)

    setattr(_send_chunk, _MARK, True)
    cls._send_chunk = _send_chunk

    handle = cls._handle_data

    async def _handle_data(self: Any, data: bytes) -> None:
        setattr(self, _STAMP, time.monotonic())
        await handle(self, data)

    cls._handle_data = _handle_data


def last_received(sctp: Any) -> float | None:
    """``time.monotonic()`` of the last SCTP packet from the peer, if any arrived."""
    value = getattr(sctp, _STAMP, None)
    return value if isinstance(value, float) else None


apply()

__all__ = ["apply", "last_received"]
