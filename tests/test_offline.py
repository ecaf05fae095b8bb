"""The seed's offline path on an injected clock: queue → retries → delivered once on return."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from netutil import open_store, pair
from test_network import arun

from volli_nb.base.clock import VirtualClock
from volli_nb.core.eventlog import LogEntry
from volli_nb.core.store.message_queue import Status
from volli_nb.net.events import NetworkEvent, PeerOnline

pytestmark = pytest.mark.network


def test_offline_messages_follow_the_schedule_then_flush_once(tmp_path: Path) -> None:
    async def main() -> None:
        clock = VirtualClock(1_800_000_000.0)
        alice = open_store(tmp_path, "alice", clock=clock)
        bob = open_store(tmp_path, "bob", clock=clock)
        alice.add_contact(bob.identity.public, name="bob")  # known, never connected
        t0 = clock()
        sent = [await alice.send_message(bob.peer_id, f"while away {i}") for i in range(2)]
        rows = alice.message_queue.get_pending()
        assert [(r.status, r.attempts, r.next_attempt_at) for r in rows] == [
            (Status.PENDING, 1, t0 + 1)
        ] * 2
        expected = [t0 + 1 + 5, t0 + 1 + 5 + 15, t0 + 1 + 5 + 15 + 60]
        for step, when in zip((1, 5, 15), expected, strict=True):
            clock.advance(step - 0.001)
            assert await alice.process_due() == 0  # not due yet
            clock.advance(0.001)
            assert await alice.process_due() == 2
            assert {r.next_attempt_at for r in alice.message_queue.get_pending()} == {when}
        assert {r.attempts for r in alice.message_queue.get_pending()} == {4}
        got: list[str] = []
        bob.on_message(lambda m: got.append(m.text))
        await pair(alice, bob)  # bob comes online: pending rows flush at once, not in 60 s
        for message in sent:
            await alice.wait_delivered(message.message_id)
        assert sorted(got) == ["while away 0", "while away 1"]
        assert [m.text for m in bob.history(alice.peer_id)] == ["while away 0", "while away 1"]
        assert alice.message_queue.get_pending() == []
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_stuck_after_the_fourth_retry_then_one_more_attempt_when_the_peer_returns(
    tmp_path: Path,
) -> None:
    """The seed's schedule runs out while bob is away; his return sends it again by itself
    (docs/operations.md, "A peer's return"); a manual retry is for a silent peer only."""

    async def main() -> None:
        clock = VirtualClock(1_800_000_000.0)
        alice = open_store(tmp_path, "alice", clock=clock)
        bob = open_store(tmp_path, "bob", clock=clock)
        alice.add_contact(bob.identity.public)
        message = await alice.send_message(bob.peer_id, "nobody home")
        for step in (1, 5, 15, 60):
            clock.advance(step)
            await alice.process_due()
        (row,) = alice.message_queue.get_pending()
        assert (row.status, row.attempts, row.next_attempt_at) == (Status.STUCK, 5, None)
        report = await alice.sync_messages()
        assert report.stuck == 1 and report.sent == 0
        await pair(alice, bob)  # no retry_all_stuck(), no sync_messages()
        await alice.wait_delivered(message.message_id)
        assert [m.text for m in bob.history(alice.peer_id)] == ["nobody home"]
        assert alice.log.entries(text="is back: 1 message(s)")
        await asyncio.gather(alice.close(), bob.close())

    arun(main)


def test_a_retry_pass_leaves_a_returning_peers_backlog_to_its_flush(tmp_path: Path) -> None:
    """The bench's "fan-out to 1" stall (issue 24, item 3).  A peer returns to a backlog
    whose retry time has come: its PeerOnline starts a flush and wakes the retry loop.
    When the pass also attempted the rows the flush was walking, a row one of them had
    sent and got acknowledged went out again when the other, walking a list it read
    earlier, reached it: after a 10,000-message flush thousands went out twice, and a
    new message waited behind them for 0.4-0.9 s (fixed in eb24bef).  The flush owns
    its peer's backlog, so a pass while it is under way attempts none of those rows,
    and each message leaves once."""

    async def main() -> None:
        clock = VirtualClock(1_800_000_000.0)
        alice = open_store(tmp_path, "alice", clock=clock)
        bob = open_store(tmp_path, "bob", clock=clock)
        alice.add_contact(bob.identity.public, name="bob")  # known, and away
        backlog = [await alice.send_message(bob.peer_id, f"while away {i}") for i in range(500)]
        sent: Counter[str] = Counter()
        flushed = asyncio.Event()

        def on_entry(entry: LogEntry) -> None:
            if entry.data.get("kind") == "message.sent":
                sent.update([entry.data["message_id"]])
            elif entry.message.startswith("flushed "):  # the flush has walked its list
                flushed.set()

        passes: list[asyncio.Task[int]] = []

        def on_event(event: NetworkEvent) -> None:  # after the sender's handler (the flush)
            if isinstance(event, PeerOnline) and not passes:
                clock.advance(1)  # every row's first retry is due as bob returns
                passes.append(asyncio.get_running_loop().create_task(alice.process_due()))

        alice.log.subscribe(on_entry)
        alice.network_store.on_event(on_event)
        answer = await alice.accept_pairing_code(await bob.create_pairing_code())
        await alice.sender.stop()  # so the pass above is the retry loop's only one
        await bob.complete_pairing(answer)
        for message in backlog:
            await alice.wait_delivered(message.message_id)
        await flushed.wait()
        assert await passes[0] == 0  # bob's rows were the flush's
        assert sent == Counter(m.message_id.hex() for m in backlog)  # each sent once
        await asyncio.gather(alice.close(), bob.close())

    arun(main)
