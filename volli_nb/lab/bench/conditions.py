"""``volli-nb bench`` under network conditions: plain aiortc and volli_nb through the same
impairment relay (default 200 ms round trip, 5 % loss each way), in one process each.

Both sides gather loopback-only candidates and the relay rewrites them, exactly as
:func:`volli_nb.lab.relay.impaired_pair` does for MessagesStores; the aiortc pair's SDP
goes through the same rewriting by riding in a pairing code.
"""

from __future__ import annotations

import asyncio
import time

from aiortc import RTCDataChannel

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.pairing_code import decode_code, encode_code
from volli_nb.lab.bench import plain_aiortc
from volli_nb.lab.bench.measure import ack_round_trip, delivered_rate, echo_round_trip
from volli_nb.lab.relay import Conditions, ImpairmentRelay, impaired_pair

DEFAULT = Conditions(latency_ms=100, loss=0.05, seed=3)  # 200 ms RTT, 5 % loss


def _through(relay: ImpairmentRelay, sdp: str, kind: str) -> str:
    """An SDP as the other side should see it (the relay rewrites pairing codes)."""
    carrier = Identity.generate().public
    if kind == "offer":
        return decode_code(relay.offer_through(encode_code("offer", sdp, carrier))).sdp
    return decode_code(relay.answer_through(encode_code("answer", sdp, carrier))).sdp


async def _aiortc(conditions: Conditions, count: int, echoes: int) -> dict[str, float]:
    relay = await ImpairmentRelay(conditions).start()
    a, b = plain_aiortc.new_peer(), plain_aiortc.new_peer()
    got_all, echoed = asyncio.Event(), asyncio.Queue[bytes]()
    received = 0

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
        channel = await plain_aiortc.pair(
            a, b, via=lambda sdp, kind: _through(relay, sdp, kind), timeout=60
        )
        channel.on("message", lambda m: echoed.put_nowait(m))
        rtt = await echo_round_trip(channel, echoed, echoes, timeout=60)
        start = time.perf_counter()
        await plain_aiortc.send_paced(channel, [b"m" * 100] * count)
        await asyncio.wait_for(got_all.wait(), 300)  # counted where they arrive
        return {"rtt": rtt, "msgs": count / (time.perf_counter() - start)}
    finally:
        await asyncio.gather(a.close(), b.close())
        relay.close()


async def _volli(conditions: Conditions, count: int, echoes: int) -> dict[str, float]:
    a, b = MessagesStore.scratch("a"), MessagesStore.scratch("b")
    relay: ImpairmentRelay | None = None
    try:
        relay = await impaired_pair(a, b, conditions, timeout=60)
        rtt = await ack_round_trip(a, b.peer_id, echoes, timeout=60)
        msgs = await delivered_rate(a, b.peer_id, count, timeout=300)
        stats = a.network_store.session_stats(b.peer_id)
        timeouts = float(stats.timeouts) if stats else 0.0
        return {"rtt": rtt, "msgs": msgs, "timeouts": timeouts}
    finally:
        await asyncio.gather(a.close(), b.close())
        if relay is not None:
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
