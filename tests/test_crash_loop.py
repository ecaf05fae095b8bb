"""SIGKILL at every step of the message path, on either side, over and over.

Two peers in OS processes exchange messages; before each run one of them is armed to
kill itself (``VOLLI_FAULTS``) at one of three points, the n-th time it gets there:
after an envelope is sealed and before its frame leaves (``sealed``), after a frame is
opened and before its messages are committed (``opened``), after the commit and before
the ACK goes out (``stored``).  The dead side restarts on its own file, the two pair
again (a fresh handshake: sessions are never stored), and traffic goes on.  At the end
every message either side accepted for sending arrives exactly once, every frame ever
sent is checked for a message key used twice, and both outboxes drain.

``VOLLI_KILLS`` sets the number of kills: 40 in the suite (about a minute and a half on
this 2-core machine: each restart is a Python process importing aiortc), 200 or more with
``make crash-soak``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_network import arun

from volli_nb.base import faults
from volli_nb.core.store.database import Database
from volli_nb.lab.peer_handle import PeerProcess
from volli_nb.lab.recording import Recording, key_reuse

pytestmark = [pytest.mark.network, pytest.mark.slow]
KILLS = int(os.environ.get("VOLLI_KILLS", "40"))
BUDGET = max(300, KILLS * 6)  # seconds; a kill takes about 2.5 s (make crash-soak: 200 kills)
PASSPHRASE = "demo passphrase"


@dataclass
class Side:
    name: str
    db: Path
    record: Path
    rng: random.Random
    proc: PeerProcess | None = None
    point: str = ""  # where the running process will die
    spare: asyncio.Task[tuple[PeerProcess, str]] | None = None  # warm, armed for next
    accepted: set[str] = field(default_factory=set)  # ids its send op returned
    spawned: list[PeerProcess] = field(default_factory=list)  # every process, to reap

    async def _prepare(self, armed: bool) -> tuple[PeerProcess, str]:
        env = dict(os.environ)
        env.pop(faults.ENV, None)
        point = self.rng.choice(faults.POINTS) if armed else ""
        if armed:
            env[faults.ENV] = f"{point}:{self.rng.randint(1, 6)}"
        proc = PeerProcess(str(self.db), self.name, extra=["--record", str(self.record)], env=env)
        self.spawned.append(proc)
        return await proc.prepare(), point

    def warm(self, armed: bool = True) -> None:
        """Start the next process now, in the background: a restart then only opens."""
        self.spare = asyncio.get_running_loop().create_task(self._prepare(armed))

    async def restart(self, armed: bool = True) -> None:
        if self.spare is None:
            self.warm(armed)
        assert self.spare is not None
        proc, self.point = await self.spare
        self.proc = await proc.start()
        self.warm()

    def alive(self) -> bool:
        return (
            self.proc is not None
            and self.proc.proc is not None
            and (self.proc.proc.returncode is None)
        )

    async def stop(self) -> None:
        procs = [self.proc]
        if self.spare is not None:
            with contextlib.suppress(Exception):  # a spare that failed to start is no process
                procs.append((await self.spare)[0])
        for proc in procs:
            if proc is not None:
                with contextlib.suppress(Exception):
                    await proc.kill()


async def pair(offer: PeerProcess, answer: PeerProcess) -> None:
    code = (await offer.request("create_code"))["code"]
    reply = (await answer.request("accept_code", code=code))["code"]
    await offer.request("complete", code=reply)
    await asyncio.gather(
        offer.request("wait_connected", peer_id=answer.peer_id),
        answer.request("wait_connected", peer_id=offer.peer_id),
    )


async def traffic(sides: list[Side], counter: list[int], steps: int = 80) -> None:
    """Both sides send until one of them dies or ``steps`` pass."""
    for _ in range(steps):
        for sender, receiver in ((sides[0], sides[1]), (sides[1], sides[0])):
            if not (sender.alive() and receiver.alive()):
                return
            counter[0] += 1
            assert sender.proc is not None and receiver.proc is not None
            with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
                reply = await sender.proc.request(
                    "send", to=receiver.proc.peer_id, text=f"{sender.name} {counter[0]}",
                    reply_timeout=10,
                )  # fmt: skip
                sender.accepted.add(reply["message_id"])
        await asyncio.sleep(0.005)


async def drain(sides: list[Side]) -> None:
    """Pair cleanly and wait until neither side has anything left to send, with no one
    stepping in: a row that went stuck while the other side was down (killed, starting
    again) is released by its return, and no row may be stuck at any point."""
    a, b = (s.proc for s in sides)
    assert a is not None and b is not None
    await pair(a, b)
    async with asyncio.timeout(60):
        while True:
            rows = []
            for proc in (a, b):
                await proc.request("sync")
                rows += (await proc.request("pending"))["rows"]
            stuck = [r for r in rows if r["status"] == "stuck"]
            assert not stuck, f"{len(stuck)} row(s) stuck after a clean pairing: {stuck[:3]}"
            if not rows:
                return
            await asyncio.sleep(0.2)


def _messages(db_path: Path) -> tuple[list[tuple[str, str]], str]:
    db = Database.open(db_path, PASSPHRASE)
    try:
        (conversation,) = db.list_conversations()
        rows = db.history(conversation.id)
        return [(m.message_id.hex(), m.direction) for m in rows], conversation.id
    finally:
        db.close()


@pytest.mark.timeout(BUDGET)
def test_sigkill_at_every_step_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("VOLLI_KILL_SEED", "7")))
    sides = [
        Side(name, tmp_path / f"{name}.sqlite", tmp_path / f"{name}.frames", rng)
        for name in ("alice", "bob")
    ]

    async def main() -> None:
        kills, runs, counter = 0, 0, [0]
        by_point: dict[str, int] = dict.fromkeys(faults.POINTS, 0)
        try:
            for side in sides:
                await side.restart()
            while kills < KILLS:
                runs += 1
                a, b = (side.proc for side in sides)
                assert a is not None and b is not None
                with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
                    await pair(a, b)  # a backlog flushed on connect may kill one at once
                await traffic(sides, counter)
                died = [side for side in sides if not side.alive()]
                for side in died:
                    kills += 1
                    by_point[side.point] += 1
                for side in died or sides:  # no one died: both start over, armed afresh
                    if side not in died:
                        assert side.proc is not None
                        await side.proc.kill()
                    await side.restart()
            for side in sides:  # the last runs are clean: no fault armed
                assert side.proc is not None and side.spare is not None
                await side.proc.kill()
                armed, _ = await side.spare  # the warm spare is armed: it must not run
                await armed.kill()
                side.spare = None
                await side.restart(armed=False)
            await drain(sides)
        finally:
            for side in sides:
                await side.stop()
        left = [p for s in sides for p in s.spawned if p.proc and p.proc.returncode is None]
        assert not left, f"{len(left)} peer processes outlived the test"
        print(f"\n{kills} kills in {runs} runs: {by_point}; {counter[0]} sends asked")
        assert all(by_point.values()), by_point  # every point was hit

    arun(main, timeout=BUDGET - 30)
    (a_rows, _), (b_rows, _) = (_messages(s.db) for s in sides)
    a_out = {m for m, d in a_rows if d == "out"}
    b_out = {m for m, d in b_rows if d == "out"}
    a_in = [m for m, d in a_rows if d == "in"]
    b_in = [m for m, d in b_rows if d == "in"]
    assert sides[0].accepted <= a_out and sides[1].accepted <= b_out  # accepted: kept
    assert sorted(b_in) == sorted(a_out) and len(set(b_in)) == len(b_in)  # exactly once
    assert sorted(a_in) == sorted(b_out) and len(set(a_in)) == len(a_in)
    for side in sides:  # no message key ever used for two ciphertexts, across every run
        bundles = Recording.read(side.record).bundles("out")
        assert bundles and key_reuse(bundles) == []
