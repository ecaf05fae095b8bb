"""``volli-nb bench``: volli_nb against plain aiortc, two processes each, in one run.

Every row is measured for both in the same run, ``runs`` times (median and min–max, see
:mod:`.table`), and printed with the ratio volli_nb / aiortc.  The aiortc baseline sends
plaintext with ``bufferedAmount`` back-pressure and is counted at its receiver; volli_nb
encrypts, signs, persists and counts a message only when its signed ACK is back.  The
100-byte row also reports each side's CPU per delivered message and (volli_nb) the SQL
statements both processes ran per delivered message.  Figures, never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.crypto.identity import Identity
from volli_nb.lab.bench import conditions as bench_conditions
from volli_nb.lab.bench.measure import Counters, ack_round_trip, delivered_rate
from volli_nb.lab.bench.plain_aiortc import PlainPeer
from volli_nb.lab.bench.progress import BenchProgress
from volli_nb.lab.bench.rows import (
    FANOUT,
    Row,
    collect,
    condition_rows,
    dead_row,
    format_table,
    rows,
)
from volli_nb.lab.peer_handle import PeerProcess, pair_with
from volli_nb.lab.relay import Conditions
from volli_nb.net.events import PeerOffline, PeerOnline


def incompressible_text(size: int, seed: int = 1) -> str:
    """``size`` characters of random base64: what deflate cannot shrink."""
    return base64.b64encode(random.Random(seed).randbytes(size * 3 // 4 + 3)).decode()[:size]


async def _acked_by(store: MessagesStore, message_id: bytes, peer: str, timeout: float) -> None:
    done = asyncio.Event()
    remove = store.on_delivered(
        lambda mid, who: done.set() if (mid, who) == (message_id, peer) else None
    )
    try:
        if store.delivery_status(message_id).get(peer) != "delivered":
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        remove()


async def _fanout(store: MessagesStore, child: PeerProcess, n: int, repeats: int = 5) -> float:
    """One 100-byte message to a conversation of ``n`` recipients (``peer`` and n-1 offline
    contacts): seconds until the live one's signed ACK, median of ``repeats``.  One seal
    covers all n."""
    peer = child.peer_id
    members = [store.peer_id, peer]
    for _ in range(n - 1):
        other = Identity.generate()
        store.add_contact(other.public)
        members.append(other.peer_id)
    conversation = f"bench-fanout-{n}-{time.monotonic_ns()}"
    store.database.ensure_conversation(conversation, members)
    await child.request("conversation", conversation_id=conversation, members=members)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        sent = await store.send_message(conversation, "f" * 100)
        await _acked_by(store, sent.message_id, peer, 60)
        samples.append(time.perf_counter() - start)
        for row in store.message_queue.for_message(sent.message_id):
            if row.recipient != peer:
                store.message_queue.discard(row.id)
    return statistics.median(samples)


async def _flush_after_reconnect(
    store: MessagesStore, child: PeerProcess, count: int
) -> tuple[float, PeerProcess]:
    """``count`` messages queued while the peer is away; seconds from its return (channel
    verified) to the last signed ACK, and the restarted peer."""
    peer = child.peer_id
    await child.quit()
    while store.network_store.is_connected(peer):
        await asyncio.sleep(0.05)
    for start in range(0, count, 500):  # in bursts of 500: setting up, not measured
        end = min(count, start + 500)
        await asyncio.gather(
            *(store.send_message(peer, f"queued {i:05d} " + "q" * 86) for i in range(start, end))
        )
    delivered = 0
    done = asyncio.Event()
    online_at: list[float] = []

    def on_delivered(_mid: bytes, who: str) -> None:
        nonlocal delivered
        if who == peer:
            delivered += 1
            if delivered >= count:
                done.set()

    def on_event(event: object) -> None:
        if isinstance(event, PeerOnline) and event.peer_id == peer and not online_at:
            online_at.append(time.perf_counter())

    remove_d, remove_e = store.on_delivered(on_delivered), store.network_store.on_event(on_event)
    again = await PeerProcess(child.db, child.name).start()
    try:
        await pair_with(store, again)
        await asyncio.wait_for(done.wait(), 300)
    except BaseException:
        await again.quit()
        raise
    finally:
        remove_d()
        remove_e()
    return time.perf_counter() - online_at[0], again


async def _counted_rate(store: MessagesStore, child: PeerProcess, count: int) -> dict[str, float]:
    """The 100-byte row, with each process's CPU and SQL statements counted over it."""
    ours = Counters(store.database)
    await child.request("measure", start=True)
    ours.start()
    rate = await delivered_rate(store, child.peer_id, count, timeout=120)
    sender = ours.stop()
    receiver = await child.request("measure", start=False)
    return {
        "msgs": rate,
        "cpu_sender": sender["cpu"] / count * 1e6,
        "cpu_receiver": receiver["cpu"] / count * 1e6,
        "sql_sender": sender["statements"] / count,
        "sql_receiver": receiver["statements"] / count,
        "sql": (sender["statements"] + receiver["statements"]) / count,
    }


