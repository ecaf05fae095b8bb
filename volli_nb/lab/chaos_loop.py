"""``volli-nb chaos``: a loop of faults on a working system, and what came back, how fast.

Three ``volli-signal`` processes share one throwaway Redis engine; each peer reaches
them through its own :class:`~volli_nb.lab.chaos.FaultBalancer` (its "cable"), all in
one room.  Each round injects one fault, while a newcomer joins or leaves the room and
every peer sends every other one a message; then the fault ends and the loop measures,
from that moment, how long until every peer's view of the room is the truth and every
pair is connected again.  At the end every message must have arrived exactly once.

Faults (each ``--faults`` times): ``kill`` (SIGKILL one signaling process, measured from
the kill since the others serve at once, and restarted ``--hold`` seconds later),
``redis`` (the engine killed and started empty), ``accept-close``, ``502`` and
``blackhole`` (every peer's cable cut and then refusing, answering 502, or holding),
``delay`` (every cable delays each chunk), ``offline`` (one peer's cable refuses and its
connections close, for ``--offline`` seconds).  Times are reported, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volli_nb.app.messages_store import MessagesStore
from volli_nb.base.console import plain
from volli_nb.base.errors import VolliError
from volli_nb.lab.chaos import Fault, FaultBalancer, SignalFleet, offline
from volli_nb.lab.redis_engine import Engine
from volli_nb.net.signaling.reconnect import CONNECTED

ROOM = "chaos"
KINDS = ("kill", "redis", "accept-close", "502", "blackhole", "delay", "offline")
CABLE_FAULTS = {"accept-close": Fault.ACCEPT_CLOSE, "502": Fault.HTTP_502}


@dataclass
class Round:
    kind: str
    view_s: float  # from the end of the fault until every peer is back in the room (as the
    # server sees it) with a view of it that is the truth
    pairs_s: float  # … until every pair is connected again
    recovered: bool
    slowest: str = ""  # what was still wrong last, in a round that took over a second


@dataclass
class LoopReport:
    rounds: list[Round] = field(default_factory=list)
    sent: int = 0
    delivered_once: int = 0
    lost: int = 0
    duplicated: int = 0
    seconds: float = 0.0

    def by_kind(self) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = {}
        for kind in dict.fromkeys(r.kind for r in self.rounds):
            rounds = [r for r in self.rounds if r.kind == kind]
            views, pairs = [r.view_s for r in rounds], [r.pairs_s for r in rounds]
            table[kind] = {
                "rounds": len(rounds),
                "recovered": sum(r.recovered for r in rounds),
                "view_median_s": statistics.median(views),
                "view_max_s": max(views),
                "pairs_median_s": statistics.median(pairs),
                "pairs_max_s": max(pairs),
            }
        return table

    @property
    def ok(self) -> bool:
        return all(r.recovered for r in self.rounds) and self.lost == self.duplicated == 0

    def text(self) -> str:
        lines = [
            f"{'fault':13} {'rounds':>6} {'back':>5} {'view med':>9} {'view max':>9} "
            f"{'pairs med':>10} {'pairs max':>10}"
        ]
        for kind, row in self.by_kind().items():
            lines.append(
                f"{kind:13} {row['rounds']:6.0f} {row['recovered']:5.0f} "
                f"{row['view_median_s']:8.2f}s {row['view_max_s']:8.2f}s "
                f"{row['pairs_median_s']:9.2f}s {row['pairs_max_s']:9.2f}s"
            )
        lines.append(
            f"messages: {self.sent} sent, {self.delivered_once} arrived exactly once, "
            f"{self.lost} lost, {self.duplicated} duplicated ({self.seconds:.0f} s in all)"
        )
        return "\n".join(lines)


class _Peer:
    """One store, its cable, and what it received (to count duplicates)."""

    def __init__(self, store: MessagesStore, cable: FaultBalancer) -> None:
        self.store, self.cable = store, cable
        self.got: Counter[str] = Counter()
        store.on_message(lambda m: self.got.update([m.text]))

    @property
    def peer_id(self) -> str:
        return self.store.peer_id

    def view(self) -> set[str]:
        session = self.store.room_session
        return set(session.presence.get(ROOM, ())) if session is not None else set()


class _Loop:
    def __init__(self, fleet: SignalFleet, engine: Engine, workdir: Path, bound: float) -> None:
        self.fleet, self.engine, self.workdir, self.bound = fleet, engine, workdir, bound
        self.peers: list[_Peer] = []
        self.newcomer: _Peer | None = None
        self.report = LoopReport()
        self.restarting: asyncio.Task[None] | None = None  # a killed process coming back
        self.why = ""  # what the last check found wrong
        self.leaving: list[asyncio.Task[None]] = []
        self.expected: dict[str, Counter[str]] = {}  # receiver → texts sent to it
        self._made = 0

    async def add_peer(self) -> _Peer:
        cable = await FaultBalancer(self.fleet.backends).start()
        self._made += 1
        store = MessagesStore.scratch(f"p{self._made}", directory=self.workdir)
        peer = _Peer(store, cable)
        for _ in range(50):
            try:
                await store.join(ROOM, cable.url)
                return peer
            except VolliError:  # the first connect meets whatever the fleet is doing
                await asyncio.sleep(0.2)
        raise RuntimeError("a peer could not join the room")

    def everyone(self) -> list[_Peer]:
        return self.peers + ([self.newcomer] if self.newcomer is not None else [])

    async def rooms_right(self) -> bool:
        """Every peer connected to signaling, in the room as the server sees it, and its
        own view of the room the truth."""
        ids = {p.peer_id for p in self.everyone()}
        for peer in self.everyone():
            name = peer.store.name
            session = peer.store.room_session
            if session is None or session.status.state != CONNECTED:
                return self._wrong(f"{name}: signaling not connected")
            if peer.view() != ids - {peer.peer_id}:
                return self._wrong(f"{name}: its view is not the truth")
            try:
                listed = set(await session.client.members(ROOM))
            except VolliError as exc:
                return self._wrong(f"{name}: cannot list the room ({exc})")
            if listed != ids:
                return self._wrong(f"{name}: the server lists {len(listed)} of {len(ids)}")
        return True

    def _wrong(self, why: str) -> bool:
        self.why = why
        return False

    async def pairs_connected(self) -> bool:
        people = self.everyone()
        for a in people:
            for b in people:
                if a is not b and not a.store.network_store.is_connected(b.peer_id):
                    return self._wrong(f"{a.store.name} not connected to {b.store.name}")
        return True

    async def until(self, done: Callable[[], Awaitable[bool]], start: float) -> float | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, start + self.bound - time.monotonic())):
                while not await done():
                    await asyncio.sleep(0.05)
                return time.monotonic() - start
        return None

    async def send_round(self, n: int) -> None:
        for a in self.peers:
            for b in self.peers:
                if a is not b:
                    text = f"round {n} from {a.store.name}"
                    self.expected.setdefault(b.peer_id, Counter())[text] += 1
                    await a.store.send_message(b.peer_id, text)
                    self.report.sent += 1

    async def churn(self) -> None:
        """A newcomer joins while the fault is on (or the last one leaves)."""
        if self.newcomer is None:
            self.newcomer = await self.add_peer()
        else:  # it leaves now; how long its close takes is not the fault's recovery
            gone, self.newcomer = self.newcomer, None
            self.leaving.append(asyncio.get_running_loop().create_task(self._close(gone)))

    async def _close(self, peer: _Peer) -> None:
        await peer.store.close()
        await peer.cable.close()

    async def between_rounds(self) -> None:
        """What the last round left running: a killed process's restart, a closing peer."""
        if self.restarting is not None:
            await self.restarting
            self.restarting = None
        leaving, self.leaving = self.leaving, []
        await asyncio.gather(*leaving)

    async def fault(self, kind: str, n: int, hold: float, away: float) -> float:
        """Inject ``kind``; returns the monotonic time it ended (the path works again)."""
        cables = [p.cable for p in self.peers]
        if kind == "kill":  # the path works again at once, through the other processes
            self.fleet.kill(n % self.fleet.n)
            killed = time.monotonic()
            await self.churn()
            self.restarting = asyncio.get_running_loop().create_task(
                self._restart_later(n % self.fleet.n, hold)
            )
            return killed
        elif kind == "redis":
            await asyncio.to_thread(self.engine.stop)
            await asyncio.sleep(hold)
            await asyncio.to_thread(self.engine.start)
        elif kind == "offline":
            peer = self.peers[n % len(self.peers)]
            await offline(peer.store, peer.cable, away)
        else:
            for cable in cables:
                if kind == "delay":
                    cable.set_fault(Fault.DELAY, delay=0.2)
                else:
                    cable.set_fault(CABLE_FAULTS.get(kind, Fault.BLACKHOLE), cut=True)
            await self.churn()
            await asyncio.sleep(hold)
            for cable in cables:
                cable.heal()
        return time.monotonic()

    async def _restart_later(self, i: int, hold: float) -> None:
        await asyncio.sleep(hold)
        await self.fleet.restart(i)

    async def settle(self) -> None:
        """Every message delivered (or the bound passes), then count what arrived."""
        end = time.monotonic() + self.bound
        while time.monotonic() < end and any(
            p.store.message_queue.get_pending() for p in self.peers
        ):
            await asyncio.sleep(0.1)
        for peer in self.peers:
            for text, count in self.expected.get(peer.peer_id, Counter()).items():
                got = peer.got[text]
                self.report.delivered_once += min(got, count)
                self.report.lost += max(0, count - got)
                self.report.duplicated += max(0, got - count)


