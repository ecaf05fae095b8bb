"""Chunking: a frame too large for one data-channel message travels as CHUNK frames.

:func:`make_chunks` splits; a :class:`Reassembler` joins them back on the other side.
Browsers take at most 16 KiB per message and SCTP peers 64 KiB unless they say
otherwise, while a message may be 12 MiB, so any frame can be chunked.  The channel is
ordered, so one stream's chunks arrive in order and a gap is a bug or an attack.  The
reassembler bounds what a peer can make us buffer: one frame at most
``max_frame_bytes``, all partial frames together that plus ``MAX_STREAMS`` control
frames, and at most ``MAX_STREAMS`` partial frames at once; a partial frame is held in
one buffer, so what it costs in memory is what it counts (2-byte chunks kept as a list of
``bytes`` objects cost 28 times their size).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from volli_nb.base.errors import MalformedFrame, OversizedInput, UsageError
from volli_nb.core.protocol.frames import (
    CHUNK,
    CHUNK_HEADER,
    CHUNK_OVERHEAD,
    MAX_CONTROL_BYTES,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    ChunkFrame,
)

MAX_STREAMS = 8  # chunked frames partially received at once


def make_chunks(frame: bytes, stream: int, max_size: int) -> list[bytes]:
    """Split ``frame`` into CHUNK frames of at most ``max_size`` bytes each."""
    room = max_size - CHUNK_OVERHEAD
    if room <= 0:
        raise UsageError(f"max_size {max_size} leaves no room for chunk data")
    if not frame:
        raise UsageError("cannot chunk an empty frame")
    if not 0 <= stream <= 0xFFFFFFFF:
        raise UsageError("a stream id is an unsigned 32-bit integer")
    last = (len(frame) - 1) // room
    return [
        bytes([PROTOCOL_VERSION, CHUNK])
        + CHUNK_HEADER.pack(stream, i, i == last)
        + frame[i * room : (i + 1) * room]
        for i in range(last + 1)
    ]


class Reassembler:
    """Joins CHUNK frames back into frames, refusing gaps and oversized input.

    The channel is ordered, so a stream's chunks arrive in order; a gap is a bug or an
    attack.  One frame may reach ``max_frame_bytes``; all partial frames together that
    plus ``MAX_STREAMS`` control frames; at most ``MAX_STREAMS`` are partial at once.
    A refused chunk drops its whole partial frame; other streams are unaffected.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.budget = max_frame_bytes + MAX_STREAMS * MAX_CONTROL_BYTES
        self.buffered = 0
        self._streams: dict[int, _Stream] = {}

    @property
    def partial(self) -> int:
        """How many chunked frames are half received."""
        return len(self._streams)

    def add(self, chunk: ChunkFrame) -> bytes | None:
        """The whole frame when ``chunk`` is its final piece, else None."""
        stream = self._streams.get(chunk.stream)
        if stream is None:
            if chunk.index != 0:
                raise MalformedFrame(f"chunk {chunk.index} of unknown stream {chunk.stream}")
            if len(self._streams) >= MAX_STREAMS:
                raise OversizedInput(f"more than {MAX_STREAMS} chunked frames at once")
            stream = self._streams[chunk.stream] = _Stream()
        if chunk.index != stream.next_index:
            self._drop(chunk.stream)
            raise MalformedFrame(
                f"chunk {chunk.index} of stream {chunk.stream} arrived where "
                f"{stream.next_index} was expected; the partial frame is dropped"
            )
        size = len(chunk.data)
        if stream.size + size > self.max_frame_bytes:
            self._drop(chunk.stream)
            raise OversizedInput(f"chunked frame exceeds {self.max_frame_bytes} bytes; dropped")
        if self.buffered + size > self.budget:
            self._drop(chunk.stream)
            raise OversizedInput("partial chunked frames exceed the reassembly budget; dropped")
        stream.data += chunk.data  # one buffer: tiny chunks cost their bytes, not an object each
        stream.size += size
        self.buffered += size
        stream.next_index += 1
        if not chunk.final:
            return None
        self._drop(chunk.stream)
        return bytes(stream.data)

    def _drop(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self.buffered -= stream.size


@dataclass
class _Stream:
    next_index: int = 0
    data: bytearray = field(default_factory=bytearray)
    size: int = 0


__all__ = ["MAX_STREAMS", "Reassembler", "make_chunks"]
