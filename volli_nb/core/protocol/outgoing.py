"""What a session sends next: control frames first, small messages bundled, large ones chunked.

- **Bundling.**  ``queue`` holds a message until the next :meth:`Outgoing.data_to_send`,
  which packs every queued small message (a frame up to a quarter of
  ``max_message_size``) into BUNDLE frames of up to ``max_message_size`` bytes and
  ``MAX_BUNDLE`` messages, in order; larger ones go alone, chunked.  A burst of small
  messages then costs one SCTP message and, since the receiver handles a bundle's
  messages in one go, one signed ACK for all (``MAX_BUNDLE`` equals ``MAX_ACK_IDS``).
- **Chunking.**  Any outgoing frame longer than ``max_message_size`` is split into
  CHUNK frames (:mod:`volli_nb.core.protocol.chunks`).
- **Priority.**  ``data_to_send`` returns PONGs, then ACKs (one signed frame per 512
  ids, normally one), then refusals (one per code and 512 ids), then message frames;
  with ``max_bytes`` it stops after that many message bytes and keeps the rest, so
  control frames overtake bulk data (a chunked message's pieces may be interleaved
  with them; the reassembler allows that).
"""

from __future__ import annotations

from collections import deque

from volli_nb.core.crypto.identity import Identity
from volli_nb.core.message_id import MESSAGE_ID_BYTES
from volli_nb.core.protocol.chunks import make_chunks
from volli_nb.core.protocol.events import SessionStats
from volli_nb.core.protocol.frames import (
    MAX_ACK_IDS,
    MAX_BUNDLE,
    bundle_size,
    encode_frame,
    make_ack,
    make_bundle,
    make_message,
)
from volli_nb.core.protocol.refusal import MAX_REFUSE_IDS, RefusalCode, sign_refusal
from volli_nb.core.protocol.reliability import InFlight, Reliability


class Outgoing:
    """The frames waiting to leave one session, in the order they should leave."""

    def __init__(
        self,
        me: Identity,
        peer_id: str,
        reliability: Reliability,
        stats: SessionStats,
        *,
        max_message_size: int,
        bundle: bool,
    ) -> None:
        self.me, self.peer_id = me, peer_id
        self.max_message_size = max_message_size
        self.bundle = bundle
        self.bundle_item_max = max_message_size // 4
        self._reliability = reliability
        self._stats = stats
        self._pending_acks: dict[bytes, None] = {}
        self._refusals: dict[RefusalCode, tuple[int, dict[bytes, None]]] = {}  # code → clock, ids
        self._pongs: list[bytes] = []
        self._unsent: list[tuple[bytes, int]] = []  # (id, serial) queued, not yet framed
        self._wire: deque[bytes] = deque()  # message frames made, not yet returned
        self._wire_bytes = 0
        self._unsent_bytes = 0  # counts replaced entries too, until the next data_to_send
        self._next_stream = 1

    def queue(self, message_id: bytes, state: InFlight) -> None:
        self._unsent.append((message_id, state.serial))
        self._unsent_bytes += len(state.body)

    def ack(self, message_id: bytes) -> None:
        """Acknowledge ``message_id`` in the next ACK batch."""
        self._pending_acks[message_id] = None

    def refuse(self, message_id: bytes, code: RefusalCode, clock_ms: int) -> None:
        """Refuse ``message_id`` in the next refusal batch for ``code`` (newest clock wins)."""
        _, ids = self._refusals.get(code, (clock_ms, {}))
        ids[message_id] = None
        self._refusals[code] = (clock_ms, ids)

    def pong(self, frame: bytes) -> None:
        self._pongs.append(frame)

    @property
    def queued_bytes(self) -> int:
        return self._unsent_bytes + self._wire_bytes

    @property
    def has_output(self) -> bool:
        return bool(
            self._pongs or self._pending_acks or self._refusals or self._unsent or self._wire
        )

    def data_to_send(self, now: float, max_bytes: int | None = None) -> list[bytes]:
        out, self._pongs = self._pongs, []
        # Refusals before ACKs: a sender that sees the ACK of a later message has seen
        # every refusal of an earlier one (else a refusal could land on a resend).
        out.extend(self._refusal_frames())
        ids = list(self._pending_acks)
        self._pending_acks.clear()
        for start in range(0, len(ids), MAX_ACK_IDS):
            batch = ids[start : start + MAX_ACK_IDS]
            out.extend(self.split(make_ack(self.me, self.peer_id, batch)))
            self._stats.acks_out += 1
        bodies = self._take_unsent(now) + self._reliability.take_due(now)
        if bodies:
            for frame in self.pack(bodies):
                self._wire.append(frame)
                self._wire_bytes += len(frame)
        sent = 0
        while self._wire and (max_bytes is None or sent < max_bytes):
            frame = self._wire.popleft()
            self._wire_bytes -= len(frame)
            sent += len(frame)
            out.append(frame)
        return self.out(out)

    def _refusal_frames(self) -> list[bytes]:
        out = []
        for code, (clock_ms, ids) in self._refusals.items():
            refused = list(ids)
            for start in range(0, len(refused), MAX_REFUSE_IDS):
                batch = refused[start : start + MAX_REFUSE_IDS]
                frame = sign_refusal(self.me, self.peer_id, batch, code, clock_ms)
                out.extend(self.split(encode_frame(frame)))
        self._refusals.clear()
        return out

    def _take_unsent(self, now: float) -> list[bytes]:
        bodies = []
        for mid, serial in self._unsent:
            state = self._reliability.current(mid, serial)
            if state is not None:
                self._reliability.arm(mid, state, now)
                bodies.append(state.body)
        self._unsent.clear()
        self._unsent_bytes = 0
        return bodies

    def pack(self, bodies: list[bytes]) -> list[bytes]:
        """MESSAGE bodies → frames, in order: small ones bundled, large ones alone."""
        out: list[bytes] = []
        batch: list[bytes] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if len(batch) == 1:
                out.append(_message_frame(batch[0]))
            elif batch:
                out.append(make_bundle(batch))
                self._stats.bundles_out += 1
            batch.clear()
            size = 0

        for body in bodies:
            if not self.bundle or len(body) + 2 > self.bundle_item_max:
                flush()
                out.extend(
                    self.split(make_message(body[:MESSAGE_ID_BYTES], body[MESSAGE_ID_BYTES:]))
                )
                continue
            fits = bundle_size(size + len(body), len(batch) + 1) <= self.max_message_size
            if batch and (not fits or len(batch) == MAX_BUNDLE):
                flush()
            batch.append(body)
            size += len(body)
        flush()
        return out

    def split(self, frame: bytes) -> list[bytes]:
        if len(frame) <= self.max_message_size:
            return [frame]
        stream = self._next_stream
        self._next_stream = stream % 0xFFFFFFFF + 1
        return make_chunks(frame, stream, self.max_message_size)

    def out(self, frames: list[bytes]) -> list[bytes]:
        """Count frames as they leave the session."""
        self._stats.frames_out += len(frames)
        self._stats.bytes_out += sum(len(f) for f in frames)
        return frames


def _message_frame(body: bytes) -> bytes:
    """A MESSAGE frame from its body (``id + envelope``, as the session tracks it)."""
    return make_message(body[:MESSAGE_ID_BYTES], body[MESSAGE_ID_BYTES:])


__all__ = ["Outgoing"]
