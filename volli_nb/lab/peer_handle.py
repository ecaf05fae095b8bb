"""The parent's handle on a peer process (:mod:`volli_nb.lab.peer_process`): start it
(or keep it warm), send requests, read its events, kill and restart it.

Requests are ``{"id": n, "op": ..., ...}``; each gets ``{"id": n, ...}`` or
``{"id": n, "error": ...}``.  Unsolicited lines are ``{"event": ...}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from typing import Any


async def pair_with(store: Any, proc: PeerProcess, timeout: float = 15.0) -> str:
    """``store`` offers, the peer process answers; returns its peer id once connected."""
    code = await store.create_pairing_code()
    answer = (await proc.request("accept_code", code=code))["code"]
    peer_id: str = await store.complete_pairing(answer)
    await store.wait_connected(peer_id, timeout)
    return peer_id


_EXITED = "_exited"  # the reader's last event: the process's stdout ended


class PeerProcess:
    """The parent's handle on a peer process: requests, events, kill and restart."""

    def __init__(
        self,
        db: str,
        name: str,
        *,
        kdf: str = "min",
        loopback: bool = True,
        prefix: list[str] | None = None,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db, self.name, self.kdf, self.loopback = db, name, kdf, loopback
        self.prefix, self.extra = prefix or [], extra or []
        self.env = env  # None: this process's environment (e.g. VOLLI_FAULTS for one run)
        self.proc: asyncio.subprocess.Process | None = None
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.peer_id = ""
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def prepare(self, timeout: float = 30.0) -> PeerProcess:
        """Start the process warm (everything imported) but not yet on its profile;
        :meth:`start` then only opens it (a crash loop's restarts stay short)."""
        await self._spawn(["--standby"])
        await self.wait_event("standby", timeout=timeout)
        return self

    async def start(self, timeout: float = 30.0) -> PeerProcess:
        if self.proc is not None and self.proc.returncode is None:  # prepared: open now
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"open\n")
            await self.proc.stdin.drain()
        else:
            await self._spawn([])
        ready = await self.wait_event("ready", timeout=timeout)
        self.peer_id = ready["peer_id"]
        return self

    async def _spawn(self, flags: list[str]) -> None:
        cmd = [
            sys.executable,
            "-m",
            "volli_nb.lab.peer_process",
            "--db",
            self.db,
            "--name",
            self.name,
            "--kdf",
            self.kdf,
        ]
        if not self.loopback:
            cmd.append("--no-loopback")
        cmd = [*self.prefix, *cmd, *flags, *self.extra]
        self.events = asyncio.Queue()
        self.proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 22,
            env=self.env,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                if "id" in msg and msg["id"] in self._waiting:
                    waiter = self._waiting.pop(msg["id"])
                    if not waiter.done():  # the requester may have timed out or been cancelled
                        waiter.set_result(msg)
                elif "event" in msg:
                    self.events.put_nowait(msg)
        for fut in self._waiting.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"peer process {self.name} exited"))
        self._waiting.clear()
        self.events.put_nowait({"event": _EXITED})  # a waiter learns at once, not at its timeout

    async def request(
        self, op: str, *, reply_timeout: float = 30.0, **kwargs: Any
    ) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self._next += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = fut
        self.proc.stdin.write((json.dumps({"id": self._next, "op": op, **kwargs}) + "\n").encode())
        await self.proc.stdin.drain()
        reply = await asyncio.wait_for(fut, reply_timeout)
        if "error" in reply:
            raise RuntimeError(f"{self.name}.{op}: {reply['error']}")
        return reply

    async def wait_event(self, kind: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        """The next event of ``kind`` (matching ``match``); earlier others are dropped."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event["event"] == _EXITED:
                    self.events.put_nowait(event)  # for the next waiter too
                    raise ConnectionError(f"peer process {self.name} exited")
                if event["event"] == kind and all(event.get(k) == v for k, v in match.items()):
                    return event

    async def quit(self, timeout: float = 10.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.returncode is not None:
            return self.proc.returncode
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError, BrokenPipeError):
            await self.request("quit", reply_timeout=timeout)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def kill(self) -> None:
        """SIGKILL: no goodbye, no flush; the database must cope."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2)


__all__ = ["PeerProcess", "pair_with"]
