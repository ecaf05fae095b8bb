"""volli-shell in a real terminal (tmux): debug commands, pairing by pasted codes, Ctrl-D.

The shell runs in a tmux pane; the test types into it with ``send-keys -l`` (literal,
so a ~1 KB pairing code arrives unchanged) and reads the pane with ``capture-pane -J``
(wrapped lines joined, so a code can be copied off the screen as a user would).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require
from test_network import arun

from volli_nb.app.messages_store import MessagesStore
from volli_nb.core.netconfig import NetworkConfig
from volli_nb.core.store.database import KDF_MIN
from volli_nb.lab.peer_handle import PeerProcess
from volli_nb.ui.shell import CLOSE_TIMEOUT

pytestmark = pytest.mark.network
SHELL = str(Path(sys.executable).parent / "volli-shell")
CODE = r"(volli2\.[A-Za-z0-9_-]+\.[a-z2-7]{8})"
PROMPT = re.compile(r"(?m)^>>>")


def printed_after(echo_and_output: str) -> str:
    """What a command printed: drop its prompt line and the ``... `` lines ptpython wraps a
    long input into; keep the newline before the output, as patterns expect one."""
    lines = echo_and_output.split("\n")[1:]
    while lines and lines[0].startswith("... "):
        lines.pop(0)
    return "\n" + "\n".join(lines)


class Tmux:
    """One tmux server (its socket in ``where``) with one wide pane running ``command``."""

    def __init__(self, command: str, where: Path) -> None:
        require(shutil.which("tmux") is not None, "tmux is not installed (apt-get install tmux)")
        self.socket = str(where / "tmux.sock")
        self._tmux("new-session", "-d", "-s", "shell", "-x", "250", "-y", "60", command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=True
        ).stdout

    def screen(self) -> str:
        """The whole pane, scrollback included, wrapped lines joined."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "shell")

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
            await asyncio.sleep(0.05)
        raise AssertionError(f"{pattern!r} not on screen:\n{self.screen()}")

    async def run(
        self, command: str, expect: str, timeout: float = 20.0, *, error_ok: bool = False
    ) -> re.Match[str]:
        """Type ``command``; wait until the shell is back at a prompt *and* what it printed
        since matches ``expect`` (a traceback fails at once unless ``error_ok``).

        Why not read once when the prompt returns: with ``patch_stdout`` ptpython writes
        printed text from a background flush, so the next prompt can be drawn before the
        output lands above it, and a long line can be caught half written.  So the output
        is read again until it matches (or the timeout), always from below the command's
        own echo (its prompt line and ptpython's ``...`` continuation lines, which hold a
        pasted code) to the end of the joined pane.  Waiting for the prompt still
        matters: a command's output is only complete once it is back."""
        before = len(PROMPT.findall(self.screen()))
        self.type(command)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            screen = self.screen()
            starts = [m.start() for m in PROMPT.finditer(screen)]
            if len(starts) > before:  # back at a prompt after the command
                output = printed_after(screen[starts[before - 1] :])
                if not error_ok and "Traceback" in output:
                    raise AssertionError(f"{command!r} raised:\n{screen}")
                found = re.search(expect, output)
                if found:
                    return found
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"{expect!r} not in the output of {command!r} within {timeout} s:\n{self.screen()}"
        )

    async def ctrl_d(self, timeout: float = 5.0) -> float:
        """Ctrl-D at an empty prompt; the shell's exit status must be 0.  Returns seconds."""
        started = time.monotonic()
        self.key("C-d")
        await self.wait_for(r"SHELL-EXIT=(\d+)", timeout)
        elapsed = time.monotonic() - started
        assert "SHELL-EXIT=0" in self.screen(), self.screen()
        return elapsed

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True)


def shell_command(*args: str, env: str = "env -u VOLLI_PASSPHRASE") -> str:
    return f"{env} {shlex.join([SHELL, *args])}; echo SHELL-EXIT=$?; sleep 120"


