"""``volli-nb bench --groups``: a group send to 3, 10 and 50 members, every member in its
own OS process, against plain aiortc sending the same bytes to each.

volli_nb: this process is the sender; the members are peer processes, paired with it by
codes (the channels a group's sender needs), in one group of the first *n*.  The figure
is the seconds from ``send_message(group_id, 100 bytes)`` to the last member's signed ACK:
the message written once, one row per member, sealed once (one body, *n* key wraps) and
handed to *n* channels, each member opening, storing and acknowledging it.

aiortc: *n* plain children (:class:`~.plain_aiortc.PlainPeer`), one channel each; the
same 100 bytes sent on every channel at once, timed to the last child's arrival (no
encryption, no storage, no acknowledgement: the floor).

Figures, never assertions; the median of ``repeats`` messages for each size, per run.
On the 2-core machine the suite runs on, 50 member processes share the cores with the
sender, so the 50-member row measures the machine as much as the protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from volli_nb.app.messages_store import MessagesStore
from volli_nb.lab.bench.plain_aiortc import PlainPeer
from volli_nb.lab.bench.rows import Row, format_table
from volli_nb.lab.peer_handle import PeerProcess, pair_with

GROUP_SIZES = (3, 10, 50)
PAYLOAD = 100
START_BATCH = 10  # processes started at once (each imports aiortc: CPU-bound)


async def _started(handles: list[PeerProcess]) -> list[PeerProcess]:
    for i in range(0, len(handles), START_BATCH):
        await asyncio.gather(*(h.start(timeout=120) for h in handles[i : i + START_BATCH]))
    return handles


async def volli_group_sends(tmp: Path, sizes: tuple[int, ...], repeats: int) -> dict[int, float]:
    """Seconds from a group send to every member's signed ACK, median, per group size."""
    store = MessagesStore.scratch("bench-sender", directory=tmp)
    members = [PeerProcess(str(tmp / f"m{i}.sqlite"), f"member-{i}") for i in range(max(sizes))]
    out: dict[int, float] = {}
    try:
        await _started(members)
        for member in members:
            await pair_with(store, member, timeout=60)
        for n in sizes:
            group = await store.create_group(f"bench-{n}", [m.peer_id for m in members[:n]])
            await _settled(store, group.group_id, members[:n])
            samples = []
            for i in range(repeats):
                start = time.perf_counter()
                sent = await store.send_message(group.group_id, f"{i:03d}".ljust(PAYLOAD, "g"))
                await store.wait_delivered(sent.message_id, timeout=120)
                samples.append(time.perf_counter() - start)
            out[n] = statistics.median(samples)
    finally:
        await asyncio.gather(*(m.quit(30) for m in members), return_exceptions=True)
        await asyncio.gather(*(m.kill() for m in members))  # any that did not quit
        await store.close()
    return out


async def _settled(store: MessagesStore, group_id: str, members: list[PeerProcess]) -> None:
    """Until every member holds the group (its records arrived): measuring starts after."""
    for member in members:
        for _ in range(1200):
            try:
                await member.request("group", group_id=group_id)
                break
            except RuntimeError:  # NotFound: not yet
                await asyncio.sleep(0.05)
    del store  # (the sender's outbox has the records rows acknowledged by now)


async def plain_group_sends(sizes: tuple[int, ...], repeats: int) -> dict[int, float]:
    """Plain aiortc: the same bytes on each of ``n`` channels at once, seconds to the last
    arrival, median per size."""
    peers = [PlainPeer() for _ in range(max(sizes))]
    out: dict[int, float] = {}
    try:
        for i in range(0, len(peers), START_BATCH):
            await asyncio.gather(*(p.start() for p in peers[i : i + START_BATCH]))
        payload = b"x" * PAYLOAD
        for n in sizes:
            samples = []
            for _ in range(repeats):
                group = peers[:n]
                await asyncio.gather(*(p.expect(1, PAYLOAD) for p in group))
                start = time.monotonic()
                for peer in group:
                    peer.channel.send(payload)
                arrivals = await asyncio.gather(*(p.arrival() for p in group))
                samples.append(max(arrivals) - start)
            out[n] = statistics.median(samples)
    finally:
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)
    return out


async def run(sizes: tuple[int, ...] = GROUP_SIZES, repeats: int = 5, runs: int = 1) -> list[Row]:
    plain_runs: list[dict[int, float]] = []
    volli_runs: list[dict[int, float]] = []
    for _ in range(runs):
        plain_runs.append(await plain_group_sends(sizes, repeats))
        with tempfile.TemporaryDirectory(prefix="volli-bench-groups-") as tmp:
            volli_runs.append(await volli_group_sends(Path(tmp), sizes, repeats))
    return [
        Row(
            f"group send, {n} members",
            "ms",
            [r[n] * 1000 for r in plain_runs],
            [r[n] * 1000 for r in volli_runs],
            higher_is_better=False,
            note="to every member's signed ACK (aiortc: to the last arrival); one process each",
        )
        for n in sizes
    ]


def main(args: argparse.Namespace) -> int:
    quick = getattr(args, "quick", False)
    sizes = (3, 10) if quick else GROUP_SIZES
    rows = asyncio.run(run(sizes, repeats=3 if quick else 5, runs=getattr(args, "runs", 1) or 1))
    if getattr(args, "json", False):
        print(json.dumps([row.to_json() for row in rows], indent=1))
    else:
        print(format_table(rows))
    return 0


__all__ = ["GROUP_SIZES", "main", "plain_group_sends", "run", "volli_group_sends"]
