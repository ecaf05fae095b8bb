"""Where a burst of 100-byte messages spends its CPU (a profiling script, not a test).

    .venv/bin/volli-nb netns -- .venv/bin/python tools/profile_burst.py [N] [--tottime]
    .venv/bin/volli-nb netns -- .venv/bin/python tools/profile_burst.py [N] --stages

Two scratch profiles in one process, paired on loopback; N concurrent ``send_message``
calls (2,000 by default; in gathers of 2,000) until the last signed ACK.  Both sides are
in the one process: the sender's burst (``send_burst._run``: writing, sealing, handing to
the channel) and the receiver's frame (``receiver.frame``: opening, storing), with
aiortc's SCTP and DTLS around them.

Default: under cProfile, sorted by cumulative time (``--tottime``: by own time),
volli_nb, aiortc and sqlite3 entries only.  cProfile charges every Python call, so it
overstates code made of many small calls (row MACs, parsing) against C calls.

``--stages``: no profiler; the process CPU (``time.process_time``) spent inside a few
stages, each counted inclusively (a stage inside another is counted in both), per
delivered message, both sides together.  The stages are synchronous calls, so their
time is theirs alone; aiortc's are coroutines that do not suspend on this path.
"""

from __future__ import annotations

import asyncio
import cProfile
import functools
import importlib
import inspect
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from volli_nb.app.messages_store import MessagesStore

STAGES = {  # what each stage is, by where it is defined (class.method or function)
    "aiortc.rtcsctptransport:RTCSctpTransport._handle_data": "aiortc: a received packet "
    "(SCTP, with our frame handling inside)",
    "volli_nb.net.link:Link.data": "  our handling of a received frame (both directions)",
    "volli_nb.app.receiver:Receiver.frame": "    receiver: open, store, answer",
    "volli_nb.core.crypto.envelope:open_bundle": "      open the envelopes (ratchet, AEAD)",
    "volli_nb.app.receiver:Receiver._store": "      store them (seal at rest, MACs, SQL)",
    "volli_nb.core.protocol.session:Session.receive": "    decode the frame (parse bundle)",
    "volli_nb.app.sender:Sender._on_network_event": "    sender: a signed ACK settles rows",
    "volli_nb.core.store.outbox_batch:write_sent": "sender: write a burst (seal at rest, "
    "MACs, SQL)",
    "volli_nb.core.crypto.channel_keys:seal_for": "sender: seal (ratchet step, AEAD)",
    "aiortc.rtcsctptransport:RTCSctpTransport._send_chunk": "aiortc: send a DATA chunk "
    "(SCTP, DTLS)",
    "aiortc.rtcsctptransport:RTCSctpTransport._send_sack": "aiortc: send a SACK",
    "aiortc.rtcsctptransport:RTCSctpTransport._receive_sack_chunk": "aiortc: a SACK received",
    "volli_nb.core.store.sealed_db:SealedDatabase.execute": "SQLite statements (all)",
    "volli_nb.core.store.keyring:row_mac": "row MACs (all)",
    "volli_nb.core.eventlog:EventLog.add": "event log lines (all)",
}


def _timed(name: str, fn: Any, spent: dict[str, float], calls: Counter[str]) -> Any:
    clock = time.process_time
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_coroutine(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + clock() - start
                calls[name] += 1

        return timed_coroutine

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + clock() - start
            calls[name] += 1

    return timed


def time_stages(spent: dict[str, float], calls: Counter[str]) -> None:
    """Wrap every stage, wherever a module imported it by name."""
    for where in STAGES:
        module_name, _, attr = where.partition(":")
        module = importlib.import_module(module_name)
        if "." in attr:
            owner_name, method = attr.split(".")
            owner = getattr(module, owner_name)
            setattr(owner, method, _timed(where, owner.__dict__[method], spent, calls))
            continue
        original = getattr(module, attr)
        wrapped = _timed(where, original, spent, calls)
        for loaded in list(sys.modules.values()):
            if getattr(loaded, "__name__", "").startswith("volli_nb"):
                for key, value in list(vars(loaded).items()):
                    if value is original:
                        setattr(loaded, key, wrapped)


async def burst(count: int, measure: Callable[[], Any] | None = None) -> float:
    """Send ``count`` messages from a fresh alice to bob; CPU seconds until the last ACK."""
    folder = Path(tempfile.mkdtemp(prefix="volli-profile-"))
    alice = MessagesStore.scratch("alice", directory=folder)
    bob = MessagesStore.scratch("bob", directory=folder)
    await alice.complete_pairing(await bob.accept_pairing_code(await alice.create_pairing_code()))
    await alice.wait_connected(bob.peer_id)
    first = await alice.send_message(bob.peer_id, "warm up")
    await alice.wait_delivered(first.message_id)
    done, delivered = asyncio.Event(), [0]

    def on_delivered(_message_id: bytes, _peer: str) -> None:
        delivered[0] += 1
        if delivered[0] >= count:
            done.set()

    alice.on_delivered(on_delivered)
    if measure is not None:
        measure()
    start = time.process_time()
    for sent in range(0, count, 2000):
        size = min(2000, count - sent)
        await asyncio.gather(*(alice.send_message(bob.peer_id, "m" * 100) for _ in range(size)))
    await asyncio.wait_for(done.wait(), 300)
    cpu = time.process_time() - start
    await alice.close()
    await bob.close()
    return cpu


def profile(count: int, order: str) -> None:
    profiler = cProfile.Profile()
    asyncio.run(burst(count, profiler.enable))
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats(order).print_stats("volli_nb|aiortc|sqlite", 45)


def stages(count: int) -> None:
    spent: dict[str, float] = {}
    calls: Counter[str] = Counter()
    time_stages(spent, calls)

    def restart() -> None:  # the pairing and the warm-up message are not counted
        spent.clear()
        calls.clear()

    cpu = asyncio.run(burst(count, restart))
    print(f"{count:,} messages: {cpu / count * 1e6:.0f} µs of CPU a message, both sides")
    print(f"{'µs/msg':>7} {'calls/msg':>9}  stage")
    for where, what in STAGES.items():
        print(f"{spent.get(where, 0.0) / count * 1e6:7.1f} {calls[where] / count:9.3f}  {what}")


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a.isdigit()]
    n = numbers[0] if numbers else 2000
    if "--stages" in sys.argv:
        stages(n)
    else:
        profile(n, "tottime" if "--tottime" in sys.argv else "cumtime")
