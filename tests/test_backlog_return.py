"""A peer's return is new information: what went stuck while it was away flows again.

Issue 29: after more than 81 s away a backlog went ``stuck`` and stayed so when the peer
came back.  The rule (docs/operations.md, "A peer's return"): rows that went stuck while
their peer was away get one more attempt when it returns; a peer that was there and did
not acknowledge keeps the seed's schedule and waits for a person.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from netutil import open_store, pair
from session_pairs import identities, make_pair
from test_network import arun

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.clock import VirtualClock
from volli_nb.core.eventlog import EventLog
from volli_nb.core.protocol.events import Rekeyed
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import (
    RETRY_DELAYS,
    OutgoingMessage,
    PersistentMessageQueue,
    Status,
)
from volli_nb.core.store.outbox_away import release_returned, stuck_while_away
from volli_nb.net.link_report import LinkReport

BACKLOG = 2000
AWAY = 600.0  # ten minutes, on the injected clock


def _stuck(queue: PersistentMessageQueue, n: int, recipient: str, last: str) -> int:
    row_id = queue.enqueue(
        OutgoingMessage(n.to_bytes(16, "big"), "conv", recipient, b"hi", counter=n)
    )
    for _ in RETRY_DELAYS:
        queue.mark_failed(row_id, "peer offline")
    assert queue.mark_failed(row_id, last).status == Status.STUCK
    return row_id


def test_only_rows_stuck_while_the_peer_was_away_are_released_once_per_return(
    tmp_path: Path,
) -> None:
    clock = VirtualClock(1_700_000_000.0)
    log = EventLog(clock=clock)
    with Database.open(tmp_path / "q.sqlite", "queue pass", kdf=KDF_MIN, clock=clock) as db:
        queue = PersistentMessageQueue(db, log=log)
        away = _stuck(queue, 1, "bob", "peer offline")
        closed = _stuck(queue, 2, "bob", "TransportClosed: data channel is not open")
        silent = _stuck(queue, 3, "bob", "no ACK before the timeout")  # there, and silent
        other = _stuck(queue, 4, "carol", "peer offline")  # carol is still away
        assert stuck_while_away(queue, "bob") == 2
        clock.advance(AWAY)
        assert release_returned(queue, "bob") == 2
        for row_id in (away, closed):
            row = queue.get(row_id)  # due now, attempts kept: one more failure is stuck
            assert (row.status, row.next_attempt_at, row.attempts) == (Status.PENDING, clock(), 5)
        assert queue.get(silent).status == Status.STUCK  # waits for retry_now, as the seed says
        assert queue.get(other).status == Status.STUCK
        (entry,) = [e for e in log if e.data.get("kind") == "queue.returned"]
        assert entry.peer_id == "bob" and entry.data["count"] == 2
        assert release_returned(queue, "bob") == 0  # once: pending rows are not touched
        assert queue.mark_failed(away, "peer offline").status == Status.STUCK  # gone again
        assert queue.mark_failed(closed, "no ACK before the timeout").status == Status.STUCK
        assert release_returned(queue, "bob") == 1  # the next return: the away one only
        assert queue.get(closed).status == Status.STUCK


def _in_flight_after_four_failures(
    tmp_path: Path,
    check: Callable[[MessagesStore, MessagesStore, int, LinkReport, VirtualClock], Awaitable[None]],
) -> None:
    """Alice's row to bob failed four times while he was away; he is back and it is in
    flight on his link (flushed before its next time, 60 s on); ``check`` (alice, bob,
    row id, the link's report, alice's clock) goes on."""

    async def main() -> None:
        clock = VirtualClock(1_700_000_000.0)
        alice, bob = open_store(tmp_path, "alice", clock=clock), open_store(tmp_path, "bob")
        try:
            alice.add_contact(bob.identity.public, name="bob")
            queue, message_id = alice.message_queue, bytes(range(16))
            row_id = queue.enqueue(OutgoingMessage(message_id, "conv", bob.peer_id, b"hi", 1))
            for _ in RETRY_DELAYS:
                queue.mark_failed(row_id, "peer offline")
            alice.sender.attempts.in_flight[(bob.peer_id, message_id)] = row_id
            report = LinkReport(alice.network_store._setup, alice.network_store, bob.peer_id)
            await check(alice, bob, row_id, report, clock)
        finally:
            await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=60)


def test_a_row_in_flight_when_the_link_drops_went_stuck_while_away(tmp_path: Path) -> None:
    """A row attempted while its peer was connected, in flight when the link dropped (the
    peer crashed, its network went), failed with the drop's reason ("no heartbeat ...");
    as its fifth failure it went stuck as if the peer had been there and silent, and its
    return did not release it: it waited for a person.  The channel closed under it."""

    async def check(
        alice: MessagesStore, bob: MessagesStore, row_id: int, report: LinkReport, _: VirtualClock
    ) -> None:
        queue = alice.message_queue
        report.offline("no heartbeat for 6 s (peer presumed dead)", (bytes(range(16)),))
        assert queue.get(row_id).status == Status.STUCK
        assert stuck_while_away(queue, bob.peer_id) == 1
        assert release_returned(queue, bob.peer_id) == 1  # his return: one more attempt

    _in_flight_after_four_failures(tmp_path, check)


def test_a_re_key_seals_its_in_flight_rows_again_without_counting_a_failure(
    tmp_path: Path,
) -> None:
    """A re-key on the open channel (the receiver's ratchet went out of step) hands back
    what was in flight under the old session "to seal again".  Each was counted a failed
    attempt: a row four failures into the schedule went stuck, its peer connected, and
    waited for a person; a re-key during a 10,000-message flush cost every row a step.
    And it is due at once: flushed early, it kept its old time and waited up to 60 s."""
    handshake = make_pair(*identities(3, 2), 1).result_a

    async def check(
        alice: MessagesStore,
        bob: MessagesStore,
        row_id: int,
        report: LinkReport,
        clock: VirtualClock,
    ) -> None:
        queue = alice.message_queue
        assert queue.get(row_id).next_attempt_at == clock() + RETRY_DELAYS[-1]
        report.rekeyed(Rekeyed(handshake, (bytes(range(16)),)))
        async with asyncio.timeout(5):  # the re-key's rows are made due in one batch, just after
            while queue.get(row_id).next_attempt_at != clock():
                await asyncio.sleep(0)
        row = queue.get(row_id)
        assert (row.status, row.attempts) == (Status.PENDING, len(RETRY_DELAYS))
        assert [r.id for r in queue.due()] == [row_id]
        assert not alice.sender.attempts.busy((bob.peer_id, row.message_id))  # free to go

    _in_flight_after_four_failures(tmp_path, check)


@pytest.mark.network
def test_a_backlog_after_ten_minutes_away_flows_on_return_exactly_once(tmp_path: Path) -> None:
    async def main() -> None:
        clock = VirtualClock(1_800_000_000.0)
        alice = open_store(tmp_path, "alice", clock=clock)
        bob = open_store(tmp_path, "bob", clock=clock)
        alice.add_contact(bob.identity.public, name="bob")  # known, and away
        for i in range(BACKLOG):
            await alice.send_message(bob.peer_id, f"backlog {i}")
        waited = 0.0
        for step in (*RETRY_DELAYS, AWAY - sum(RETRY_DELAYS)):  # every retry, then the rest
            clock.advance(step)
            waited += step
            await alice.process_due()
        assert waited == AWAY
        assert alice.message_queue.counts()[Status.STUCK] == BACKLOG  # as the seed says
        got: Counter[str] = Counter()
        bob.on_message(lambda m: got.update([m.text]))
        await pair(alice, bob)  # bob returns: nobody calls retry or sync
        async with asyncio.timeout(120):
            while alice.message_queue.counts()[Status.DELIVERED] < BACKLOG:
                await asyncio.sleep(0.05)
        assert alice.message_queue.get_pending() == []
        assert got == Counter(f"backlog {i}" for i in range(BACKLOG))  # each exactly once
        texts = [m.text for m in bob.history(alice.peer_id)]
        assert len(texts) == BACKLOG and set(texts) == set(got)
        returned = [e for e in alice.log if e.data.get("kind") == "queue.returned"]
        assert [e.data["count"] for e in returned] == [BACKLOG]
        await asyncio.gather(alice.close(), bob.close())

    arun(main, timeout=300)
