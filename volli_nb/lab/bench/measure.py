"""Measurements both benchmarks take, the same way on a clean and on an impaired link.

:class:`Counters` is what one process spent over a measured stretch (CPU seconds and
SQL statements), switched on only while a row is measured: each side counts in its own
process (the peer process through its ``measure`` operation)."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from aiortc import RTCDataChannel

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.store.sealed_db import SealedDatabase


async def echo_round_trip(
    channel: RTCDataChannel, replies: asyncio.Queue[bytes], n: int, timeout: float | None = None
) -> float:
    """Plain aiortc: median seconds from sending a 100-byte ``E…`` message to its echo."""
    samples = []
    for i in range(n):
        start = time.perf_counter()
        channel.send(b"E" + i.to_bytes(4, "big") + b"x" * 95)
        await asyncio.wait_for(replies.get(), timeout)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def ack_round_trip(store: MessagesStore, peer: str, n: int, timeout: float) -> float:
    """volli_nb: median seconds from ``send_message`` to the signed ACK."""
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        sent = await store.send_message(peer, "x" * 80)
        await store.wait_delivered(sent.message_id, timeout=timeout)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def delivered_rate(store: MessagesStore, peer: str, count: int, timeout: float) -> float:
    """volli_nb: ``count`` 100-byte messages sent at once (one burst of concurrent
    ``send_message`` calls: one transaction); delivered and ACKed per second, counted by
    the delivery events (the harness reads no status)."""
    delivered: set[bytes] = set()
    wanted: set[bytes] = set()
    done = asyncio.Event()

    def on_delivered(message_id: bytes, who: str) -> None:
        if who == peer:
            delivered.add(message_id)
            if wanted and wanted <= delivered:
                done.set()

    remove = store.on_delivered(on_delivered)
    try:
        start = time.perf_counter()
        sent = await asyncio.gather(*(store.send_message(peer, "y" * 80) for _ in range(count)))
        wanted.update(m.message_id for m in sent)
        if not wanted <= delivered:
            await asyncio.wait_for(done.wait(), timeout)
        return count / (time.perf_counter() - start)
    finally:
        remove()


class Counters:
    """``start()`` … ``stop()`` → ``{"cpu": seconds, "statements": n}``."""

    def __init__(self, database: SealedDatabase) -> None:
        self.database = database
        self.statements = 0
        self._cpu_at: float | None = None

    def _count(self, _sql: str) -> None:
        self.statements += 1

    def start(self) -> None:
        self.statements = 0
        self.database.trace_statements(self._count)
        self._cpu_at = time.process_time()

    def stop(self) -> dict[str, Any]:
        self.database.trace_statements(None)
        if self._cpu_at is None:
            return {"cpu": 0.0, "statements": 0}
        cpu, self._cpu_at = time.process_time() - self._cpu_at, None
        return {"cpu": cpu, "statements": self.statements}


__all__ = ["Counters", "ack_round_trip", "delivered_rate", "echo_round_trip"]
