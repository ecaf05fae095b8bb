"""Network conditions for real peers: a userspace UDP impairment relay.

This machine's kernel has no netem, so delay, jitter, loss, duplication,
reordering and a rate limit are applied in user space.  The relay stands
between two peers that gather loopback-only candidates: it rewrites the host
candidate each side advertises so that the other side sends to the relay,
which forwards every datagram after the configured impairment.  Each peer
then sees the other at a consistent address (the relay's), so ICE pairs
through it without peer-reflexive surprises.  DTLS fingerprints are left
untouched, so channel binding still verifies end to end.

Seeded: the same seed gives the same drops and delays for the same traffic.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import functools
import random
import re
from dataclasses import dataclass, field
from typing import Any

from volli_nb.core.pairing_code import Kind, decode_code, encode_code

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Conditions:
    """What the link does to each datagram, per direction."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0  # 0..1
    duplicate: float = 0.0
    reorder: float = 0.0  # probability of an extra delay of up to 2 × latency
    rate_kbit: float | None = None
    seed: int = 0

    @classmethod
    def parse(cls, latency: float = 0.0, packet_loss: float = 0.0, **kw: Any) -> Conditions:
        """From the seed's CLI units: ``--latency 200`` is the added round trip in ms (half
        each way, as ``ping`` would show it), ``--packet-loss 5`` percent lost each way."""
        return cls(latency_ms=latency / 2, loss=packet_loss / 100.0, **kw)

    @property
    def active(self) -> bool:
        return bool(
            self.latency_ms
            or self.jitter_ms
            or self.loss
            or self.duplicate
            or self.reorder
            or self.rate_kbit
        )


@dataclass
class LinkStats:
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0
    delivered: int = 0
    bytes: int = 0
    scheduled_ms: float = 0.0  # the delays the relay chose, summed over every copy it sent on


@dataclass
class _Side:
    """One direction's socket: datagrams arriving here go to ``target``."""

    transport: asyncio.DatagramTransport | None = None
    port: int = 0
    target: tuple[str, int] | None = None
    stats: LinkStats = field(default_factory=LinkStats)
    busy_until: float = 0.0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, relay: ImpairmentRelay, side: str) -> None:
        self.relay, self.side = relay, side

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.relay._arrived(self.side, data, (str(addr[0]), int(addr[1])))


