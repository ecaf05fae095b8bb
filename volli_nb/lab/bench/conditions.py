"""``volli-nb bench`` under network conditions: plain aiortc and volli_nb through the same
impairment relay (default 200 ms round trip, 5 % loss each way), in one process each.

Both sides gather loopback-only candidates and the relay rewrites them, exactly as
:func:`volli_nb.lab.relay.impaired_pair` does for MessagesStores; the aiortc pair's SDP
goes through the same rewriting by riding in a pairing code.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.pairing_code import decode_code, encode_code
from volli_nb.core.store.database import KDF_MIN
from volli_nb.lab.bench.measure import ack_round_trip, delivered_rate, echo_round_trip
from volli_nb.lab.relay import Conditions, ImpairmentRelay, impaired_pair
from volli_nb.net import aiortc_compat

DEFAULT = Conditions(latency_ms=100, loss=0.05, seed=3)  # 200 ms RTT, 5 % loss


def _through(relay: ImpairmentRelay, sdp: str, kind: str) -> str:
    """An SDP as the other side should see it (the relay rewrites pairing codes)."""
    carrier = Identity.generate().public
    if kind == "offer":
        return decode_code(relay.offer_through(encode_code("offer", sdp, carrier))).sdp
    return decode_code(relay.answer_through(encode_code("answer", sdp, carrier))).sdp


async def _aiortc(conditions: Conditions, count: int, echoes: int) -> dict[str, float]:
    relay = await ImpairmentRelay(conditions).start()
    a = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    b = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = a.createDataChannel("bench", ordered=True)
    opened, got_all, echoed = asyncio.Event(), asyncio.Event(), asyncio.Queue[bytes]()
    received = 0
    channel.on("open", opened.set)
    channel.on("message", lambda m: echoed.put_nowait(m))

    @b.on("datachannel")
    def _on_channel(remote: RTCDataChannel) -> None:
        @remote.on("message")
        def _on_message(data: bytes) -> None:
            nonlocal received
            if data[:1] == b"E":
                remote.send(data)
                return
            received += 1
            if received >= count:
                got_all.set()

    try:
        with aiortc_compat.loopback_only():
            await a.setLocalDescription(await a.createOffer())
            offer = _through(relay, a.localDescription.sdp, "offer")
            await b.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await b.setLocalDescription(await b.createAnswer())
        answer = _through(relay, b.localDescription.sdp, "answer")
        await a.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(opened.wait(), 60)
        rtt = await echo_round_trip(channel, echoed, echoes, timeout=60)
        start = time.perf_counter()
        for _ in range(count):
            channel.send(b"m" * 100)
        await asyncio.wait_for(got_all.wait(), 300)
        return {"rtt": rtt, "msgs": count / (time.perf_counter() - start)}
    finally:
        await asyncio.gather(a.close(), b.close())
        relay.close()


async def _volli(conditions: Conditions, count: int, echoes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="volli-bench-c-") as tmp:
        stores = [
            MessagesStore.open(
                Path(tmp) / f"{name}.sqlite",
                "bench",
                name=name,
                kdf=KDF_MIN,
                config=NetworkConfig(loopback_only=True),
            )
            for name in ("a", "b")
        ]
        a, b = stores
        relay = await impaired_pair(a, b, conditions, timeout=60)
        try:
            rtt = await ack_round_trip(a, b.peer_id, echoes, timeout=60)
            msgs = await delivered_rate(a, b.peer_id, count, timeout=300)
            stats = a.network_store.session_stats(b.peer_id)
            timeouts = float(stats.timeouts) if stats else 0.0
            return {"rtt": rtt, "msgs": msgs, "timeouts": timeouts}
        finally:
            await asyncio.gather(a.close(), b.close())
            relay.close()


async def run(
    conditions: Conditions = DEFAULT, count: int = 300, echoes: int = 5
) -> dict[str, dict[str, float]]:
    """``{"aiortc": {...}, "volli": {...}}``: echo/ACK round trip (s) and messages/s."""
    return {
        "aiortc": await _aiortc(conditions, count, echoes),
        "volli": await _volli(conditions, count, echoes),
    }


__all__ = ["DEFAULT", "run"]
