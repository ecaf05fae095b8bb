"""What a sender does with a signed refusal: say why, and wait for the cause to change.

The recipient answered, so a refusal is not a failed attempt; the row's ``last_error``
says why in words ("bob refused: your clock is 180 s ahead of theirs"), the queue panel
and the event log (``kind="queue.refused"``) show it, and no retry is burned on it:

- **clock_skew** while the clocks are still apart (the refusal's clock against ours, and
  the link's latest PING, past ``clock_skew_warn``): the rows are *held* until a clock
  reading agrees: the PING that ends the skew, or the first PING of a new connection.
- **not_recipient**, **unknown_sender**: held the same way; a new connection (after a
  re-pairing, say) may bring the keys that fix it, and its first clock reading releases
  them.
- **storage_full**, **storage_error**, and **clock_skew** although the clocks agree now:
  *paused* for ``pause`` seconds (15 s by default), then tried again as usual, without
  counting an attempt: a receiver's full disk never makes a message ``stuck``, and the
  receiver is asked again once per pause.

``retry_now`` releases a held row by hand.
"""

from __future__ import annotations

from collections.abc import Callable

from volli_nb.base.clock import Clock
from volli_nb.core.eventlog import EventLog
from volli_nb.core.protocol.clock_skew import describe_skew
from volli_nb.core.protocol.refusal import RefusalCode, describe
from volli_nb.core.store import outbox_holds
from volli_nb.core.store.message_queue import PersistentMessageQueue
from volli_nb.net.events import ClockSkew, DeliveryRefused
from volli_nb.net.network_store import NetworkStore

REFUSAL_PAUSE = 15.0  # seconds before asking a receiver with a full disk again
HELD_UNTIL_NEW_CONNECTION = (RefusalCode.NOT_RECIPIENT, RefusalCode.UNKNOWN_SENDER)


class RefusalPolicy:
    """Turns refusals into held or paused outbox rows, and clock readings into releases."""

    def __init__(
        self,
        queue: PersistentMessageQueue,
        network: NetworkStore,
        log: EventLog,
        names: Callable[[str], str],
        *,
        clock: Clock,
        pause: float = REFUSAL_PAUSE,
    ) -> None:
        self.queue, self.network, self.log = queue, network, log
        self._names = names
        self._clock = clock
        self.pause = pause

    def refused(self, event: DeliveryRefused) -> None:
        peer, ids = event.peer_id, event.message_ids
        name = self._names(peer)
        skew = event.clock_ms / 1000 - self._clock()  # their clock minus ours
        text = describe(event.code, name, skew)
        if event.code in HELD_UNTIL_NEW_CONNECTION:
            reason = f"{text}; held until the next connection to {name} (re-pair if needed)"
            count = outbox_holds.hold(self.queue, peer, ids, reason)
        elif event.code == RefusalCode.CLOCK_SKEW and self._apart(peer, skew):
            reason = f"{text}; held until the clocks agree (then sent again)"
            count = outbox_holds.hold(self.queue, peer, ids, reason)
        else:
            reason = f"{text}; trying again in {self.pause:g} s (not counted toward stuck)"
            count = outbox_holds.pause(self.queue, peer, ids, reason, self.pause)
        self.log.add(
            "queue",
            f"{reason} ({count} message(s))",
            peer_id=peer,
            kind="queue.refused",
            code=str(event.code),
            count=count,
            skew=skew,
            message_ids=[m.hex() for m in ids[:64]],
        )

    def _apart(self, peer: str, skew: float) -> bool:
        """The refusal's clock and the link's latest reading both say the clocks differ."""
        threshold = self.network.config.clock_skew_warn
        latest = self.network.clock_skew(peer)
        return abs(skew) > threshold and (latest is None or abs(latest) > threshold)

    def clock_reading(self, event: ClockSkew) -> int:
        """The clocks agree (again, or on a new connection): held rows are due now."""
        if not event.within:
            return 0
        released = outbox_holds.release(self.queue, event.peer_id)
        if released:
            self.log.add(
                "queue",
                f"{describe_skew(event.skew)}: {released} held message(s) due again",
                peer_id=event.peer_id,
                kind="queue.released",
                count=released,
            )
        return released


__all__ = ["REFUSAL_PAUSE", "RefusalPolicy"]
