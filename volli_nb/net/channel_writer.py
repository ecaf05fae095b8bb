"""Writing to one data channel without letting its buffer grow deep.

aiortc's ``send()`` never blocks: whatever is not on the wire yet waits in the channel's
buffer (``bufferedAmount``), and a pong or an ACK queued behind a deep buffer waits as
long as all of it.  A :class:`ChannelWriter` waits before each frame until the buffer
is at most the high mark its caller gives (about a second of goodput), woken by
``bufferedamountlow``; it knows nothing about frames, sessions or peers.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiortc import RTCDataChannel

from volli_nb.base.errors import TransportClosed

RECHECK = 1.0  # seconds: re-read bufferedAmount even if no 'bufferedamountlow' came


class ChannelWriter:
    """One data channel's writing side, with back-pressure."""

    def __init__(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        self.stopped = False
        self._room = asyncio.Event()  # the buffer fell (or a queue upstream of it did)

        @channel.on("bufferedamountlow")
        def _low() -> None:
            self._room.set()

    def write(self, frame: bytes) -> None:
        """Hand ``frame`` to the channel now, whatever its buffer holds."""
        if self.channel.readyState != "open":
            raise TransportClosed("data channel is not open")
        self.channel.send(frame)

    async def wait_below(self, high: int) -> None:
        """Return once at most ``high`` bytes wait in the channel's buffer;
        :class:`TransportClosed` if the writer stops meanwhile."""
        while self.channel.bufferedAmount > high:
            await self.wait_room()
            if self.stopped:
                raise TransportClosed("connection closed while waiting to send")

    async def wait_room(self) -> None:
        """Wait until room appears (:meth:`made_room`, ``bufferedamountlow``, or
        :meth:`stop`), at most :data:`RECHECK` seconds."""
        self._room.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._room.wait(), RECHECK)

    def made_room(self) -> None:
        """Something upstream drained (the session's queue): wake whoever waits."""
        self._room.set()

    def stop(self) -> None:
        """The link closed: every waiter wakes and sees it."""
        self.stopped = True
        self._room.set()


__all__ = ["ChannelWriter"]
