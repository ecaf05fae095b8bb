"""The project's namespace runner, and real pairing over an interface address inside it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_NETNS, require
from netutil import open_store, pair
from test_network import arun

from volli_nb.lab import netns


def test_runner_gives_an_isolated_namespace() -> None:
    ok, why = netns.can_create()
    require(ok, f"volli-nb netns {why}")
    out = subprocess.run(
        [sys.executable, "-m", "volli_nb.ui.cli", "netns", "--", "ip", "-o", "-4", "addr"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    addresses = sorted(line.split()[3] for line in out.splitlines())
    assert addresses == ["10.203.0.1/24", "127.0.0.1/8"]


def test_runner_reports_why_it_cannot_run() -> None:
    if os.geteuid() == 0:
        assert netns.can_create() == (True, "") or "iproute2" in netns.can_create()[1]
    else:
        assert netns.main(["true"]) == 2


@pytest.mark.network
@pytest.mark.clean_link("pairs over the namespace interface, not through the relay")
def test_peers_pair_over_the_namespace_interface(tmp_path: Path) -> None:
    require(IN_NETNS, "needs to run inside `volli-nb netns` (as `make test` does as root)")

    async def main() -> None:
        alice = open_store(tmp_path, "alice", loopback=False)
        bob = open_store(tmp_path, "bob", loopback=False)
        await pair(alice, bob)
        view = alice.network_store.candidates(bob.peer_id)
        assert view.selected is not None
        assert view.selected[0].address == netns.ADDRESS
        assert {c.type for c in view.local} == {"host"}
        sent = await alice.send_message(bob.peer_id, "over v0")
        await alice.wait_delivered(sent.message_id)
        await asyncio.gather(alice.close(), bob.close())

    arun(main)
