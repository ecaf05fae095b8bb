"""Plain aiortc, the baseline volli_nb is measured against: no encryption, no ACKs.

One pairing helper for every plain connection the benchmarks and tests make
(:func:`offer`, :func:`answer`, :func:`accept`, and :func:`pair` for two peers in one
process, optionally through SDP rewriting such as the impairment relay's): no ICE
servers, loopback-only candidates, so nothing leaves this machine.

:class:`PlainPeer` is the parent's side of ``volli-nb bench``'s two-process pair; run as
``python -m volli_nb.lab.bench.plain_aiortc``, this module is the child, which answers an
offer, echoes messages starting with ``E``, and reports when it has received what it
was told to expect.  Protocol on stdin/stdout (JSON lines): ``{"offer": sdp}`` →
``{"answer": sdp}``; ``{"expect": n_messages, "bytes": n_bytes}`` → later
``{"done": n, "bytes": b, "at": monotonic time of the last arrival, "cpu": seconds of
CPU since the expect}`` (an optional ``"busy": seconds`` blocks the child's loop first).

The baseline sends as a real sender would: with ``bufferedAmount`` back-pressure
(:func:`send_paced`), and the figure is taken at the receiver when the last message
arrives (``time.monotonic`` is one clock for every process on the machine), so it does
not depend on how much the sender's buffer happened to swallow.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from volli_nb.lab.bench.measure import echo_round_trip
from volli_nb.net import aiortc_compat

OPEN_TIMEOUT = 60.0
HIGH_WATER = 1024 * 1024  # bytes queued in the channel before the sender waits
LOW_WATER = 256 * 1024  # the sender resumes when the queue drains below this
TRANSFER_TIMEOUT = 600.0  # 10,000 small messages take aiortc ~20 s on a loaded 2-core box


@dataclass(frozen=True)
class Transfer:
    """One paced transfer: seconds to the last arrival, CPU seconds on each side."""

    seconds: float
    sender_cpu: float
    receiver_cpu: float


def new_peer() -> RTCPeerConnection:
    """A peer connection with no STUN or TURN server: it contacts nobody."""
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def _describe(pc: RTCPeerConnection, create: Callable[[], Awaitable[Any]]) -> str:
    with aiortc_compat.loopback_only():  # gathering happens here, in this task
        await pc.setLocalDescription(await create())
    sdp: str = pc.localDescription.sdp
    return sdp


async def offer(pc: RTCPeerConnection) -> str:
    """Our offer SDP, with loopback-only candidates."""
    return await _describe(pc, pc.createOffer)


async def answer(pc: RTCPeerConnection, offer_sdp: str) -> str:
    """Our answer SDP to ``offer_sdp``, with loopback-only candidates."""
    await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
    return await _describe(pc, pc.createAnswer)


async def accept(pc: RTCPeerConnection, answer_sdp: str) -> None:
    await pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))


def open_channel(
    pc: RTCPeerConnection, label: str = "bench"
) -> tuple[RTCDataChannel, asyncio.Event]:
    """A reliable, ordered channel and an event set when it opens."""
    channel = pc.createDataChannel(label, ordered=True)
    opened = asyncio.Event()
    channel.on("open", opened.set)
    return channel, opened


async def pair(
    a: RTCPeerConnection,
    b: RTCPeerConnection,
    *,
    via: Callable[[str, str], str] = lambda sdp, _kind: sdp,
    timeout: float = OPEN_TIMEOUT,
) -> RTCDataChannel:
    """Connect ``a`` (offering) to ``b`` in this process; returns ``a``'s open channel.

    ``via(sdp, kind)`` is what each description becomes on its way to the other side
    (an impairment relay rewrites the candidates, for example)."""
    channel, opened = open_channel(a)
    offer_sdp = via(await offer(a), "offer")
    await accept(a, via(await answer(b, offer_sdp), "answer"))
    await asyncio.wait_for(opened.wait(), timeout)
    return channel


async def send_paced(channel: RTCDataChannel, payloads: Iterable[bytes]) -> None:
    """Send each payload, waiting for ``bufferedamountlow`` whenever more than HIGH_WATER
    bytes are queued: back-pressure from the channel's own event, not polling."""
    channel.bufferedAmountLowThreshold = LOW_WATER
    drained = asyncio.Event()
    channel.on("bufferedamountlow", drained.set)
    try:
        for payload in payloads:
            channel.send(payload)
            if channel.bufferedAmount > HIGH_WATER:
                drained.clear()
                await asyncio.wait_for(drained.wait(), OPEN_TIMEOUT)
    finally:
        channel.remove_listener("bufferedamountlow", drained.set)