class ImpairmentRelay:
    """Forwards A↔B datagrams through two loopback sockets, impaired as configured."""

    def __init__(
        self,
        conditions: Conditions,
        *,
        binds: tuple[str, str] = (HOST, HOST),
        peers: tuple[str, str] = (HOST, HOST),
    ) -> None:
        """``binds``: where the sockets facing A and B listen; ``peers``: the addresses A's
        and B's host candidates carry (loopback by default; veth ends in a namespace lab)."""
        self.conditions = conditions
        # One generator per direction: each direction's drops depend only on its own
        # datagram sequence, not on how the two directions interleave.
        self.rngs = {side: random.Random(f"{conditions.seed}:{side}") for side in ("a", "b")}
        # "a" faces peer A (A sends here to reach B); "b" faces peer B.
        self.sides = {"a": _Side(), "b": _Side()}
        self.binds, self.peers = {"a": binds[0], "b": binds[1]}, {"a": peers[0], "b": peers[1]}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> ImpairmentRelay:
        self._loop = asyncio.get_running_loop()
        for name, side in self.sides.items():
            transport, _ = await self._loop.create_datagram_endpoint(
                functools.partial(_Protocol, self, name), local_addr=(self.binds[name], 0)
            )
            side.transport = transport
            side.port = transport.get_extra_info("sockname")[1]
        return self

    def close(self) -> None:
        for side in self.sides.values():
            if side.transport is not None:
                side.transport.close()

    @property
    def stats(self) -> dict[str, LinkStats]:
        """Per direction: "a" counts what A sent towards B, "b" what B sent towards A."""
        return {name: side.stats for name, side in self.sides.items()}

    # --- SDP rewriting ------------------------------------------------------------

    @staticmethod
    def _host_port(sdp: str, address: str = HOST) -> int:
        found = re.search(
            rf"^a=candidate:\S+ 1 udp \d+ {re.escape(address)} (\d+) typ host", sdp, re.M
        )
        if not found:
            raise ValueError(
                f"the relay needs a host candidate on {address} "
                "(loopback_only=True for peers on this machine)"
            )
        return int(found.group(1))

    @staticmethod
    def _rewrite(sdp: str, address: str, real_port: int, relay: str, relay_port: int) -> str:
        """Only the relay's candidate remains, so ICE cannot pair around it."""
        keep = f" {address} {real_port} typ host"
        lines = []
        for line in sdp.split("\r\n"):
            if line.startswith("a=candidate:"):
                if keep not in line:
                    continue
                line = line.replace(keep, f" {relay} {relay_port} typ host")
            elif line.startswith("m=application "):
                line = re.sub(r"^m=application \d+ ", f"m=application {relay_port} ", line)
            elif line.startswith("c=IN IP4 "):
                line = f"c=IN IP4 {relay}"
            lines.append(line)
        return "\r\n".join(lines)

    def _through(self, code: str, kind: Kind, sender: str) -> str:
        """``sender``'s code as the other side should see it: its candidate → the relay's."""
        parsed = decode_code(code, expect=kind)
        receiver = "b" if sender == "a" else "a"
        address = self.peers[sender]
        port = self._host_port(parsed.sdp, address)
        self.sides[receiver].target = (address, port)  # what arrives there goes to sender
        sdp = self._rewrite(
            parsed.sdp, address, port, self.binds[receiver], self.sides[receiver].port
        )
        return encode_code(kind, sdp, parsed.identity, parsed.name, parsed.ref)

    def offer_through(self, code: str) -> str:
        """A's offer code as B should see it: A's candidate replaced by the relay's."""
        return self._through(code, "offer", "a")

    def answer_through(self, code: str) -> str:
        """B's answer code as A should see it."""
        return self._through(code, "answer", "b")

    # --- forwarding ---------------------------------------------------------------

    def _arrived(self, side_name: str, data: bytes, addr: tuple[str, int]) -> None:
        side = self.sides[side_name]
        other = self.sides["b" if side_name == "a" else "a"]
        if side.target is None or other.transport is None or self._loop is None:
            return
        # The sender's real address becomes the other side's target (it may differ from SDP).
        other.target = other.target or addr
        c, rng, stats = self.conditions, self.rngs[side_name], side.stats
        stats.sent += 1
        stats.bytes += len(data)
        if rng.random() < c.loss:
            stats.dropped += 1
            return
        copies = 2 if rng.random() < c.duplicate else 1
        stats.duplicated += copies - 1
        now = self._loop.time()
        start = now
        if c.rate_kbit:
            start = max(now, side.busy_until)
            side.busy_until = start + len(data) * 8 / (c.rate_kbit * 1000)
        for _ in range(copies):
            delay = c.latency_ms + (rng.uniform(-c.jitter_ms, c.jitter_ms) if c.jitter_ms else 0)
            if c.reorder and rng.random() < c.reorder:
                delay += rng.uniform(0, 2 * max(c.latency_ms, 10.0))
            when = start - now + max(0.0, delay) / 1000.0
            stats.scheduled_ms += when * 1000.0  # what was asked of the loop, not its lag
            target = side.target
            self._loop.call_later(when, self._deliver, other, data, target, stats)

    @staticmethod
    def _deliver(out: _Side, data: bytes, target: tuple[str, int], stats: LinkStats) -> None:
        if out.transport is not None and not out.transport.is_closing():
            out.transport.sendto(data, target)
            stats.delivered += 1


async def impaired_pair(
    a: Any, b: Any, conditions: Conditions, timeout: float = 30.0
) -> ImpairmentRelay:
    """Pair two loopback-only MessagesStores through a fresh relay; returns it (close it later)."""
    relay = await ImpairmentRelay(conditions).start()
    code = relay.offer_through(await a.create_pairing_code())
    answer = relay.answer_through(await b.accept_pairing_code(code))
    await a.complete_pairing(answer)
    await asyncio.gather(a.wait_connected(b.peer_id, timeout), b.wait_connected(a.peer_id, timeout))
    return relay
