"""``volli-nb signal-load``: many clients against a real ``volli-signal`` process.

Clients register, join rooms, churn (leave, rejoin, disconnect), and a few
send malformed and oversized frames.  Afterwards every remaining client's
view of each room (members when it joined, plus presence events) must equal
the server's, and the server's memory must level off: a third full wave
of clients may not add what the second did.  Everything runs on loopback and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from websockets.asyncio.client import connect

from volli_nb.core.crypto.identity import Identity
from volli_nb.net.signaling.client import SignalingClient


@dataclass
class LoadReport:
    clients: int
    rooms: int
    connect_s: float
    join_s: float
    presence_frames: int
    error_frames: int
    views_checked: int
    views_wrong: int
    server_alive: bool
    rss_start_mb: float
    rss_first_wave_mb: float
    rss_second_wave_mb: float
    rss_third_wave_mb: float


class _View:
    """One client's idea of who is in its room."""

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.presence = 0
        self.errors = 0

    def __call__(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "presence":
            self.presence += 1
            if frame.get("event") == "join":
                self.members.add(frame["peer"]["peer_id"])
            else:
                self.members.discard(str(frame.get("peer_id")))
        elif frame.get("type") == "error":
            self.errors += 1


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        match = re.search(r"VmRSS:\s+(\d+) kB", status.read())
    return int(match.group(1)) / 1024 if match else 0.0


async def _settled_rss_mb(pid: int, timeout: float = 5.0) -> float:
    """RSS once the server has finished tearing down closed connections (two readings
    0.25 s apart within 0.25 MB), so a wave is measured after, not during, its cleanup."""
    previous = _rss_mb(pid)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await asyncio.sleep(0.25)
        current = _rss_mb(pid)
        if abs(current - previous) < 0.25:
            return current
        previous = current
    return previous


async def _wave(
    url: str, n: int, rooms: int, rng: random.Random
) -> tuple[list[tuple[SignalingClient, _View, str]], float, float]:
    identities = [Identity.generate() for _ in range(n)]
    views = [_View() for _ in range(n)]
    start = time.perf_counter()
    clients = await asyncio.gather(
        *(
            SignalingClient(i, url, v, reconnect=False).connect(30)
            for i, v in zip(identities, views, strict=True)
        )
    )
    connected = time.perf_counter()
    entries = [
        (c, v, f"room-{k % rooms}") for k, (c, v) in enumerate(zip(clients, views, strict=True))
    ]
    order = list(entries)
    rng.shuffle(order)
    for client, view, room in order:
        members = await client.join(room)
        view.members.update(m["peer_id"] for m in members)
    return entries, connected - start, time.perf_counter() - connected


async def _hostile(url: str) -> None:
    """Malformed and oversized frames from registered and unregistered sockets."""
    async with connect(url, max_size=None) as ws:
        await ws.recv()
        for frame in ("garbage", "{}", json.dumps({"type": "join"}), "[1,2]"):
            await ws.send(frame)
    identity = Identity.generate()
    client = await SignalingClient(identity, url, lambda f: None, reconnect=False).connect()
    ws2 = client._ws
    assert ws2 is not None
    for frame in (
        "{bad",
        json.dumps({"type": "signal", "to": "x", "data": {"a": "b" * 60_000}}),
        "z" * 100_000,
        json.dumps({"type": "nope"}),
    ):
        await ws2.send(frame)
    await asyncio.sleep(0.2)
    await client.close()


async def run_load(clients: int = 300, rooms: int = 10, seed: int = 0) -> LoadReport:
    rng = random.Random(seed)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "volli_nb.net.signaling.server",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        found = re.search(r"(ws://\S+)", line)
        if not found:
            raise RuntimeError(f"volli-signal did not start: {line!r}")
        url = found.group(1)
        rss_start = _rss_mb(proc.pid)
        entries, connect_s, join_s = await _wave(url, clients, rooms, rng)
        # churn: a fifth leave, half of those rejoin, a tenth disconnect
        churn = rng.sample(entries, clients // 5)
        for client, view, room in churn:
            await client.leave(room)
            view.members.clear()
        for client, view, room in churn[: len(churn) // 2]:
            view.members.update(m["peer_id"] for m in await client.join(room))
        gone = set(id(c) for c, _, _ in rng.sample(entries, clients // 10))
        await asyncio.gather(*(c.close() for c, _, _ in entries if id(c) in gone))
        await _hostile(url)
        await asyncio.sleep(0.5)
        # the truth: who is still in which room
        truth: dict[str, set[str]] = {}
        left = {id(c) for c, _, _ in churn[len(churn) // 2 :]}
        for client, _, room in entries:
            if id(client) not in gone and id(client) not in left:
                truth.setdefault(room, set()).add(client.identity.peer_id)
        wrong = checked = 0
        for client, view, room in entries:
            if id(client) in gone or id(client) in left:
                continue
            checked += 1
            if view.members != truth[room] - {client.identity.peer_id}:
                wrong += 1
        rss_first = _rss_mb(proc.pid)
        presence = sum(v.presence for _, v, _ in entries)
        errors = sum(v.errors for _, v, _ in entries)
        await asyncio.gather(*(c.close() for c, _, _ in entries if id(c) not in gone))
        rss_after: list[float] = []
        for _ in range(2):  # later waves must reuse, not accumulate, memory
            wave, _, _ = await _wave(url, clients, rooms, rng)
            await asyncio.gather(*(c.close() for c, _, _ in wave))
            await asyncio.sleep(0.5)
            rss_after.append(await _settled_rss_mb(proc.pid))
        alive = proc.returncode is None
        return LoadReport(
            clients,
            rooms,
            connect_s,
            join_s,
            presence,
            errors,
            checked,
            wrong,
            alive,
            rss_start,
            rss_first,
            *rss_after,
        )
    finally:
        proc.terminate()
        await proc.wait()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="volli-nb signal-load")
    p.add_argument("--clients", type=int, default=None, help="300; 1500 with --servers")
    p.add_argument("--rooms", type=int, default=None, help="10; clients/30 with --servers")
    p.add_argument("--servers", type=int, default=0, help="N volli-signal processes on Redis")
    p.add_argument("--waves", type=int, default=3, help="churn waves (with --servers)")
    p.add_argument("--redis", metavar="URL", help="an engine to use instead of a throwaway one")
    p.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.servers:
        from volli_nb.lab.signal_cluster import run_cluster

        cluster = asyncio.run(
            run_cluster(args.clients or 1500, args.servers, args.rooms, args.waves, 0, args.redis)
        )
        _print(asdict(cluster), args.json)
        return 0 if cluster.servers_alive and cluster.views_wrong == 0 else 1
    report = asyncio.run(run_load(args.clients or 300, args.rooms or 10))
    _print(asdict(report), args.json)
    return 0 if report.server_alive and report.views_wrong == 0 else 1


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=1))
        return
    for key, value in report.items():
        if isinstance(value, list):
            value = " ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in value)
        print(f"{key:<20} {value:.3f}" if isinstance(value, float) else f"{key:<20} {value}")


if __name__ == "__main__":
    sys.exit(main())
