"""One client's socket on ``volli-signal``: an ordered, bounded outbox (its rate limit is
:mod:`~volli_nb.net.signaling.admission`'s).

Every frame to a client (replies, presence, signals) goes through one queue
and one writer task, so the order the server decides is the order the
client reads, and a client that stops reading is closed once its outbox
holds ``max_outbox`` frames or ``max_outbox_bytes`` bytes instead of growing
the server's memory.  Both: 1,024 relayed signals of 48 KiB are 50 MB for one
client that does not read; the byte bound still takes the largest burst one
push sends (a joiner's 64 queued signals, ~3 MiB).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from volli_nb.core.crypto.identity import PublicIdentity
from volli_nb.net.signaling.admission import FrameBudget
from volli_nb.net.signaling.wire import encode, error_frame, presence_entry

MAX_OUTBOX = 1024
MAX_OUTBOX_BYTES = 4 * 1024 * 1024
CLOSE_REPLACED, CLOSE_REFUSED, CLOSE_TOO_SLOW = 4000, 4001, 4008


@dataclass
class Connection:
    ws: ServerConnection
    budget: FrameBudget
    max_outbox: int = MAX_OUTBOX
    max_outbox_bytes: int = MAX_OUTBOX_BYTES
    conn: str = field(default_factory=lambda: os.urandom(12).hex())
    peer_id: str = ""
    identity: dict[str, Any] = field(default_factory=dict)
    rooms: dict[str, int] = field(default_factory=dict)  # room → seq of our snapshot
    joining: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    held: list[dict[str, Any]] = field(default_factory=list)  # signals while a join is pending
    turn_timer: asyncio.TimerHandle | None = None
    closing: bool = False
    close_code: int | None = None  # why the server closed it, if it did
    restoring: bool = False  # being registered again after the engine came back
    _outbox: asyncio.Queue[str | tuple[int, str]] = field(default_factory=asyncio.Queue)
    _writer: asyncio.Task[None] | None = None
    _outbox_bytes: int = 0  # of the frames push() queued and the writer has not taken

    def registered(self, identity: PublicIdentity, register: dict[str, Any]) -> None:
        """Who this connection is, and what its rooms will see of it."""
        self.peer_id, self.identity = identity.peer_id, presence_entry(identity, register)

    def start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write())

    def push(self, frame: dict[str, Any]) -> None:
        if self.closing:
            return
        text = encode(frame)  # ASCII: its length is its size in bytes
        full = self._outbox_bytes + len(text) > self.max_outbox_bytes
        if full or self._outbox.qsize() >= self.max_outbox:
            self.abort(CLOSE_TOO_SLOW)
            return
        self._outbox_bytes += len(text)
        self._outbox.put_nowait(text)

    def push_signal(self, frame: dict[str, Any]) -> None:
        """A relayed signal, held back while a join reply is pending: the room's members
        see a joiner, and may offer, before its reply is sent (on Redis the reply and the
        PUBLISH reach the process on two connections, in either order), and a signal read
        before that reply comes from a peer the client does not know yet."""
        if self.joining:
            self.held.append(frame)
        else:
            self.push(frame)

    def release_held(self) -> None:
        """Once no join reply is pending, the signals held back for it go out, in order."""
        if not self.joining:
            held, self.held = self.held, []
            for frame in held:
                self.push(frame)

    def close_after(self, code: int, reason: str, frame: dict[str, Any] | None = None) -> None:
        """Send ``frame`` (if any) after what is queued, then close."""
        if self.closing:
            return
        if frame is not None:
            text = encode(frame)
            self._outbox_bytes += len(text)
            self._outbox.put_nowait(text)
        self.closing, self.close_code = True, code
        self._outbox.put_nowait((code, reason))

    def abort(self, code: int) -> None:
        """Drop the socket now: a client that does not read would never read a close frame
        either, and what waits for it is freed at once."""
        self.closing, self.close_code = True, code
        if self._writer is not None:
            self._writer.cancel()
        self.ws.transport.abort()

    def kick_replaced(self) -> None:
        self.close_after(
            CLOSE_REPLACED,
            "replaced by a newer connection",
            error_frame("replaced", "a newer connection took this id"),
        )

    async def _write(self) -> None:
        while True:
            item = await self._outbox.get()
            try:
                if isinstance(item, tuple):
                    await self.ws.close(*item)
                    return
                self._outbox_bytes -= len(item)
                await self.ws.send(item)
            except ConnectionClosed:
                return

    async def stop(self) -> None:
        if self.turn_timer is not None:
            self.turn_timer.cancel()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