class PlainPeer:
    """The parent's side of the two-process plain-aiortc pair, and its child process."""

    def __init__(self) -> None:
        self.pc = new_peer()
        self.channel, self.opened = open_channel(self.pc)
        self.echoes: asyncio.Queue[bytes] = asyncio.Queue()
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
        await self._send({"offer": await offer(self.pc)})
        await accept(self.pc, (await self._read())["answer"])
        await asyncio.wait_for(self.opened.wait(), OPEN_TIMEOUT)
        return time.perf_counter() - start

    async def _send(self, obj: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self.proc.stdin.drain()

    async def _read(self, timeout: float = 60.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        result: dict[str, Any] = json.loads(line)
        return result

    async def echo_rtt(self, n: int) -> float:
        return await echo_round_trip(self.channel, self.echoes, n)

    async def throughput(self, count: int, size: int) -> float:
        """Send ``count`` messages of ``size`` bytes, paced; seconds from the first send to
        the last arrival, as the child saw it."""
        return (await self.transfer(count, size)).seconds

    async def expect(self, count: int, size: int, *, busy: float = 0.0) -> None:
        """Tell the child what to count; it has reset its counters when this returns.
        ``busy``: the child blocks its event loop that long first (a receiver storing a
        large frame), so what is sent meanwhile waits in its UDP socket."""
        await self._send({"expect": count, "bytes": count * size, "busy": busy})
        await self._read()

    async def arrival(self, timeout: float = TRANSFER_TIMEOUT) -> float:
        """When (``time.monotonic``: one clock for every process here) the child had all
        it was told to expect."""
        return float((await self._read(timeout))["at"])

    async def transfer(self, count: int, size: int, *, busy: float = 0.0) -> Transfer:
        """:meth:`throughput`, with the CPU each side spent on it (``busy``: see
        :meth:`expect`)."""
        await self.expect(count, size, busy=busy)
        payload = b"x" * size
        cpu, start = time.process_time(), time.monotonic()
        await send_paced(self.channel, itertools.repeat(payload, count))
        done = await self._read(TRANSFER_TIMEOUT)  # SCTP sends the buffered tail meanwhile
        sent_cpu = time.process_time() - cpu
        return Transfer(float(done["at"]) - start, sent_cpu, float(done["cpu"]))

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


# --- the child ---------------------------------------------------------------------


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def serve() -> None:
    pc = new_peer()
    state: dict[str, float] = {"expect": -1, "bytes": -1, "got": 0, "got_bytes": 0, "cpu": 0}

    def check() -> None:
        if (
            state["expect"] >= 0
            and state["got"] >= state["expect"]
            and (state["got_bytes"] >= state["bytes"])
        ):
            at, cpu = time.monotonic(), time.process_time() - state["cpu"]
            _emit({"done": state["got"], "bytes": state["got_bytes"], "at": at, "cpu": cpu})
            state["expect"] = -1

    @pc.on("datachannel")
    def on_channel(channel: RTCDataChannel) -> None:
        @channel.on("message")
        def on_message(data: bytes | str) -> None:
            raw = data if isinstance(data, bytes) else data.encode()
            if raw[:1] == b"E":
                channel.send(raw)
                return
            state["got"] += 1
            state["got_bytes"] += len(raw)
            check()

    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"ready": True})
    while line := await reader.readline():
        request = json.loads(line)
        if "offer" in request:
            _emit({"answer": await answer(pc, request["offer"])})
        elif "expect" in request:
            state.update(expect=request["expect"], bytes=request["bytes"], got=0, got_bytes=0)
            state["cpu"] = time.process_time()
            _emit({"expecting": request["expect"]})
            time.sleep(request.get("busy", 0.0))  # blocks the loop: nothing reads the socket
            check()
    await pc.close()


if __name__ == "__main__":
    asyncio.run(serve())
