"""Progress of a backlog flush: a peer came back and the messages queued for it go out.

Counts the flushed messages as they are acknowledged (the only proof of delivery) and
says in its stage how many have been handed to the network.  Ends when every one is
settled: acknowledged, or back in the outbox after a timeout or because the peer went
away again.  Small backlogs get no bar; they finish before one would help.
"""

from __future__ import annotations

from collections.abc import Callable

from volli_nb.core.progress import ProgressFeed
from volli_nb.net.events import Delivered, NetworkEvent, PeerOffline, Undelivered

FLUSH_PROGRESS_MIN = 50  # messages


class FlushProgress:
    def __init__(
        self,
        feed: ProgressFeed,
        peer_id: str,
        name: str,
        message_ids: list[bytes],
        on_event: Callable[[Callable[[NetworkEvent], None]], Callable[[], None]],
    ) -> None:
        self.feed, self.peer_id = feed, peer_id
        self.key = f"flush:{peer_id}"
        self._waiting = set(message_ids)
        self._total = len(message_ids)
        self._sent = self._acked = 0
        feed.start(self.key, f"flush to {name}", total=self._total, unit="msg", stage="sending")
        self._remove = on_event(self._on_event)

    @classmethod
    def maybe(
        cls,
        feed: ProgressFeed,
        peer_id: str,
        name: str,
        message_ids: list[bytes],
        on_event: Callable[[Callable[[NetworkEvent], None]], Callable[[], None]],
    ) -> FlushProgress | None:
        """A tracker if the backlog is large enough and someone watches progress."""
        if len(message_ids) < FLUSH_PROGRESS_MIN or not feed.watched:
            return None
        return cls(feed, peer_id, name, message_ids, on_event)

    def sent(self, count: int = 1) -> None:
        self._sent += count
        self._stage()

    def _stage(self) -> None:
        self.feed.update(
            self.key, done=self._acked, stage=f"{self._sent:,}/{self._total:,} sent, ACKs arriving"
        )

    def _on_event(self, event: NetworkEvent) -> None:
        if getattr(event, "peer_id", None) != self.peer_id:
            return
        if isinstance(event, Delivered):
            newly = self._waiting.intersection(event.message_ids)
            self._waiting.difference_update(newly)
            self._acked += len(newly)
            if newly:
                self._stage()
        elif isinstance(event, Undelivered):
            self._waiting.discard(event.message_id)
        elif isinstance(event, PeerOffline):
            self._end(f"peer went offline: {event.reason}", failed=True)
            return
        if not self._waiting:
            left = self._total - self._acked
            outcome = f"{self._acked:,} acknowledged"
            if left:
                outcome += f", {left:,} back in the outbox"
            self._end(outcome, failed=bool(left))

    def _end(self, outcome: str, *, failed: bool) -> None:
        self._remove()
        self.feed.finish(self.key, outcome, failed=failed)
