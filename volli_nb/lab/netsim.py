"""``volli-nb netsim``: two real peers in their own network namespaces, impaired between.

Each peer is an OS process (:mod:`volli_nb.lab.peer_process`) inside a namespace of its own,
joined to the current namespace by one veth pair on its own /30; the peers' namespaces
have no default route and the current one does not forward, so a peer can reach only
the :class:`~volli_nb.lab.relay.ImpairmentRelay` listening on its /30's other end.  The
relay rewrites each pairing code so that the two sides pair through it, and applies
the asked delay, jitter, loss, reordering and rate to every datagram, seeded.

The CLI runs all of it inside a throwaway namespace (:mod:`volli_nb.lab.netns`), so nothing
touches the host's interfaces.  Needs root and iproute2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from volli_nb.base.console import plain
from volli_nb.lab import netns
from volli_nb.lab.peer_handle import PeerProcess
from volli_nb.lab.relay import Conditions, ImpairmentRelay

SUBNETS = ("10.231.1", "10.231.2")


@dataclass(frozen=True)
class Lab:
    """The two peer namespaces and the addresses on each /30."""

    names: tuple[str, str]
    relay_addresses: tuple[str, str] = (f"{SUBNETS[0]}.1", f"{SUBNETS[1]}.1")
    peer_addresses: tuple[str, str] = (f"{SUBNETS[0]}.2", f"{SUBNETS[1]}.2")


@contextlib.contextmanager
def namespaces() -> Iterator[Lab]:
    """Create the two peer namespaces; remove them (and whatever runs in them) on exit."""
    ok, why = netns.can_create()
    if not ok:
        raise PermissionError(f"volli-nb netsim: {why}")
    suffix = secrets.token_hex(3)
    lab = Lab((f"vnb-a-{suffix}", f"vnb-b-{suffix}"))
    try:
        for name, subnet, side in zip(lab.names, SUBNETS, "ab", strict=True):
            outer, inner = f"vnb{side}{suffix}", f"vnb{side}{suffix}p"
            netns.ip("netns", "add", name)
            netns.ip("-n", name, "link", "set", "lo", "up")
            netns.ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", name)
            netns.ip("addr", "add", f"{subnet}.1/30", "dev", outer)
            netns.ip("link", "set", outer, "up")
            netns.ip("-n", name, "addr", "add", f"{subnet}.2/30", "dev", inner)
            netns.ip("-n", name, "link", "set", inner, "up")
        yield lab
    finally:
        for name, side in zip(lab.names, "ab", strict=True):
            netns.teardown(name)  # kills what runs there
            # The kernel frees a deleted namespace (and so the veth pair) lazily: delete now.
            subprocess.run(["ip", "link", "del", f"vnb{side}{suffix}"], capture_output=True)


def routes(name: str) -> list[str]:
    """The routing table of a namespace, one route per line."""
    out = subprocess.run(
        ["ip", "-n", name, "route", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def addresses(name: str) -> list[str]:
    """Every IPv4 address in a namespace, with its prefix."""
    out = subprocess.run(
        ["ip", "-n", name, "-4", "-o", "addr", "show"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


@dataclass
class Report:
    """What was asked, what was measured, and whether delivery held."""

    asked_rtt_ms: float
    asked_loss: float
    rtt_ms: dict[str, float] = field(default_factory=dict)  # per peer: median ping RTT
    rtt_p25_ms: dict[str, float] = field(default_factory=dict)  # the path, past recoveries
    loss: dict[str, float] = field(default_factory=dict)  # per direction, at the relay
    datagrams: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    exactly_once_in_order: bool = False
    timeouts: int = 0
    seconds: float = 0.0
    namespaces: tuple[str, str] = ("", "")

    def table(self) -> str:
        rows = [
            f"{'':<22}{'asked':>10}{'measured':>12}  (RTT: lower quartile / median of pings)",
        ]
        for side, label in (("a", "RTT A→B→A (ms)"), ("b", "RTT B→A→B (ms)")):
            measured = f"{self.rtt_p25_ms.get(side, 0):.0f} / {self.rtt_ms.get(side, 0):.0f}"
            rows.append(f"{label:<22}{self.asked_rtt_ms:>10.0f}{measured:>12}")
        for side, label in (("a", "loss A→B"), ("b", "loss B→A")):
            measured = f"{100 * self.loss.get(side, 0):.1f} %"
            rows.append(
                f"{label + ' (' + str(self.datagrams.get(side, 0)) + ' dgrams)':<22}"
                f"{100 * self.asked_loss:>8.1f} %{measured:>12}"
            )
        rows.append(
            f"{self.messages} messages each way: delivered {self.delivered}, exactly once "
            f"and in order: {self.exactly_once_in_order}, ACK timeouts {self.timeouts}, "
            f"{self.seconds:.1f} s"
        )
        return "\n".join(rows)


async def _texts(peer: PeerProcess, other: str, prefix: str) -> list[str]:
    history = (await peer.request("history", peer=other))["messages"]
    return [m["text"] for m in history if m["direction"] == "in" and m["text"].startswith(prefix)]


async def _rtts(peer: PeerProcess, other: str, seconds: float) -> list[float]:
    samples: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rtt = (await peer.request("link", peer_id=other))["rtt"]
        if rtt is not None and (not samples or rtt != samples[-1]):
            samples.append(rtt)
        await asyncio.sleep(0.1)  # five looks per heartbeat: each new pong is seen
    return samples


async def run(
    conditions: Conditions, messages: int = 200, timeout: float = 300.0, rtt_seconds: float = 8.0
) -> Report:
    """Pair two namespaced peers through the relay, measure the quiet link's heartbeat RTT
    for ``rtt_seconds``, then exchange ``messages`` each way."""
    report = Report(2 * conditions.latency_ms, conditions.loss, messages=messages)
    with namespaces() as lab, tempfile.TemporaryDirectory(prefix="volli-netsim-") as tmp:
        report.namespaces = lab.names
        relay = ImpairmentRelay(conditions, binds=lab.relay_addresses, peers=lab.peer_addresses)
        await relay.start()
        a = PeerProcess(
            str(Path(tmp) / "a.sqlite"), "lab-a", loopback=False, prefix=_exec(lab.names[0])
        )
        b = PeerProcess(
            str(Path(tmp) / "b.sqlite"), "lab-b", loopback=False, prefix=_exec(lab.names[1])
        )
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(a.start(), b.start())
                code = relay.offer_through((await a.request("create_code"))["code"])
                answer = (await b.request("accept_code", code=code))["code"]
                await a.request("complete", code=relay.answer_through(answer))
                for me, other in ((a, b), (b, a)):
                    await me.request("wait_connected", peer_id=other.peer_id, timeout=60.0)
                rtts = await asyncio.gather(  # heartbeats on a quiet link: the path's RTT
                    _rtts(a, b.peer_id, rtt_seconds), _rtts(b, a.peer_id, rtt_seconds)
                )
                for side, samples in zip("ab", rtts, strict=True):
                    if len(samples) >= 2:  # a lost packet holds later pings back (ordered
                        # channel): the median shows that, the lower quartile the path
                        report.rtt_ms[side] = 1000 * statistics.median(samples)
                        report.rtt_p25_ms[side] = 1000 * statistics.quantiles(samples, n=4)[0]
                started = time.monotonic()
                await asyncio.gather(
                    a.request("send_many", to=b.peer_id, n=messages, prefix="a→b"),
                    b.request("send_many", to=a.peer_id, n=messages, prefix="b→a"),
                )
                await _until_delivered(a, b, messages)
                report.seconds = time.monotonic() - started
                got_b = await _texts(b, a.peer_id, "a→b")
                got_a = await _texts(a, b.peer_id, "b→a")
                report.delivered = {"a→b": len(got_b), "b→a": len(got_a)}
                report.exactly_once_in_order = got_b == [
                    f"a→b {i}" for i in range(messages)
                ] and got_a == [f"b→a {i}" for i in range(messages)]
                for me, other in ((a, b), (b, a)):
                    report.timeouts += (await me.request("link", peer_id=other.peer_id))["timeouts"]
        finally:  # a peer busy with a long request would answer "quit" only after it
            await asyncio.gather(*(_stop(p) for p in (a, b)), return_exceptions=True)
            relay.close()
        for side, stats in relay.stats.items():
            report.datagrams[side] = stats.sent
            report.loss[side] = stats.dropped / stats.sent if stats.sent else 0.0
    return report


async def _stop(peer: PeerProcess) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(peer.quit(timeout=2), 3)
    await peer.kill()  # still there (interrupted mid-request): no goodbye needed


def _exec(name: str) -> list[str]:
    return ["ip", "netns", "exec", name]


async def _until_delivered(a: PeerProcess, b: PeerProcess, messages: int) -> None:
    """Until each side has ``messages`` signed ACKs (pending rows gone)."""
    while True:
        pending = [len((await p.request("pending"))["rows"]) for p in (a, b)]
        if pending == [0, 0]:
            return
        await asyncio.sleep(0.2)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="volli-nb netsim", description=plain(__doc__))
    parser.add_argument("--latency", type=float, default=200.0, help="round trip added (ms)")
    parser.add_argument("--jitter", type=float, default=0.0, help="± ms each way")
    parser.add_argument("--packet-loss", type=float, default=5.0, help="%% lost each way")
    parser.add_argument("--reorder", type=float, default=0.0, help="%% delayed extra")
    parser.add_argument("--rate-kbit", type=float, default=None, help="rate limit each way")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--messages", type=int, default=200, help="sent each way")
    parser.add_argument(
        "--rtt-seconds", type=float, default=8.0, help="heartbeat RTT sampled this long first"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(list(argv))
    ok, why = netns.can_create()
    if not ok:
        print(f"volli-nb netsim: {why}", file=sys.stderr)
        return 2
    if not os.environ.get(netns.ENV_MARK):  # keep even the lab's veths off the host
        return netns.run([sys.executable, "-m", "volli_nb.ui.cli", "netsim", *argv])
    conditions = Conditions.parse(
        args.latency,
        args.packet_loss,
        jitter_ms=args.jitter,
        reorder=args.reorder / 100,
        rate_kbit=args.rate_kbit,
        seed=args.seed,
    )
    try:
        report = asyncio.run(run(conditions, args.messages, rtt_seconds=args.rtt_seconds))
    except KeyboardInterrupt:
        print("volli-nb netsim: interrupted; namespaces and peers removed", file=sys.stderr)
        return 130
    except TimeoutError:
        print("volli-nb netsim: the run did not finish in time; lab removed", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), indent=1) if args.json else report.table())
    return 0 if report.exactly_once_in_order else 1


__all__ = ["Lab", "Report", "addresses", "main", "namespaces", "routes", "run"]