def test_shell_debug_commands_pairing_and_ctrl_d(tmp_path: Path) -> None:
    term = Tmux(shell_command("--name", "shelly"), tmp_path)

    async def main() -> None:
        other = await PeerProcess(str(tmp_path / "other.sqlite"), "other").start()
        try:
            banner = await term.wait_for(r"volli-shell — shelly \(([a-z2-7]{16})\)")
            shell_id = banner.group(1)
            throwaway = Path((await term.wait_for(r"throwaway in (\S+) .*KDF_MIN")).group(1))
            assert (throwaway / "profile.sqlite").exists()
            await term.wait_for(r"ICE: loopback only")
            await term.wait_for(PROMPT.pattern)
            # The seed's debug commands, typed as a user would.
            await term.run(
                "await messagesStore.sync_messages()",
                r"SyncReport\(sent=0, in_flight=0, waiting_offline=0, stuck=0\)",
            )
            await term.run("messagesStore.network_store.peers", r"\n\{\}\n")
            # The first thing the banner names: its repr reads the profile (pending), and
            # ptpython prints results from a worker thread, where SQLite may not be used.
            await term.run("messagesStore", r"<MessagesStore shelly peer_id=\w{16} .*pending=0>")
            await term.run(  # a method, not a helper: without await it cannot run, and says so
                "messagesStore.sync_messages()", r"sync_messages\(…\) did not run: put `await`"
            )
            await term.run(
                "peers()", r"name +peer +verified +connection +ice +rtt +last seen\n\(none\)"
            )
            await term.run("pending()", r"\(none\)")

            # Pairing: copy the offer off the screen, paste the answer back (literally).
            offer = (await term.run("code = await offer()", CODE)).group(1)
            await term.run("len(code)", rf"\n{len(offer)}\n")  # the screen copy is whole
            answer = (await other.request("accept_code", code=offer))["code"]
            assert len(answer) > 200  # ~300 characters, typed with send-keys -l
            await term.run(
                f'await complete("{answer}")', rf"connected to other \(\w{{8}}\): {other.peer_id}"
            )
            await term.run(
                "messagesStore.network_store.connected_peers()", rf"\['{other.peer_id}'\]"
            )
            row = await term.run(
                "peers()", rf"\n(other +{other.peer_id} +yes +connected +completed +\S+ ms +[^\n]*)"
            )
            assert len(row.group(1)) < 100  # one short line a peer, not ~230 characters

            # Messages both ways; the incoming one arrives while the prompt waits.
            await term.run(f'm = await send("{other.peer_id}", "from the shell")', r"^")
            got = await other.wait_event("received")
            assert (got["text"], got["from"]) == ("from the shell", shell_id)
            await term.run("await messagesStore.wait_delivered(m.message_id)", r"delivered")
            await term.run("pending()", r"\(none\)")
            await other.request("send", to=shell_id, text="to the idle shell")
            await other.wait_event("delivered")  # acked by the shell's loop, at its prompt
            await term.run(
                f'[m.text for m in messagesStore.history("{other.peer_id}")]',
                r"\['from the shell', 'to the idle shell'\]",
            )

            elapsed = await term.ctrl_d()
            assert "volli-shell: closed every connection" in term.screen()
            # The shell gives closing CLOSE_TIMEOUT (2 s) before it gives up; one more second
            # covers the interpreter's exit and the pane showing the exit status.
            bound = CLOSE_TIMEOUT + 1.0
            assert elapsed < bound, f"Ctrl-D took {elapsed:.2f} s (bound {bound:g} s)"
            assert not throwaway.exists()  # the throwaway profile goes with the shell
            await other.wait_event("PeerOffline", timeout=5)  # a real goodbye, not a timeout
            print(f"Ctrl-D to exit: {elapsed:.2f} s")
        finally:
            await other.quit()
            term.kill()

    arun(main, timeout=120)