async def _volli(
    tmp: Path,
    messages: int,
    bulk: int,
    echoes: int,
    flush: int = 10_000,
    progress: BenchProgress | None = None,
) -> dict[str, float]:
    store = MessagesStore.scratch("bench-a", directory=tmp)
    step = progress.step if progress is not None else (lambda _name: None)
    if progress is not None:
        progress.watch(store.progress)  # the flush and the bulk send report their own
    child = await PeerProcess(str(tmp / "b.sqlite"), "bench-b").start()
    out: dict[str, float] = {}
    try:
        step("volli_nb: setup")
        start = time.perf_counter()
        peer = await pair_with(store, child)
        first = await store.send_message(peer, "x" * 80)
        await store.wait_delivered(first.message_id)
        out["setup"] = time.perf_counter() - start
        step("volli_nb: round trip")
        out["rtt"] = await ack_round_trip(store, peer, echoes, timeout=15.0)
        # A peer vanishing mid-chat (after heavy transfers the limit stretches, see README).
        offline: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        def on_event(event: object) -> None:
            if isinstance(event, PeerOffline) and not offline.done():
                offline.set_result(time.perf_counter())

        remove = store.network_store.on_event(on_event)
        step("volli_nb: dead peer")
        start = time.perf_counter()
        await child.kill()
        out["dead"] = await asyncio.wait_for(offline, 30) - start
        remove()
        step(f"volli_nb: flush {flush:,}")
        out["flush"], child = await _flush_after_reconnect(store, child, flush)  # it is away
        step("volli_nb: 100-byte messages")
        out.update(await _counted_rate(store, child, messages))
        step("volli_nb: fan-out")
        for n in FANOUT:
            out[f"fanout{n}"] = await _fanout(store, child, n)
        step("volli_nb: bulk")
        text = incompressible_text(bulk)  # so the figure is encrypted bytes, not deflate
        start = time.perf_counter()
        big = await store.send_message(peer, text, compress=False)
        await store.wait_delivered(big.message_id, timeout=120)
        out["bulk"] = bulk / (time.perf_counter() - start) / 1e6
    finally:
        await child.quit()
        await store.close()
    return out