@contextlib.asynccontextmanager
async def _system(
    workdir: Path, processes: int, extra: tuple[str, ...]
) -> AsyncIterator[tuple[Engine, SignalFleet]]:
    engine = Engine(workdir)
    await asyncio.to_thread(engine.start)
    fleet = SignalFleet(engine.url, processes, workdir, extra)
    try:
        await fleet.start()
        yield engine, fleet
    finally:
        await fleet.close()
        engine.stop()


async def run_fault_loop(
    faults: int = 20,
    peers: int = 4,
    *,
    kinds: tuple[str, ...] = KINDS,
    hold: float = 1.0,
    away: float = 3.0,
    bound: float = 30.0,
    processes: int = 3,
    presence_ttl: float | None = None,
    workdir: Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> LoopReport:
    """``faults`` rounds of each kind in ``kinds``, round-robin; see the module docstring.
    ``bound``: how long a round may take to recover before it counts as not recovered."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        extra = () if presence_ttl is None else ("--presence-ttl", str(presence_ttl))
        async with _system(Path(tmp), processes, extra) as (engine, fleet):
            loop = _Loop(fleet, engine, Path(tmp), bound)
            try:
                loop.peers = [await loop.add_peer() for _ in range(peers)]
                start = time.monotonic()
                if await loop.until(loop.rooms_right, start) is None or (
                    await loop.until(loop.pairs_connected, start) is None
                ):
                    raise RuntimeError("the peers never paired before any fault")
                for n in range(faults * len(kinds)):
                    kind = kinds[n % len(kinds)]
                    await loop.between_rounds()
                    await loop.send_round(n)
                    ended = await loop.fault(kind, n, hold, away)
                    loop.why = ""
                    view = await loop.until(loop.rooms_right, ended)
                    pairs = await loop.until(loop.pairs_connected, ended)
                    back = view is not None and pairs is not None
                    took = view if view is not None else bound, pairs or bound
                    why = loop.why if max(took) > 1.0 else ""
                    loop.report.rounds.append(Round(kind, *took, back, why))
                    progress(f"round {n + 1}: {kind}: view {took[0]:.2f} s, pairs {took[1]:.2f} s")
                    progress(f"  last wrong: {why}" if why else "")
                await loop.between_rounds()
                await loop.settle()
            finally:
                for peer in loop.everyone():
                    await peer.store.close()
                    await peer.cable.close()
    loop.report.seconds = time.monotonic() - started
    return loop.report


def _say(line: str) -> None:
    if line:
        print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="volli-nb chaos", description=plain(__doc__.split("\n")[0])
    )
    parser.add_argument("--faults", type=int, default=20, help="rounds of each kind")
    parser.add_argument("--peers", type=int, default=4)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated")
    parser.add_argument("--hold", type=float, default=1.0, help="seconds each fault lasts")
    parser.add_argument("--offline", type=float, default=3.0, help="seconds a peer is away")
    parser.add_argument(
        "--presence-ttl", type=float, help="the processes' --presence-ttl (their default: 6)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--verbose", action="store_true", help="one line per round")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    report = asyncio.run(
        run_fault_loop(
            args.faults,
            args.peers,
            kinds=kinds,
            hold=args.hold,
            away=args.offline,
            presence_ttl=args.presence_ttl,
            progress=_say if args.verbose else lambda _: None,
        )
    )
    if args.json:
        print(json.dumps({**asdict(report), "by_kind": report.by_kind()}, indent=2))
    else:
        print(report.text())
    return 0 if report.ok else 1


__all__ = ["KINDS", "LoopReport", "Round", "main", "run_fault_loop"]


if __name__ == "__main__":
    sys.exit(main())
