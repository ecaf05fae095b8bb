"""%load_ext volli_nb and every %volli magic in a real ipykernel."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from kernels import execute, kernel

pytestmark = pytest.mark.network
CODE = r"(volli1\.[A-Za-z0-9_-]+\.[a-z2-7]{8})"


def eventually(kc: object, code: str, pattern: str, timeout: float = 20.0) -> str:
    """Re-run ``code`` until its output matches (results of magics that finish later)."""
    end = time.monotonic() + timeout
    out = ""
    while time.monotonic() < end:
        out = execute(kc, code)  # type: ignore[arg-type]
        if re.search(pattern, out):
            return out
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never appeared; last output:\n{out}")


SETUP = """
from volli_nb import MessagesStore
from volli_nb.netconfig import NetworkConfig
from volli_nb.storage import KDF_MIN
from volli_nb.identity import Identity
bob = MessagesStore.open("bob.sqlite", "pw", name="bob", kdf=KDF_MIN,
                         config=NetworkConfig(loopback_only=True))
ghost = Identity.generate()
messagesStore.add_contact(ghost.public, name="ghost")
await messagesStore.send_message(ghost.peer_id, "into the void")
"""


def test_every_magic_in_a_real_kernel(tmp_path: Path) -> None:
    with kernel(str(tmp_path)) as kc:
        execute(kc, "%load_ext volli_nb")
        assert "%volli dashboard" in execute(kc, "%volli help")
        assert "no messagesStore yet" in execute(kc, "%volli peers")
        assert "messagesStore = <MessagesStore alice" in execute(kc, "%volli new alice")
        execute(kc, SETUP)
        queue = execute(kc, "%volli queue")
        assert "Pending queue" in queue and "pending" in queue and "peer offline" in queue
        # %volli pair shows the offer code when it is ready (in the display it updates).
        execute(kc, "%volli pair")
        # ...its offer is an open connection under a pairing token once the task ran.
        eventually(kc, "print(list(messagesStore.network_store.peers))", r"'pair-[0-9a-f]+'")
        code = execute(kc, "c = await messagesStore.create_pairing_code(); print(c)").strip()
        answer = execute(kc, f"a = await bob.accept_pairing_code({code!r}); print(a)").strip()
        assert re.fullmatch(CODE, answer)
        execute(kc, f"%volli pair {answer}")  # an answer code: the magic completes pairing
        eventually(
            kc, "print(messagesStore.network_store.connected_peers())", r"\['[a-z2-7]{16}'\]"
        )
        peers = execute(kc, "%volli peers")
        assert "connected" in peers and "host 127.0.0.1" in peers
        execute(kc, "%volli sync")
        dashboard = execute(kc, "%volli dashboard")
        assert "Peers" in dashboard and "ICE candidates" in dashboard and "Event log" in dashboard
        assert "unknown command" in execute(kc, "%volli frobnicate")
        execute(kc, "await messagesStore.close(); await bob.close()")