async def _baseline(
    bar: BenchProgress, messages: int, bulk: int, echoes: int, flush: int, quick: bool
) -> dict[str, float | None]:
    """Plain aiortc between two processes: the same rows, plaintext and unacknowledged."""
    plain = PlainPeer()
    base: dict[str, float | None] = {}
    try:
        bar.step("aiortc: setup")
        base["setup"] = await plain.start()
        bar.step("aiortc: round trip")
        base["rtt"] = await plain.echo_rtt(echoes)
        bar.step("aiortc: 100-byte messages")
        moved = await plain.transfer(messages, 100)
        base["msgs"] = messages / moved.seconds
        base["cpu_sender"] = moved.sender_cpu / messages * 1e6
        base["cpu_receiver"] = moved.receiver_cpu / messages * 1e6
        base["sql"] = 0.0  # no storage at all
        bar.step("aiortc: bulk")
        base["bulk"] = bulk / await plain.throughput(max(1, bulk // 65536), 65536) / 1e6
        bar.step("aiortc: fan-out")
        for n in FANOUT:  # the plaintext sent once per recipient, median of 5
            base[f"fanout{n}"] = statistics.median(
                [await plain.throughput(n, 100) for _ in range(5)]
            )
        bar.step(f"aiortc: {flush:,} messages")
        base["flush"] = await plain.throughput(flush, 100)
        if not quick:
            bar.step("aiortc: dead peer (~30 s)")
        base["dead"] = None if quick else await plain.dead_peer(40.0)
    finally:
        await plain.close()
    return base


async def _one_run(
    bar: BenchProgress,
    label: str,
    sizes: tuple[int, int, int, int],
    quick: bool,
    conditions: Conditions | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every measurement once: (aiortc's, volli_nb's)."""
    messages, bulk, echoes, flush = sizes
    bar.prefix = label
    try:
        base: dict[str, Any] = dict(await _baseline(bar, messages, bulk, echoes, flush, quick))
        with tempfile.TemporaryDirectory(prefix="volli-bench-") as tmp:
            ours: dict[str, Any] = await _volli(Path(tmp), messages, bulk, echoes, flush, bar)
        if conditions is not None:
            bar.step("both: impaired link")
            impaired = await bench_conditions.run(conditions, count=30 if quick else 300)
            base.update({f"impaired_{k}": v for k, v in impaired["aiortc"].items()})
            ours.update({f"impaired_{k}": v for k, v in impaired["volli"].items()})
    finally:
        bar.prefix = ""
    return base, ours


async def run(
    messages: int = 2000,
    bulk_mb: float = 8.0,
    quick: bool = False,
    flush: int = 10_000,
    conditions: Conditions | None = bench_conditions.DEFAULT,
    progress: BenchProgress | None = None,
    runs: int = 3,
) -> list[Row]:
    """Every row, measured ``runs`` times now.  ``progress`` defaults to a bar where one fits
    (stderr in a terminal, a widget in a notebook, nothing in tests and pipes)."""
    bulk = int(bulk_mb * 1_000_000)
    echoes = 20 if quick else 100
    steps = 6 + (not quick) + 7 + (conditions is not None)
    bar = progress or BenchProgress(steps * runs)
    measured: list[tuple[dict[str, Any], dict[str, Any]]] = []
    try:
        for i in range(runs):
            label = f"run {i + 1}/{runs}: " if runs > 1 else ""
            sizes = (messages, bulk, echoes, flush)
            measured.append(await _one_run(bar, label, sizes, quick, conditions))
    finally:
        if progress is None:
            bar.close()
    base, ours = collect([b for b, _ in measured]), collect([o for _, o in measured])
    return [
        *rows(base, ours, bulk_mb, flush),
        *condition_rows(conditions, base, ours),
        dead_row(base, ours, quick),
    ]


def main(args: argparse.Namespace) -> int:
    quick = getattr(args, "quick", False)
    if getattr(args, "core", False):
        from volli_nb.lab.bench.core import main as core_main

        return core_main(args.json, quick)
    conditions = None
    if args.latency or args.packet_loss:
        conditions = Conditions.parse(args.latency, args.packet_loss, seed=3)
    runs = getattr(args, "runs", None) or (1 if quick else 3)
    rows = asyncio.run(run(args.messages, args.bulk_mb, quick, args.flush, conditions, runs=runs))
    if args.json:
        print(json.dumps([row.to_json() for row in rows], indent=1))
    else:
        print(format_table(rows))
    return 0


__all__ = ["Row", "format_table", "main", "run"]
