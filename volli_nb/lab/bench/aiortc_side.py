"""The plain-aiortc column of ``volli-nb bench``: the parent's side of the pair (its child
is :mod:`plain_aiortc`), and the figures measured over it."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import time
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from volli_nb.lab.bench.measure import echo_round_trip
from volli_nb.lab.bench.progress import BenchProgress
from volli_nb.net import aiortc_compat


class AiortcPeer:
    """The parent's side of the plain-aiortc pair, and its child process."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.channel: RTCDataChannel = self.pc.createDataChannel("bench", ordered=True)
        self.opened = asyncio.Event()
        self.echoes: asyncio.Queue[bytes] = asyncio.Queue()
        self.channel.on("open", self.opened.set)
        self.channel.on("message", lambda m: self.echoes.put_nowait(m))
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> float:
        """Spawn the child and connect; returns offer → channel open in seconds."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "volli_nb.lab.bench.plain_aiortc",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        await self._read()  # the child is up and imported: timing starts now, as for volli_nb
        start = time.perf_counter()
        with aiortc_compat.loopback_only():
            await self.pc.setLocalDescription(await self.pc.createOffer())
        await self._send({"offer": self.pc.localDescription.sdp})
        answer = await self._read()
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["answer"], "answer"))
        await self.opened.wait()
        return time.perf_counter() - start

    async def _send(self, obj: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def _read(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        result: dict[str, Any] = json.loads(line)
        return result

    async def echo_rtt(self, n: int) -> float:
        return await echo_round_trip(self.channel, self.echoes, n)

    async def _drain(self) -> None:
        while self.channel.bufferedAmount > 1024 * 1024:
            await asyncio.sleep(0.001)

    async def throughput(self, count: int, size: int) -> float:
        """Send ``count`` messages of ``size`` bytes; seconds until the child got them all."""
        await self._send({"expect": count, "bytes": count * size})
        payload = b"x" * size
        start = time.perf_counter()
        for _ in range(count):
            self.channel.send(payload)
            await self._drain()
        await self._read()
        return time.perf_counter() - start

    async def dead_peer(self, cap: float) -> float | None:
        assert self.proc is not None
        left = asyncio.Event()
        self.pc.on("connectionstatechange", lambda: left.set())
        start = time.perf_counter()
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        try:
            while self.pc.connectionState == "connected":
                left.clear()
                await asyncio.wait_for(left.wait(), cap - (time.perf_counter() - start))
        except TimeoutError:
            return None
        return time.perf_counter() - start

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.wait_for(self.pc.close(), 5)


async def plain_rows(
    bar: BenchProgress,
    messages: int,
    bulk: int,
    echoes: int,
    flush: int,
    quick: bool,
    fanout: tuple[int, ...],
) -> dict[str, float | None]:
    """Every figure of the plain-aiortc column, one step of ``bar`` each."""
    plain = AiortcPeer()
    base: dict[str, float | None] = {}
    try:
        bar.step("aiortc: setup")
        base["setup"] = await plain.start()
        bar.step("aiortc: round trip")
        base["rtt"] = await plain.echo_rtt(echoes)
        bar.step("aiortc: 100-byte messages")
        base["msgs"] = messages / await plain.throughput(messages, 100)
        bar.step("aiortc: bulk")
        base["bulk"] = bulk / await plain.throughput(max(1, bulk // 65536), 65536) / 1e6
        bar.step("aiortc: fan-out")
        for n in fanout:  # the plaintext sent once per recipient, median of 5
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
