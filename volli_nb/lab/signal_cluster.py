"""``volli-nb signal-load --servers N``: many clients across N ``volli-signal`` processes.

N real processes share one Redis/Valkey engine (a throwaway ``redis-server``
unless ``--redis URL`` names one).  Clients are spread round-robin over the
processes and rooms, join concurrently, then go through waves of churn (a
fifth leave and half of those come back, a tenth disconnect and as many new
clients arrive on any process).  After each wave every client's view of its
room (join reply, then presence events and syncs) is compared with the
truth the driver kept; then signals between members on different processes
measure relay latency.  Reported, never asserted as timings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import random
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from volli_nb.core.crypto.identity import Identity
from volli_nb.lab.redis_engine import Engine, rss_mb
from volli_nb.net.signaling.client import SignalingClient

BATCH = 100  # clients connecting or joining at once
_PROBES = itertools.count()


@dataclass
class ClusterReport:
    servers: int
    clients: int
    rooms: int
    waves: int
    connect_s: float
    join_s: float
    views_checked: int
    views_wrong: int
    wrong_per_wave: list[int]
    settle_s: float  # longest wait for views to match after a wave
    relay_idle_median_ms: float  # one signal at a time
    relay_idle_p99_ms: float
    relay_rate: float  # signals per second offered in the loaded run
    relay_load_median_ms: float
    relay_load_p99_ms: float
    relay_sent: int
    relay_lost: int
    engine_used_mb: float
    engine_rss_mb: float
    server_rss_mb: list[float]
    servers_alive: bool


@dataclass
class _Member:
    """One client and its view of its room."""

    identity: Identity
    server: int
    room: str
    client: SignalingClient | None = None
    joined: bool = False
    view: set[str] = field(default_factory=set)
    arrivals: dict[int, float] = field(default_factory=dict)  # probe number → latency
    presence: int = 0

    def __call__(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "signal":
            data = frame.get("data", {})
            if isinstance(data.get("t"), float) and isinstance(data.get("n"), int):
                self.arrivals[data["n"]] = time.perf_counter() - data["t"]
        elif kind == "presence" and frame.get("room") == self.room:
            self.presence += 1
            if frame["event"] == "join":
                self.view.add(frame["peer"]["peer_id"])
            elif frame["event"] == "leave":
                self.view.discard(frame["peer_id"])
            elif frame["event"] == "sync":
                self.view = {m["peer_id"] for m in frame["members"]}

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id


@contextlib.asynccontextmanager
async def _servers(url: str, n: int) -> AsyncIterator[list[tuple[Any, str]]]:
    procs: list[tuple[Any, str]] = []
    try:
        for _ in range(n):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "volli_nb.net.signaling.server", "--port", "0", "--redis", url),
                stdout=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            found = re.search(r"(ws://\S+)", line)
            if not found:
                raise RuntimeError(f"volli-signal did not start: {line!r}")
            procs.append((proc, found.group(1)))
        yield procs
    finally:
        for proc, _ in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc, _ in procs:
            await proc.wait()


async def _in_batches(coros: list[Any]) -> None:
    for start in range(0, len(coros), BATCH):
        await asyncio.gather(*coros[start : start + BATCH])


async def _connect(member: _Member, urls: list[str]) -> None:
    member.client = await SignalingClient(
        member.identity, urls[member.server], member, reconnect=False
    ).connect(60)


async def _join(member: _Member) -> None:
    assert member.client is not None
    present = await member.client.join(member.room)
    member.view.update(m["peer_id"] for m in present)
    member.joined = True


async def _leave(member: _Member) -> None:
    assert member.client is not None
    member.joined = False
    await member.client.leave(member.room)
    member.view.clear()


def _wrong(members: list[_Member]) -> list[_Member]:
    truth: dict[str, set[str]] = {}
    for m in members:
        if m.joined:
            truth.setdefault(m.room, set()).add(m.peer_id)
    return [m for m in members if m.joined and m.view != truth[m.room] - {m.peer_id}]


async def _settle(members: list[_Member], timeout: float = 15.0) -> tuple[int, float]:
    """Wait until every view matches (presence is asynchronous); how many never did."""
    start = time.monotonic()
    while _wrong(members) and time.monotonic() - start < timeout:
        await asyncio.sleep(0.05)
    return len(_wrong(members)), time.monotonic() - start


async def _churn(members: list[_Member], urls: list[str], rng: random.Random) -> list[_Member]:
    live = [m for m in members if m.joined]
    leaving = rng.sample(live, len(live) // 5)
    await _in_batches([_leave(m) for m in leaving])
    await _in_batches([_join(m) for m in leaving[: len(leaving) // 2]])
    gone = rng.sample([m for m in members if m.joined], len(live) // 10)
    for m in gone:
        m.joined = False
    await _in_batches([m.client.close() for m in gone if m.client is not None])
    fresh = [
        _Member(Identity.generate(), rng.randrange(len(urls)), m.room) for m in gone
    ]  # as many arrive, anywhere
    await _in_batches([_connect(m, urls) for m in fresh])
    await _in_batches([_join(m) for m in fresh])
    return [m for m in members if m not in gone] + fresh


def _pairs(members: list[_Member], rng: random.Random, n: int) -> list[tuple[_Member, _Member]]:
    """Sender and receiver in one room, on different processes."""
    by_room: dict[str, list[_Member]] = {}
    for m in members:
        if m.joined:
            by_room.setdefault(m.room, []).append(m)
    pairs = []
    for group in by_room.values():
        for a in group:
            others = [b for b in group if b.server != a.server]
            if others:
                pairs.append((a, rng.choice(others)))
    return [rng.choice(pairs) for _ in range(n)] if pairs else []


async def _relay(
    pairs: list[tuple[_Member, _Member]], rate: float | None
) -> tuple[list[float], int]:
    """Cross-process latencies: one signal at a time (``rate`` None), or offered at
    ``rate`` per second whatever the answers; and how many never arrived (10 s)."""
    start = time.perf_counter()
    probes = [(next(_PROBES), b) for _, b in pairs]
    for i, ((a, _), (n, b)) in enumerate(zip(pairs, probes, strict=True)):
        assert a.client is not None
        if rate is not None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
        await a.client.signal(b.peer_id, {"kind": "probe", "n": n, "t": time.perf_counter()})
        if rate is None:
            await _arrival(functools.partial(dict.__contains__, b.arrivals, n))
    await _arrival(lambda: all(n in b.arrivals for n, b in probes))
    latencies = [b.arrivals[n] for n, b in probes if n in b.arrivals]
    return latencies, len(probes) - len(latencies)


async def _arrival(done: Callable[[], bool], timeout: float = 10.0) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not done():
                await asyncio.sleep(0.001)


def _ms(latencies: list[float], q: float) -> float:
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _engine_used_mb(url: str) -> float:
    import redis.asyncio as redis

    client = redis.Redis.from_url(url)
    try:
        info = await client.info("memory")
        return float(info["used_memory"]) / 1024 / 1024
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _engine(url: str | None) -> AsyncIterator[tuple[str, Engine | None]]:
    if url is not None:
        yield url, None
        return
    with tempfile.TemporaryDirectory() as tmp, Engine(Path(tmp)) as engine:
        yield engine.url, engine


async def run_cluster(
    clients: int = 1500,
    servers: int = 3,
    rooms: int | None = None,
    waves: int = 3,
    seed: int = 0,
    redis_url: str | None = None,
    relay_samples: int = 600,
    relay_rate: float = 200.0,
) -> ClusterReport:
    rng = random.Random(seed)
    rooms = rooms or max(1, clients // 30)
    async with _engine(redis_url) as (url, engine), _servers(url, servers) as procs:
        urls = [u for _, u in procs]
        members = [
            _Member(Identity.generate(), k % servers, f"room-{k % rooms}") for k in range(clients)
        ]
        start = time.perf_counter()
        await _in_batches([_connect(m, urls) for m in members])
        connected = time.perf_counter()
        order = list(members)
        rng.shuffle(order)
        await _in_batches([_join(m) for m in order])
        joined = time.perf_counter()
        wrong_per_wave: list[int] = []
        settle = 0.0
        for _ in range(waves):
            members = await _churn(members, urls, rng)
            wrong, took = await _settle(members)
            wrong_per_wave.append(wrong)
            settle = max(settle, took)
        idle, idle_lost = await _relay(_pairs(members, rng, relay_samples // 3), None)
        loaded, load_lost = await _relay(_pairs(members, rng, relay_samples), relay_rate)
        alive = all(proc.returncode is None for proc, _ in procs)
        report = ClusterReport(
            servers,
            clients,
            rooms,
            waves,
            connected - start,
            joined - connected,
            sum(1 for m in members if m.joined),
            len(_wrong(members)),
            wrong_per_wave,
            settle,
            _ms(idle, 0.5),
            _ms(idle, 0.99),
            relay_rate,
            _ms(loaded, 0.5),
            _ms(loaded, 0.99),
            relay_samples // 3 + relay_samples,
            idle_lost + load_lost,
            await _engine_used_mb(url),
            engine.rss_mb() if engine is not None else float("nan"),
            [rss_mb(proc.pid) for proc, _ in procs],
            alive,
        )
        await _in_batches([m.client.close() for m in members if m.client is not None])
        return report
