"""aiortc's SCTP transport, patched: what it gets wrong or leaves out (aiortc 1.16).

- **INIT retransmission fix** (aiortc 1.16): both ends send an SCTP INIT (RFC 8841 §9.3).
  An end that has already received the peer's INIT retransmits its own with the peer's
  verification tag in the packet header instead of 0 (RFC 9260 §8.5.1), and the peer drops
  it as a bad tag.  If both INIT-ACKs of a collision are lost, neither end ever completes the
  handshake: ICE and DTLS say connected, the data channel never opens, and after eight T1
  expiries the association closes.  We send every INIT with tag 0.  Found with the
  impairment relay (5 % loss, seed 2); see tests/test_aiortc_fixes.py.
- **Transport-level liveness**: on an ordered channel one lost packet holds back every later
  message, our heartbeat pongs included, for an SCTP retransmission timeout (1 s, doubling),
  so "no pong for 2.5 s" misreads a lossy link as a dead peer.  Every SCTP packet that
  arrives (SACKs for our pings, retransmissions) proves the peer alive, so we stamp the time
  of the last one on the transport (:func:`last_received`, :func:`seconds_since_received`).
- **A bound on what a peer's data holds here**: aiortc keeps every DATA chunk until its
  message is whole, whatever the window it advertised, so a peer that sends one message
  without its last fragment (or chunks past a gap that never fills) grew our memory
  without bound, before any channel binding: 10 MB for 10 MB sent.  A peer sends no
  message over the ``a=max-message-size`` we advertise, and keeps at most one window in
  flight, so more than :data:`MAX_HELD` bytes (or :data:`MAX_HELD_CHUNKS` chunks) held
  aborts the association.

The patches apply once, when :mod:`.aiortc_compat` is imported (:func:`apply`).
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import aioice.turn
from aiortc import rtcsctptransport

_MARK = "_volli_init_tag_fix"
_STAMP = "_volli_last_received"


def apply() -> None:
    """Patch ``RTCSctpTransport``: INIT chunks always carry tag 0, every packet is stamped,
    flow control, bounded reassembly (idempotent)."""
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
    _flow_control(cls)
    _bounded_reassembly(cls)


RECEIVE_BUFFER = 4 * 1024 * 1024  # asked for each ICE socket (aioice's 256 KiB before); the
# kernel caps it at net.core.rmem_max


def _effective_receive_buffer() -> int:
    """What the kernel grants a UDP socket that asks for :data:`RECEIVE_BUFFER` (Linux
    doubles the request for its bookkeeping, up to twice ``net.core.rmem_max``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        with contextlib.suppress(OSError):
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        return int(probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


# The kernel charges a datagram its size plus about 700 bytes of bookkeeping, so a window
# of 100-byte messages (one packet each) costs the socket ~8x its bytes: advertise a
# sixteenth of the buffer, and a full window in flight always fits in it.
WINDOW = max(16 * 1024, min(1024 * 1024, _effective_receive_buffer() // 16))


def _flow_control(cls: Any) -> None:
    """Flow control aiortc 1.16 leaves out.  Its sender ignores the window the receiver
    advertises (RFC 9260 §6.1), so on loopback, where nothing else slows it, slow start
    grows its congestion window past anything the receiving UDP socket holds (212 KiB by
    default); while the receiving process is busy (storing a bundle, say), the kernel
    drops the excess, and SCTP recovers by fast retransmit or, for the last packets of a
    burst, a T3 timeout (at least 1 s).  The baseline's transfers swung from 0.7 to 17 s
    with tens of thousands of drops each.  Now each ICE socket asks for a 4 MiB receive
    buffer (aioice asked for 256 KiB), each association advertises at most a sixteenth of
    what its socket got (:data:`WINDOW`), and a sender's congestion window never passes
    the window its peer last advertised (plus the one packet slow start adds per SACK)."""
    init = cls.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._advertised_rwnd = WINDOW

    sack = cls._receive_sack_chunk

    async def _receive_sack_chunk(self: Any, chunk: Any) -> None:
        floor = 4 * rtcsctptransport.USERDATA_MAX_LENGTH  # never below RFC 9260's minimum
        self._cwnd = min(self._cwnd, max(chunk.advertised_rwnd, floor))
        await sack(self, chunk)

    cls.__init__ = __init__
    cls._receive_sack_chunk = _receive_sack_chunk
    aioice.turn.UDP_SOCKET_BUFFER_SIZE = RECEIVE_BUFFER  # aioice sets it on every UDP socket


# One message as large as we take, and a window of later ones behind a gap, twice over.
MAX_HELD = 2 * (rtcsctptransport.LOCAL_MAX_MESSAGE_SIZE + WINDOW)
# In chunks: a held chunk costs ~450 bytes however small, and aiortc walks every chunk of
# an unfinished message when one more arrives (so n chunks cost n²/2 steps).  A sender
# fragments at its path MTU: our largest message is ~220 chunks, a window ~440 more.
MAX_HELD_CHUNKS = 2048
COUNT_EVERY = 256  # data chunks between two counts (a count walks every stream)
_COUNT = "_volli_data_chunks"


def _bounded_reassembly(cls: Any) -> None:
    """aiortc counts what it holds for reassembly against the window it advertises (the
    window it began with, less what it holds) but never refuses a chunk: past
    :data:`MAX_HELD` bytes held (or :data:`MAX_HELD_CHUNKS` chunks, counted every
    :data:`COUNT_EVERY`: empty or 1-byte chunks hardly move the window), the peer is
    sending what no message and no window allows, and the association is aborted (the
    data channel closes), what it held dropped."""
    receive = cls._receive_data_chunk

    async def _receive_data_chunk(self: Any, chunk: Any) -> None:
        if self._association_state == self.State.CLOSED:
            return
        await receive(self, chunk)
        count = getattr(self, _COUNT, 0) + 1
        setattr(self, _COUNT, count)
        if WINDOW - self._advertised_rwnd > MAX_HELD or (
            count % COUNT_EVERY == 0 and _chunks_held(self) > MAX_HELD_CHUNKS
        ):
            self._inbound_streams.clear()
            await self._abort()
            self._set_state(self.State.CLOSED)

    cls._receive_data_chunk = _receive_data_chunk


def _chunks_held(transport: Any) -> int:
    return sum(len(stream.reassembly) for stream in transport._inbound_streams.values())


def last_received(sctp: Any) -> float | None:
    """``time.monotonic()`` of the last SCTP packet from the peer, if any arrived."""
    value = getattr(sctp, _STAMP, None)
    return value if isinstance(value, float) else None


def seconds_since_received(sctp: Any) -> float | None:
    """How long ago the last SCTP packet from the peer arrived (None: none yet).

    An age rather than a time, so callers keep their own (injected) clock."""
    stamp = last_received(sctp)
    return None if stamp is None else max(0.0, time.monotonic() - stamp)
