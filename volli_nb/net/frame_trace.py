"""What crosses a data channel, as event-log entries and progress.

BUNDLE, ACK, HELLO, REFUSE and BYE frames are logged (category ``frame``) with their
ids, sizes and, for chunked frames, how long they took; pings and pongs are left out,
as they come twice a second.  A chunked frame is logged once, when its last chunk
passes, and a large outgoing message reports progress chunk by chunk, then waits for
its signed ACK, so a 10 MB send shows a bar instead of nothing.

The trace reads only frame headers (and an ACK's id list), never opens envelopes, and
never raises: a frame it cannot read is the session's business, not the trace's.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from volli_nb.base.errors import VolliError
from volli_nb.core.crypto.channel_keys import TAG_BYTES
from volli_nb.core.crypto.envelope_wire import peek_message_ids
from volli_nb.core.crypto.identity import DEVICE_ID_BYTES
from volli_nb.core.eventlog import EventLog
from volli_nb.core.message_id import COUNT, MESSAGE_ID_BYTES
from volli_nb.core.progress import ProgressFeed
from volli_nb.core.protocol import frames

PROGRESS_MIN_BYTES = 256 * 1024  # smaller messages finish before a bar would help
MAX_IDS = 64  # ids kept in one entry's data (a bundle can hold 512)
ID = MESSAGE_ID_BYTES


@dataclass
class _Stream:
    """A chunked frame under way in one direction."""

    kind: str
    message_id: bytes | None
    started: float
    size: int = 0
    chunks: int = 0


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _bundle_ids(body: bytes) -> tuple[int, list[bytes]]:
    """A BUNDLE body's message count and first MAX_IDS ids (a trace needs no more)."""
    return peek_message_ids(body[TAG_BYTES:], MAX_IDS)


def _ack_ids(body: bytes) -> tuple[int, list[bytes]]:
    """An ACK body's id count and first MAX_IDS ids (after the two 10-byte device ids)."""
    start = 2 * DEVICE_ID_BYTES
    (count,) = COUNT.unpack_from(body, start)
    start += COUNT.size
    return count, [body[start + i * ID : start + (i + 1) * ID] for i in range(min(count, MAX_IDS))]


