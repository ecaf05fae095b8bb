"""A real network cut (iptables DROP in a namespace) between two paired peers, then restored:
they re-pair through volli-signal and the messages queued meanwhile arrive exactly once."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_network import arun
from topology import namespace, sh

from volli_nb.lab.peer_handle import PeerProcess

pytestmark = [pytest.mark.network, pytest.mark.slow]
CUT = ["-p", "udp", "-d", "10.203.0.1", "-j", "DROP"]


def test_cut_and_restore_re_pairs_and_delivers_queued_messages_once(tmp_path: Path) -> None:
    with namespace() as ns:
        prefix = ["ip", "netns", "exec", ns]
        server = subprocess.Popen(
            [*prefix, sys.executable, "-m", "volli_nb.net.signaling.server", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        found = re.search(r"(ws://\S+)", server.stdout.readline())
        assert found
        url = found.group(1)

        async def main() -> None:
            a = PeerProcess(str(tmp_path / "a.sqlite"), "alice", loopback=False, prefix=prefix)
            b = PeerProcess(str(tmp_path / "b.sqlite"), "bob", loopback=False, prefix=prefix)
            await asyncio.gather(a.start(), b.start())
            try:
                await a.request("join", room="lab", url=url)
                await b.request("join", room="lab", url=url)
                await asyncio.gather(
                    a.request("wait_connected", peer_id=b.peer_id),
                    b.request("wait_connected", peer_id=a.peer_id),
                )
                before = (await a.request("send", to=b.peer_id, text="before"))["message_id"]
                await a.wait_event("delivered", message_id=before)
                sh(*prefix, "iptables", "-A", "OUTPUT", *CUT)
                ids = [
                    (await a.request("send", to=b.peer_id, text=f"cut {i}"))["message_id"]
                    for i in range(5)
                ]
                await a.wait_event("PeerOffline", timeout=15)  # the heartbeat notices
                await asyncio.sleep(2)
                sh(*prefix, "iptables", "-D", "OUTPUT", *CUT)
                delivered: set[str] = set()
                async with asyncio.timeout(90):
                    while not set(ids) <= delivered:
                        delivered.add((await a.wait_event("delivered"))["message_id"])
                history = (await b.request("history", peer=a.peer_id))["messages"]
                texts = [m["text"] for m in history]
                assert sorted(texts) == ["before"] + [f"cut {i}" for i in range(5)]
                assert len({m["message_id"] for m in history}) == len(history) == 6
                assert (await a.request("pending"))["rows"] == []
            finally:
                await asyncio.gather(a.quit(), b.quit())

        try:
            arun(main, timeout=150)
        finally:
            server.terminate()
            server.wait(10)
