"""Faults between peers and ``volli-signal``, on demand: a balancer, a fleet, a cable cut.

No fault-injection proxy installs here from the package registries (toxiproxy's Python
and npm packages are only clients of its Go server, which none of them ships, and it
could not answer HTTP 502 anyway), so this one is written for what signaling needs:

- :class:`FaultBalancer`: a plain round-robin TCP balancer (no health checks: a dead
  backend makes it accept and close, as the balancers in front of real deployments do)
  whose fault can be set at any time: ``accept-close``, ``502`` (an HTTP proxy in front
  of a dead backend), ``blackhole`` (connections accepted and held, bytes held both
  ways, until it heals: what a dropped route looks like to TCP) or ``delay`` (each
  chunk waits); :meth:`~FaultBalancer.cut` drops every connection through it.
- :class:`SignalFleet`: ``volli-signal`` processes on one Redis engine, each on a fixed
  port, killed with SIGKILL and restarted on the same port.
- :func:`offline`: a peer drops off for N seconds (its own balancer refuses everything,
  its connections are closed) and comes back.

Everything listens on 127.0.0.1 only.  ``volli-nb chaos`` (:mod:`.chaos_loop`) runs the
whole fault loop the suite runs a short version of.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from volli_nb.base.errors import UsageError
from volli_nb.lab.redis_engine import free_tcp_port

CHUNK = 64 * 1024
HTTP_502 = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n"
    b"Connection: close\r\n\r\nno backend is available.\r\n"
)


class Fault(StrEnum):
    NONE = "none"
    ACCEPT_CLOSE = "accept-close"
    HTTP_502 = "502"
    BLACKHOLE = "blackhole"
    DELAY = "delay"


@dataclass
class BalancerStats:
    accepted: int = 0
    forwarded: int = 0  # connections relayed to a backend
    faulted: int = 0  # connections answered by the fault
    backend_down: int = 0  # the chosen backend refused: accepted and closed


class FaultBalancer:
    """Round-robin TCP balancer on 127.0.0.1 with a settable fault."""

    def __init__(self, backends: list[tuple[str, int]], *, port: int = 0) -> None:
        if not backends:
            raise UsageError("a balancer needs at least one backend (host, port)")
        self.backends = list(backends)
        self.port = port
        self.fault = Fault.NONE
        self.delay = 0.0
        self.stats = BalancerStats()
        self._next = itertools.cycle(range(len(self.backends)))
        self._healed = asyncio.Event()
        self._healed.set()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> FaultBalancer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def set_fault(self, fault: Fault | str, *, delay: float = 0.0, cut: bool = False) -> None:
        """From now on, new connections (and for ``blackhole``/``delay``, bytes on open
        ones) meet ``fault``; ``cut`` also drops every open connection."""
        self.fault, self.delay = Fault(fault), delay
        if self.fault == Fault.BLACKHOLE:
            self._healed.clear()
        else:
            self._healed.set()
        if cut:
            self.cut()

    def heal(self) -> None:
        """No fault: held connections go on where they stopped."""
        self.set_fault(Fault.NONE)

    def cut(self) -> None:
        """Drop every connection through the balancer now (no FIN: as if the path died)."""
        for writer in list(self._open):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.heal()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> FaultBalancer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- one connection -------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.accepted += 1
        self._open.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._open.discard(writer)
            writer.transport.abort()
            if task is not None:
                self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fault = self.fault
        if fault == Fault.ACCEPT_CLOSE:
            self.stats.faulted += 1
            writer.close()
            return
        if fault == Fault.HTTP_502:
            self.stats.faulted += 1
            with contextlib.suppress(TimeoutError):  # read the request, as a proxy would
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(HTTP_502)
            await writer.drain()
            writer.close()
            return
        await self._healed.wait()  # a black hole holds the connection until it heals
        host, port = self.backends[next(self._next)]
        try:
            back_reader, back_writer = await asyncio.open_connection(host, port)
        except OSError:
            self.stats.backend_down += 1
            writer.close()  # a plain balancer: the client sees accept, then close
            return
        self.stats.forwarded += 1
        self._open.add(back_writer)
        try:
            await asyncio.gather(self._pump(reader, back_writer), self._pump(back_reader, writer))
        finally:
            self._open.discard(back_writer)
            back_writer.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self._healed.wait()  # held, not lost: TCP would retransmit
                if self.fault == Fault.DELAY and self.delay > 0:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()  # either side gone: the whole connection is


@dataclass
class SignalFleet:
    """``n`` ``volli-signal --redis`` processes, each on its own fixed port."""

    redis_url: str
    n: int = 3
    workdir: Path = field(default_factory=Path.cwd)
    extra: tuple[str, ...] = ()
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)

    @property
    def backends(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.ports]

    @property
    def urls(self) -> list[str]:
        return [f"ws://127.0.0.1:{port}" for port in self.ports]

    async def start(self) -> SignalFleet:
        self.ports = [free_tcp_port() for _ in range(self.n)]
        self.procs = [None] * self.n
        for i in range(self.n):
            await self.restart(i)
        return self

    def alive(self, i: int) -> bool:
        proc = self.procs[i]
        return proc is not None and proc.poll() is None

    def kill(self, i: int) -> None:
        """SIGKILL: no goodbye to its clients, its presence runs out in the engine."""
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    async def restart(self, i: int, timeout: float = 30.0) -> None:
        """Start process ``i`` (again) on its port, and wait until it listens."""
        self.kill(i)
        log = self.workdir / f"signal-{self.ports[i]}.log"
        with log.open("wb") as out:
            self.procs[i] = subprocess.Popen(
                [
                    *(sys.executable, "-m", "volli_nb.net.signaling.server"),
                    *("--port", str(self.ports[i]), "--redis", self.redis_url, *self.extra),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with asyncio.timeout(timeout):
            while not re.search(rb"wss?://\S+", log.read_bytes()):
                if not self.alive(i):
                    raise RuntimeError(f"volli-signal did not start: {log.read_text()[-2000:]}")
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            if proc is not None:
                try:
                    await asyncio.to_thread(proc.wait, 10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def offline(store: Any, cable: FaultBalancer, seconds: float) -> None:
    """``store`` drops off the network for ``seconds``: its signaling path (``cable``, the
    balancer it reaches the server through) refuses everything and is cut, and its peer
    connections close; then the path works again and it comes back by itself."""
    cable.set_fault(Fault.ACCEPT_CLOSE, cut=True)
    await store.network_store.disconnect()
    try:
        await asyncio.sleep(seconds)
    finally:
        cable.heal()


__all__ = ["BalancerStats", "Fault", "FaultBalancer", "SignalFleet", "offline"]