class FrameTrace:
    """One per NetworkStore; the store calls it where frames are sent and received."""

    def __init__(
        self, log: EventLog, progress: ProgressFeed, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log, self.progress, self._clock = log, progress, clock
        # Each hears every frame as it crosses: (direction "in"/"out", peer id, bytes).
        # What lab tools record (a tap must not raise; what it does with bytes is its own).
        self.taps: list[Callable[[str, str, bytes], None]] = []
        self._streams: dict[tuple[str, str, int], _Stream] = {}  # (direction, peer, stream)
        self._large: dict[tuple[str, bytes], str] = {}  # (peer, message id) → progress key

    # --- what the store tells us ------------------------------------------------

    def sealing(self, peer_id: str, message_id: bytes, payload_size: int) -> None:
        """The app is encrypting a large message (seconds for megabytes): show it already."""
        if payload_size >= PROGRESS_MIN_BYTES:
            self._start_send(peer_id, message_id, None, "encrypting")

    def expect(self, peer_id: str, message_id: bytes, envelope_size: int) -> None:
        """A message was queued for sending: a large one gets a progress bar."""
        if envelope_size >= PROGRESS_MIN_BYTES:
            self._start_send(
                peer_id, message_id, frames.bundle_frame_size(envelope_size, 1), "queued"
            )

    def _start_send(self, peer_id: str, message_id: bytes, total: int | None, stage: str) -> None:
        key = f"send:{message_id.hex()}:{peer_id}"
        self._large[(peer_id, message_id)] = key
        description = f"{message_id.hex()[:8]} → {peer_id[:8]}"
        self.progress.start(key, description, total=total, unit="B", stage=stage)

    def acked(self, peer_id: str, message_ids: tuple[bytes, ...]) -> None:
        for message_id in message_ids:
            key = self._large.pop((peer_id, message_id), None)
            if key is not None:
                self.progress.finish(key, "acknowledged")

    def gave_up(self, peer_id: str, message_id: bytes, reason: str) -> None:
        """No ACK in time: the message went back to the outbox's schedule."""
        key = self._large.pop((peer_id, message_id), None)
        if key is not None:
            self.progress.finish(key, f"back in the outbox: {reason}", failed=True)

    def dropped(self, peer_id: str, reason: str) -> None:
        """The link ended: its large sends stop, its half-received frames are forgotten."""
        for (peer, message_id), key in list(self._large.items()):
            if peer == peer_id:
                del self._large[(peer, message_id)]
                self.progress.finish(key, f"not acknowledged: {reason}", failed=True)
        for stream_key in [k for k in self._streams if k[1] == peer_id]:
            stream = self._streams.pop(stream_key)
            if stream_key[0] == "in" and stream.message_id is not None:
                key = f"receive:{stream.message_id.hex()}:{peer_id}"
                self.progress.finish(key, f"incomplete: {reason}", failed=True)

    def sent(self, peer_id: str, frame: bytes) -> None:
        for tap in self.taps:
            tap("out", peer_id, frame)
        self._trace("out", peer_id, frame)

    def received(self, peer_id: str, frame: bytes) -> None:
        for tap in self.taps:
            tap("in", peer_id, frame)
        self._trace("in", peer_id, frame)

    # --- reading frames ------------------------------------------------------------

    def _trace(self, direction: str, peer_id: str, frame: bytes) -> None:
        try:
            kind = frame[1] if len(frame) > 1 else None
            if kind == frames.CHUNK:
                self._chunk(direction, peer_id, frame)
            elif kind in (frames.BUNDLE, frames.ACK, frames.HELLO, frames.REFUSE, frames.BYE):
                self._whole(direction, peer_id, frame, len(frame), 1, None)
        except (struct.error, ValueError, KeyError, TypeError, IndexError, VolliError):
            return  # unreadable: the session refuses it with a typed error

    def _chunk(self, direction: str, peer_id: str, frame: bytes) -> None:
        stream_id, index, final = frames.CHUNK_HEADER.unpack_from(frame, 2)
        data = frame[2 + frames.CHUNK_HEADER.size :]
        key = (direction, peer_id, stream_id)
        stream = self._streams.get(key)
        if index == 0 or stream is None:
            inner = frames.TYPE_NAMES.get(data[1], "?") if len(data) > 1 else "?"
            message_id = _bundle_ids(data[2:])[1][0] if inner == "BUNDLE" else None
            stream = self._streams[key] = _Stream(inner, message_id, self._clock())
        stream.size += len(data)
        stream.chunks += 1
        self._chunk_progress(direction, peer_id, stream, final)
        if final:
            del self._streams[key]
            if stream.kind == "BUNDLE" and stream.message_id is not None:
                self._whole(direction, peer_id, b"", stream.size, stream.chunks, stream)

    def _chunk_progress(self, direction: str, peer_id: str, stream: _Stream, final: bool) -> None:
        if stream.message_id is None:
            return
        if direction == "out":
            key = self._large.get((peer_id, stream.message_id))
            if key is not None:
                stage = "waiting for the signed ACK" if final else "sending"
                self.progress.update(key, done=stream.size, stage=stage)
            return
        key = f"receive:{stream.message_id.hex()}:{peer_id}"
        if stream.chunks == 1:
            description = f"{stream.message_id.hex()[:8]} ← {peer_id[:8]}"
            self.progress.start(key, description, total=None, unit="B", stage="receiving")
        self.progress.update(key, done=stream.size)
        if final:
            self.progress.finish(key, "received")

    def _whole(
        self,
        direction: str,
        peer_id: str,
        frame: bytes,
        size: int,
        chunks: int,
        stream: _Stream | None,
    ) -> None:
        kind = frames.TYPE_NAMES[frame[1]] if stream is None else stream.kind
        body = frame[2:]
        count, ids = 0, []
        if stream is not None and stream.message_id is not None:  # a chunked bundle of one
            count, ids = 1, [stream.message_id]
        elif kind == "BUNDLE":
            count, ids = _bundle_ids(body)
        elif kind == "ACK" and direction == "out":  # incoming ACKs are logged once verified
            count, ids = _ack_ids(body)
        verb = "sent" if direction == "out" else "received"
        what = kind
        if kind == "BUNDLE":  # one message is a MESSAGE, as the seed's diagrams say
            what = "MESSAGE" if count == 1 else f"BUNDLE of {count}"
        elif kind == "ACK" and count:
            what = f"ACK for {count}"
        if count == 1:
            what += f" {ids[0].hex()[:8]}"
        extra: dict[str, object] = {}
        if stream is not None:
            extra = {"chunks": chunks, "seconds": round(self._clock() - stream.started, 6)}
        elif kind == "BYE":
            extra = {"reason": body.decode("utf-8", errors="replace")[:200]}
        self.log.add(
            "frame",
            f"{verb} {what} ({_human(size)}" + (f" in {chunks} chunks)" if chunks > 1 else ")"),
            peer_id=peer_id,
            kind=f"frame.{kind.lower()}",
            direction=direction,
            frame=kind,
            bytes=size,
            count=count,
            message_ids=[i.hex() for i in ids],
            **extra,
        )
