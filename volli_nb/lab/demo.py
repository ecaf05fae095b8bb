"""``volli-nb demo``: two peers in two OS processes, paired on this machine, no servers.

Alice runs in this process, Bob in a child process with his own SQLite file.
The pairing codes travel over the child's stdin/stdout, standing in for a
person copying them between two terminals.  The printout follows the seed's
two sequence diagrams: online send → ACK → delivered; offline → queue →
retry → delivered after the peer comes back.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from volli_nb.app.chat import ChatMessage
from volli_nb.app.messages_store import MessagesStore
from volli_nb.lab.peer_handle import PeerProcess

WIDTH = 34
# Where a newcomer goes from here (the demo is the README's first command).
NEXT = """
next: the same steps to run yourself, one cell at a time:
  .venv/bin/jupyter lab notebooks/00-start-here.ipynb   (a paired chat, the live panels)
  .venv/bin/volli-shell                                 (a prompt with messagesStore loaded)"""


class _Printer:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, left: str, arrow: str, right: str = "", note: str = "") -> None:
        stamp = f"{time.monotonic() - self.t0:6.2f}s"
        line = f"{stamp}  {left:<6} {arrow:<{WIDTH}} {right:<6}"
        print(f"{line} {note}".rstrip(), flush=True)

    def section(self, title: str) -> None:
        print(f"\n── {title} " + "─" * max(0, 70 - len(title)), flush=True)


def _arrow(label: str, to_right: bool) -> str:
    body = f" {label} "
    pad = max(2, WIDTH - 2 - len(body))
    return (
        ("─" * (pad // 2) + body + "─" * (pad - pad // 2) + "▶")
        if to_right
        else ("◀" + "─" * (pad // 2) + body + "─" * (pad - pad // 2))
    )


def _show_queue(alice: MessagesStore, say: _Printer) -> None:
    delays = alice.message_queue.delays
    for row in alice.message_queue.get_pending():
        wait = (row.next_attempt_at or 0) - alice.clock()
        step = delays[min(row.attempts, len(delays)) - 1] if row.attempts else 0
        say(
            "alice",
            f"  outbox #{row.id} {row.message_id.hex()[:8]} {row.status}",
            "",
            f"failed attempts {row.attempts}, next retry in {wait:.1f} s (of the {step:g} s "
            f"step; {row.last_error})",
        )


async def _pair(alice: MessagesStore, bob: PeerProcess, say: _Printer) -> None:
    code = await alice.create_pairing_code()
    say("alice", _arrow(f"offer code ({len(code)} chars)", True), "bob", "copy-paste #1")
    answer = (await bob.request("accept_code", code=code))["code"]
    say("alice", _arrow(f"answer code ({len(answer)} chars)", False), "bob", "copy-paste #2")
    await alice.complete_pairing(answer)
    await alice.wait_connected(bob.peer_id)
    pair = alice.network_store.candidates(bob.peer_id).selected
    where = f"{pair[0].type} {pair[0].endpoint} ↔ {pair[1].endpoint}" if pair else ""
    say("alice", "═" * 10 + " DTLS + binding ok " + "═" * (WIDTH - 29), "bob", where)


async def _online(alice: MessagesStore, bob: PeerProcess, say: _Printer) -> None:
    for text in ("hello bob", "this is end-to-end encrypted"):
        t = time.monotonic()
        msg = await alice.send_message(bob.peer_id, text)
        say("alice", _arrow(f"MESSAGE {msg.short_id} {text!r}", True), "bob")
        await bob.wait_event("received", message_id=msg.message_id.hex())
        await alice.wait_delivered(msg.message_id)
        ms = (time.monotonic() - t) * 1000
        say(
            "alice", _arrow(f"signed ACK {msg.short_id}", False), "bob", f"delivered in {ms:.1f} ms"
        )
    got: asyncio.Future[ChatMessage] = asyncio.get_running_loop().create_future()
    alice.on_message(lambda m: None if got.done() else got.set_result(m))
    await bob.request("send", to=alice.peer_id, text="hi alice, got both")
    reply = await asyncio.wait_for(got, 10)
    say(
        "alice",
        _arrow(f"MESSAGE {reply.short_id} {reply.text!r}", False),
        "bob",
        "decrypted, stored, ACKed",
    )


async def _offline(alice: MessagesStore, bob: PeerProcess, say: _Printer) -> PeerProcess:
    """Bob leaves, Alice's messages queue and retry, Bob returns: they flush.  Returns the
    restarted Bob."""
    await bob.quit()
    say("", "", "bob", "process exited")
    while alice.network_store.is_connected(bob.peer_id):
        await asyncio.sleep(0.05)
    say("alice", "✕ connection closed (bye)", "", "")
    queued = [
        await alice.send_message(bob.peer_id, t)
        for t in ("are you there?", "sent while you were away")
    ]
    _show_queue(alice, say)
    await asyncio.sleep(1.3)  # the 1 s retry happens while bob is still away
    _show_queue(alice, say)
    bob = await PeerProcess(bob.db, bob.name).start()
    pid = bob.proc.pid if bob.proc else "?"
    say("", "", "bob", f"restarted on his own database (pid {pid})")
    await _pair(alice, bob, say)
    for msg in queued:
        await bob.wait_event("received", message_id=msg.message_id.hex())
        await alice.wait_delivered(msg.message_id)
        say(
            "alice",
            _arrow(f"MESSAGE {msg.short_id} (flushed)", True),
            "bob",
            "delivered exactly once",
        )
    return bob


async def _stored(alice: MessagesStore, bob: PeerProcess) -> bool:
    history = (await bob.request("history", peer=alice.peer_id))["messages"]
    texts = [m["text"] for m in history]
    print(f"bob's history ({len(texts)}): {texts}")
    statuses = [m.status for m in alice.history(bob.peer_id) if m.direction == "out"]
    print(f"alice's sent statuses: {statuses}")
    print(f"alice's outbox still pending: {len(alice.message_queue.get_pending())}")
    return len(texts) == 5 and all(s == "delivered" for s in statuses)


async def run_demo(workdir: Path | None = None) -> int:
    say = _Printer()
    with tempfile.TemporaryDirectory(prefix="volli-demo-") as tmp:
        base = Path(workdir or tmp)
        print(f"volli_nb demo: two peers, two processes, two SQLite files in {base}")
        print("loopback-only ICE (nothing leaves this machine), no STUN/TURN, no signaling server")
        alice = MessagesStore.scratch("alice", directory=base)
        bob = await PeerProcess(str(base / "bob.sqlite"), "bob").start()
        try:
            say.section("1. pairing (the seed's connectToPeer offer/answer, as codes)")
            say("alice", f"peer id {alice.peer_id}", "", "")
            say("bob", f"peer id {bob.peer_id}", "", f"(pid {bob.proc.pid if bob.proc else '?'})")
            await _pair(alice, bob, say)
            number = alice.safety_number(bob.peer_id)
            say("alice", f"safety number {number[:20]}…", "", "compare out of band")
            say.section("2. peer online: encrypt → send → signed ACK → delivered")
            await _online(alice, bob, say)
            say.section("3. peer offline: queue → retry at 1 s, 5 s … → delivered on return")
            bob = await _offline(alice, bob, say)
            say.section("4. what each side stored")
            ok = await _stored(alice, bob)
            print("\ndemo ok" if ok else "\ndemo FAILED")
            print(NEXT)
            return 0 if ok else 1
        finally:
            await bob.quit()
            await alice.close()
