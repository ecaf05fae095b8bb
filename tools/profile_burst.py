"""Where a burst of 100-byte messages spends its CPU (a profiling script, not a test).

    .venv/bin/volli-nb netns -- .venv/bin/python tools/profile_burst.py [N] [--tottime]

Two scratch profiles in one process, paired on loopback; N concurrent ``send_message``
calls (2,000 by default) under cProfile until the last signed ACK.  Both sides are in
the one profile: the sender's burst (``send_burst._run``: writing, sealing, handing to
the channel) and the receiver's frame (``receiver.frame``: opening, storing), with
aiortc's SCTP and DTLS around them.  Sorted by cumulative time (``--tottime``: by own
time), volli_nb, aiortc and sqlite3 entries only.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path

from volli_nb.app.messages_store import MessagesStore


async def main(count: int, order: str) -> None:
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
    profile = cProfile.Profile()
    profile.enable()
    await asyncio.gather(*(alice.send_message(bob.peer_id, "m" * 100) for _ in range(count)))
    await asyncio.wait_for(done.wait(), 120)
    profile.disable()
    await alice.close()
    await bob.close()
    stats = pstats.Stats(profile)
    stats.sort_stats(order).print_stats("volli_nb|aiortc|sqlite", 45)


if __name__ == "__main__":
    numbers = [int(a) for a in sys.argv[1:] if a.isdigit()]
    asyncio.run(
        main(numbers[0] if numbers else 2000, "tottime" if "--tottime" in sys.argv else "cumtime")
    )
