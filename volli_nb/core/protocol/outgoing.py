"""What a session sends next: control frames first, envelopes bundled and signed once per frame.

- **Bundling.**  ``queue`` holds a sealed envelope until the next
  :meth:`Outgoing.data_to_send`, which packs every queued small one (up to a quarter of
  ``max_message_size``) into BUNDLE frames of up to ``max_message_size`` bytes and
  ``MAX_BUNDLE`` envelopes, in order, each signed once (one Ed25519 signature per frame,
  however many messages it holds); larger ones go alone, chunked.  A burst of small
  messages then costs one SCTP message, one signature and, since the receiver answers a
  frame once, one signed ACK (``MAX_BUNDLE`` equals ``MAX_ACK_IDS``).
- **Chunking.**  Any outgoing frame longer than ``max_message_size`` is split into
  CHUNK frames (:mod:`volli_nb.core.protocol.chunks`).
- **Priority.**  ``data_to_send`` returns HELLOs (a re-key's must precede anything
  sealed under it), PONGs, refusals, then ACKs (one signed frame per 512 ids, normally
  one), then message frames; with ``max_bytes`` it stops after that many message bytes
  and keeps the rest, so control frames overtake bulk data (a chunked message's pieces
  may be interleaved with them; the reassembler allows that).
"""

from __future__ import annotations

from collections import deque

from volli_nb.core.crypto.envelope import Sealed, bundle
from volli_nb.core.crypto.envelope_wire import MAX_BUNDLE
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.protocol.chunks import make_chunks
from volli_nb.core.protocol.events import SessionStats
from volli_nb.core.protocol.frames import (
    MAX_ACK_IDS,
    bundle_frame_size,
    encode_frame,
    make_ack,
    make_bundle_frame,
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
        self.session_id = b""  # the session refusals are signed in (set by the handshake)
        self.tag = b""  # the session tag bundles carry
        self._reliability = reliability
        self._stats = stats
        self._hellos: list[bytes] = []
        self._pending_acks: dict[bytes, None] = {}
        self._refusals: dict[RefusalCode, tuple[int, dict[bytes, None]]] = {}  # code → clock, ids
        self._pongs: list[bytes] = []
        self._unsent: list[tuple[bytes, int]] = []  # (id, serial) queued, not yet framed
        self._wire: deque[bytes] = deque()  # message frames made, not yet returned
        self._wire_bytes = 0
        self._unsent_bytes = 0  # counts replaced entries too, until the next data_to_send
        self._next_stream = 1

    def hello(self, frame: bytes) -> None:
        """A HELLO to send before anything else (a re-key's)."""
        self._hellos.append(frame)

    def queue(self, state: InFlight) -> None:
        self._unsent.append((state.item.message_id, state.serial))
        self._unsent_bytes += len(state.item.envelope)

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

    def drop_unsent(self) -> None:
        """Forget queued envelopes and frames not yet returned (their session ended)."""
        self._unsent.clear()
        self._unsent_bytes = 0
        self._wire.clear()
        self._wire_bytes = 0

    @property
    def queued_bytes(self) -> int:
        return self._unsent_bytes + self._wire_bytes

    @property
    def has_output(self) -> bool:
        return bool(
            self._hellos
            or self._pongs
            or self._pending_acks
            or self._refusals
            or self._unsent
            or self._wire
        )

    def data_to_send(self, now: float, max_bytes: int | None = None) -> list[bytes]:
        out = [f for hello in self._hellos for f in self.split(hello)]
        self._hellos.clear()
        out += self._pongs
        self._pongs = []
        # Refusals before ACKs: a sender that sees the ACK of a later message has seen
        # every refusal of an earlier one (else a refusal could land on a resend).
        out.extend(self._refusal_frames())
        ids = list(self._pending_acks)
        self._pending_acks.clear()
        for start in range(0, len(ids), MAX_ACK_IDS):
            batch = ids[start : start + MAX_ACK_IDS]
            out.extend(self.split(make_ack(self.me, self.peer_id, batch)))
            self._stats.acks_out += 1
        items = self._take_unsent(now) + self._reliability.take_due(now)
        if items:
            for frame in self.pack(items):
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
                frame = sign_refusal(self.me, self.peer_id, batch, code, clock_ms, self.session_id)
                out.extend(self.split(encode_frame(frame)))
        self._refusals.clear()
        return out

    def _take_unsent(self, now: float) -> list[Sealed]:
        items = []
        for mid, serial in self._unsent:
            state = self._reliability.current(mid, serial)
            if state is not None:
                self._reliability.arm(mid, state, now)
                items.append(state.item)
        self._unsent.clear()
        self._unsent_bytes = 0
        return items

    def pack(self, items: list[Sealed]) -> list[bytes]:
        """Envelopes → BUNDLE frames, in order: small ones together, large ones alone;
        each frame signed once."""
        out: list[bytes] = []
        batch: list[Sealed] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if batch:
                out.extend(self.split(make_bundle_frame(self.tag, bundle(self.me, batch))))
                self._stats.bundles_out += 1
            batch.clear()
            size = 0

        for item in items:
            length = len(item.envelope)
            if not self.bundle or length + 4 > self.bundle_item_max:
                flush()
                batch.append(item)
                flush()
                continue
            fits = bundle_frame_size(size + length, len(batch) + 1) <= self.max_message_size
            if batch and (not fits or len(batch) == MAX_BUNDLE):
                flush()
            batch.append(item)
            size += length
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


__all__ = ["Outgoing"]
