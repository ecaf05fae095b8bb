"""Two real Jupyter kernels pair (by pasted codes, then through volli-signal) and chat.

The cells are the ones the README documents for pairing two notebooks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from kernels import execute, kernel

pytestmark = [pytest.mark.network, pytest.mark.slow]

OPEN = """
from volli_nb import MessagesStore, NetworkConfig
store = MessagesStore.open("{name}.sqlite", "{name} passphrase", name="{name}",
                           config=NetworkConfig(loopback_only=True))
print("PEER", store.peer_id)
"""
SEND = """
m = await store.send_message("{peer}", "{text}")
print("STATUS", await store.wait_delivered(m.message_id))
"""


def peer_id(output: str) -> str:
    match = re.search(r"PEER (\w+)", output)
    assert match, output
    return match.group(1)


def exchange(ka: object, kb: object, a: str, b: str) -> None:
    out = execute(ka, SEND.format(peer=b, text="hello from kernel A"))  # type: ignore[arg-type]
    assert f"STATUS {{'{b}': 'delivered'}}" in out
    out = execute(kb, SEND.format(peer=a, text="hello from kernel B"))  # type: ignore[arg-type]
    assert f"STATUS {{'{a}': 'delivered'}}" in out
    for k, other in ((ka, b), (kb, a)):
        texts = execute(k, f"print(sorted(m.text for m in store.history('{other}')))")  # type: ignore[arg-type]
        assert "['hello from kernel A', 'hello from kernel B']" in texts


def test_two_kernels_pair_by_pasted_codes(tmp_path: Path) -> None:
    with kernel(str(tmp_path)) as ka, kernel(str(tmp_path)) as kb:
        a = peer_id(execute(ka, OPEN.format(name="alice")))
        b = peer_id(execute(kb, OPEN.format(name="bob")))
        code = execute(ka, "code = await store.create_pairing_code()\nprint(code)").strip()
        answer = execute(kb, f"answer = await store.accept_pairing_code({code!r})\nprint(answer)")
        out = execute(
            ka,
            f"peer = await store.complete_pairing({answer.strip()!r})\n"
            "await store.wait_connected(peer)\nprint('PAIRED', peer)",
        )
        assert f"PAIRED {b}" in out
        exchange(ka, kb, a, b)
        execute(ka, "await store.close()")
        execute(kb, "await store.close()")


def test_two_kernels_pair_through_volli_signal(tmp_path: Path) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "volli_nb.net.signaling.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = re.search(r"(ws://\S+)", line)
        assert url, line
        with kernel(str(tmp_path)) as ka, kernel(str(tmp_path)) as kb:
            a = peer_id(execute(ka, OPEN.format(name="alice")))
            b = peer_id(execute(kb, OPEN.format(name="bob")))
            execute(ka, f"await store.join('lab', {url.group(1)!r})")
            execute(kb, f"await store.join('lab', {url.group(1)!r})")
            for k, other in ((ka, b), (kb, a)):
                execute(k, f"await store.wait_connected({other!r}, timeout=30)")
            exchange(ka, kb, a, b)
            out = execute(ka, "print(sorted(store.room_session.online))")
            assert b in out
            execute(ka, "await store.close()")
            execute(kb, "await store.close()")
    finally:
        server.terminate()
        server.wait(10)
