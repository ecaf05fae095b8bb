"""volli-shell in a real terminal (tmux): debug commands, pairing by pasted codes, Ctrl-D."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require
from test_network import arun

from volli_nb.peer_process import PeerProcess

pytestmark = pytest.mark.network
SHELL = str(Path(sys.executable).parent / "volli-shell")


class Tmux:
    def __init__(self, command: str) -> None:
        self.socket = f"volli-test-{time.monotonic_ns()}"
        self._tmux("new-session", "-d", "-s", "shell", "-x", "250", "-y", "60", command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "shell")

    def type(self, text: str, enter: bool = True) -> None:
        self._tmux("send-keys", "-t", "shell", "-l", text)
        if enter:
            self._tmux("send-keys", "-t", "shell", "Enter")

    def key(self, key: str) -> None:
        self._tmux("send-keys", "-t", "shell", key)

    async def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            found = re.search(pattern, self.screen())
            if found:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"{pattern!r} not on screen:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def test_shell_debug_commands_pairing_and_ctrl_d(tmp_path: Path) -> None:
    require(shutil.which("tmux") is not None, "tmux is not installed (apt-get install tmux)")
    term = Tmux(f"{SHELL} --name shelly; echo SHELL-EXIT=$?; sleep 60")

    async def main() -> None:
        other = await PeerProcess(str(tmp_path / "other.sqlite"), "other").start()
        try:
            await term.wait_for(r"volli-shell — shelly \((\w+)\)")
            await term.wait_for(r">>>")
            term.type("await messagesStore.sync_messages()")
            await term.wait_for(r"SyncReport\(sent=0, in_flight=0, waiting_offline=0, stuck=0\)")
            term.type("messagesStore.network_store.peers")
            await term.wait_for(r"peers\n\{\}")
            term.type("code = await offer()")
            code = (await term.wait_for(r"(volli1\.[A-Za-z0-9_-]+\.[a-z2-7]{8})")).group(1)
            answer = (await other.request("accept_code", code=code))["code"]
            assert len(answer) > 500  # a long paste, sent literally
            term.type(f'await complete("{answer}")')
            await term.wait_for(rf"connected to {other.peer_id}")
            term.type("[p for p in messagesStore.network_store.peers]")
            await term.wait_for(rf"\['{other.peer_id}'\]")
            term.type(f'm = await send("{other.peer_id}", "from the shell")')
            got = await other.wait_event("received")
            assert got["text"] == "from the shell"
            term.type("peers()")
            await term.wait_for(r"connected")
            started = time.monotonic()
            term.key("C-d")
            await term.wait_for(r"closed every connection")
            await term.wait_for(r"SHELL-EXIT=0")
            assert time.monotonic() - started < 3.0
        finally:
            await other.quit()
            term.kill()

    arun(main, timeout=90)
