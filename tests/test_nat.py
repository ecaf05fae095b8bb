"""Symmetric NAT on both sides: TURN gets through, STUN alone fails with a TURN hint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from coturn import PASSWORD, USER, coturn
from test_network import arun
from topology import PUBLIC, nat_topology

from volli_nb.lab.peer_handle import PeerProcess

pytestmark = [pytest.mark.network, pytest.mark.slow]


async def pair_across(a: PeerProcess, b: PeerProcess, timeout: float) -> dict[str, object]:
    code = (await a.request("create_code"))["code"]
    answer = (await b.request("accept_code", code=code))["code"]
    await a.request("complete", code=answer)
    return await a.request(
        "wait_connected", reply_timeout=timeout + 5, peer_id=b.peer_id, timeout=timeout
    )


def test_peers_behind_symmetric_nats_connect_only_through_turn(tmp_path: Path) -> None:
    with nat_topology() as topo, coturn(tmp_path, PUBLIC, netns=topo.public) as turn:

        async def attempt(extra: list[str], tag: str, timeout: float) -> dict[str, object]:
            a = PeerProcess(
                str(tmp_path / f"a{tag}.sqlite"),
                "alice",
                loopback=False,
                prefix=topo.exec_prefix(topo.peer_a),
                extra=extra,
            )
            b = PeerProcess(
                str(tmp_path / f"b{tag}.sqlite"),
                "bob",
                loopback=False,
                prefix=topo.exec_prefix(topo.peer_b),
                extra=extra,
            )
            await asyncio.gather(a.start(), b.start())
            try:
                return await pair_across(a, b, timeout)
            finally:
                await asyncio.gather(a.quit(), b.quit())

        async def main() -> None:
            relay = ["--ice-server", f"{turn.url},{USER},{PASSWORD}", "--relay-only"]
            result = await attempt(relay, "turn", 30)
            assert result["selected"] == ["relay", "relay"]
            stun_only = ["--ice-server", f"stun:{PUBLIC}:{turn.port}"]
            with pytest.raises(RuntimeError) as failed:
                await attempt(stun_only, "stun", 15)
            assert "configure a TURN server" in str(failed.value), str(failed.value)

        arun(main, timeout=150)
