"""Two volli-shells in two real terminals (tmux) pair by pasted codes and chat, as two
people would: each knows the other by a distinct default name, an incoming message prints
one line above the receiving prompt, ``history()`` reads the conversation, ``send`` works
typed without ``await``, and ``accept`` prints its answer code once."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from test_network import arun
from test_shell import CODE, PROMPT, Tmux, shell_command

pytestmark = pytest.mark.network
BANNER = r"volli-shell — (\S+) \(([a-z2-7]{16})\)"
TIME = r"\d\d:\d\d:\d\d"


def test_two_shells_pair_and_chat_by_name(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Tmux(shell_command(), tmp_path / "a")  # no --name: each picks a distinct default
    b = Tmux(shell_command(), tmp_path / "b")

    async def main() -> None:
        try:
            name_a, id_a = (await a.wait_for(BANNER)).groups()
            name_b, id_b = (await b.wait_for(BANNER)).groups()
            host = re.escape(socket.gethostname().split(".")[0])
            assert re.fullmatch(rf"{host}-\d+", name_a) and re.fullmatch(rf"{host}-\d+", name_b)
            assert name_a != name_b
            await a.wait_for(PROMPT.pattern)
            await b.wait_for(PROMPT.pattern)

            offer = (await a.run("code = await offer()", CODE)).group(1)
            answer = (await b.run(f'await accept("{offer}")', CODE)).group(1)
            assert b.screen().count(answer) == 1  # printed to copy, not echoed a second time
            await a.run(f'await complete("{answer}")', rf"connected to {name_b} .*: {id_b}")
            await b.run(f'await messagesStore.wait_connected("{id_a}")', r"^")
            await b.run("peers()", rf"\n{name_a} +{id_a} +yes +connected")  # A by A's name

            # Typed without await, by name: it starts, the prompt stays, one line when done.
            sent = await a.run(
                f'send("{name_b}", "hello without await")',
                r"^\n→ sent [0-9a-f]{8} \(\w+\): 'hello without await'\n",
            )
            assert "coroutine" not in sent.string and "ChatMessage" not in sent.string
            # The receiving shell, idle at its prompt, prints the message above it.
            await b.wait_for(rf"\n← {TIME} {name_a}: hello without await\n")
            await b.run(f'm = await send("{name_a}", "and back")', r"^")
            await a.wait_for(rf"\n← {TIME} {name_b}: and back\n")

            await b.run("history()", rf"{TIME} {name_a}: hello without await\n{TIME} me: and back")
            history = await a.run(
                f'history("{name_b}")', rf"{TIME} me: hello without await ✓\n{TIME} {name_b}: and"
            )
            assert "dm-" not in history.string  # names, never the conversation id
            await a.ctrl_d()
            await b.ctrl_d()
        finally:
            a.kill()
            b.kill()

    arun(main, timeout=120)