def test_shell_pair_helper_accepts_an_offer(tmp_path: Path) -> None:
    """The other direction: the shell accepts an offer with ``pair(code)``."""
    term = Tmux(shell_command("--name", "acceptor"), tmp_path)

    async def main() -> None:
        other = await PeerProcess(str(tmp_path / "other.sqlite"), "offerer").start()
        try:
            shell_id = (await term.wait_for(r"acceptor \(([a-z2-7]{16})\)")).group(1)
            await term.wait_for(PROMPT.pattern)
            offer = (await other.request("create_code"))["code"]
            assert len(offer) > 200
            answer = await term.run(f'answer = await pair("{offer}")', CODE)
            await other.request("complete", code=answer.group(1))
            await other.request("wait_connected", peer_id=shell_id)
            await term.run(f'await messagesStore.wait_connected("{other.peer_id}")', r"^")
            await term.run(
                "messagesStore.network_store.connected_peers()", rf"\['{other.peer_id}'\]"
            )
            await term.run(
                'await pair("volli2.garbage.abcdefgh")',
                r"BadPairingCode: .*checksum",
                error_ok=True,
            )
            await term.ctrl_d()
        finally:
            await other.quit()
            term.kill()

    arun(main, timeout=90)


def test_shell_profile_passphrase(tmp_path: Path) -> None:
    """--profile: a wrong passphrase is refused clearly (re-asked at a terminal; exit 2
    from $VOLLI_PASSPHRASE); the right one opens the same identity."""
    profile = tmp_path / "me.sqlite"

    async def create() -> str:
        store = MessagesStore.open(
            profile, "right one", name="me", kdf=KDF_MIN, config=NetworkConfig(loopback_only=True)
        )
        peer_id = store.peer_id
        await store.close()
        return peer_id

    peer_id = arun(create)
    scripted = subprocess.run(
        [SHELL, "--profile", str(profile)],
        env={**os.environ, "VOLLI_PASSPHRASE": "wrong one"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert scripted.returncode == 2
    assert "the passphrase does not unlock this profile" in scripted.stderr

    term = Tmux(shell_command("--profile", str(profile), "--name", "me"), tmp_path)

    async def main() -> None:
        try:
            await term.wait_for(rf"passphrase for {re.escape(str(profile))}: ")
            term.type("wrong one")
            await term.wait_for(r"the passphrase does not unlock this profile.*\n.*passphrase for")
            term.type("right one")
            where = re.escape(str(profile))
            await term.wait_for(rf"volli-shell — me \({peer_id}\)  profile: {where}")
            await term.wait_for(PROMPT.pattern)
            assert "right one" not in term.screen()  # getpass: nothing echoed
            await term.run("messagesStore.peer_id", peer_id)
            await term.ctrl_d()
        finally:
            term.kill()

    arun(main, timeout=60)


def test_shell_new_profile_asks_twice(tmp_path: Path) -> None:
    """--profile with a missing file creates it, after the passphrase is typed twice."""
    profile = tmp_path / "new.sqlite"
    term = Tmux(shell_command("--profile", str(profile)), tmp_path)

    async def main() -> None:
        try:
            await term.wait_for(r"does not exist; a new profile will be created there")
            await term.wait_for(r"choose a passphrase: ")
            term.type("one")
            await term.wait_for(r"repeat it: ")
            term.type("two")
            await term.wait_for(r"the two passphrases differ; again\n.*choose a passphrase: ")
            term.type("three")
            await term.wait_for(r"repeat it: [\s\S]*repeat it: ")
            term.type("three")
            await term.wait_for(rf"profile: {re.escape(str(profile))} \(new\)")
            await term.wait_for(PROMPT.pattern)
            await term.ctrl_d()
        finally:
            term.kill()

    arun(main, timeout=60)
    assert profile.exists()


def test_shell_shows_progress_and_readable_events(tmp_path: Path) -> None:
    """A large message: a bar in the toolbar under the prompt while it goes out, one line
    above the prompt once its signed ACK is in; events() reads in wall-clock time."""
    term = Tmux(shell_command("--name", "sender"), tmp_path)

    async def main() -> None:
        other = await PeerProcess(str(tmp_path / "other.sqlite"), "receiver").start()
        try:
            await term.wait_for(PROMPT.pattern)
            offer = (await term.run("code = await offer()", CODE)).group(1)
            answer = (await other.request("accept_code", code=offer))["code"]
            await term.run(
                f'await complete("{answer}")', rf"connected to receiver .*{other.peer_id}"
            )
            await term.run("import base64, os; big = base64.b64encode(os.urandom(4_500_000))", "^")
            term.type(f'm = await send("{other.peer_id}", big.decode())')
            # The toolbar: description, percentage and the stage, while the prompt waits.
            bar = await term.wait_for(r"→ receiver: +\d+%\|[^\n]*(sending|signed ACK)", 30)
            assert "\n>>>" not in term.screen()[bar.end() :]  # drawn under the running input
            await term.wait_for(r"✓ [0-9a-f]{8} → receiver: acknowledged \([\d.]+MB", 60)
            await term.run(
                "await messagesStore.wait_delivered(m.message_id, timeout=60)", "delivered"
            )
            # Readable times: HH:MM:SS.mmm, then seconds since the first event.
            await term.run("events(5)", r"\n\d\d:\d\d:\d\d\.\d{3} +\+\d+\.\d{3} s queue +\[")
            await term.run("diagram()", r"sequenceDiagram[\s\S]*MESSAGE [0-9a-f]{8} \([\d.]+ MB")
            await term.ctrl_d()
        finally:
            await other.quit()
            term.kill()

    arun(main, timeout=150)


def test_shell_errors_and_ctrl_c_are_one_line(tmp_path: Path) -> None:
    """A student's mistake at the prompt printed an 18-line traceback through our modules
    (its message, which says what to do, last), and Ctrl-C during an ``await`` a traceback
    through asyncio ending in a bare CancelledError: now one line each, and the shell
    carries on."""
    term = Tmux(shell_command("--name", "student"), tmp_path)

    async def main() -> None:
        try:
            await term.wait_for(PROMPT.pattern)
            said = await term.run('await complete("volli2.xx")', r"\n(.*)\n", error_ok=True)
            assert said.group(1).startswith("BadPairingCode: this is not a volli pairing code")
            output = await term.run('send("bob", "hi")', r"\n(.*)\n", error_ok=True)
            assert "NotFound: no conversation, contact or contact name 'bob'" in output.group(1)
            term.type('print("waiting"); await messagesStore.wait_connected("zed", timeout=60)')
            await term.wait_for(r"\nwaiting\n")
            term.key("C-c")
            await term.wait_for(r"\n(\^C)?KeyboardInterrupt: the await was cancelled \(connections")
            await term.run("1 + 1", r"\n2\n")
            # `help` lists the helpers again (Python's said only to call help()).
            await term.run("help", r"\nLoaded: messagesStore[\s\S]*Helpers: peers\(\)")
            await term.run("help()", r"Helpers: peers\(\)")
            assert "Traceback" not in term.screen(), term.screen()
            await term.ctrl_d()
        finally:
            term.kill()

    arun(main, timeout=60)


def test_ctrl_d_pressed_during_an_await_closes_the_shell_after_it(tmp_path: Path) -> None:
    """The terminal took a Ctrl-D typed while an ``await`` ran as end-of-file that nobody
    read: the key was lost and the shell stayed open.  Now it is typed ahead, as any key,
    and the prompt that follows reads it: the shell closes, exit status 0."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    term = Tmux(shell_command("--name", "student"), tmp_path)

    async def main() -> None:
        try:
            await term.wait_for(PROMPT.pattern)
            read = f"lambda: open({str(fifo)!r}).read()"
            term.type(f'print("waiting"); await asyncio.to_thread({read})')
            await term.wait_for(r"\nwaiting\n")
            term.key("C-d")  # while the await still runs (it waits for the FIFO's writer)
            await asyncio.to_thread(fifo.write_text, "go")
            await term.wait_for(r"SHELL-EXIT=(\d+)", 10)
            assert "SHELL-EXIT=0" in term.screen(), term.screen()
        finally:
            term.kill()

    arun(main, timeout=60)
