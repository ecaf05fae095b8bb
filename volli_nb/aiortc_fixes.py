"""Workarounds for aiortc bugs that bite on lossy links, applied once at import.

INIT retransmission (aiortc 1.16): both ends send an SCTP INIT (RFC 8841 §9.3).  An end
that has already received the peer's INIT retransmits its own with the peer's
verification tag in the packet header instead of 0 (RFC 9260 §8.5.1), and the peer
drops it as a bad tag.  If both INIT-ACKs of a collision are lost, neither end ever
completes the handshake: ICE and DTLS say connected, the data channel never opens,
and after eight T1 expiries the association closes.  We send every INIT with tag 0.
Found with the impairment relay (5 % loss, seed 2); see tests/test_aiortc_fixes.py.
"""

from __future__ import annotations

from typing import Any

from aiortc import rtcsctptransport

_MARK = "_volli_init_tag_fix"


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


apply()

__all__ = ["apply"]
