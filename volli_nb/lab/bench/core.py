"""``volli-nb bench --core``: the pure core's speed, no network.

Envelope seal and open per second for 1, 10 and 100 recipients (each over its own
Double Ratchet session; an open verifies a bundle of one, signature included), and the
outbox's enqueue and mark-delivered per second on a real SQLite file.  Figures, not
assertions: machines are noisy.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from volli_nb.core.crypto import handshake
from volli_nb.core.crypto.channel_keys import ChannelKeys, seal_for
from volli_nb.core.crypto.envelope import bundle
from volli_nb.core.crypto.identity import Identity
from volli_nb.core.message_id import new_message_id
from volli_nb.core.store.database import KDF_MIN, Database
from volli_nb.core.store.message_queue import OutgoingMessage, PersistentMessageQueue

NOW_MS = 1_800_000_000_000


def _rate(fn: Callable[[], object], *, min_time: float = 0.5, min_runs: int = 3) -> float:
    """Operations per second of ``fn`` over at least ``min_time`` seconds."""
    runs, start = 0, time.perf_counter()
    while True:
        fn()
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and runs >= min_runs:
            return runs / elapsed


def channel_pair(a: Identity, b: Identity) -> tuple[ChannelKeys, ChannelKeys]:
    """Both sides of one session, as a data channel's handshake would make them."""
    certs = [hashlib.sha256(name.encode()).digest() for name in ("a", "b")]
    pa = handshake.start(a, b.public, local_certificate=certs[0], remote_certificate=certs[1])
    pb = handshake.start(b, a.public, local_certificate=certs[1], remote_certificate=certs[0])
    return (
        ChannelKeys(handshake.finish(pa, pb.hello), a.peer_id, started_ms=NOW_MS),
        ChannelKeys(handshake.finish(pb, pa.hello), b.peer_id, started_ms=NOW_MS),
    )


def envelope_rates(recipients: int, min_time: float = 0.5) -> dict[str, float]:
    sender = Identity.generate()
    pairs = [channel_pair(sender, Identity.generate()) for _ in range(recipients)]
    mine = [ours for ours, _ in pairs]
    body = b"x" * 100

    def make() -> bytes:
        sealed = seal_for(
            mine,
            conversation_id="bench",
            message_id=new_message_id(sender.peer_id),
            counter=1,
            timestamp_ms=NOW_MS,
            plaintext=body,
        )
        return bundle(sender, [sealed])

    data = make()
    seal_rate = _rate(make, min_time=min_time)
    theirs = pairs[0][1]  # opened from the same state each time: nothing is adopted
    open_rate = _rate(
        lambda: theirs.open(data, now_ms=NOW_MS, seen=lambda _mid: False), min_time=min_time
    )
    return {"seal_per_s": seal_rate, "open_per_s": open_rate, "bytes": float(len(data))}


def queue_rates(count: int = 2000) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(Path(tmp) / "bench.sqlite", "bench", kdf=KDF_MIN)
        queue = PersistentMessageQueue(db)
        start = time.perf_counter()
        ids = [
            queue.enqueue(OutgoingMessage(new_message_id("me"), "c", "peer", b"x" * 100, i + 1))
            for i in range(count)
        ]
        enqueue = count / (time.perf_counter() - start)
        start = time.perf_counter()
        for row_id in ids:
            queue.mark_delivered(row_id)
        delivered = count / (time.perf_counter() - start)
        db.close()
    return {"enqueue_per_s": enqueue, "mark_delivered_per_s": delivered}


def run(quick: bool = False) -> dict[str, Any]:
    min_time = 0.2 if quick else 1.0
    return {
        "envelopes": {str(n): envelope_rates(n, min_time) for n in (1, 10, 100)},
        "queue": queue_rates(300 if quick else 2000),
    }


def format_table(result: dict[str, Any]) -> str:
    lines = ["recipients   seal/s     open/s    envelope bytes"]
    for n, row in result["envelopes"].items():
        lines.append(
            f"{n:>10} {row['seal_per_s']:>8.0f} {row['open_per_s']:>10.0f} {row['bytes']:>12.0f}"
        )
    q = result["queue"]
    lines.append(
        f"\noutbox on a SQLite file (WAL, synchronous=NORMAL): enqueue {q['enqueue_per_s']:.0f}/s, "
        f"mark_delivered {q['mark_delivered_per_s']:.0f}/s"
    )
    return "\n".join(lines)


def main(as_json: bool = False, quick: bool = False) -> int:
    result = run(quick)
    print(json.dumps(result, indent=1) if as_json else format_table(result))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main("--json" in sys.argv, "--quick" in sys.argv))
